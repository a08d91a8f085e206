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
from typing import Optional

import torch

from .base import DataInfo, DataSource

TOY_NAMES = ("ring8", "grid25", "mog1d", "lines")
TOY_KINDS = {"ring8": "toy2d", "grid25": "toy2d", "mog1d": "toy1d", "lines": "toy2d"}


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
    """Equal-weight mixture of isotropic Gaussians ``N(centers[k], std^2 I)``."""

    def __init__(self, info: DataInfo, device: torch.device):
        self.info = info
        self.device = device
        self._centers = info.centers.to(device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        dev = self._rng_device(generator)
        k = torch.randint(0, self._centers.shape[0], (n,), generator=generator, device=dev)
        noise = torch.randn((n, self._centers.shape[1]), generator=generator, device=dev)
        k, noise = k.to(self.device), noise.to(self.device)
        return self._centers[k] + self.info.std * noise


class LinesSource(DataSource):
    """``(0, U[0, 1])``: the real distribution of the disjoint-support example."""

    def __init__(self, info: DataInfo, device: torch.device):
        self.info = info
        self.device = device

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        u = torch.rand((n, 1), generator=generator, device=self._rng_device(generator)).to(self.device)
        return torch.cat([torch.zeros_like(u), u], dim=1)


def build_toy(data_cfg, device: torch.device) -> DataSource:
    name = str(data_cfg.name)
    if name == "ring8":
        centers = ring_centers(int(data_cfg.n_modes), float(data_cfg.radius))
    elif name == "grid25":
        centers = grid_centers(int(data_cfg.grid), float(data_cfg.spacing))
    elif name == "mog1d":
        centers = line_centers(int(data_cfg.n_modes), float(data_cfg.radius))
    elif name == "lines":
        return LinesSource(DataInfo(name=name, kind="toy2d", shape=(2,), n_modes=1), device)
    else:  # pragma: no cover - the caller dispatches on TOY_NAMES
        raise ValueError(f"not a toy data set: {name}")
    info = DataInfo(name=name, kind=TOY_KINDS[name], shape=(centers.shape[1],), n_modes=centers.shape[0],
                    centers=centers, std=float(data_cfg.std))
    return MixtureSource(info, device)
