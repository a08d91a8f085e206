"""Minimax (saturating) and non-saturating GAN objectives on logits.

Paper: Goodfellow et al. 2014, "Generative Adversarial Nets" (Algorithm 1 and
the non-saturating heuristic of Section 3).  Reference implementation matched:
TF-GAN ``tensorflow_gan/python/losses/losses_impl.py`` --
``minimax_discriminator_loss`` (no label smoothing), ``minimax_generator_loss``
(gan) and ``modified_generator_loss`` (nsgan).

With logits v and D = sigmoid(v):  log D = -softplus(-v),  log(1 - D) = -softplus(v),
which stays finite for any v (no sigmoid-then-log).
"""
from __future__ import annotations

import math

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from .base import Objective

LOG4 = math.log(4.0)


class GAN(Objective):
    """Minimax GAN: D maximises V = E_real log D + E_fake log(1 - D); G minimises
    E_fake log(1 - D(G(z))) (saturating: its gradient vanishes when D rejects fakes).

    ``estimate`` is (V + log 4) / 2, which equals JSD(real || model) at the optimal D
    (Goodfellow et al. 2014, Theorem 1); it lies in [0, log 2].
    """

    estimate_tag = "estimate/jsd"

    @staticmethod
    def value_fn(real_out: Tensor, fake_out: Tensor) -> Tensor:
        """V(D, G) = E_real log D + E_fake log(1 - D)."""
        return -F.softplus(-real_out).mean() - F.softplus(fake_out).mean()

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return -self.value_fn(real_out, fake_out)

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        return -F.softplus(fake_out).mean()  # E log(1 - D(G(z)))

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return (self.value_fn(real_out, fake_out) + LOG4) / 2


class NSGAN(GAN):
    """Non-saturating GAN: same D as :class:`GAN`; G minimises -E_fake log D(G(z))."""

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        return F.softplus(-fake_out).mean()  # -E log D(G(z))
