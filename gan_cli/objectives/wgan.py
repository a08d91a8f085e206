"""Wasserstein objectives: WGAN (weight clipping) and WGAN-GP (gradient penalty).

Papers: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (Algorithm 1), and Gulrajani et
al. 2017, "Improved Training of Wasserstein GANs" (Algorithm 1, the penalty).  Reference
implementations matched: igul222/improved_wgan_training ``gan_toy.py`` / ``gan_mnist.py``
(``disc_cost = mean(disc_fake) - mean(disc_real)``, ``gen_cost = -mean(disc_fake)``, penalty
``mean((slopes - 1)**2)`` on per-sample interpolates).  martinarjovsky/WassersteinGAN
``main.py`` uses the opposite sign for its critic (its ``Loss_D`` is minus our estimate) and
clamps every critic parameter to [-c, c] after each critic step.

:class:`WGAN` owns its Lipschitz constraint, clipping after D's step
(:meth:`~gan_cli.objectives.base.Objective.after_d_step`); ``model=wgan_gp`` is :class:`Wasserstein` with the
gradient penalty as its regulariser (:mod:`gan_cli.regularizers.gp`, which its YAML carries: ``reg.gp``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..config import ObjectiveConfig, UserError, component_schema
from .base import Objective


class Wasserstein(Objective):
    """Critic f maximises E_real f - E_fake f; G maximises E_fake f.

    ``estimate`` is the dual estimate E_real f - E_fake f, which approximates
    W1(real, model) when f is (close to) 1-Lipschitz and optimal.  No Lipschitz constraint
    of its own: see :class:`WGAN` (clipping) and ``model=wgan_gp`` (the gradient penalty, ``reg.gp``).
    """

    estimate_tag = "estimate/w"

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        return -fake_out.mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return real_out.mean() - fake_out.mean()


class WGAN(Wasserstein):
    """WGAN: after each critic step every critic parameter is clamped to [-clip, clip]."""

    def __init__(self, clip: float = 0.01, **schedule):
        super().__init__(**schedule)
        self.clip = float(clip)
        if not self.clip > 0:
            raise UserError(f"model.clip={clip} must be > 0.")

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)


@component_schema("model", "wgan")
@dataclass
class WGANConfig(ObjectiveConfig):
    clip: float = 0.01
