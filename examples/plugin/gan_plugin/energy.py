"""Energy distance (Szekely & Rizzo 2013) between real and generated points:

    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||,

the V-statistic over all pairs (the square of ``scipy.stats.energy_distance`` in 1-D).  Zero iff
P = Q; unlike W1 it needs no assignment, only pairwise distances.  Registered with gan_cli's
metric registry; selected with ``metrics=energy`` (``conf/metrics/energy.yaml``) or
``metrics.imports=[gan_plugin.energy]``.
"""
from __future__ import annotations

import numpy as np
import torch

from gan_cli.metrics.registry import register_metric


def energy_distance(x, y) -> float:
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


@register_metric("energy", inputs="points", kinds=("toy2d", "toy1d"), directions={"energy": "min"}, order=35)
def _energy(real, fake, ctx):
    """Energy distance between the real and generated points (V-statistic)."""
    return {f"energy_{ctx.tag}": energy_distance(real, fake)}
