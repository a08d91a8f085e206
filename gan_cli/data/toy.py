"""Toy distributions, sampled fresh on the device from a ``torch.Generator``.

* ``ring8``  -- ``n_modes`` Gaussians evenly on a circle (VEEGAN, Srivastava et al. 2017; PacGAN,
  Lin et al. 2018): angles ``2 pi k / n_modes`` for ``k = 0 .. n_modes-1`` -- *distinct* angles
  (a popular notebook uses ``linspace(0, 2 pi, 8)``, whose first and last angle coincide, so it has 7
  modes), radius ``data.radius``, std ``data.std``.
* ``grid25`` -- ``grid x grid`` Gaussians at ``{-4, -2, 0, 2, 4}^2`` (spacing ``data.spacing``, centred
  on 0), std ``data.std`` (0.05).
* ``mog1d``  -- ``n_modes`` equal-weight 1-D Gaussians evenly spaced on ``[-radius, radius]``:
  ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)`` with the shipped config.
* ``lines``  -- the disjoint-support example ``(0, U[0, 1])`` (Arjovsky et al. 2017, Example 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..config import DataConfig, component_schema
from .base import Batch, DataInfo, DataSource


def ring_centers(n_modes: int, radius: float) -> torch.Tensor:
    """``(n_modes, 2)`` points at angles ``2 pi k / n_modes`` (k < n_modes: no duplicate endpoint)."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def grid_centers(grid: int, spacing: float) -> torch.Tensor:
    """``(grid**2, 2)`` points of a square grid centred on the origin (row-major, x varies slowest)."""
    coords = (torch.arange(grid, dtype=torch.float64) - (grid - 1) / 2) * spacing
    xx, yy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1).float()


def line_centers(n_modes: int, radius: float) -> torch.Tensor:
    """``(n_modes, 1)`` points evenly spaced on ``[-radius, radius]`` (0 for a single mode)."""
    if n_modes == 1:
        return torch.zeros(1, 1)
    return torch.linspace(-radius, radius, n_modes, dtype=torch.float64).float().unsqueeze(1)


class MixtureSource(DataSource):
    """Equal-weight mixture of isotropic Gaussians ``N(centers[k], std^2 I)``; a sample's label is its ``k``."""

    def __init__(self, info: DataInfo, device: torch.device):
        self.info = info
        self.device = device
        self._centers = info.centers.to(device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Batch:
        dev = self._rng_device(generator)
        k = torch.randint(0, self._centers.shape[0], (n,), generator=generator, device=dev)
        noise = torch.randn((n, self._centers.shape[1]), generator=generator, device=dev)
        k, noise = k.to(self.device), noise.to(self.device)
        return Batch(self._centers[k] + self.info.std * noise, k)


class LinesSource(DataSource):
    """``(0, U[0, 1])``: the real distribution of the disjoint-support example (unlabelled: one support)."""

    def __init__(self, info: DataInfo, device: torch.device):
        self.info = info
        self.device = device

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Batch:
        u = torch.rand((n, 1), generator=generator, device=self._rng_device(generator)).to(self.device)
        return Batch(torch.cat([torch.zeros_like(u), u], dim=1), None)


def _mixture(name: str, kind: str, centers: torch.Tensor, std: float, device) -> MixtureSource:
    info = DataInfo(name=name, kind=kind, shape=(centers.shape[1],), n_modes=centers.shape[0], centers=centers,
                    std=float(std), n_classes=centers.shape[0])
    return MixtureSource(info, torch.device(device))


# ------------------------------------------------------------------------------- the data factories
# Each is the ``_target_`` of a YAML in conf/data/ (built by gan_cli.build.build_data).

def ring(device="cpu", n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> DataSource:
    """``data=ring8``: ``n_modes`` Gaussians evenly on a circle."""
    return _mixture("ring8", "toy2d", ring_centers(int(n_modes), float(radius)), std, device)


def grid(device="cpu", grid: int = 5, spacing: float = 2.0, std: float = 0.05) -> DataSource:
    """``data=grid25``: ``grid x grid`` Gaussians on a square grid centred on 0."""
    return _mixture("grid25", "toy2d", grid_centers(int(grid), float(spacing)), std, device)


def mixture1d(device="cpu", n_modes: int = 2, radius: float = 2.0, std: float = 0.5) -> DataSource:
    """``data=mog1d``: ``n_modes`` equal-weight 1-D Gaussians evenly spaced on ``[-radius, radius]``."""
    return _mixture("mog1d", "toy1d", line_centers(int(n_modes), float(radius)), std, device)


def lines(device="cpu") -> DataSource:
    """``data=lines``: the disjoint-support example ``(0, U[0, 1])``."""
    return LinesSource(DataInfo(name="lines", kind="toy2d", shape=(2,), n_modes=1), torch.device(device))


@component_schema("data", "ring")
@dataclass
class RingConfig(DataConfig):
    n_modes: int = 8
    radius: float = 1.0
    std: float = 0.01


@component_schema("data", "grid")
@dataclass
class GridConfig(DataConfig):
    grid: int = 5
    spacing: float = 2.0
    std: float = 0.05


@component_schema("data", "mixture1d")
@dataclass
class Mixture1DConfig(DataConfig):
    n_modes: int = 2
    radius: float = 2.0
    std: float = 0.5
