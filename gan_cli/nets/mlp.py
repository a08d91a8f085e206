"""Fully connected generator / discriminator (toy data; also usable on small images).

Two options for toy data with many small, well-separated modes (``experiment=grid25_best``):

* ``net.codes=K`` -- a categorical code in G's latent.  The first latent coordinate ``z_0`` picks one of K
  learned embeddings (``net.code_dim`` numbers each) by its normal quantile, code ``floor(Phi(z_0) K)``,
  so the K codes are equally likely and the latent stays ``N(0, I)`` for every tool that draws it; the
  other ``latent_dim - 1`` coordinates stay continuous.  A ReLU MLP of a continuous latent is continuous, so
  it must spread mass between separated modes; with codes it can place each code's mass on one mode
  (the learned-mixture latent of DeLiGAN, Gurumurthy et al. 2017; the discrete code of InfoGAN, Chen et
  al. 2016).
* ``net.fourier=F`` -- random Fourier features for D (Tancik et al. 2020): D reads ``[x, sin(a Bx), cos(a Bx)]``
  with ``B`` a fixed ``(in, F)`` matrix of ``N(0, net.fourier_scale^2)`` entries.  An MLP of raw coordinates
  learns fine detail slowly (spectral bias), so it cannot resolve modes of std 0.05 on a range of 8; these
  features can.  Used from the start they pull G's samples into the nearest fine detail before G has
  spread out (measured on grid25: 10-12 of 25 modes without codes, 24 with).  So they fade in coarse-to-fine (BARF, Lin et al. 2021): the
  frequency scale ``a`` ramps linearly from 0 to 1 between the fractions ``net.fourier_from`` and
  ``net.fourier_to`` of training; before that D sees only ``x`` (sin 0 = 0, cos 0 = 1).  The loop tells
  every module with a ``set_progress(fraction)`` method the fraction of the run done before each step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from ..config import NetConfig, UserError, component_schema
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


class CodedLatent(nn.Module):
    """``z (N, d) -> (N, code_dim + d - 1)``: code ``floor(Phi(z_0) codes)``'s embedding, then ``z_1 ..``."""

    def __init__(self, codes: int, code_dim: int):
        super().__init__()
        self.codes = int(codes)
        self.embed = nn.Embedding(self.codes, int(code_dim))

    def code(self, z: torch.Tensor) -> torch.Tensor:
        return (torch.special.ndtr(z[:, 0]) * self.codes).long().clamp_(0, self.codes - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.embed(self.code(z)), z[:, 1:]], dim=1)


