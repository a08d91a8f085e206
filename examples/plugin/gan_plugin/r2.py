"""R2: the zero-centred gradient penalty at the generated samples (Mescheder et al. 2018 define R1 at the real
samples and R2 at the generated ones; R3GAN, Huang et al. 2024, trains RpGAN with both), a regulariser for
gan_cli's ``reg=`` list:  D's loss gains ``gamma/2 E_fake ||grad_x D(x)||^2``.

It takes D through gan_cli's one path into D (augment pipe, instance noise, packing, as D's loss sees the
samples), with respect to the generated batch of the D step, through the uncompiled D (a double backward).
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from gan_cli.config import UserError
from gan_cli.regularizers.base import DStep, Regularizer, clipping_refusal
from gan_cli.regularizers.r1 import r1_penalty


class R2(Regularizer):
    def __init__(self, gamma: float = 0.1):
        self.gamma = float(gamma)
        if self.gamma < 0:
            raise UserError(f"reg.r2.gamma={gamma} must be >= 0 (0 disables R2).")

    def refuses(self, objective) -> Optional[str]:
        return clipping_refusal(objective, "reg.r2")

    def d_term(self, step: DStep) -> Optional[Tensor]:
        if self.gamma <= 0:
            return None
        fake = step.fake.detach().requires_grad_(True)
        return self.gamma / 2 * r1_penalty(step.path(fake, step.c_fake, eager=True), fake)

    def hparams(self) -> dict:
        return {"r2_gamma": self.gamma}
