"""Parametric toy generators with a closed-form distribution.

* :class:`ThetaGenerator` -- ``G(z) = (theta, Phi(z_0))``: the model family ``p_theta = (theta, U[0, 1])``
  of the disjoint-support example (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", Example 1),
  against the real ``(0, U[0, 1])``.  ``Phi`` is the standard normal CDF, so with ``z_0 ~ N(0, 1)`` the
  second coordinate is exactly ``U[0, 1]``.  Only ``theta`` is learnable.
* :class:`GaussianGenerator` -- ``G(z) = mu + sigma z_0`` (1-D), learnable ``mu`` and
  ``sigma = exp(log_sigma)`` (always positive).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from typing import Optional

import torch
from torch import nn

from ..config import NetConfig, UserError, component_schema
from .mlp import MLPDiscriminator
from .spectral import spectral_normalise


class ThetaGenerator(nn.Module):
    def __init__(self, latent_dim: int, theta0: float = 1.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.theta = nn.Parameter(torch.tensor(float(theta0)))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        u = torch.special.ndtr(z[:, 0])
        return torch.stack([self.theta.expand_as(u), u], dim=1)

    def log_scalars(self) -> dict[str, torch.Tensor]:
        """Parameters the loop logs under ``gen/...`` at its logging cadence (device tensors, no sync)."""
        return {"gen/theta": self.theta.detach()}


class GaussianGenerator(nn.Module):
    def __init__(self, latent_dim: int, mu0: float = 0.0, sigma0: float = 1.0):
        super().__init__()
        if not sigma0 > 0:
            raise ValueError(f"sigma0 must be > 0, got {sigma0}")
        self.latent_dim = latent_dim
        self.mu = nn.Parameter(torch.tensor(float(mu0)))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma0)))

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.mu + self.sigma * z[:, :1]

    def log_scalars(self) -> dict[str, torch.Tensor]:
        """Parameters the loop logs under ``gen/...`` at its logging cadence (device tensors, no sync)."""
        return {"gen/mu": self.mu.detach(), "gen/sigma": self.sigma.detach()}


def build_theta(info, latent_dim: int, d_norm: str = "none", theta0: float = 1.0, hidden: int = 128, depth: int = 3,
                spectral_norm: bool = False):
    """``net=theta``: the (theta, U[0,1]) generator for ``data=lines`` and an MLP discriminator."""
    shape = tuple(int(s) for s in info.shape)
    if info.kind != "toy2d" or shape != (2,):
        raise UserError(f"net=theta generates 2-D points (theta, U[0,1]) for data=lines, but data={info.name} "
                        f"is {info.kind} with shape {shape}: use data=lines, or net=auto.")
    D = MLPDiscriminator(shape, int(hidden), int(depth))
    return ThetaGenerator(latent_dim, float(theta0)), spectral_normalise(D) if spectral_norm else D


def build_gaussian(info, latent_dim: int, d_norm: str = "none", mu0: float = 0.0, sigma0: float = 1.0,
                   hidden: int = 128, depth: int = 3, spectral_norm: bool = False):
    """``net=gaussian``: the N(mu, sigma^2) generator for 1-D data and an MLP discriminator."""
    shape = tuple(int(s) for s in info.shape)
    if info.kind != "toy1d" or shape != (1,):
        raise UserError(f"net=gaussian generates 1-D points mu + sigma*z for 1-D data (data=mog1d), but "
                        f"data={info.name} is {info.kind} with shape {shape}: use a 1-D data set, or net=auto.")
    D = MLPDiscriminator(shape, int(hidden), int(depth))
    return GaussianGenerator(latent_dim, float(mu0), float(sigma0)), spectral_normalise(D) if spectral_norm else D


@component_schema("net", "theta")
@dataclass
class ThetaNetConfig(NetConfig):
    theta0: float = 1.0  # initial theta
    hidden: int = 128  # discriminator MLP
    depth: int = 3
    spectral_norm: bool = False  # spectral normalisation of D's layers


@component_schema("net", "gaussian")
@dataclass
class GaussianNetConfig(NetConfig):
    mu0: float = 0.0  # initial mean
    sigma0: float = 1.0  # initial std
    hidden: int = 128  # discriminator MLP
    depth: int = 3
    spectral_norm: bool = False  # spectral normalisation of D's layers