class FourierFeatures(nn.Module):
    """``x (N, d) -> (N, d + 2F)``: ``[x, sin(a xB), cos(a xB)]``, ``a`` ramping 0 -> 1 over ``[start, end]``
    of training (:meth:`set_progress`); ``B`` is a buffer, so a checkpoint keeps it."""

    def __init__(self, in_dim: int, features: int, scale: float, start: float, end: float):
        super().__init__()
        self.register_buffer("B", torch.randn(in_dim, int(features)) * float(scale))
        # A tensor, not a float: set in place, so a compiled D reads it without recompiling.  Not in the
        # state dict: it follows from the step, which the checkpoint keeps.
        self.register_buffer("alpha", torch.zeros(()), persistent=False)
        self.start, self.end = float(start), float(end)

    def alpha_at(self, fraction: float) -> float:
        if self.end <= self.start:
            return 1.0 if fraction >= self.start else 0.0
        return min(1.0, max(0.0, (fraction - self.start) / (self.end - self.start)))

    def set_progress(self, fraction: float) -> None:
        self.alpha.fill_(self.alpha_at(fraction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x @ self.B) * self.alpha
        return torch.cat([x, torch.sin(h), torch.cos(h)], dim=1)


class MLPGenerator(nn.Module):
    """``z (N, latent_dim) -> (N, *shape)``: ReLU hidden layers; ``tanh`` output when ``tanh`` (images);
    ``codes`` > 0: a categorical code read from ``z_0`` (:class:`CodedLatent`)."""

    def __init__(self, latent_dim: int, shape: Tuple[int, ...], hidden: int, depth: int, tanh: bool = False,
                 codes: int = 0, code_dim: int = 16):
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = tuple(shape)
        self.latent = CodedLatent(codes, code_dim) if codes else nn.Identity()
        width = latent_dim - 1 + code_dim if codes else latent_dim
        self.net = mlp(width, hidden, depth, math.prod(self.shape), nn.ReLU)
        self.out = nn.Tanh() if tanh else nn.Identity()

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.out(self.net(self.latent(z))).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """``x (N, *shape) -> (N,)`` raw output: LeakyReLU(0.2) hidden layers, no normalisation; ``fourier`` > 0:
    random Fourier features of the input first (:class:`FourierFeatures`, a dict of its settings)."""

    def __init__(self, shape: Tuple[int, ...], hidden: int, depth: int, fourier: dict | None = None):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(self.shape)
        self.features = FourierFeatures(d, **fourier) if fourier else nn.Identity()
        width = d + 2 * int(fourier["features"]) if fourier else d
        self.net = mlp(width, hidden, depth, 1, lambda: nn.LeakyReLU(0.2))
        self.trunk_dim = int(hidden)
        self.flat_input = True  # reads its input flattened (gan_cli.cond joins a label embedding to it)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, hidden)``: the last hidden layer's activations (what a projection / class head reads)."""
        return self.net[:-1](self.features_in(x))

    def features_in(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.reshape(x.shape[0], -1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.net[-1](h).squeeze(1)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(self.features_in(x)).squeeze(1)


def build(info, latent_dim: int, d_norm: str = "none", hidden: int = 128, depth: int = 3, spectral_norm: bool = False,
          codes: int = 0, code_dim: int = 16, fourier: int = 0, fourier_scale: float = 1.0, fourier_from: float = 0.33,
          fourier_to: float = 0.66):
    """``net=mlp``: ReLU MLP generator (tanh output for images) and LeakyReLU MLP discriminator.
    ``d_norm`` is accepted for every net; the MLPs have no normalisation.  ``spectral_norm``: D's layers
    spectrally normalised (:mod:`.spectral`).  ``codes`` / ``fourier``: see the module's docstring."""
    if not (0.0 <= fourier_from <= 1.0 and 0.0 <= fourier_to <= 1.0 and fourier_from <= fourier_to):
        raise UserError(f"net.fourier_from={fourier_from} and net.fourier_to={fourier_to} are the fractions of training "
                        "over which D's Fourier features fade in: use 0 <= fourier_from <= fourier_to <= 1.")
    shape = tuple(int(s) for s in info.shape)
    ff = (dict(features=int(fourier), scale=float(fourier_scale), start=float(fourier_from), end=float(fourier_to))
          if fourier else None)
    D = MLPDiscriminator(shape, int(hidden), int(depth), ff)
    return (MLPGenerator(latent_dim, shape, int(hidden), int(depth), tanh=info.kind == "image", codes=int(codes),
                         code_dim=int(code_dim)),
            spectral_normalise(D) if spectral_norm else D)


@component_schema("net", "mlp")
@dataclass
class MLPNetConfig(NetConfig):
    hidden: int = 128  # width
    depth: int = 3  # hidden layers
    spectral_norm: bool = False  # spectral normalisation of D's layers (Miyato et al. 2018)
    codes: int = 0  # G: a categorical code of this many values, read from z_0 (0: none)
    code_dim: int = 16  # G: the size of each code's learned embedding
    fourier: int = 0  # D: random Fourier features of the input (0: none)
    fourier_scale: float = 1.0  # D: std of their frequencies (per unit of the data)
    fourier_from: float = 0.33  # D: the fraction of training where the features start to fade in
    fourier_to: float = 0.66  # D: ... and where they are fully in
