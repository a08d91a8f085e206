"""Streaming image data: a torch ``DataLoader`` for image sets that do not fit the device memory budget.

:class:`StreamSource` is the streaming twin of :class:`gan_cli.data.placement.ImageSource` (the on-device
uint8 tensor); :mod:`gan_cli.data.placement` picks one of the two (``data.loader=auto|tensor|stream``) and
gives it a map-style data set whose ``__getitems__(indices)`` returns one uint8 batch ``(k, C, H, W)``:
image files decoded, or stored arrays resized (:class:`~gan_cli.data.folder.FolderImages`,
:class:`~gan_cli.data.placement.StoredImages`).  Those batches are made in ``num_workers`` worker processes
(decoding off the main process), pinned when the device is CUDA and copied with ``non_blocking``; the
workers are persistent and each uses one torch thread.  The uint8 -> [-1, 1] mapping happens on the
device, as in the tensor path, so equal uint8 images give equal float batches.

Sampling (the ``sample(n, generator)`` interface of every :class:`~gan_cli.data.base.DataSource`):

* **The pipeline.**  The first call fixes the stream's owner: that generator (the loop's train stream)
  and that batch size.  Its batches are uniform draws *with replacement*, as in the tensor path, from a
  :class:`SeededBatchSampler`: batch ``b`` uses a generator seeded with
  ``seeds.child_seed(S, "batch", b)``, where ``S = seeds.child_seed(owner.initial_seed(), "stream")``.
  So the batches are a function of the run's seed and the batch number only: the same for any
  ``num_workers``, start method or prefetch depth, and a prefetched batch never consumes the train
  stream (its latents are unaffected by how far the workers are ahead).  They are not the tensor path's
  batches (those are drawn from the train stream itself, which a prefetching loader cannot wait for).
* **Other calls** (another generator, e.g. the loop's held-out estimate batch, or another size) draw
  their indices from *that* generator, as the tensor path does, and are made in the main process.
* **Resume is exact.**  :meth:`StreamSource.state_dict` is ``{"seed": S, "batches": b}`` (batches the
  owner has consumed, not those prefetched); the loop saves it in the checkpoint and a resumed run's
  pipeline starts at batch ``b``: the same batches as the uninterrupted run.  A checkpoint without it
  (a run that used the tensor path) starts the sampler at batch 0, with one warning.
* **Shards** (multi-process training): ``shard(rank, num_replicas)`` -- the argument names of
  ``torch.utils.data.DistributedSampler`` -- restricts every draw to the indices
  ``rank, rank + num_replicas, ...`` (disjoint shards that cover the data set, sizes differing by at
  most one).  Call it before the first ``sample``; each rank's own train stream seeds its sampler.

Worker processes and launchers: ``start_method=auto`` uses the program's start method when it set one,
else the platform's default (always through an explicit context), except inside a
joblib/loky worker (hydra-joblib-launcher), whose global start method is ``loky``: there DataLoader
workers die ("exited unexpectedly") unless the start method is set, so it is set to ``spawn`` for that
process (``multiprocessing.set_start_method("spawn", force=True)``), which is what a spawned worker
reads.  Worker errors (an unreadable image) come back as :class:`LoadError` values, not exceptions, so
the run stops with the data set's own one-line message.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from typing import Callable, Iterator, List, NamedTuple, Optional

import torch
from torch.utils.data import DataLoader, Sampler

from .. import seeds
from ..config import UserError
from .base import Batch, DataInfo, DataSource

log = logging.getLogger(__name__)

START_METHODS = ("auto", "fork", "spawn", "forkserver")
#: images per batch when the whole set, or a subset in a fixed order, is read through the workers
READ_CHUNK = 256


class LoadError(NamedTuple):
    """What a data set's ``__getitems__`` returns instead of raising: the one-line message."""

    message: str


def _identity(batch):
    """collate_fn: ``__getitems__`` already returns one batch (module level, so spawned workers import it)."""
    return batch


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # n workers x all cores of threads would oversubscribe the CPU


def _foreign_start_method() -> Optional[str]:
    """The global start method when it is one the standard library does not know (``loky`` inside a
    joblib worker), else None.  Reads it without fixing it (``allow_none``)."""
    current = mp.get_start_method(allow_none=True)
    return current if current is not None and current not in mp.get_all_start_methods() else None


def start_method_name(method: str = "auto") -> str:
    """The start method DataLoader workers will use: ``method``, or for ``auto`` ``spawn`` inside a joblib/loky
    worker, else the global one if the program set it, else the platform's default (the first of
    ``multiprocessing.get_all_start_methods()``).  Nothing global is read in a way that fixes it."""
    if method not in START_METHODS:
        raise UserError(f"data.start_method={method} is not a start method: use auto, fork, spawn or forkserver.")
    if method != "auto":
        if method not in mp.get_all_start_methods():
            raise UserError(f"data.start_method={method} is not available on this platform: use one of "
                            f"{', '.join(mp.get_all_start_methods())} (or auto).")
        return method
    if _foreign_start_method():
        return "spawn"
    return mp.get_start_method(allow_none=True) or mp.get_all_start_methods()[0]


