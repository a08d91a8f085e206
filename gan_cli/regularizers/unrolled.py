"""The unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2017, "Unrolled Generative Adversarial Networks"):
``reg=[unrolled]``.

G's loss is taken against D after ``reg.unrolled.steps`` = K differentiable SGD steps (lr ``reg.unrolled.lr``,
by default D's own lr ``model.opt_d.lr``) on the objective's D loss, from D's current weights, through
``torch.func.functional_call`` on the one path into D; the fake batch keeps its graph in every step, so G's
gradient includes how D would react to it.  D itself is not changed (its buffers are copied) and takes its
ordinary step.  Metz et al. unroll D's own optimiser (Adam) on fresh batches; here plain SGD on the D loss
alone (no penalty, no clipping) on the last D step's real batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ..config import RegConfig, UserError, component_schema
from .base import GStep, Regularizer, eager


class Unrolled(Regularizer):
    def __init__(self, steps: int = 5, lr: float = 2e-4):
        self.steps, self.lr = int(steps), float(lr)
        if self.steps < 1 or not self.lr > 0:
            raise UserError(f"reg.unrolled.steps={steps} must be >= 1 and reg.unrolled.lr={lr} > 0.")

    def g_critic(self, step: GStep) -> Optional[Callable[[Tensor, Optional[Tensor]], Tensor]]:
        D = eager(step.path.D)  # differentiable steps through D's gradients: a double backward
        params = {n: p.detach().requires_grad_(True) for n, p in D.named_parameters()}
        buffers = {n: b.clone() for n, b in D.named_buffers()}
        for _ in range(self.steps):
            state = {**params, **buffers}
            loss = step.objective.d_loss(step.path(step.real, step.c_real, params=state),
                                         step.path(step.fake, step.c_fake, params=state))
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {n: p - self.lr * g for (n, p), g in zip(params.items(), grads)}
        final = {**params, **buffers}
        return lambda x, c: step.path(x, c, params=final)

    def hparams(self) -> dict:
        return {"unroll_steps": self.steps}


@component_schema("reg", "unrolled")
@dataclass
class UnrolledConfig(RegConfig):
    steps: int = 5  # K differentiable D steps
    lr: float = 2e-4  # their SGD step size (its YAML defaults to model.opt_d.lr)
