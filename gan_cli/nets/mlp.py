"""Fully connected generator / discriminator (toy data; also usable on small images)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Tuple

import torch
from torch import nn

from ..config import NetConfig, component_schema
from .spectral import spectral_normalise


def mlp(in_dim: int, hidden: int, depth: int, out_dim: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` (``in -> hidden``, then ``hidden -> hidden``), each followed
    by ``act()``, then a linear ``hidden -> out`` layer.  No normalisation."""
    layers = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), act()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """``z (N, latent_dim) -> (N, *shape)``: ReLU hidden layers; ``tanh`` output when ``tanh`` (images)."""

    def __init__(self, latent_dim: int, shape: Tuple[int, ...], hidden: int, depth: int, tanh: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = tuple(shape)
        self.net = mlp(latent_dim, hidden, depth, math.prod(self.shape), nn.ReLU)
        self.out = nn.Tanh() if tanh else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(z)).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """``x (N, *shape) -> (N,)`` raw output: LeakyReLU(0.2) hidden layers, no normalisation."""

    def __init__(self, shape: Tuple[int, ...], hidden: int, depth: int):
        super().__init__()
        self.shape = tuple(shape)
        self.net = mlp(math.prod(self.shape), hidden, depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).squeeze(1)


def build(info, latent_dim: int, d_norm: str = "none", hidden: int = 128, depth: int = 3, spectral_norm: bool = False):
    """``net=mlp``: ReLU MLP generator (tanh output for images) and LeakyReLU MLP discriminator.
    ``d_norm`` is accepted for every net; the MLPs have no normalisation.  ``spectral_norm``: D's layers
    spectrally normalised (:mod:`.spectral`)."""
    shape = tuple(int(s) for s in info.shape)
    D = MLPDiscriminator(shape, int(hidden), int(depth))
    return (MLPGenerator(latent_dim, shape, int(hidden), int(depth), tanh=info.kind == "image"),
            spectral_normalise(D) if spectral_norm else D)


@component_schema("net", "mlp")
@dataclass
class MLPNetConfig(NetConfig):
    hidden: int = 128  # width
    depth: int = 3  # hidden layers
    spectral_norm: bool = False  # spectral normalisation of D's layers (Miyato et al. 2018)
