"""Feature extractors and batched feature extraction.

Features are extracted once per evaluation and shared by every metric that needs
them (FID, KID, precision/recall, density/coverage read ``pool``; the Inception
Score reads ``logits``), as in stylegan2-ada-pytorch ``metrics/metric_utils.py``
(``compute_feature_stats_for_generator``) and torch-fidelity ``metrics.py``
(one feature pass, several metrics).

An extractor is any object with

* ``name`` (str): short name used in metric tags, e.g. ``"inception"``, ``"clf_fashion_mnist"``;
* ``dims`` (int): width of the ``pool`` features;
* ``num_classes`` (int): width of ``logits``;
* ``cache_id`` (str): identifies the network *and its weights* for cache keys
  (:mod:`gan_cli.metrics.cache`);
* ``__call__(images) -> {"pool": (N, dims), "logits": (N, num_classes)}`` with images
  float in [-1, 1], shape (N, C, H, W).

:class:`gan_cli.metrics.inception.InceptionExtractor` and
:class:`gan_cli.metrics.classifier.ClassifierExtractor` implement it.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Extractor(Protocol):
    name: str
    dims: int
    num_classes: int
    cache_id: str

    def __call__(self, images: torch.Tensor) -> Dict[str, torch.Tensor]: ...


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1] (x / 127.5 - 1); float images are passed through as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(127.5).sub_(1.0)
    return images.float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255] on the CPU (``round((x + 1) * 127.5)``, clamped): how ``gan-eval
    export`` writes them, the inverse of :func:`to_unit_range`; uint8 images are passed through."""
    if images.dtype == torch.uint8:
        return images.cpu()
    return ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def tensor_sampler(images: torch.Tensor) -> Callable[[int], torch.Tensor]:
    """A ``sample_fn`` that walks through ``images`` in order (real data): call k returns the next n rows."""
    state = {"pos": 0}

    def sample(n: int) -> torch.Tensor:
        start = state["pos"]
        if start + n > images.shape[0]:
            raise ValueError(f"tensor_sampler: asked for rows {start}..{start + n} of {images.shape[0]}")
        state["pos"] = start + n
        return images[start:start + n]

    return sample


def _set_eval(extractor) -> None:
    if isinstance(extractor, torch.nn.Module):
        extractor.eval()


def extract_features(
    extractor: Extractor,
    sample_fn: Callable[[int], torch.Tensor],
    n: int,
    batch: int = 500,
    device: str | torch.device = "cpu",
    keys: Optional[Iterable[str]] = None,
    dtype: np.dtype = np.float32,
) -> Dict[str, np.ndarray]:
    """Run ``extractor`` over ``n`` images drawn ``batch`` at a time from ``sample_fn(k) -> images``.

    ``sample_fn`` returns (k, C, H, W) images, float in [-1, 1] or uint8 (converted with
    :func:`to_unit_range`), on any device; they are moved to ``device``. Runs under
    ``torch.no_grad()`` with the extractor in eval mode. Returns ``{key: (n, d) numpy array}``
    on the CPU (``dtype``, float32 by default; statistics are accumulated in float64
    downstream). ``keys`` restricts the outputs kept (default: all the extractor returns).
    """
    if n < 1 or batch < 1:
        raise ValueError(f"extract_features: n={n} and batch={batch} must be >= 1")
    _set_eval(extractor)
    keep = None if keys is None else set(keys)
    chunks: Dict[str, list] = {}
    done = 0
    with torch.no_grad():
        while done < n:
            k = min(batch, n - done)
            images = sample_fn(k)
            if images.shape[0] != k:
                raise ValueError(f"sample_fn({k}) returned {images.shape[0]} images")
            out = extractor(to_unit_range(images.to(device)))
            for key, value in out.items():
                if keep is None or key in keep:
                    value = value.detach()
                    if value.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16
                        value = value.float()
                    chunks.setdefault(key, []).append(value.cpu().numpy().astype(dtype, copy=False))
            done += k
    missing = (keep or set()) - set(chunks)
    if missing:
        raise KeyError(f"extractor {extractor.name} has no output {sorted(missing)}")
    return {key: np.concatenate(parts, axis=0) for key, parts in chunks.items()}
