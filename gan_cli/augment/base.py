"""The augment pipe interface (stylegan2-ada-pytorch ``training/augment.py``'s ``AugmentPipe``; DiffAugment).

An :class:`AugmentPipe` is an ``nn.Module`` whose ``forward(x)`` returns an augmented copy of a batch of D's
inputs, differentiably (G's gradient flows through the augmentation of its samples, and R1 / the gradient
penalty are taken with respect to the input before it).  The one path into D applies it to real and fake alike.

* **Randomness**: every draw comes from ``self.generator``, the run's ``augment`` stream
  (:func:`gan_cli.seeds.generator`; each rank its own), which the Trainer hands over with :meth:`bind`.
  Nothing else is consumed: a run with ``augment=none`` and one whose pipe never fires draw the same batches.
* **State**: the generator's state travels in the module's ``state_dict`` (``get_extra_state``), beside any
  buffers (ADA's probability ``p``); the checkpoint keeps it under ``augment``, so a resumed run continues the
  same augmentations exactly.
* **Adaptive pipes** see D's outputs on the real batch after every D step (:meth:`observe`; ADA's r_t).
* **Scalars** (:meth:`log_scalars`, device tensors: no host sync) are logged at the loop's cadence under
  ``augment/...``.
* ``kinds``: the data kinds the pipe applies to; another kind is refused in one line when the run is built.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn


class AugmentPipe(nn.Module):
    kinds: tuple = ("image",)

    def __init__(self):
        super().__init__()
        self.generator: Optional[torch.Generator] = None

    def bind(self, generator: torch.Generator) -> "AugmentPipe":
        """Draw from ``generator`` (the run's augment stream) from now on."""
        self.generator = generator
        return self

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - the interface
        raise NotImplementedError

    def observe(self, real_out: Tensor) -> None:
        """D's outputs on the real batch of the D step just taken (detached): adaptive pipes adjust here."""

    def log_scalars(self) -> dict:
        """``{"augment/<name>": device tensor}`` to log at the loop's cadence."""
        return {}

    def get_extra_state(self) -> Any:
        return {"generator": self.generator.get_state()} if self.generator is not None else {}

    def set_extra_state(self, state: Any) -> None:
        if state and state.get("generator") is not None and self.generator is not None:
            self.generator.set_state(state["generator"])