def worker_context(method: str = "auto"):
    """The multiprocessing context for DataLoader workers (always an explicit one, so the program's default
    context is never fixed as a side effect).

    Inside a joblib/loky worker the global start method is ``loky``, which a spawned child cannot find
    (and the default context's workers crash): there the global method is set to the chosen one, as a
    spawned or forkserver child reads it from its parent."""
    chosen = start_method_name(method)
    foreign = _foreign_start_method()
    if foreign:
        mp.set_start_method(chosen, force=True)
        log.info("data: the start method was %s (a joblib/loky worker): set to %s for DataLoader workers",
                 foreign, chosen)
    return mp.get_context(chosen)


class SeededBatchSampler(Sampler):
    """An endless sequence of index batches, uniform with replacement over one shard of ``range(n)``.

    Batch ``b`` is drawn with a CPU generator seeded ``seeds.child_seed(seed, "batch", b)``, so it depends
    on ``(seed, b, batch_size, n, rank, num_replicas)`` only and iteration can start at any ``start``.
    The shard is ``range(rank, n, num_replicas)`` (``DistributedSampler``'s argument names)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, num_replicas: int = 1, rank: int = 0):
        self.shard = shard_indices(n, rank, num_replicas)
        self.batch_size, self.seed, self.start = int(batch_size), int(seed), int(start)

    def batch(self, b: int) -> List[int]:
        g = torch.Generator().manual_seed(seeds.child_seed(self.seed, "batch", b))
        pick = torch.randint(0, len(self.shard), (self.batch_size,), generator=g)
        return self.shard[pick].tolist()

    def __iter__(self) -> Iterator[List[int]]:
        b = self.start
        while True:
            yield self.batch(b)
            b += 1


def shard_indices(n: int, rank: int = 0, num_replicas: int = 1) -> torch.Tensor:
    """The indices of shard ``rank`` of ``num_replicas``: ``rank, rank + num_replicas, ... < n``."""
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"shard: need num_replicas >= 1 and 0 <= rank < num_replicas (got rank={rank}, "
                         f"num_replicas={num_replicas})")
    if num_replicas > n:
        raise UserError(f"the data set has {n} images, fewer than the {num_replicas} processes that would each "
                        f"take a shard of it: use fewer processes or more data.")
    return torch.arange(rank, n, num_replicas)


def _check(batch):
    if isinstance(batch, LoadError):
        raise UserError(batch.message)
    return batch


class StreamSource(DataSource):
    """Batches of uint8 images made by DataLoader workers from ``dataset`` (see the module docstring).

    ``dataset``: a map-style data set with ``__len__`` and ``__getitems__(list of int) -> (uint8 (k, C, H, W),
    int64 labels (k,) or None)`` or a LoadError.  ``labels``: the whole set's CPU LongTensor or None.  ``num_workers`` 0 makes the batches in
    the main process (still through a DataLoader)."""

    def __init__(self, info: DataInfo, dataset, labels: Optional[torch.Tensor], device: torch.device,
                 num_workers: int = 2, start_method: str = "auto", prefetch_factor: int = 2):
        self.info, self.dataset, self.labels, self.device = info, dataset, labels, torch.device(device)
        self.num_workers, self.start_method, self.prefetch_factor = int(num_workers), start_method, prefetch_factor
        self.pin = self.device.type == "cuda" and torch.cuda.is_available()
        self.rank, self.num_replicas = 0, 1
        self._shard = shard_indices(len(dataset))
        self._owner = None  # (generator, batch size) of the pipeline
        self._seed: Optional[int] = None
        self._batches = 0  # pipeline batches consumed
        self._loader = self._iter = None

    def __len__(self) -> int:
        return len(self.dataset)

    # -- shards and state --------------------------------------------------------------------------
    def shard(self, rank: int, num_replicas: int) -> "StreamSource":
        """Draw only from indices ``rank, rank + num_replicas, ...`` (before the first ``sample``)."""
        if self._iter is not None:
            raise RuntimeError("StreamSource.shard must be called before the first sample()")
        self._shard = shard_indices(len(self.dataset), rank, num_replicas)
        self.rank, self.num_replicas = int(rank), int(num_replicas)
        return self

    def state_dict(self) -> dict:
        """Where the pipeline is: its seed and the batches the owner has consumed (not the prefetched)."""
        return {"loader": "stream", "seed": self._seed, "batches": self._batches,
                "rank": self.rank, "num_replicas": self.num_replicas}

    def load_state_dict(self, state: Optional[dict]) -> None:
        if not state or state.get("loader") != "stream":
            log.warning("data: the checkpoint has no streaming-sampler state (it was written by a run that used "
                        "the on-device tensor): the resumed run's sampler starts at its first batch")
            return
        self._seed = None if state.get("seed") is None else int(state["seed"])
        self._batches = int(state.get("batches", 0))
        self.close()  # a running pipeline restarts at the restored batch

    # -- the pipeline ------------------------------------------------------------------------------
    def _loader_for(self, batch_sampler, persistent: bool) -> DataLoader:
        workers = self.num_workers
        extra = {}
        if workers > 0:
            extra = {"multiprocessing_context": worker_context(self.start_method), "worker_init_fn": _worker_init,
                     "prefetch_factor": self.prefetch_factor, "persistent_workers": persistent}
        return DataLoader(self.dataset, batch_sampler=batch_sampler, num_workers=workers, collate_fn=_identity,
                          pin_memory=self.pin, **extra)

    def _start(self, n: int, generator: Optional[torch.Generator]) -> None:
        if self._seed is None:  # the train stream's seed, hashed: no draw from it
            base = generator.initial_seed() if generator is not None else torch.initial_seed()
            self._seed = seeds.child_seed(base, "stream")
        sampler = SeededBatchSampler(len(self.dataset), n, self._seed, start=self._batches,
                                     num_replicas=self.num_replicas, rank=self.rank)
        self._loader = self._loader_for(sampler, persistent=True)
        self._iter = iter(self._loader)

    def _to_device(self, batch) -> Batch:
        u8, c = batch
        x = u8.to(self.device, non_blocking=self.pin).float()
        c = c.to(self.device, non_blocking=self.pin) if c is not None else None
        return Batch(x.div_(127.5).sub_(1.0), c)  # 0 -> -1, 255 -> 1, as ImageSource

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Batch:
        if self._owner is None:
            self._owner = (generator, n)
        if self._owner[0] is generator and self._owner[1] == n:
            if self._iter is None:
                self._start(n, generator)
            batch = _check(next(self._iter))
            self._batches += 1
            return self._to_device(batch)
        # not the pipeline's stream: indices from this generator (as the tensor path), made here
        idx = torch.randint(0, len(self._shard), (n,), generator=generator, device=self._rng_device(generator))
        idx = self._shard[idx.cpu()].tolist()
        return self._to_device(_check(self.dataset.__getitems__(idx)))

    def close(self) -> None:
        """Stop the worker processes (a later ``sample`` starts them again where the stream was)."""
        it, self._iter, self._loader = self._iter, None, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    # -- whole images, in a given order (real-side features, classifier, export) --------------------
    def rows(self, idx) -> torch.Tensor:
        """The uint8 images ``idx`` (a LongTensor or list), made in the main process, on the CPU."""
        idx = idx.tolist() if torch.is_tensor(idx) else list(idx)
        return _check(self.dataset.__getitems__(idx))[0] if idx else torch.empty(0, *self.info.shape, dtype=torch.uint8)

    def iter_rows(self, idx, chunk: int = READ_CHUNK) -> Iterator[torch.Tensor]:
        """The uint8 images ``idx`` in order, ``chunk`` at a time, made by the worker processes (CPU)."""
        idx = idx.tolist() if torch.is_tensor(idx) else list(idx)
        batches = [idx[i:i + chunk] for i in range(0, len(idx), chunk)]
        if not batches:
            return
        for batch in self._loader_for(batches, persistent=False):
            yield _check(batch)[0]

    def real_sampler(self, idx) -> Callable[[int], torch.Tensor]:
        """A ``sample_fn(k)`` that walks the images ``idx`` in order (as ``tensor_sampler(images[idx])``)."""
        stream = self.iter_rows(idx)
        buf: list = []
        have = {"n": 0}

        def sample(k: int) -> torch.Tensor:
            while have["n"] < k:
                nxt = next(stream, None)
                if nxt is None:
                    raise ValueError(f"real_sampler: asked for {k} more images than the {len(idx)} given")
                buf.append(nxt)
                have["n"] += nxt.shape[0]
            whole = torch.cat(buf) if len(buf) > 1 else buf[0]
            out, rest = whole[:k], whole[k:]
            buf[:] = [rest] if rest.shape[0] else []
            have["n"] = rest.shape[0]
            return out

        return sample

    @property
    def images(self) -> torch.Tensor:
        """The whole split as one uint8 CPU tensor, decoded now (host memory, not the device): for what needs
        every image at once (training the domain classifier, gan-eval export).  Training never reads it."""
        log.info("data: %s: decoding all %d images into host memory", self.info.name, len(self))
        parts = list(self.iter_rows(range(len(self))))
        return torch.cat(parts) if parts else torch.empty(0, *self.info.shape, dtype=torch.uint8)

    def __repr__(self) -> str:
        return (f"StreamSource({self.info.name}, shape={self.info.shape}, device={self.device}, "
                f"workers={self.num_workers})")
