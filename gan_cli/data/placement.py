"""Where an image set lives: one uint8 tensor on the device, or a DataLoader stream.

:func:`choose_loader` picks per split (``data.loader=auto``: the on-device tensor when ``N x C x H x W``
bytes fit ``data.memory_budget_gb``, else a stream through a torch ``DataLoader`` with ``data.num_workers``
workers, :mod:`gan_cli.data.stream`), and logs why in one line (gan-train prints it)::

    data: fashion_mnist/train: 60000 images x 1x28x28 = 47 MB uint8 fits the 2 GB budget (data.memory_budget_gb): on-device tensor (cpu)

:func:`fit_images` converts stored images to ``data.image_size`` / ``data.channels`` (bilinear,
antialiased resize; ITU-R 601-2 luma or channel repeat); the stream path does it a batch at a time in the
workers (:class:`StoredImages`).  :class:`ImageSource` is the on-device tensor path.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import UserError
from .base import Batch, DataInfo, DataSource
from .stream import START_METHODS, shard_indices, start_method_name

log = logging.getLogger("gan_cli.data.images")

# ---------------------------------------------------------------------------------------- fitting
def fit_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> ``(N, channels, size, size)``: grey<->RGB conversion, bilinear resize."""
    c = images.shape[1]
    if channels != c:
        if channels == 1 and c == 3:  # PIL's "L": ITU-R 601-2 luma
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = torch.cat([(images[i:i + 8192].float() * w).sum(1, keepdim=True).round_().clamp_(0, 255)
                                .to(torch.uint8) for i in range(0, len(images), 8192)])
        elif channels == 3 and c == 1:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:
            raise UserError(f"data.channels={channels} is not supported for these {c}-channel images: use 1 or 3.")
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        chunks = []
        for i in range(0, len(images), 8192):
            x = F.interpolate(images[i:i + 8192].float(), size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
            chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
        images = torch.cat(chunks)
    return images


# ------------------------------------------------------------------------------- tensor or stream
LOADERS = ("auto", "tensor", "stream")
#: data.num_workers=null: torch's CPU thread count (which the joblib launcher caps at cores / jobs), at most this
MAX_AUTO_WORKERS = 8
#: data.memory_budget_gb=null: this fraction of the device's memory (host RAM for device=cpu)
AUTO_BUDGET_FRACTION = 0.25


def fmt_bytes(n: float) -> str:
    """Decimal units (1 GB = 10^9 bytes), three significant digits: ``47 MB``, ``2.4 GB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{int(n)} B"


def device_budget(device) -> Tuple[float, str]:
    """``(bytes, how it was set)``: the default budget, a quarter of the device's memory."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        total, where = float(torch.cuda.get_device_properties(device).total_memory), str(device)
    else:
        try:
            total, where = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "host RAM"
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a fixed budget
            return 2e9, "data.memory_budget_gb=null, no memory size known: 2 GB"
    return total * AUTO_BUDGET_FRACTION, f"data.memory_budget_gb=null: a quarter of {where}'s {fmt_bytes(total)}"


def check_loader_options(loader: str = "auto", memory_budget_gb: Optional[float] = None,
                         num_workers: Optional[int] = None, start_method: str = "auto") -> None:
    """One-line errors for the data.loader / memory_budget_gb / num_workers / start_method values."""
    if loader not in LOADERS:
        raise UserError(f"data.loader={loader} is not a loader: use auto (a DataLoader stream only when the data "
                        f"exceeds data.memory_budget_gb), tensor (always on the device) or stream (always streamed).")
    if memory_budget_gb is not None:
        try:
            budget = float(memory_budget_gb)
        except (TypeError, ValueError):
            budget = float("nan")
        if not (math.isfinite(budget) and budget > 0):
            raise UserError(f"data.memory_budget_gb={memory_budget_gb} must be a number > 0 (in GB, 10^9 bytes), or "
                            f"null for a quarter of the device's memory.")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 0):
        raise UserError(f"data.num_workers={num_workers} must be an integer >= 0 (0: batches made in the main "
                        f"process), or null for min({MAX_AUTO_WORKERS}, torch's thread count).")
    if start_method not in START_METHODS:
        raise UserError(f"data.start_method={start_method} is not a start method: use auto, fork, spawn or "
                        f"forkserver.")


