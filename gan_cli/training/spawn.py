"""Starting the ranks of a run on several processes and what ranks > 0 do (see :mod:`gan_cli.training.dist`).

:func:`start` (rank 0, after its checks) starts ranks 1..N-1 for ``dist.nproc=N`` with
``torch.multiprocessing`` (spawn), or uses torchrun's group, and sends every rank the resolved config,
the run folder and the resume state; :func:`follow` is what every rank > 0 runs: it trains in step
with rank 0 and writes nothing.  Kept apart from :mod:`gan_cli.training.dist` (the collectives the loop calls)
because it builds the loop's Trainer.
"""
from __future__ import annotations

import os
import sys

import torch

from gan_cli.training import dist
from gan_cli.config import UserError, first_line


def start(cfg, payload: dict) -> dist.Context:
    """Rank 0: start ranks 1..N-1 (``dist.nproc``) or use torchrun's group, then send every rank
    ``payload`` (the resolved config, the run folder, the resume state)."""
    ctx = dist.context()
    world = ctx.world if ctx.torchrun else int(cfg.dist.nproc)
    if world == 1:
        return ctx
    if not ctx.torchrun:
        import torch.multiprocessing as mp

        backend = dist._backend(cfg)
        method = f"tcp://127.0.0.1:{dist._free_port()}"
        threads = before = torch.get_num_threads()
        if backend == "gloo":  # N ranks on one machine's cores: share them instead of oversubscribing
            threads = max(1, threads // world)
            torch.set_num_threads(threads)
        procs = mp.start_processes(_child, args=(world, backend, int(cfg.dist.timeout_s), method, threads),
                                   nprocs=world - 1,
                                   join=False, start_method="spawn")
        try:
            dist._init(0, world, backend, cfg.dist.timeout_s, method)
        except BaseException:
            dist._stop_children(procs)
            raise
        ctx = dist.set_context(dist.Context(0, world, 0, backend))
        ctx.procs, ctx.timeout_s, ctx.threads_before = procs, int(cfg.dist.timeout_s), before
    ctx.from_main(payload)
    return ctx


def _child(i: int, world: int, backend: str, timeout_s: int, method: str, threads: int) -> None:
    """A rank > 0 started by ``dist.nproc``: join the group, follow rank 0, exit with its code."""
    torch.set_num_threads(threads)
    rank = i + 1
    try:
        dist._init(rank, world, backend, timeout_s, method)
    except Exception as e:
        print(f"gan-train: rank {rank}: cannot join the process group: {str(e).splitlines()[0]}", file=sys.stderr)
        sys.exit(1)
    ctx = dist.set_context(dist.Context(rank, world, rank, backend))
    ctx.timeout_s = timeout_s
    code = follow(ctx)
    sys.stdout.flush()
    os._exit(code)  # no atexit handlers of the parent's modules, no second report


def follow(ctx: dist.Context) -> int:
    """A rank > 0: receive rank 0's config and resume state, train in step with it, write nothing.
    Returns the exit code; a failure caused by another rank is left to rank 0 to report."""
    from gan_cli.build import load_config
    from gan_cli.training.loop import Diverged, Interrupted, build_trainer

    try:
        payload = ctx.from_main(None)
    except Exception:
        return 1  # rank 0 stopped before training (its own message says why)
    ok = False
    try:
        cfg = load_config(payload["config"])
        trainer = build_trainer(cfg, payload["run_dir"], payload["resume_state"], resume_from=payload["resume_from"])
        trainer.run(None)
        ok = True
        return 0
    except Interrupted as e:
        return 128 + e.signum
    except (Diverged, UserError) as e:  # the same on every rank; rank 0 reports it
        return 2 if isinstance(e, Diverged) else _own_error(ctx, e, 2)
    except Exception as e:
        if dist._collective_error(e):
            return 1
        return _own_error(ctx, e, 1)
    finally:
        dist._destroy(sync=ok)  # a run that ended well: every rank meets rank 0 at the barrier before tearing down


def _own_error(ctx: dist.Context, e: BaseException, code: int) -> int:
    first = first_line(e, None)
    print(f"gan-train: rank {ctx.rank}: error: {type(e).__name__ if not isinstance(e, UserError) else ''}"
          f"{': ' if not isinstance(e, UserError) else ''}{first}", file=sys.stderr)
    return code
