"""Inception Score from classifier logits (pure math, no I/O).

Paper: Salimans et al. 2016, "Improved Techniques for Training GANs":
IS = exp(E_x KL(p(y|x) || p(y))), reported as mean and std over 10 splits.
Reference implementation matched: torch-fidelity 0.4.0 ``metric_isc.isc_features_to_metric``
(defaults ``isc_splits=10``, ``samples_shuffle=True``, ``rng_seed=2020``): the rows are first
permuted with ``np.random.RandomState(2020).permutation(N)``, split i is rows
``[i*N//splits, (i+1)*N//splits)``, p(y) is the split's mean of softmax, std has ddof 0.
torch-fidelity feeds the Inception "logits_unbiased" (fc output without bias); that choice
belongs to the feature extractor.  One deliberate difference: log p(y) is computed as
``logsumexp(log_softmax) - log n`` instead of ``log(mean(softmax))``, which is equal up to
rounding (tests: relative difference <= 1e-10) but cannot give 0 * log 0 = NaN.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gan_cli.metrics.registry import register_metric

__all__ = ["inception_score"]


def inception_score(logits, splits: int = 10, shuffle: bool = True, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) Inception Score of (N, C) logits, torch-fidelity's split/shuffle convention.

    ``shuffle=True, seed=2020`` reproduces torch-fidelity 0.4.0 exactly; ``shuffle=False``
    uses the rows in order (pytorch-gan-metrics / the original TF code's contiguous splits).
    """
    x = torch.as_tensor(np.asarray(logits)) if not torch.is_tensor(logits) else logits.detach()
    if x.dim() != 2:
        raise ValueError(f"inception_score expects (N, C) logits, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < splits:
        raise ValueError(f"inception_score needs at least {splits} samples (one per split), got {n}")
    if shuffle:
        perm = np.random.RandomState(seed).permutation(n)
        x = x[torch.from_numpy(perm).to(x.device)]
    log_p = x.to(torch.float64).log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lp = log_p[i * n // splits : (i + 1) * n // splits]
        log_py = torch.logsumexp(lp, dim=0) - math.log(lp.shape[0])  # log of the split's mean p(y|x)
        kl = (lp.exp() * (lp - log_py)).sum(dim=1).mean()
        scores.append(math.exp(kl.item()))
    return float(np.mean(scores)), float(np.std(scores))


@register_metric("is", inputs="features", order=30, kinds=("image",), directions={"is": "max"}, min_samples=10)
def _is(real, fake, ctx):
    """Inception Score of the generated logits: 10 splits, mean and std (torch-fidelity)."""
    mean, std = inception_score(fake["logits"], splits=10)
    return {f"is{ctx.tag}_{ctx.features}": mean, f"is{ctx.tag}_{ctx.features}_std": std}
