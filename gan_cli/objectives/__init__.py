"""GAN objectives: ``build_objective(model_cfg)`` picks one by ``model_cfg.name``.

gan / nsgan: :mod:`.gan` (Goodfellow et al. 2014); fgan: :mod:`.fgan` (Nowozin et
al. 2016, one class over a divergence table); wgan / wgan_gp: :mod:`.wgan`
(Arjovsky et al. 2017, Gulrajani et al. 2017; the penalty weight is applied by
the loop with :func:`gradient_penalty`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import UserError
from .base import Objective, value
from .fgan import DIVERGENCES, FGAN, FDivergence
from .gan import GAN, NSGAN
from .wgan import Wasserstein, gradient_penalty

__all__ = [
    "Objective", "GAN", "NSGAN", "FGAN", "FDivergence", "DIVERGENCES", "Wasserstein",
    "gradient_penalty", "build_objective", "OBJECTIVES",
]

OBJECTIVES = ("gan", "nsgan", "fgan", "wgan", "wgan_gp")


def _field(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def build_objective(model_cfg: Any) -> Objective:
    """Objective for a ModelConfig (or a dict / DictConfig with ``name`` and, for
    fgan, ``divergence``, or just the name as a string)."""
    if isinstance(model_cfg, str):
        name, divergence = model_cfg, "kl"
    else:
        name = value(_field(model_cfg, "name"))
        divergence = value(_field(model_cfg, "divergence", "kl"))
    if name == "gan":
        return GAN()
    if name == "nsgan":
        return NSGAN()
    if name == "fgan":
        return FGAN(divergence)
    if name in ("wgan", "wgan_gp"):
        return Wasserstein()
    raise UserError(f"model.name={name} is unknown: use one of {', '.join(OBJECTIVES)}.")
