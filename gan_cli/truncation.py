"""The truncation trick: trade diversity for fidelity by shrinking the latent draw.

- ``resample`` (Brock et al. 2019, BigGAN): entries of z ~ N(0, I) with |z| > psi are redrawn
  until all lie inside [-psi, psi].
- ``interpolate`` (Karras et al. 2019, StyleGAN): z' = z_mean + psi (z - z_mean); our latent is
  drawn in z-space, where the mean of N(0, I) is 0, so z' = psi z (StyleGAN applies the same
  formula to its mapped w with the tracked w_avg).
psi = 1 (interpolate) or psi = inf (resample) is no truncation.
"""
from __future__ import annotations

import torch

from gan_cli.config import UserError

KINDS = ("none", "resample", "interpolate")


def check(kind: str, psi: float) -> None:
    if kind not in KINDS:
        raise UserError(f"truncation.kind={kind} is unknown: use none, resample or interpolate.")
    if kind == "resample" and not psi > 0:
        raise UserError(f"truncation.psi={psi} must be > 0 for resample truncation (entries with |z| > psi are redrawn).")
    if kind == "interpolate" and not psi >= 0:
        raise UserError(f"truncation.psi={psi} must be >= 0 for interpolate truncation.")


def truncated_noise(n: int, dim: int, kind: str, psi: float, generator: torch.Generator, device,
                    z_mean: torch.Tensor | None = None) -> torch.Tensor:
    """n latent vectors N(0, I) of size ``dim``, truncated per ``kind`` / ``psi``."""
    check(kind, psi)
    z = torch.randn(n, dim, generator=generator, device=device)
    if kind == "resample":
        bad = z.abs() > psi
        while bool(bad.any()):  # each round redraws only the entries still outside
            z = torch.where(bad, torch.randn(n, dim, generator=generator, device=device), z)
            bad = z.abs() > psi
    elif kind == "interpolate":
        mean = torch.zeros(dim, device=device) if z_mean is None else z_mean.to(device)
        z = mean + psi * (z - mean)
    return z
