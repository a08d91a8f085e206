"""``data=stacked``: the stacked 1000-mode benchmark (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN
Table 2): each sample is three independent random images of a base set -- MNIST (the papers'), Fashion-MNIST or
scikit-learn's digits -- as its R, G and B channels, drawn from the base's train and test images pooled; its class is
the triple of the three labels, ``100 a + 10 b + c``: 1000 classes, each about equally likely.  ``data.n`` samples
(128,000 by default, as the papers), drawn once with a fixed seed (the test split: another draw), so every run
trains on the same set.

The base set's domain classifier labels each channel of a generated sample (``metrics=stacked``,
:mod:`gan_cli.metrics.stacked`): ``source.stack_base`` tells the evaluator the base's name and how to load its
images.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Optional

import torch

from ..config import UserError, component_schema
from .download import load_digits, load_mnist_family
from .images import ImageDataConfig, _source, _stream_opts

#: data.base -> (its images' default size, Debian's folder for it or None)
BASES = {"mnist": (28, None), "fashion_mnist": (28, "/usr/share/datasets/fashion-mnist"), "digits": (8, None)}
#: the fixed draws of the train and test triples (the same set for every run and seed)
DRAW_SEEDS = {"train": 0, "test": 1}


def base_loader(base: str, root: str, download: bool, system_root: Optional[str]) -> Callable:
    """``load(train) -> (uint8 images (N, 1, H, W), int64 labels)`` of the base set."""
    if base not in BASES:
        raise UserError(f"data.base={base} is not a stacked base: use {', '.join(BASES)}.")
    if base == "digits":
        return load_digits
    opts = SimpleNamespace(root=root, download=download, system_root=system_root or BASES[base][1])
    return lambda train: load_mnist_family(base, opts, train)


def stack(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int):
    """``n`` triples of independent uniform draws from ``images`` as (n, 3, H, W) uint8, and their classes
    ``100 a + 10 b + c``."""
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(images.shape[0], (int(n), 3), generator=gen)
    x = images[:, 0][idx]  # (n, 3, H, W)
    c = (labels[idx] * torch.tensor([100, 10, 1])).sum(1)
    return x.contiguous(), c


def stacked(device="cpu", split: str = "train", base: str = "mnist", n: int = 128_000,
            root: str = "~/.cache/gan_cli/data", download: bool = True, system_root: Optional[str] = None,
            image_size: Optional[int] = None, channels: int = 3, limit: int = 0, loader: str = "auto",
            memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None, start_method: str = "auto"):
    """``data=stacked data.base=mnist|fashion_mnist|digits``: ``n`` stacked triples (``image_size=null``: the base's
    size)."""
    if int(n) < 1:
        raise UserError(f"data.n={n} must be >= 1 (the papers use 128000).")
    if int(channels) != 3:
        raise UserError(f"data.channels={channels}: a stacked sample is three images as R, G and B; leave data.channels=3.")
    load = base_loader(str(base), root, download, system_root)

    def pooled(train: bool):  # the base's train and test images together, as the papers draw them
        a, la = load(True)
        b, lb = load(False)
        return stack(torch.cat([a, b]), torch.cat([la, lb]), n, DRAW_SEEDS["train" if train else "test"])

    size = int(image_size) if image_size else BASES[str(base)][0]
    src = _source("stacked", pooled, device, split, size, 3, limit, 1000,
                  _stream_opts(loader, memory_budget_gb, num_workers, start_method))
    src.stack_base = SimpleNamespace(name=str(base), load=load)
    return src


@component_schema("data", "stacked")
@dataclass
class StackedDataConfig(ImageDataConfig):
    image_size: Optional[int] = None  # null: the base's size (28; digits 8)
    base: str = "mnist"  # the base set of the three channels: mnist | fashion_mnist | digits
    n: int = 128_000  # stacked samples (the papers' 128,000)
