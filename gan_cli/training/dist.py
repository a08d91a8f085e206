"""Data-parallel training on several processes (torch.distributed).

Two ways to start, one code path (the processes are started by :mod:`gan_cli.training.spawn`):

* ``gan-train dist.nproc=N ...``: the Hydra job itself is rank 0 and starts ranks 1..N-1 with
  ``torch.multiprocessing`` (spawn) after its checks (lock, resume, config), the pattern of StudioGAN
  and stylegan2-ada (one Hydra job per run, so multirun, the launchers and resume are unchanged);
* ``torchrun ... gan-train hydra.run.dir=<fixed> ...``: every process is a gan-train; the one with
  ``RANK=0`` in the environment leads, the others join its group (``env://``) and follow.

Rank 0 alone holds the run folder's lock and writes TensorBoard, checkpoints, ``status.json``,
``scalars.jsonl``, ``metrics.jsonl`` and ``results.json``; it sends the resolved config and the
resume state to the other ranks (so they need no shared file system and no Hydra output).

Semantics (README, *Several processes*):

* **Batch**: ``data.batch_size`` is the *global* batch B; each of N ranks draws B/N (B % N == 0).
  Gradients are averaged over the ranks after every backward, so N ranks x B/N train like one
  process x B on the same samples (tested to 1e-5).  The gradients are reduced as one flat
  ``all_reduce`` per backward, as stylegan2-ada-pytorch does (``training/training_loop.py``), not
  through the ``DistributedDataParallel`` wrapper: a GAN step runs D several times per backward, takes
  double backwards (gradient penalty, R1) and freezes D during G's step, which DDP's reducer does not
  allow.  The mean loss travels in the same buffer, so every rank logs and guards the global loss.
* **Draws**: each rank has its own ``train`` and ``estimate`` streams (:func:`gan_cli.seeds.generator`
  with ``rank``); rank 0's are those of a one-process run.  Data are drawn i.i.d. from the whole set on
  every rank (with replacement, as in one process): the ranks' batches are independent draws.
* **BatchNorm**: per-rank BN by default (batch statistics of each rank's B/N samples; running
  statistics kept in step by broadcasting rank 0's buffers before an evaluation), or
  ``dist.sync_bn=true``: ``torch.nn.SyncBatchNorm`` in G and D (statistics of the global batch, CUDA
  only), as StudioGAN's ``-sync_bn``.
* **Metrics**: every rank generates its share of the evaluation samples (the chunks of one process's
  evaluation, round robin, from the same ``eval`` stream) and rank 0 scores the gathered samples: the
  same samples, and so the same numbers, as one process.
* **Resume**: a checkpoint holds every rank's random streams and the world size; a resume with the same
  number of ranks continues each stream; another number of ranks is refused in one line.
* **Stop**: SIGINT/SIGTERM on any rank is shared at the next logging or checkpoint step (an
  ``all_reduce`` of the signal number), then every rank stops and rank 0 writes one checkpoint.
* **Failure**: a rank that dies breaks the others' next collective (gloo/NCCL error, or the
  ``dist.timeout_s`` collective timeout for a rank that hangs); rank 0 names the rank in one line.
"""
from __future__ import annotations

import datetime
import os
import signal
import socket
from contextlib import contextmanager
from typing import Any, Callable, Optional

import torch

from gan_cli.config import UserError, first_line


