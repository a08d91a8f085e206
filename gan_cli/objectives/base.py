"""The objective interface shared by every GAN family.

An objective is a small object that owns its whole loss (design principle 1; the style of
NVlabs ``edm/training/loss.py``, whose loss objects draw their own noise and add their own
terms): given D and a batch it returns the discriminator's loss *with its regulariser*
(:meth:`Objective.discriminator_loss`), the generator's loss, the divergence estimate, and what
happens after D's optimiser step (:meth:`Objective.after_d_step`, e.g. weight clipping).  It also
says how many critic steps come before each generator step.  The training loop owns
``backward()`` and the optimisers and knows no objective by name.

The pure parts -- :meth:`d_loss`, :meth:`g_loss`, :meth:`estimate` on raw D outputs -- are what
the closed-form tests check.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


class Objective:
    """Base class: ``d_loss`` is minimised by D, ``g_loss`` by G.

    All output arguments are raw D outputs of shape ``(N,)`` (logits or critic values; no
    sigmoid applied).  Every method returns a scalar tensor that keeps the graph.

    Constructor arguments are the run-level fields of ``model=`` (``gan_cli.config.ObjectiveConfig``)
    that concern the objective; a subclass adds its own (``gp_weight``, ``clip``, ``divergence``).
    """

    estimate_tag: str = ""

    def __init__(self, n_critic: int = 1, warmup_critic_steps: int = 0, warmup_g_steps: int = 0,
                 warmup_every: int = 0):
        self.n_critic = int(n_critic)
        self.warmup_critic_steps = int(warmup_critic_steps)
        self.warmup_g_steps = int(warmup_g_steps)
        self.warmup_every = int(warmup_every)

    # -- pure losses on D outputs --------------------------------------------
    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """The divergence estimate at the current D (what the loop logs under ``estimate_tag``)."""
        raise NotImplementedError

    # -- what the loop calls ---------------------------------------------------
    def critic_steps(self, step: int) -> int:
        """D steps before generator step ``step`` (0-based): ``n_critic``, or ``warmup_critic_steps`` for
        the first ``warmup_g_steps`` steps and every ``warmup_every``-th (the WGAN reference schedule)."""
        if self.warmup_critic_steps and (step < self.warmup_g_steps
                                         or (self.warmup_every and step % self.warmup_every == 0)):
            return self.warmup_critic_steps
        return self.n_critic

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor,
                           generator: Optional[torch.Generator] = None) -> Tensor:
        """D's whole loss on one batch: :meth:`d_loss` plus :meth:`regularizer`."""
        loss = self.d_loss(D(real), D(fake))
        reg = self.regularizer(D, real, fake, generator)
        return loss if reg is None else loss + reg

    def regularizer(self, D: nn.Module, real: Tensor, fake: Tensor,
                    generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        """An extra term of D's loss (gradient penalty, R1 ...); None: no regulariser."""
        return None

    def generator_loss(self, D: nn.Module, fake: Tensor) -> Tensor:
        return self.g_loss(D(fake))

    def after_d_step(self, D: nn.Module) -> None:
        """Called after each optimiser step of D (weight clipping ...)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(estimate_tag={self.estimate_tag!r}, n_critic={self.n_critic})"