def choose_loader(name: str, split: str, n: int, shape: Tuple[int, ...], device, loader: str = "auto",
                  memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
                  start_method: str = "auto") -> Tuple[str, int]:
    """``("tensor" | "stream", worker count)`` for ``n`` images of ``shape`` as uint8 on ``device``, and one
    log line that says why (gan-train prints it)."""
    check_loader_options(loader, memory_budget_gb, num_workers, start_method)
    nbytes = n * math.prod(shape)
    if memory_budget_gb is None:
        budget, how = device_budget(device)
    else:
        budget, how = float(memory_budget_gb) * 1e9, "data.memory_budget_gb"
    fits = nbytes <= budget
    mode = ("tensor" if fits else "stream") if loader == "auto" else loader
    workers = int(num_workers) if num_workers is not None else min(MAX_AUTO_WORKERS, max(1, torch.get_num_threads()))
    if mode == "tensor":
        what = f"on-device tensor ({torch.device(device)})"
    elif workers:
        what = f"streaming through a DataLoader with {workers} workers ({start_method_name(start_method)})"
    else:
        what = "streaming through a DataLoader in the main process (data.num_workers=0)"
    forced = "" if loader == "auto" else f" (data.loader={loader})"
    log.info("data: %s/%s: %d images x %s = %s uint8 %s the %s budget (%s): %s%s", name, split, n,
             "x".join(str(int(s)) for s in shape), fmt_bytes(nbytes), "fits" if fits else "exceeds",
             fmt_bytes(budget), how, what, forced)
    return mode, workers


class StoredImages(Dataset):
    """A stored uint8 CPU tensor ``(N, C, h, w)`` (and its int64 labels, or None) served a batch at a time:
    ``__getitems__(idx)`` is ``(images fitted to (channels, size, size) by :func:`fit_images`, labels[idx])``,
    made in the DataLoader workers.  Workers share the tensors (fork: copy on write; spawn: torch moves them to
    shared memory)."""

    def __init__(self, images: torch.Tensor, labels: Optional[torch.Tensor], size: int, channels: int):
        self.images, self.labels, self.size, self.channels = images, labels, int(size), int(channels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitems__(self, idx) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return (fit_images(self.images[idx], self.size, self.channels).contiguous(),
                self.labels[idx] if self.labels is not None else None)

    def __getitem__(self, i: int):
        x, c = self.__getitems__([i])
        return x[0], (c[0] if c is not None else None)


class ImageSource(DataSource):
    """Index draws (with replacement) from one uint8 tensor ``images`` kept on the device; a batch's labels are
    those images' labels (a copy of ``labels`` on the device), None for unlabelled sets.

    ``labels`` (a CPU LongTensor) and ``info.n_classes`` (the class count) are set for labelled sets.
    ``shard(rank, num_replicas)`` restricts the draws to ``rank, rank + num_replicas, ...``, as
    :meth:`gan_cli.data.stream.StreamSource.shard` does."""

    def __init__(self, info: DataInfo, images: torch.Tensor, labels: Optional[torch.Tensor], device: torch.device):
        self.info = info
        self.device = device
        self.images = images.to(device)  # uint8 (N, C, H, W)
        self.labels = labels  # CPU LongTensor or None
        self._labels = labels.to(device) if labels is not None else None  # the batches' labels, on the device
        self.rank, self.num_replicas = 0, 1
        self._shard: Optional[torch.Tensor] = None  # None: the whole set

    def __len__(self) -> int:
        return self.images.shape[0]

    def shard(self, rank: int, num_replicas: int) -> "ImageSource":
        self._shard = shard_indices(len(self), rank, num_replicas).to(self.device) if num_replicas > 1 else None
        self.rank, self.num_replicas = int(rank), int(num_replicas)
        return self

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Batch:
        if self._shard is None:
            idx = torch.randint(0, self.images.shape[0], (n,), generator=generator, device=self._rng_device(generator))
        else:
            pos = torch.randint(0, len(self._shard), (n,), generator=generator, device=self._rng_device(generator))
            idx = self._shard[pos.to(self.device)]
        idx = idx.to(self.device)
        x = self.images[idx].float()
        return Batch(x.div_(127.5).sub_(1.0), self._labels[idx] if self._labels is not None else None)  # 0 -> -1, 255 -> 1
