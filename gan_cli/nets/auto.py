"""``net=auto``: the data set's default architecture (``data.default_net``, a builder's import path).

The auto config carries the knobs of every built-in net (``hidden``, ``depth``, ``channels``, ``d_channels``,
``theta0``, ``mu0``, ``sigma0``) so that ``net.hidden=512`` works without naming the net; the
builder receives those its signature accepts.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

from hydra.utils import get_method

from ..config import NetConfig, UserError, component_schema


def build(info, latent_dim: int, d_norm: str = "batch", default_net: str = "gan_cli.nets.mlp.build", **knobs):
    builder = get_method(default_net)
    params = inspect.signature(builder).parameters
    if knobs.get("spectral_norm") and "spectral_norm" not in params:
        raise UserError(f"net.spectral_norm=true: {default_net} (data.default_net) has no spectral_norm option; "
                        f"choose net=mlp or net=dcgan.")
    return builder(info, latent_dim, d_norm, **{k: v for k, v in knobs.items() if k in params})


def resolved_name(default_net: str) -> str:
    """A label for the net auto picks: the builder's module name (``gan_cli.nets.mlp.build`` -> ``mlp``),
    or its function name after ``build_`` (``gan_cli.nets.toy.build_theta`` -> ``theta``)."""
    module, _, fn = default_net.rpartition(".")
    return fn[len("build_"):] if fn.startswith("build_") else module.rpartition(".")[2]


@component_schema("net", "auto")
@dataclass
class AutoNetConfig(NetConfig):
    hidden: int = 128
    depth: int = 3
    channels: int = 64
    d_channels: Optional[int] = None  # D's base width for the DCGAN nets (null: as channels)
    theta0: float = 1.0
    mu0: float = 0.0
    sigma0: float = 1.0
    spectral_norm: bool = False  # spectral normalisation of D's layers (gan_cli.nets.spectral)
