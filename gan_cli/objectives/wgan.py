"""Wasserstein objectives: WGAN (weight clipping) and WGAN-GP (gradient penalty).

Papers: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (Algorithm 1), and Gulrajani et
al. 2017, "Improved Training of Wasserstein GANs" (Algorithm 1, the penalty).  Reference
implementations matched: igul222/improved_wgan_training ``gan_toy.py`` / ``gan_mnist.py``
(``disc_cost = mean(disc_fake) - mean(disc_real)``, ``gen_cost = -mean(disc_fake)``, penalty
``mean((slopes - 1)**2)`` on per-sample interpolates).  martinarjovsky/WassersteinGAN
``main.py`` uses the opposite sign for its critic (its ``Loss_D`` is minus our estimate) and
clamps every critic parameter to [-c, c] after each critic step.

Each objective owns its Lipschitz constraint: :class:`WGAN` clips after D's step
(:meth:`~gan_cli.objectives.base.Objective.after_d_step`), :class:`WGANGP` adds the penalty to
D's loss (:meth:`~gan_cli.objectives.base.Objective.regularizer`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..config import ObjectiveConfig, UserError, component_schema
from .base import Objective, eager, input_grad, wide


class Wasserstein(Objective):
    """Critic f maximises E_real f - E_fake f; G maximises E_fake f.

    ``estimate`` is the dual estimate E_real f - E_fake f, which approximates
    W1(real, model) when f is (close to) 1-Lipschitz and optimal.  No Lipschitz constraint
    of its own: see :class:`WGAN` and :class:`WGANGP`.
    """

    estimate_tag = "estimate/w"

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return -fake_out.mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return real_out.mean() - fake_out.mean()


class WGAN(Wasserstein):
    """WGAN: after each critic step every critic parameter is clamped to [-clip, clip]."""

    def __init__(self, clip: float = 0.01, **schedule):
        super().__init__(**schedule)
        self.clip = float(clip)
        if self.r1_gamma > 0:
            raise UserError("model.r1_gamma with model=wgan: the clipped critic is already Lipschitz-bounded and its "
                            "linear loss is unbounded off the real data, which R1 does not touch; use model=wgan_gp, or "
                            "R1 with model=nsgan|hinge|fgan.")

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)


class WGANGP(Wasserstein):
    """WGAN-GP: D's loss adds ``gp_weight`` times :func:`gradient_penalty`."""

    def __init__(self, gp_weight: float = 10.0, **schedule):
        super().__init__(**schedule)
        self.gp_weight = float(gp_weight)

    def regularizer(self, D: nn.Module, real: Tensor, fake: Tensor,
                    generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        if self.gp_weight <= 0:
            return None
        return self.gp_weight * gradient_penalty(D, real, fake, generator)


def gradient_penalty(
    D: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Gulrajani et al. 2017 penalty: mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample, drawn
    with ``generator`` on the data's device.  real and fake are detached (the penalty
    regularises D only); the graph is kept (create_graph=True) so the result can be
    back-propagated into D's parameters.  The norm is over all non-batch dimensions.

    Under torch.compile (``speed.compile``) the penalty goes through the uncompiled module ``D._orig_mod``
    (:func:`~gan_cli.objectives.base.eager`; aot_autograd has no double backward); the main losses keep the
    compiled D.  Under fp16 the inner gradient is scaled and unscaled (:func:`~gan_cli.objectives.base.input_grad`).
    """
    return ((input_grad_norms(D, interpolates(real, fake, generator), create_graph=True) - 1) ** 2).mean()


def interpolates(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1] per sample (not per pixel)."""
    real, fake = real.detach(), fake.detach()
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    return eps * real + (1 - eps) * fake


def input_grad_norms(D: nn.Module, x: Tensor, create_graph: bool) -> Tensor:
    """Per-sample ||grad_x D(x)||_2 over all non-batch dimensions, shape (N,); through the uncompiled D."""
    x = x.detach().requires_grad_(True)
    grad = input_grad(eager(D)(x), x, create_graph=create_graph)
    return torch.linalg.vector_norm(wide(grad).flatten(1), ord=2, dim=1)


@component_schema("model", "wgan")
@dataclass
class WGANConfig(ObjectiveConfig):
    clip: float = 0.01


@component_schema("model", "wgan_gp")
@dataclass
class WGANGPConfig(ObjectiveConfig):
    gp_weight: float = 10.0
