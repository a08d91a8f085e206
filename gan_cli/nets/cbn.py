"""Conditional batch norm (de Vries et al. 2017; Miyato & Koyama 2018 use it in the projection-cGAN generator, as
Mimicry's ``ConditionalBatchNorm2d`` and BigGAN's ``ccbn``): batch norm without its own affine, then a per-class
scale and shift, ``gamma[c] * BN(x) + beta[c]``, the scales drawn from N(1, 0.02) and the shifts 0 (Mimicry's
initialisation: near the unconditional G, yet each class its own from the first step).

:func:`norm2d` picks plain ``BatchNorm2d`` (``n_classes=0``) or this; :func:`apply` calls either with the labels.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn


class ConditionalBatchNorm2d(nn.Module):
    def __init__(self, num_features: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(int(n_classes), num_features)
        self.beta = nn.Embedding(int(n_classes), num_features)
        nn.init.normal_(self.gamma.weight, 1.0, 0.02)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, c: Optional[Tensor]) -> Tensor:
        if c is None:
            raise ValueError("a class-conditional generator needs the labels c: call G(z, c)")
        return self.gamma(c)[:, :, None, None] * self.bn(x) + self.beta(c)[:, :, None, None]


def norm2d(num_features: int, n_classes: int = 0) -> nn.Module:
    """``BatchNorm2d`` for an unconditional net (``n_classes=0``), :class:`ConditionalBatchNorm2d` otherwise."""
    return ConditionalBatchNorm2d(num_features, n_classes) if n_classes else nn.BatchNorm2d(num_features)


def apply(layer: nn.Module, x: Tensor, c: Optional[Tensor]) -> Tensor:
    """``layer(x, c)`` for a conditional norm, ``layer(x)`` for any other layer."""
    return layer(x, c) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)


def is_conditional(module: nn.Module) -> bool:
    return any(isinstance(m, ConditionalBatchNorm2d) for m in module.modules())


def run(layers: nn.Sequential, x: Tensor, c: Optional[Tensor]) -> Tensor:
    """A Sequential whose conditional norms read ``c``."""
    for layer in layers:
        x = apply(layer, x, c)
    return x


