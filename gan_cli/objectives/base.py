"""The objective interface shared by every GAN family.

An objective is a small object that owns its loss (design principle 1; the style of NVlabs
``edm/training/loss.py``): pure functions of D's raw outputs -- :meth:`Objective.d_loss`,
:meth:`Objective.g_loss` and the divergence estimate :meth:`Objective.estimate` -- that the closed-form tests
check; how many critic steps come before each generator step (:meth:`Objective.critic_steps`); and its own
constraint after D's optimiser step (:meth:`Objective.after_d_step`: WGAN's weight clipping).

Everything else a training step composes lives elsewhere: the one path into D (augment pipe, instance noise,
packing, conditioning; :mod:`gan_cli.training.step`) and the regularisers (R1, the gradient penalty, instance
noise, the unrolled critic; :mod:`gan_cli.regularizers`, ``reg=[...]``).  An objective may name regularisers it
wants by default (:meth:`Objective.default_regularizers`: f-GAN's tv row, R1 at box points).  The training loop
owns ``backward()`` and the optimisers and knows no objective by name.

Relativistic losses read D(real) in G's loss too: an objective with ``g_needs_real = True`` gets
``g_loss(fake_out, real_out)`` (D on the last D step's real batch, through the same path).
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..config import UserError


class Objective:
    """Base class: ``d_loss`` is minimised by D, ``g_loss`` by G.

    All output arguments are raw D outputs of shape ``(N,)`` (logits or critic values; no
    sigmoid applied).  Every method returns a scalar tensor that keeps the graph.

    Constructor arguments are the run-level fields of ``model=`` (``gan_cli.config.ObjectiveConfig``)
    that concern the objective; a subclass adds its own (``clip``, ``divergence``).
    """

    estimate_tag: str = ""
    #: G's loss reads D's outputs on the real batch too (relativistic losses): ``g_loss(fake_out, real_out)``
    g_needs_real: bool = False

    def __init__(self, n_critic: int = 1, warmup_critic_steps: int = 0, warmup_g_steps: int = 0,
                 warmup_every: int = 0):
        self.n_critic = int(n_critic)
        self.warmup_critic_steps = int(warmup_critic_steps)
        self.warmup_g_steps = int(warmup_g_steps)
        self.warmup_every = int(warmup_every)
        if self.n_critic < 1:
            raise UserError(f"model.n_critic={n_critic} must be >= 1.")

    # -- pure losses on D outputs --------------------------------------------
    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
        """G's loss; ``real_out`` (D on the real batch) is given only when ``g_needs_real``."""
        raise NotImplementedError

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """The divergence estimate at the current D (what the loop logs under ``estimate_tag``)."""
        raise NotImplementedError

    # -- what the step calls ---------------------------------------------------
    def critic_steps(self, step: int) -> int:
        """D steps before generator step ``step`` (0-based): ``n_critic``, or ``warmup_critic_steps`` for
        the first ``warmup_g_steps`` steps and every ``warmup_every``-th (the WGAN reference schedule)."""
        if self.warmup_critic_steps and (step < self.warmup_g_steps
                                         or (self.warmup_every and step % self.warmup_every == 0)):
            return self.warmup_critic_steps
        return self.n_critic

    def after_d_step(self, D: nn.Module) -> None:
        """Called after each optimiser step of D (weight clipping ...)."""

    def default_regularizers(self) -> dict:
        """``{name: Regularizer}`` this objective trains with unless ``reg=`` names one of the same name."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(estimate_tag={self.estimate_tag!r}, n_critic={self.n_critic})"
