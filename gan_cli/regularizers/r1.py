"""R1: the zero-centred gradient penalty at the real samples (Mescheder, Geiger & Nowozin 2018, "Which training
methods for GANs do actually converge?"), ``reg=[r1]``.

D's loss gains ``gamma/2 E_real ||grad_x D(x)||^2`` (``reg.r1.gamma``), for any objective but a weight-clipped
critic (refused in one line).  Lazy (``reg.r1.every=k``, StyleGAN2, Karras et al. 2020): on every k-th D step
only, multiplied by k.  stylegan2-ada also scales Adam's lr and betas by k/(k+1) because its R1 is a separate
optimiser step (k + 1 steps per k batches); here the lazy term joins the ordinary D step, there is no extra
step, so no scaling is done.

``reg.r1.points=box`` takes the same zero-centred penalty at points drawn uniformly from the box spanned by the
batch's real and fake samples (per feature, min to max) instead of at the real samples: R1 smooths D most
where the data is densest, the box version smooths it the same everywhere between and around the two
distributions (f-GAN's tv row needs that, :mod:`gan_cli.objectives.fgan`).  It costs one more forward pass
of D, whose batch-norm statistics (if it has any) then see the box points too.

Both go through the one path into D, so the gradient is taken with respect to D's input before the augment
pipe and instance noise (stylegan2-ada's ``loss.py`` takes R1 through its ``augment_pipe`` the same way).
Reference: stylegan2-ada-pytorch ``training/loss.py`` (``Dr1``: ``r1_grads.square().sum([1,2,3])``,
``r1_penalty * (r1_gamma / 2)``), which this matches term for term (``tests/test_regularizers.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..config import RegConfig, UserError, component_schema
from .base import CountsDSteps, DStep, clipping_refusal, input_grad, wide

#: where the penalty is taken (``reg.r1.points``)
POINTS = ("real", "box")


class R1(CountsDSteps):
    def __init__(self, gamma: float = 1.0, every: int = 1, points: str = "real"):
        super().__init__()
        self.gamma, self.every, self.points = float(gamma), int(every), str(points)
        if self.gamma < 0:
            raise UserError(f"reg.r1.gamma={gamma} must be >= 0 (0 disables R1).")
        if self.every < 1:
            raise UserError(f"reg.r1.every={every} must be >= 1 (1: R1 on every D step).")
        if self.points not in POINTS:
            raise UserError(f"reg.r1.points={points} is unknown: use real (R1 at the real samples) or box (at points "
                            f"uniform over the box the batch's real and fake samples span).")

    def refuses(self, objective) -> Optional[str]:
        return clipping_refusal(objective, "reg.r1")

    def due(self) -> bool:
        """Whether this D step carries the (lazy) penalty."""
        return self.gamma > 0 and self.d_steps % self.every == 0

    def wants_real_grad(self) -> bool:
        return self.points == "real" and self.due()

    def d_term(self, step: DStep) -> Optional[Tensor]:
        if not self.due():
            return None
        if self.points == "real":  # D's loss took the real forward with input gradients (wants_real_grad)
            penalty = r1_penalty(step.real_out, step.real_in)
        else:  # box: uniform points between and around the two batches
            points = box_points(step.real, step.fake, step.generator).requires_grad_(True)
            penalty = r1_penalty(step.path(points, step.c_real, eager=True), points)
        # lazy regularisation (Karras et al. 2020): every k-th D step, the term times k
        return self.every * self.gamma / 2 * penalty

    def hparams(self) -> dict:
        return {"r1_gamma": self.gamma, "r1_points": self.points}


def r1_penalty(real_out: Tensor, real_in: Tensor) -> Tensor:
    """Mescheder et al. 2018 R1 without its factor: E_real ||grad_x D(x)||^2, the squared norm over all
    non-batch dimensions, averaged over the batch.  ``real_out = D(real_in)`` with ``real_in`` requiring
    grad; the graph is kept (create_graph=True) so the penalty back-propagates into D's parameters.

    With batch norm in D (train mode) a sample's output depends on the whole batch, so this is the
    gradient of the batch's summed output, as in the reference implementations that allow BN."""
    return wide(input_grad(real_out, real_in)).flatten(1).pow(2).sum(1).mean()


def box_points(real: Tensor, fake: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """As many points as ``real`` has, uniform over the box ``[min, max]`` (per feature, over both batches) that
    the real and fake samples span; drawn from ``generator``."""
    both = torch.cat([real.detach(), fake.detach()])
    lo, hi = both.amin(dim=0), both.amax(dim=0)
    u = torch.rand(real.shape, generator=generator, device=real.device, dtype=real.dtype)
    return lo + (hi - lo) * u


@component_schema("reg", "r1")
@dataclass
class R1Config(RegConfig):
    gamma: float = 1.0  # the weight: gamma/2 E ||grad_x D(x)||^2
    every: int = 1  # lazy: on every k-th D step, the term times k (StyleGAN2)
    points: str = "real"  # real (R1 itself) | box (uniform over the box the batch's real and fake samples span)
