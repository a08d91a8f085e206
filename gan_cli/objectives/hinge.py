"""Hinge loss (Lim & Ye 2017, "Geometric GAN"; the loss of SNGAN, SAGAN and BigGAN).

D minimises E_real relu(1 - D(x)) + E_fake relu(1 + D(G(z))); G minimises -E_fake D(G(z)).
Reference implementations matched: SAGAN / BigGAN-PyTorch ``losses.py`` (``loss_hinge_dis``,
``loss_hinge_gen``; BigGAN reports the two D terms separately, their sum is our ``d_loss``).

What ``estimate`` means: pointwise, min over D of p relu(1 - D) + q relu(1 + D) is 2 min(p, q) (at
D = sign(p - q)), so min_D d_loss = 2 - 2 TV(P, Q) with TV = 1/2 int |p - q|.  ``estimate`` is
1 - d_loss / 2: a lower bound on the total variation distance for any D, equal to it at the optimal D
(logged as ``estimate/tv``, in [0, 1] there; a poor D can make it negative).
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from .base import Objective


class Hinge(Objective):
    estimate_tag = "estimate/tv"

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        return -fake_out.mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return 1 - self.d_loss(real_out, fake_out) / 2
