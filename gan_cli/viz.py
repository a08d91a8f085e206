"""Pictures of samples: image grids, 2-D scatter plots, 1-D densities."""
from __future__ import annotations

import io
import math

import numpy as np
import torch

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """(N,C,H,W) in [-1,1] -> (C,H',W') grid in [0,1] for TensorBoard's add_image."""
    from torchvision.utils import make_grid

    nrow = nrow or int(math.ceil(math.sqrt(images.shape[0])))
    return make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), padding=1)


def scatter_figure(real: np.ndarray, fake: np.ndarray, centers: np.ndarray | None = None, title: str = ""):
    """Generated vs real points for 2-D data."""
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.3, c="tab:blue", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, alpha=0.5, c="tab:orange", label="generated")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], s=30, marker="x", c="k", label="modes")
    lo = np.minimum(real.min(0), np.percentile(fake, 1, axis=0))
    hi = np.maximum(real.max(0), np.percentile(fake, 99, axis=0))
    # equal spans on both axes, so the aspect is equal without matplotlib moving fixed limits
    half = 0.5 * (hi - lo).max() * 1.15 + 1e-3
    mid = (hi + lo) / 2
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def density_figure(real: np.ndarray, fake: np.ndarray, density=None, title: str = ""):
    """Histogram of generated vs real samples for 1-D data, with the true density if known."""
    real, fake = real.reshape(-1), fake.reshape(-1)
    lo = min(real.min(), np.percentile(fake, 0.5)) - 0.5
    hi = max(real.max(), np.percentile(fake, 99.5)) + 0.5
    bins = np.linspace(lo, hi, 80)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.hist(real, bins=bins, density=True, alpha=0.4, color="tab:blue", label="real")
    ax.hist(fake, bins=bins, density=True, alpha=0.5, color="tab:orange", label="generated")
    if density is not None:
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, density(xs), "k-", lw=1, label="true density")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    """Free a figure (pyplot keeps every open one)."""
    plt.close(fig)


def figure_to_png(fig, path=None, close: bool = True) -> bytes:
    """The figure as PNG bytes, written atomically to ``path`` when given; closed unless ``close=False``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    if close:
        plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        from gan_cli.files import atomic_write_bytes

        atomic_write_bytes(path, lambda f: f.write(data))
    return data
