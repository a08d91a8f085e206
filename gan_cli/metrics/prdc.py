"""k-NN precision / recall / density / coverage from features (pure math, no I/O).

Papers: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models" (precision = share of fakes inside some real k-NN ball, recall = share of
reals inside some fake k-NN ball); Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics
for Generative Models" (density = mean number of real balls holding a fake, over k;
coverage = share of real balls holding a fake).  A point's radius is the distance to its k-th
nearest neighbour in its own set, itself excluded (the (k+1)-th smallest distance counting the
zero self-distance, as both references do).

Reference implementations matched:
  * ``strict=True`` (default, k=5): prdc 0.2 ``compute_prdc`` (clovaai/generative-evaluation-prdc):
    ``distance < radius`` for all four numbers.
  * ``strict=False, k=3``: torch-fidelity 0.4.0 ``metric_prc`` (and the original NVlabs
    precision-recall code): ``distance <= radius``; its precision/recall equal ours.

Computation: torch, float64 by default (``dtype``), on the features' device, after centring
both sets on the real mean.  Distances come from ``torch.cdist`` on (block x block) tiles, never
an N x N matrix: the radii keep a running top-(k+1) per row across column tiles, the
real-vs-fake pass keeps running count/any/min accumulators.  Memory is O(block^2 + N k); three
N x N distance passes in total, like prdc.

prdc itself rounds distances to float32, so a comparison within ~1e-7 relative of a radius can
come out differently: tests at 2000 x 2000 x 64-d and 10k x 10k x 1000-d match exactly; in the
10k x 10k x 128-d benchmark one (real, fake) pair of 10^8 differed (distance 13.6850275 vs
radius 13.6850281, equal once rounded to float32: prdc says "outside", exact arithmetic says
inside), which moved coverage by 1/10000 and the density count by one.
"""
from __future__ import annotations

import numpy as np
import torch

from gan_cli.config import UserError
from gan_cli.metrics.registry import register_metric

__all__ = ["prdc", "knn_radii"]


def _as_2d(x) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x)) if not torch.is_tensor(x) else x.detach()
    return t.reshape(t.shape[0], -1)


def knn_radii(x: torch.Tensor, k: int, block_size: int = 2048) -> torch.Tensor:
    """Distance of each row of x to its k-th nearest neighbour among the other rows.

    Tiles of ``block_size`` x ``block_size`` distances; a running top-(k+1) smallest per row
    (the zero self-distance included, then the largest of the k+1 taken).
    """
    n = x.shape[0]
    radii = torch.empty(n, dtype=x.dtype, device=x.device)
    for i0 in range(0, n, block_size):
        xi = x[i0 : i0 + block_size]
        best = None
        for j0 in range(0, n, block_size):
            d = torch.cdist(xi, x[j0 : j0 + block_size])
            lo, hi = max(i0, j0), min(i0 + xi.shape[0], j0 + block_size)
            if lo < hi:  # this tile holds self-distances: make them exactly 0
                r = torch.arange(lo, hi, device=x.device)
                d[r - i0, r - j0] = 0.0
            cand = d.topk(min(k + 1, d.shape[1]), dim=1, largest=False).values
            best = cand if best is None else torch.cat([best, cand], dim=1)
            if best.shape[1] > k + 1:
                best = best.topk(k + 1, dim=1, largest=False).values
        radii[i0 : i0 + xi.shape[0]] = best.max(dim=1).values
    return radii


def prdc(real_features, fake_features, k: int = 5, strict: bool = True, block_size: int = 2048,
         dtype: torch.dtype = torch.float64, device=None) -> dict[str, float]:
    """{"precision", "recall", "density", "coverage"} of fake vs real (N, d) features.

    ``strict=True``: prdc 0.2 (``<``; its default use is k=5).  ``strict=False``: ``<=`` as in
    torch-fidelity's precision/recall (k=3) and Kynkaanniemi et al.'s code.  ``device``: where the tiles are
    computed (None: the real features' device; numpy arrays are on the CPU).  On a GPU, 50k x 50k x 2048 needs
    the two feature sets (1.6 GB in float64) and a few block x block tiles, never an N x N matrix.
    """
    real = _as_2d(real_features)
    fake = _as_2d(fake_features)
    device = torch.device(device) if device is not None else real.device
    real = real.to(device=device, dtype=dtype)
    fake = fake.to(device=device, dtype=dtype)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"PRDC feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if k < 1:
        raise UserError(f"PRDC needs k >= 1, got k={k}; set metrics.k to a positive integer")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise UserError(
            f"PRDC with k={k} needs more than {k} samples per set, got {real.shape[0]} real and "
            f"{fake.shape[0]} fake; raise metrics.num_samples or lower metrics.k"
        )
    # Distances are translation invariant; centring keeps cdist's |x|^2 + |y|^2 - 2 x.y from
    # cancelling when the features share a large offset (e.g. non-negative pooled features).
    center = real.mean(dim=0)
    real, fake = real - center, fake - center
    inside = torch.lt if strict else torch.le
    r_real = knn_radii(real, k, block_size)
    r_fake = knn_radii(fake, k, block_size)

    n_real, n_fake = real.shape[0], fake.shape[0]
    fake_ball_count = torch.zeros(n_fake, dtype=torch.int64, device=device)  # density; > 0: precision
    real_in_fake_ball = torch.zeros(n_real, dtype=torch.bool, device=device)  # recall
    real_ball_has_fake = torch.zeros(n_real, dtype=torch.bool, device=device)  # coverage
    for i0 in range(0, n_real, block_size):
        ri = real[i0 : i0 + block_size]
        rad = r_real[i0 : i0 + block_size, None]
        nearest_fake = torch.full((ri.shape[0],), float("inf"), dtype=dtype, device=device)
        for j0 in range(0, n_fake, block_size):
            d = torch.cdist(ri, fake[j0 : j0 + block_size])
            in_real = inside(d, rad)
            fake_ball_count[j0 : j0 + d.shape[1]] += in_real.sum(dim=0)
            in_fake = inside(d, r_fake[None, j0 : j0 + d.shape[1]])
            real_in_fake_ball[i0 : i0 + d.shape[0]] |= in_fake.any(dim=1)
            nearest_fake = torch.minimum(nearest_fake, d.min(dim=1).values)
        real_ball_has_fake[i0 : i0 + ri.shape[0]] = inside(nearest_fake, rad[:, 0])
    return {
        "precision": (fake_ball_count > 0).double().mean().item(),
        "recall": real_in_fake_ball.double().mean().item(),
        "density": fake_ball_count.sum().item() / (k * n_fake),
        "coverage": real_ball_has_fake.double().mean().item(),
    }


@register_metric("prdc", inputs="points", order=40, kinds=("toy2d", "toy1d"),
                 directions={"precision": "max", "recall": "max", "density": "max", "coverage": "max"})
def _prdc_points(real, fake, ctx):
    """k-NN precision, recall, density, coverage on the points (prdc: strict <)."""
    return {f"{name}_{ctx.tag}_k{ctx.k}": v for name, v in prdc(real, fake, k=ctx.k, device=ctx.device).items()}


@register_metric("prdc", inputs="features", order=40, kinds=("image",),
                 directions={"precision": "max", "recall": "max", "density": "max", "coverage": "max"})
def _prdc_features(real, fake, ctx):
    """k-NN precision, recall, density, coverage on the extractor's pool features (prdc: strict <)."""
    return {f"{name}{ctx.tag}_k{ctx.k}_{ctx.features}": v
            for name, v in prdc(real["pool"], fake["pool"], k=ctx.k, device=ctx.device).items()}
