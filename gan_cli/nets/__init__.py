"""Generator / discriminator architectures.

``build_nets(net_cfg, info, latent_dim, d_norm) -> (G, D)``: ``G(z)`` maps ``(N, latent_dim)`` to
``(N, *info.shape)`` (images through ``tanh``, in [-1, 1]) and carries ``G.latent_dim``; ``D(x)`` returns
the raw output (logit / critic value) of shape ``(N,)``.

=========  ====================  ==========================================================
name       data                  G / D
=========  ====================  ==========================================================
mlp        any (toy, images)     ReLU MLP / LeakyReLU(0.2) MLP, ``net.depth`` x ``net.hidden``
dcgan      images 8, 16, 28,     DCGAN transposed convs + BN + tanh / strided convs, norm
           32, 64, 128 square    per ``d_norm`` (batch | layer | none), width ``net.channels``
theta      2-D toy (``lines``)   ``(theta, Phi(z_0))``, one parameter / MLP
gaussian   1-D toy (``mog1d``)   ``mu + sigma z_0`` / MLP
=========  ====================  ==========================================================
"""
from __future__ import annotations

from typing import Tuple

from torch import nn

from ..config import UserError
from .dcgan import SIZES as DCGAN_SIZES
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init, dcgan_plan
from .mlp import MLPDiscriminator, MLPGenerator
from .toy import GaussianGenerator, ThetaGenerator

__all__ = ["build_nets", "NET_NAMES", "MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "ThetaGenerator", "GaussianGenerator", "dcgan_init", "DCGAN_SIZES"]

NET_NAMES = ("mlp", "dcgan", "theta", "gaussian")


def _value(x) -> str:
    return str(getattr(x, "value", x))


def build_nets(net_cfg, info, latent_dim: int, d_norm="batch") -> Tuple[nn.Module, nn.Module]:
    """``(G, D)`` for ``net_cfg.name`` (a NetName enum or a string) fitted to ``info`` (a DataInfo).

    ``net_cfg.name == "auto"`` must be resolved by the caller (to ``data.default_net``): ValueError here.
    ``d_norm`` (``batch`` | ``layer`` | ``none``, enum or string) only affects the dcgan discriminator.
    A net that does not fit the data (dcgan on toy data, theta on images, an unsupported image size ...)
    is a one-line UserError.
    """
    name = _value(net_cfg.name)
    d_norm = _value(d_norm)
    if name == "auto":
        raise ValueError("net.name='auto' must be resolved to the data set's default_net before build_nets")
    if d_norm not in ("batch", "layer", "none"):
        raise ValueError(f"d_norm must be 'batch', 'layer' or 'none', not {d_norm!r}")
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    shape = tuple(int(s) for s in info.shape)
    kind = _value(info.kind)
    hidden, depth = int(net_cfg.hidden), int(net_cfg.depth)

    if name == "mlp":
        G = MLPGenerator(latent_dim, shape, hidden, depth, tanh=kind == "image")
        D = MLPDiscriminator(shape, hidden, depth)
    elif name == "dcgan":
        if kind != "image" or len(shape) != 3:
            raise UserError(f"net=dcgan needs image data, but data={info.name} is {kind} with shape {shape}: "
                            f"use net=mlp (or net=auto).")
        dcgan_plan(shape)  # UserError naming the supported sizes
        G = DCGANGenerator(latent_dim, shape, int(net_cfg.channels))
        D = DCGANDiscriminator(shape, int(net_cfg.channels), d_norm)
    elif name == "theta":
        if kind != "toy2d" or shape != (2,):
            raise UserError(f"net=theta generates 2-D points (theta, U[0,1]) for data=lines, but data={info.name} "
                            f"is {kind} with shape {shape}: use data=lines, or net=auto.")
        G = ThetaGenerator(latent_dim, float(net_cfg.theta0))
        D = MLPDiscriminator(shape, hidden, depth)
    elif name == "gaussian":
        if kind != "toy1d" or shape != (1,):
            raise UserError(f"net=gaussian generates 1-D points mu + sigma*z for 1-D data (data=mog1d), but "
                            f"data={info.name} is {kind} with shape {shape}: use a 1-D data set, or net=auto.")
        G = GaussianGenerator(latent_dim, float(net_cfg.mu0), float(net_cfg.sigma0))
        D = MLPDiscriminator(shape, hidden, depth)
    else:
        raise UserError(f"net={name} is unknown: use one of {', '.join(NET_NAMES)} (or auto).")
    G.latent_dim = latent_dim
    return G, D
