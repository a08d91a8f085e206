"""The objective interface shared by every GAN family.

An objective is a small pure object (design principle 1): it turns raw
discriminator outputs into the two losses and a divergence estimate.  The
training loop owns ``backward()``, the optimisers, weight clipping and the
optional gradient penalty (:func:`gan_cli.objectives.wgan.gradient_penalty`).
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from torch import Tensor


class Objective:
    """Base class: ``d_loss`` is minimised by D, ``g_loss`` by G.

    All inputs are raw D outputs of shape ``(N,)`` (logits or critic values; no
    sigmoid applied).  Every method returns a scalar tensor that keeps the graph.
    """

    estimate_tag: str = ""

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """The divergence estimate at the current D (what the loop logs under ``estimate_tag``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(estimate_tag={self.estimate_tag!r})"


def value(x: Any) -> str:
    """The plain string behind a str Enum (``Objective.gan`` -> ``"gan"``) or a string."""
    return str(x.value if isinstance(x, Enum) else x)
