"""The 2-D networks of PacGAN's synthetic experiments (Lin et al. 2018, Sec. 4.1 / Table 1): ``net=pacgan``.

Reference: fjxmlzn/PacGAN ``synthetic_data_experiments/2DGrid_GAN&PacGAN/pacgan_task.py`` (and the 2DRing
twin), written with Blocks:

* generator ``2 -> 4 x [Linear 400 (no bias), BatchNorm, ReLU] -> Linear 2`` (Blocks' MLP with
  ``use_bias=False``, the bias switched back on for the output layer only; batch norm supplies the shift);
* discriminator ``3 x LinearMaxout(200 units, 5 pieces) -> Linear 1`` on ``2 m`` inputs with packing
  (``model.pack=m``: :func:`gan_cli.build.build_nets` builds D for the packed shape).

:class:`LinearMaxout` is Blocks' ``LinearMaxout`` (Goodfellow et al. 2013, "Maxout networks"): one linear map
to ``units * pieces`` features, read as ``(units, pieces)`` with the piece index fastest, and the max over
the pieces.  The weights start from torch's default initialisation (the paper's Gaussian init std is not in
the paper); the optimiser (Adam lr 1e-4, beta1 0.8) and batch (100 D inputs) are the preset's
(``conf/experiment/pacgan_table.yaml``).
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Optional

import torch
from torch import nn

from ..config import NetConfig, UserError, component_schema
from .spectral import spectral_normalise


class LinearMaxout(nn.Module):
    """``x (N, in) -> (N, units)``: ``max_k (W x + b)[u * pieces + k]`` over ``k < pieces``."""

    def __init__(self, in_dim: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = int(units), int(pieces)
        self.linear = nn.Linear(int(in_dim), self.units * self.pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


class PacGANGenerator(nn.Module):
    """``z (N, latent_dim) -> (N, out_dim)``: ``depth`` x [Linear(hidden, no bias), BatchNorm1d, ReLU], Linear."""

    def __init__(self, latent_dim: int, out_dim: int, hidden: int = 400, depth: int = 4):
        super().__init__()
        self.latent_dim = latent_dim
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
            d = hidden
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(z)


class PacGANDiscriminator(nn.Module):
    """``x (N, in_dim) -> (N,)`` raw output: ``depth`` maxout layers (``hidden`` units, ``pieces`` pieces), Linear 1."""

    def __init__(self, in_dim: int, hidden: int = 200, depth: int = 3, pieces: int = 5):
        super().__init__()
        layers, d = [], in_dim
        for _ in range(depth):
            layers.append(LinearMaxout(d, hidden, pieces))
            d = hidden
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).squeeze(1)


def build(info, latent_dim: int, d_norm: str = "none", g_hidden: int = 400, g_depth: int = 4, d_hidden: int = 200,
          d_depth: int = 3, pieces: int = 5, spectral_norm: bool = False):
    """``net=pacgan``: PacGAN's toy generator and maxout discriminator, for flat (1-D / 2-D) data.
    ``d_norm`` is accepted for every net; the maxout D has no normalisation.  ``spectral_norm``: D's linear
    maps spectrally normalised (:mod:`.spectral`)."""
    shape = tuple(int(s) for s in info.shape)
    if len(shape) != 1:
        raise UserError(f"net=pacgan is PacGAN's net for flat toy data, but data={info.name} has shape {shape}: "
                        f"use it with ring8 / grid25 (or net=auto / dcgan for images).")
    for key, v in (("g_hidden", g_hidden), ("g_depth", g_depth), ("d_hidden", d_hidden), ("d_depth", d_depth),
                   ("pieces", pieces)):
        if int(v) < 1:
            raise UserError(f"net.{key}={v} must be >= 1.")
    D = PacGANDiscriminator(shape[0], int(d_hidden), int(d_depth), int(pieces))
    return (PacGANGenerator(latent_dim, shape[0], int(g_hidden), int(g_depth)),
            spectral_normalise(D) if spectral_norm else D)


@component_schema("net", "pacgan")
@dataclass
class PacGANNetConfig(NetConfig):
    g_hidden: int = 400  # generator width
    g_depth: int = 4  # generator hidden layers (Linear, BatchNorm, ReLU)
    d_hidden: int = 200  # maxout units per discriminator layer
    d_depth: int = 3  # maxout layers
    pieces: int = 5  # linear pieces per maxout unit
    spectral_norm: bool = False  # spectral normalisation of D's linear maps (Miyato et al. 2018)
