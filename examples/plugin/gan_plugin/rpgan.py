"""The relativistic pairing GAN, RpGAN (Jolicoeur-Martineau 2019, "The relativistic discriminator: a key element
missing from standard GAN"; the RpGAN of Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live
the GAN! A Modern GAN Baseline", R3GAN):

    D minimises  E softplus(D(G(z)) - D(x))        G minimises  E softplus(D(x) - D(G(z)))

over pairs of a real and a generated sample (the i-th of each batch).  G's loss reads D on the real batch
too, so the objective says ``g_needs_real = True`` and gan_cli hands it D's outputs on the last D step's real
batch.  R3GAN trains it with zero-centred gradient penalties at the real (R1) and the generated (R2) samples,
which ``conf/model/rpgan.yaml`` carries as its regularisers (R1 is gan_cli's own, R2 is :mod:`gan_plugin.r2`).

``estimate``: log 2 - D's loss.  Constant critics reach a loss of softplus(0) = log 2 and by Jensen no critic
does better when real and generated samples have one law, so at the optimal critic the estimate is >= 0, and
0 exactly when the two laws are equal (the relativistic pairing divergence of Jolicoeur-Martineau 2020, "On
relativistic f-divergences", up to that constant).
"""
from __future__ import annotations

import math
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from gan_cli.objectives.base import Objective

LOG2 = math.log(2.0)


class RpGAN(Objective):
    estimate_tag = "estimate/rp"
    g_needs_real = True

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return F.softplus(fake_out - real_out).mean()

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        return F.softplus(real_out - fake_out).mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return LOG2 - self.d_loss(real_out, fake_out)
