"""Spectral normalisation of a discriminator (Miyato et al. 2018, "Spectral Normalization for GANs").

``net.spectral_norm=true`` wraps every ``Linear`` and ``Conv2d`` weight of D with
``torch.nn.utils.parametrizations.spectral_norm``: W / sigma(W), sigma estimated by one power iteration
per training forward (15 at wrapping), on the weight reshaped to ``(out, -1)`` as in the paper and
torch.  G is left alone.

With normalisation layers in D the bound is lost (batch / layer norm rescale by the batch's statistics
after the normalised layer), and SNGAN's discriminators have none, so a net with ``d_norm`` other than
``none`` refuses the combination in one line (MLP discriminators have no normalisation: nothing to refuse).
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import UserError


def spectral_normalise(D: nn.Module) -> nn.Module:
    """Wrap D's Linear / Conv2d weights in place; returns D."""
    layers = [m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for m in layers:
        spectral_norm(m)
    return D


def check_norm(d_norm: str, net: str) -> None:
    if d_norm != "none":
        raise UserError(f"net.spectral_norm=true with model.d_norm={d_norm}: the {d_norm} norm after each layer undoes the "
                        f"Lipschitz bound (SNGAN's {net} discriminator has no normalisation); add model.d_norm=none.")