class Context:
    """This process's place in the run: ``rank`` of ``world`` (1: a one-process run)."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, backend: Optional[str] = None):
        self.rank, self.world, self.local_rank, self.backend = int(rank), int(world), int(local_rank), backend
        self.procs = None  # dist.nproc: the torch.multiprocessing context of ranks 1..N-1 (rank 0 only)
        self.torchrun = False
        self.timeout_s = 0
        self.threads_before = 0  # rank 0 of dist.nproc on the CPU: its thread count before sharing the cores

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # -- set-up ------------------------------------------------------------------------------
    def device(self, dev: torch.device) -> torch.device:
        """One GPU per rank: ``cuda`` -> ``cuda:<local rank>``."""
        if not self.active or dev.type != "cuda":
            return dev
        if torch.cuda.device_count() <= self.local_rank:
            raise UserError(f"rank {self.rank} needs cuda:{self.local_rank} but this machine has "
                            f"{torch.cuda.device_count()} GPU(s): start at most that many processes per node.")
        dev = torch.device("cuda", self.local_rank)
        torch.cuda.set_device(dev)
        return dev

    def local_batch(self, batch: int) -> int:
        return int(batch) // self.world

    def prepare(self, G: torch.nn.Module, D: torch.nn.Module, sync_bn: bool):
        """SyncBatchNorm (option) and the same starting weights on every rank (rank 0's)."""
        if not self.active:
            return G, D
        if sync_bn:
            G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
            D = torch.nn.SyncBatchNorm.convert_sync_batchnorm(D)
        for m in (G, D):
            for t in list(m.parameters()) + list(m.buffers()):
                torch.distributed.broadcast(t.data, 0)
        return G, D

    # -- collectives used by the loop (no-ops for one process) --------------------------------
    def reduce_grads(self, module: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Average ``module``'s gradients over the ranks; returns the mean loss over the ranks (the
        global loss for equal shards).  One flat all_reduce (stylegan2-ada's ``training_loop.py``)."""
        if not self.active:
            return loss
        params = [p for p in module.parameters() if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params] + [loss.detach().reshape(1).to(torch.float32)])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        i = 0
        for p in params:
            p.grad.copy_(flat[i:i + p.numel()].view_as(p.grad))
            i += p.numel()
        return flat[-1].to(loss.dtype)

    def gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        """Equal-sized tensors of every rank, concatenated in rank order (on every rank)."""
        if not self.active:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def share_signal(self, sig: dict, now: bool) -> int:
        """The signal number any rank received (0: none).  Several ranks agree at ``now`` steps only
        (logging / checkpoint steps: an all_reduce is a host sync on the GPU)."""
        if not self.active:
            return int(sig.get("signal") or 0)
        if not now:
            return 0
        t = torch.tensor([int(sig.get("signal") or 0)], dtype=torch.int64, device=self._comm_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        s = int(t.item())
        if s:
            sig["signal"] = s
        return s

    def broadcast_buffers(self, *modules: torch.nn.Module) -> None:
        """Rank 0's BN running statistics on every rank (per-rank BN lets them drift apart)."""
        if not self.active:
            return
        for m in modules:
            for b in m.buffers():
                torch.distributed.broadcast(b.data, 0)

    def gather_objects(self, obj: Any) -> Optional[list]:
        """Every rank's ``obj`` on rank 0 (in rank order), None on the others."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


_CTX = Context()


def set_context(ctx: Context) -> Context:
    global _CTX
    _CTX = ctx
    return ctx


def context() -> Context:
    """This process's context (one process unless :func:`join` or :func:`start` made a group)."""
    return _CTX


def env_rank() -> Optional[int]:
    """RANK from the environment (torchrun, srun + torchrun), or None."""
    r = os.environ.get("RANK")
    return int(r) if r is not None and r.isdigit() and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def _backend(cfg) -> str:
    b = str(cfg.dist.backend)
    if b == "auto":
        dev = str(cfg.device)
        return "nccl" if (dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available())) else "gloo"
    return b


def _init(rank: int, world: int, backend: str, timeout_s: int, init_method: str) -> None:
    torch.distributed.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=int(timeout_s)))


# ----------------------------------------------------------------------------- starting the group


def join(cfg) -> Context:
    """Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set): join its group and return this rank's context;
    otherwise the one-process context (``dist.nproc`` ranks are started later by :func:`gan_cli.training.spawn.start`)."""
    global _CTX
    rank = env_rank()
    if rank is None:
        return _CTX
    world = int(os.environ["WORLD_SIZE"])
    if int(cfg.dist.nproc) not in (1, world):
        raise UserError(f"dist.nproc={cfg.dist.nproc} but torchrun started {world} processes (WORLD_SIZE): under "
                        f"torchrun leave dist.nproc at 1; the world size comes from torchrun.")
    backend = _backend(cfg)
    _init(rank, world, backend, cfg.dist.timeout_s, "env://")
    _CTX = Context(rank, world, int(os.environ.get("LOCAL_RANK", rank)), backend)
    _CTX.torchrun, _CTX.timeout_s = True, int(cfg.dist.timeout_s)
    return _CTX


