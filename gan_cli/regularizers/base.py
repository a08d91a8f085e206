"""Regularisers: small objects composed into the training step from the ``reg=`` list.

``reg=[r1]``, ``reg=[r1,instance_noise]``, tuned as ``reg.r1.gamma=10``: each is one YAML in ``conf/reg/``
(package ``reg.<name>``) naming its class with ``_target_`` and one file here.  A model preset may carry
its own (``conf/model/wgan_gp.yaml`` lists ``/reg/gp@_global_.reg.gp``: WGAN-GP is the Wasserstein loss plus
the gradient penalty), and an objective may add a default one of its own
(:meth:`gan_cli.objectives.base.Objective.default_regularizers`: f-GAN's tv row, R1 at box points).

A regulariser hooks into the step (:mod:`gan_cli.training.step`) at these points, each a no-op here:

* :meth:`Regularizer.transform` -- D's input on the one path into D, after the augment pipe (instance noise):
  every call of D goes through it, real and fake, in D's and G's losses and in the penalties;
* :meth:`Regularizer.wants_real_grad` -- the D step's forward pass on the real batch takes input gradients
  (R1 at the real samples): one forward serves D's loss and the penalty (batch-norm statistics move once);
* :meth:`Regularizer.d_term` -- a term added to D's loss (R1, the gradient penalty);
* :meth:`Regularizer.g_critic` -- what G's loss reads instead of D (the unrolled GAN's look-ahead critic);
* :meth:`Regularizer.d_step_done` -- once after each D loss (counters: lazy R1, annealed noise);
* :meth:`Regularizer.state_dict` / :meth:`Regularizer.load_state_dict` -- the counters, in the checkpoint,
  so a resumed run continues exactly;
* :meth:`Regularizer.refuses` -- why it does not fit the model (R1 with weight clipping), or None.

Input gradients (R1, the gradient penalty, the unrolled steps) take a double backward: they go through the
uncompiled D (:func:`eager`; aot_autograd "does not currently support double backward") and
:func:`input_grad`, which under fp16 autocast scales the inner backward by the GradScaler's scale and
unscales its result (the speed path, :mod:`gan_cli.training.speed`, sets the scale with
:func:`inner_grad_scale`).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn


@dataclass
class DStep:
    """What a regulariser sees of one D step.  ``path(x, c, eager=False, params=None)`` is the one path into D
    (:class:`gan_cli.training.step.DPath`); ``real_in`` is the real batch as D's loss saw it (requiring grad
    when a regulariser :meth:`~Regularizer.wants_real_grad`), ``real_out`` / ``fake_out`` D's outputs in
    D's loss; ``generator`` the run's train stream."""

    path: Any
    objective: Any
    real: Tensor
    c_real: Optional[Tensor]
    fake: Tensor
    c_fake: Optional[Tensor]
    real_in: Tensor
    real_out: Tensor
    fake_out: Tensor
    generator: Optional[torch.Generator]


@dataclass
class GStep:
    """What a regulariser sees of one G step: ``fake`` (with G's graph) and the last D step's real batch."""

    path: Any
    objective: Any
    real: Tensor
    c_real: Optional[Tensor]
    fake: Tensor
    c_fake: Optional[Tensor]
    generator: Optional[torch.Generator]


class Regularizer:
    """Base class: every hook is a no-op (see the module docstring).  ``name`` is its key in ``reg=``."""

    name: str = ""

    def refuses(self, objective) -> Optional[str]:
        """Why this regulariser does not fit ``objective`` (one line), or None."""
        return None

    def transform(self, x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        """D's input (after the augment pipe); only called for regularisers that override it."""
        return x

    def wants_real_grad(self) -> bool:
        """True when this D step's real forward must take input gradients (R1 at the real samples, when due)."""
        return False

    def d_term(self, step: DStep) -> Optional[Tensor]:
        """A term added to D's loss, or None."""
        return None

    def g_critic(self, step: GStep) -> Optional[Callable[[Tensor, Optional[Tensor]], Tensor]]:
        """A critic ``(x, c) -> outputs`` for G's loss instead of the path into D, or None."""
        return None

    def d_step_done(self) -> None:
        """Called once after each D loss (counters)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def hparams(self) -> dict:
        """Its settings for the HParams table (``{"r1_gamma": 1.0}`` ...)."""
        return {}

    @property
    def has_transform(self) -> bool:
        return type(self).transform is not Regularizer.transform

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hparams()})"


class CountsDSteps(Regularizer):
    """A regulariser whose behaviour follows the number of D steps so far (``d_steps``, checkpointed)."""

    def __init__(self):
        self.d_steps = 0

    def d_step_done(self) -> None:
        self.d_steps += 1

    def state_dict(self) -> dict:
        return {"d_steps": self.d_steps}

    def load_state_dict(self, state: dict) -> None:
        self.d_steps = int(state.get("d_steps", 0))


def clipping_refusal(objective, what: str) -> Optional[str]:
    """The one line for a gradient penalty on a weight-clipped critic (WGAN), else None."""
    if getattr(objective, "clip", None):
        return (f"{what} with model=wgan: the weight-clipped critic is already Lipschitz-bounded and its linear loss "
                f"is unbounded off the data, which a penalty at sample points does not touch; use model=wgan_gp, or "
                f"{what} with model=nsgan|hinge|fgan")
    return None


# ----------------------------------------------------------------------------- input gradients (speed path)

#: the GradScaler's scale (a device tensor) while an fp16 step's forward passes run; None otherwise
_INNER_SCALE: ContextVar[Optional[Tensor]] = ContextVar("gan_cli_inner_grad_scale", default=None)


@contextmanager
def inner_grad_scale(scale: Optional[Tensor]):
    """Within the block, :func:`input_grad` scales its inner backward by ``scale`` (set by
    :meth:`gan_cli.training.speed.SpeedPath.autocast` under fp16; None: no scaling)."""
    token = _INNER_SCALE.set(scale)
    try:
        yield
    finally:
        _INNER_SCALE.reset(token)


def input_grad(out: Tensor, x: Tensor, create_graph: bool = True) -> Tensor:
    """d(out.sum())/dx, with the graph kept (``create_graph``) so a penalty on it trains D.

    Under fp16 autocast with a GradScaler (:func:`inner_grad_scale`), small fp16 gradients would underflow
    in the inner backward: the output is multiplied by the scale S first and the gradient divided by S
    after (the PyTorch AMP examples' "Gradient penalty" recipe, there for parameter gradients), so the
    result is the true gradient.  S is a device tensor: no host sync."""
    scale = _INNER_SCALE.get()
    total = out.sum() if scale is None else wide(out).sum() * scale
    (grad,) = torch.autograd.grad(total, x, create_graph=create_graph)
    return grad if scale is None else grad / scale


def wide(t: Tensor) -> Tensor:
    """``t`` in float32 when autocast made it fp16/bf16 (norms and sums of squares in full precision); else as is
    (float64 stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def eager(D: nn.Module) -> nn.Module:
    """D without its ``torch.compile`` wrapper (``D._orig_mod``; D itself when not compiled), for terms
    that need a double backward: aot_autograd "does not currently support double backward"."""
    return getattr(D, "_orig_mod", D)
