"""Least-squares GAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 with
the 0-1 coding a=0, b=1, c=1):

    D minimises  1/2 E_real[(D(x) - 1)^2] + 1/2 E_fake[D(G(z))^2]
    G minimises  1/2 E_fake[(D(G(z)) - 1)^2]

At the optimal D* = p/(p+q) the D loss is 1/2 int pq/(p+q), so ``estimate`` = 1/4 - D loss is
1/8 of the triangular discrimination int (p-q)^2/(p+q) (0 for equal distributions, 1/4 for
disjoint ones).  It subclasses gan_cli's Objective and is built from ``conf/model/lsgan.yaml``.
"""
from __future__ import annotations

from torch import Tensor

from gan_cli.objectives.base import Objective


class LSGAN(Objective):
    estimate_tag = "estimate/triangular"

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return 0.5 * ((real_out - 1) ** 2).mean() + 0.5 * (fake_out ** 2).mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return 0.5 * ((fake_out - 1) ** 2).mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return 0.25 - self.d_loss(real_out, fake_out)