def check(cfg, ckpt_world: Optional[int]) -> int:
    """The world size of this run, after one-line checks of the dist.* settings against the config and,
    on resume, against the checkpoint's world size."""
    world = _CTX.world if _CTX.torchrun else int(cfg.dist.nproc)
    if ckpt_world is not None and ckpt_world != world:
        how = f"torchrun with {ckpt_world} processes" if _CTX.torchrun else f"dist.nproc={ckpt_world}"
        raise UserError(f"this run was trained on {ckpt_world} process(es) and is resumed on {world}: each rank's "
                        f"random stream is in the checkpoint, so resume it with {how}.")
    if world == 1:
        return 1
    B = int(cfg.data.batch_size)
    if B % world or B // world < 1:
        raise UserError(f"data.batch_size={B} is the global batch, split over {world} processes: make it a multiple "
                        f"of {world} (each rank draws data.batch_size/{world}).")
    backend = _backend(cfg)
    if backend not in ("gloo", "nccl"):
        raise UserError(f"dist.backend={backend}: use auto, nccl (CUDA) or gloo (CPU).")
    dev = str(cfg.device)
    if dev.startswith("cuda:"):
        raise UserError(f"device={dev} pins one GPU; with {world} processes use device=cuda (rank r takes cuda:r, "
                        f"under torchrun cuda:LOCAL_RANK).")
    cuda = dev == "cuda" or (dev == "auto" and torch.cuda.is_available())
    if backend == "nccl" and not cuda:
        raise UserError("dist.backend=nccl needs CUDA: use device=cuda, or dist.backend=gloo on the CPU.")
    if cfg.dist.sync_bn and not cuda:
        raise UserError("dist.sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel): use device=cuda or "
                        "dist.sync_bn=false (per-rank batch norm).")
    if not _CTX.torchrun and cuda and torch.cuda.device_count() < world:
        raise UserError(f"dist.nproc={world} needs one GPU per process; this machine has {torch.cuda.device_count()}.")
    return world


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collective_error(e: BaseException) -> bool:
    if isinstance(e, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(s in text for s in ("gloo", "Gloo", "NCCL", "Connection reset",
                                                                    "Connection closed", "Timed out", "timed out",
                                                                    "Broken pipe", "ProcessGroup"))


def _destroy(sync: bool = False) -> None:
    """End the process group.  ``sync`` (a run that ended well): first wait for every rank at a gloo
    ``monitored_barrier`` (30 s at most), so that no rank tears its connections down while another still uses them
    -- gloo's threads then abort the late rank at exit ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if sync and torch.distributed.get_backend() == "gloo" and torch.distributed.get_world_size() > 1:
            from datetime import timedelta

            try:
                torch.distributed.monitored_barrier(timeout=timedelta(seconds=30))
            except Exception:  # a rank is gone: nothing to wait for
                pass
        try:
            torch.distributed.destroy_process_group()
        except Exception:
            pass


def _stop_children(procs, grace: float = 10.0) -> None:
    import time

    t_end = time.monotonic() + grace
    for p in procs.processes:
        p.join(max(0.0, t_end - time.monotonic()))
    for p in procs.processes:
        if p.is_alive():
            p.kill()
            p.join(5)


@contextmanager
def session(cfg):
    """A gan-train process's part in the run: joins torchrun's group (if any); at the end ends the
    group and waits for (or stops) the ranks this process started."""
    global _CTX
    ctx = join(cfg)
    ok = False
    try:
        yield ctx
        ok = True
    finally:
        c, _CTX = _CTX, Context()
        _destroy(sync=ok)
        if c.procs is not None:
            _stop_children(c.procs)
        if c.threads_before:  # the next job of a sweep in this process gets the cores back
            torch.set_num_threads(c.threads_before)


@contextmanager
def failures(ctx: Context, run_dir):
    """Rank 0: a collective that fails because another rank died or hung becomes one line."""
    try:
        yield
    except Exception as e:
        if not (ctx.active and _collective_error(e)):
            raise
        from gan_cli.runs.hints import resume_command

        who = _dead_child(ctx) or "another rank stopped or lost its connection"
        first = first_line(e, None)
        if "]" in first:  # drop gloo's source location prefix
            first = first.split("]", 1)[1].strip()
        raise UserError(f"distributed training failed: {who} ({first[:160]}); every rank stopped (collective timeout "
                        f"dist.timeout_s={ctx.timeout_s}s). Continue from the last checkpoint with: "
                        f"{resume_command(run_dir)}") from None



def _dead_child(ctx: Context) -> Optional[str]:
    if ctx.procs is None:
        return None
    for p in ctx.procs.processes:
        p.join(2.0)
    for i, p in enumerate(ctx.procs.processes):
        code = p.exitcode
        if code not in (None, 0):
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            return f"rank {i + 1} (pid {p.pid}) {how}"
    return None


# ----------------------------------------------------------------------------- evaluation


def evaluate(ctx: Context, evaluator, G: torch.nn.Module, latent_dim: int, device, seed: int) -> dict:
    """Metrics from samples generated on every rank: chunk j of one process's evaluation (the same
    latents from the ``eval`` stream) is generated on rank j % N; rank 0 scores the gathered samples
    and returns the values ({} on the other ranks)."""
    import numpy as np

    from gan_cli.metrics.evaluator import class_count, eval_classes, eval_latents

    ctx.broadcast_buffers(G)  # per-rank BN: every rank samples from rank 0's running statistics
    if evaluator.features is not None:  # rank 0 builds (and caches) the extractor first
        if ctx.is_main:
            evaluator.extractor()
        ctx.barrier()
        evaluator.extractor()
    n = int(evaluator.n)
    chunk = int(evaluator.chunk)
    draw = eval_latents(latent_dim, device, seed)
    n_classes = class_count(G)  # a conditional G: sample i of class i mod K, as one process's evaluation
    mine = []
    was = G.training
    G.eval()
    with torch.no_grad():
        for j, lo in enumerate(range(0, n, chunk)):
            k = min(chunk, n - lo)
            z = draw(k)  # every rank draws every chunk's latents
            if j % ctx.world == ctx.rank:
                x = G(z, eval_classes(lo, k, n_classes).to(device) if n_classes else None)
                mine.append((j, evaluator.fake(lambda m, x=x: x[:m], k)))
    G.train(was)
    parts = ctx.gather_objects(mine)
    if not ctx.is_main:
        return {}
    pieces = [p for _, p in sorted((jp for rank_parts in parts for jp in rank_parts), key=lambda jp: jp[0])]
    if isinstance(pieces[0], dict):
        fake = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
    else:
        fake = np.concatenate(pieces)
    labels = eval_classes(0, n, n_classes).numpy() if n_classes else None
    return evaluator.score(evaluator.real(), fake, n, fake_labels=labels)


def spawn(fn: Callable, nproc: int, args: tuple = (), backend: str = "gloo", timeout_s: int = 120) -> None:
    """Run ``fn(ctx, *args)`` on ``nproc`` new processes in one group (tests, benchmarks); raises when
    one fails (torch.multiprocessing's ProcessRaisedException / ProcessExitedException)."""
    import torch.multiprocessing as mp

    mp.start_processes(_spawned, args=(fn, nproc, backend, timeout_s, f"tcp://127.0.0.1:{_free_port()}", args),
                       nprocs=nproc, join=True, start_method="spawn")


def _spawned(rank: int, fn, world, backend, timeout_s, method, args):
    global _CTX
    _init(rank, world, backend, timeout_s, method)
    _CTX = Context(rank, world, rank, backend)
    try:
        fn(_CTX, *args)
    finally:
        _destroy()
