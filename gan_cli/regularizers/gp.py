"""The gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1):
``reg=[gp]``, carried by ``model=wgan_gp``.

D's loss gains ``weight * E[(||grad_x D(x_hat)||_2 - 1)^2]`` at ``x_hat = eps real + (1 - eps) fake``, one
``eps ~ U[0, 1]`` per sample.  Reference implementation matched: igul222/improved_wgan_training
``gan_toy.py`` / ``gan_mnist.py`` (``gradient_penalty = mean((slopes - 1)**2)`` on per-sample interpolates;
public ports draw eps per pixel or take the norm over one dimension only -- ``tests/test_objectives.py``
checks the shape and the reduction).  The interpolates are taken between the clean samples and go through the
one path into D (augment pipe, instance noise, packing), as D's loss does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..config import RegConfig, UserError, component_schema
from .base import DStep, Regularizer, clipping_refusal, eager, input_grad, wide


class GradientPenalty(Regularizer):
    def __init__(self, weight: float = 10.0):
        self.weight = float(weight)
        if self.weight < 0:
            raise UserError(f"reg.gp.weight={weight} must be >= 0 (0 disables the penalty).")

    def refuses(self, objective) -> Optional[str]:
        return clipping_refusal(objective, "reg.gp")

    def d_term(self, step: DStep) -> Optional[Tensor]:
        if self.weight <= 0:
            return None
        critic = lambda x: step.path(x, step.c_real, eager=True)  # noqa: E731  (a double backward: uncompiled D)
        return self.weight * gradient_penalty(critic, step.real, step.fake, step.generator)

    def hparams(self) -> dict:
        return {"gp_weight": self.weight}


def gradient_penalty(D, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gulrajani et al. 2017 penalty: mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample, drawn with ``generator`` on the
    data's device.  real and fake are detached (the penalty regularises D only); the graph is kept
    (create_graph=True) so the result can be back-propagated into D's parameters.  The norm is over all
    non-batch dimensions.  ``D``: a module (its uncompiled twin is used, :func:`eager`) or a callable."""
    return ((input_grad_norms(D, interpolates(real, fake, generator), create_graph=True) - 1) ** 2).mean()


def interpolates(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1] per sample (not per pixel)."""
    real, fake = real.detach(), fake.detach()
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    return eps * real + (1 - eps) * fake


def input_grad_norms(D, x: Tensor, create_graph: bool) -> Tensor:
    """Per-sample ||grad_x D(x)||_2 over all non-batch dimensions, shape (N,); through the uncompiled D."""
    x = x.detach().requires_grad_(True)
    net = eager(D) if isinstance(D, nn.Module) else D
    grad = input_grad(net(x), x, create_graph=create_graph)
    return torch.linalg.vector_norm(wide(grad).flatten(1), ord=2, dim=1)


@component_schema("reg", "gp")
@dataclass
class GradientPenaltyConfig(RegConfig):
    weight: float = 10.0  # lambda (the paper: 10; its toy scripts: 0.1)
