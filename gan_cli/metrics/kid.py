"""Kernel Inception Distance from features (pure math, no I/O).

Paper: Binkowski et al. 2018, "Demystifying MMD GANs": KID is the unbiased MMD^2 estimate
with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets
(100 subsets of 1000); the std over subsets is reported alongside.
Reference implementation matched: torch-fidelity 0.4.0 ``metric_kid.kid_features_to_metric``
(adapted there from mbinkowski/MMD-GAN ``compute_scores.py``), defaults ``kid_subsets=100``,
``kid_subset_size=1000``, ``rng_seed=2020``, ``mmd_est="unbiased"``: one
``np.random.RandomState(seed)`` draws, per subset, ``choice(n1, size, replace=False)`` for
input 1 and then for input 2; MMD^2 = (sum K_XX + sum K_YY off-diagonal) / (m(m-1))
- 2 sum K_XY / m^2 (K_XY with its diagonal); mean and std (ddof 0) over subsets.
Computed here in float64 (torch, on the features' device).  torch-fidelity computes in the
features' dtype (float32 for its extractors), so with float32 input the two agree to float32
rounding; with float64 input they agree to 1e-10.
"""
from __future__ import annotations

import numpy as np
import torch

from gan_cli.config import UserError
from gan_cli.metrics.registry import register_metric

__all__ = ["kid", "mmd2_unbiased", "polynomial_kernel"]


def _as_tensor(x) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x)) if not torch.is_tensor(x) else x.detach()
    if t.dim() != 2:
        raise ValueError(f"KID expects (N, d) features, got shape {tuple(t.shape)}")
    return t


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> torch.Tensor:
    """(x y^T * gamma + coef0) ** degree, gamma defaulting to 1/d (KID's kernel)."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's ``mmd2(..., mmd_est="unbiased")`` (0-d tensor): diagonals of K_XX, K_YY dropped."""
    m = k_xx.shape[0]
    kt_xx = k_xx.sum() - k_xx.diagonal().sum()
    kt_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (kt_xx + kt_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)


def kid(features_1, features_2, subsets: int = 100, subset_size: int = 1000, seed: int = 2020,
        degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over ``subsets`` random subsets of ``subset_size``.

    Argument order matters for the random draws only (MMD^2 is symmetric): pass torch-fidelity's
    input1 (the generated features) first to reproduce its numbers exactly.
    """
    f1, f2 = _as_tensor(features_1), _as_tensor(features_2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    n1, n2 = f1.shape[0], f2.shape[0]
    if subset_size < 2:
        raise UserError(f"KID subset size must be >= 2, got {subset_size}")
    if n1 < subset_size or n2 < subset_size:
        raise UserError(
            f"KID subset size {subset_size} is larger than the number of samples ({n1} and {n2}); "
            f"raise metrics.num_samples to >= {subset_size} or lower the KID subset size"
        )
    device = f2.device
    f1 = f1.to(device=device, dtype=torch.float64)
    f2 = f2.to(device=device, dtype=torch.float64)
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        idx1 = torch.from_numpy(rng.choice(n1, subset_size, replace=False)).to(device)
        idx2 = torch.from_numpy(rng.choice(n2, subset_size, replace=False)).to(device)
        x, y = f1[idx1], f2[idx2]
        k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
        k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
        k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
        mmds.append(mmd2_unbiased(k_xx, k_xy, k_yy))
    mmds = torch.stack(mmds).cpu().numpy()  # one host sync for all subsets
    return float(np.mean(mmds)), float(np.std(mmds))


@register_metric("kid", inputs="features", order=20, kinds=("image",), directions={"kid": "min"})
def _kid(real, fake, ctx):
    """Unbiased MMD^2, cubic kernel, 100 subsets of min(1000, n) (torch-fidelity's draws).

    When a subset is as large as the smaller set, every subset is that whole set: the spread
    over subsets says nothing, so no ``_std`` is reported."""
    n_f, n_r = fake["pool"].shape[0], real["pool"].shape[0]
    m = min(1000, n_f, n_r)
    mean, std = kid(fake["pool"], real["pool"], subsets=100, subset_size=m)
    out = {f"kid{ctx.tag}_{ctx.features}": mean}
    if m < min(n_f, n_r):
        out[f"kid{ctx.tag}_{ctx.features}_std"] = std
    return out
