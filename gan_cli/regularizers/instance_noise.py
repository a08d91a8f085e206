"""Instance noise (Sønderby et al. 2017, "Amortised MAP inference for image super-resolution"; Arjovsky & Bottou
2017, "Towards principled methods for training GANs"): ``reg=[instance_noise]``.

N(0, std^2) is added to every input of D on the one path into D -- real and fake, in D's loss and in G's, in the
penalties too -- so the two distributions overlap early on.  ``reg.instance_noise.steps=T`` anneals the std
linearly to 0 over T D steps (0: constant).  The noise is drawn from the run's train stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..config import RegConfig, UserError, component_schema
from .base import CountsDSteps


class InstanceNoise(CountsDSteps):
    def __init__(self, std: float = 0.1, steps: int = 0):
        super().__init__()
        self.std, self.steps = float(std), int(steps)
        if self.std < 0 or self.steps < 0:
            raise UserError(f"reg.instance_noise.std={std} and reg.instance_noise.steps={steps} must be >= 0.")

    def std_now(self) -> float:
        """The std at the current D step: ``std``, annealed linearly to 0 over ``steps`` D steps (0: constant)."""
        if self.std <= 0:
            return 0.0
        if not self.steps:
            return self.std
        return self.std * max(0.0, 1.0 - self.d_steps / self.steps)

    def transform(self, x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        sigma = self.std_now()
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def hparams(self) -> dict:
        return {"instance_noise": self.std}


@component_schema("reg", "instance_noise")
@dataclass
class InstanceNoiseConfig(RegConfig):
    std: float = 0.1  # N(0, std^2) on every input of D
    steps: int = 0  # D steps to anneal it linearly to 0 (0: constant)
