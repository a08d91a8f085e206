"""Exponential moving average of the generator's weights (``ema.beta``).

After every generator step, ``G_ema <- beta_t G_ema + (1 - beta_t) G`` parameter by parameter, and G's
buffers (batch-norm running statistics) are copied as they are, as StudioGAN's ``Ema`` does.  With
``ema.rampup`` (default) ``beta_t = min(beta, (1 + t) / (10 + t))`` for the t-th generator step (0-based;
the ``num_updates`` form of TensorFlow's ``ExponentialMovingAverage``), so the random initial weights are
forgotten within the first steps; stylegan2-ada ramps its half-life instead (``ema_rampup``), to the
same end.  ``G_ema`` is checkpointed (``generator_ema``) and restored on resume, and evaluation and
pictures (the loop's, ``gan-eval``'s, the lab's through :func:`gan_cli.build.load_generator`) sample from
it; the divergence estimate and the training losses use the trained G.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, G: nn.Module, beta: float, rampup: bool = True):
        if not 0 < beta < 1:
            raise ValueError(f"ema beta must be in (0, 1), got {beta}")
        self.beta = float(beta)
        self.rampup = bool(rampup)
        self.model = copy.deepcopy(G).eval().requires_grad_(False)

    def beta_at(self, step: int) -> float:
        """The decay used after generator step ``step`` (0-based)."""
        return min(self.beta, (1 + step) / (10 + step)) if self.rampup else self.beta

    @torch.no_grad()
    def update(self, G: nn.Module, step: int) -> None:
        b = self.beta_at(step)
        for pe, p in zip(self.model.parameters(), G.parameters(), strict=True):
            pe.lerp_(p.detach(), 1 - b)
        for be, bg in zip(self.model.buffers(), G.buffers(), strict=True):
            be.copy_(bg)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
