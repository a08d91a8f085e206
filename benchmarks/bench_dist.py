"""Data-parallel throughput: N processes vs 1, side by side in one run (ratios, not promises).

    .venv/bin/python benchmarks/bench_dist.py [--steps N] [--device cpu|cuda] [--nproc N] [--rows ring8,digits]

Each row times ``Trainer.train_step`` (metrics off) after a warm-up, in fresh processes started by
:func:`gan_cli.training.dist.spawn` (gloo on the CPU, NCCL on CUDA with one GPU per rank):

* one process at the global batch B, with 1 thread and with N threads (CPU);
* N processes, each B/N, 1 thread each: the same global batch (strong scaling);
* N processes, each B: N x the samples per step (weak scaling).

The ratio is global samples per second of N processes over one process.  On a CPU with few cores the
processes share the cores, so the ratio says what the gradient all_reduce and the process split cost
there; on a multi-GPU machine run ``--device cuda`` (nproc defaults to the GPU count).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose_train  # noqa: E402

from gan_cli.training import dist  # noqa: E402


def _worker(ctx, overrides, steps, threads, device, out):
    from gan_cli.training.loop import build_trainer

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        cfg = compose_train(*overrides, f"device={device}", "metrics=none", f"dist.nproc={ctx.world}", tmp_path=d)
        tr = build_trainer(cfg, d)
        for _ in range(5):
            tr.train_step(False)

        def sync():
            if tr.device.type == "cuda":
                torch.cuda.synchronize()
            ctx.barrier()

        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step(False)
        sync()
        if ctx.is_main:
            Path(out).write_text(str(steps * int(cfg.data.batch_size) / (time.perf_counter() - t0)))


def samples_per_s(overrides, nproc, steps, threads, device) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "rate"
        dist.spawn(_worker, nproc, (list(overrides), steps, threads, device, str(out)),
                   backend="nccl" if device == "cuda" else "gloo", timeout_s=600)
        return float(out.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nproc", type=int, default=0, help="0: 2 on the CPU, the GPU count on CUDA")
    ap.add_argument("--rows", default="ring8,digits", help="comma list of the rows to time (ring8, digits)")
    a = ap.parse_args()
    n = a.nproc or (torch.cuda.device_count() if a.device == "cuda" else 2)
    print(f"torch {torch.__version__}, device {a.device}, {n} processes, backend {'nccl' if a.device == 'cuda' else 'gloo'}")
    rows = {"ring8": ("nsgan ring8 (mlp 128x3)", ["model=nsgan", "data=ring8", "data.batch_size=256"], a.steps),
            "digits": ("nsgan digits (dcgan 8x8)", ["model=nsgan", "data=digits", "data.batch_size=128"],
                       max(20, a.steps // 4))}
    wanted = [r for r in a.rows.split(",") if r]
    unknown = sorted(set(wanted) - set(rows))
    if unknown:
        ap.error(f"--rows: unknown row(s) {', '.join(unknown)}; choose from {', '.join(rows)}")
    for name, ov, steps in (rows[r] for r in wanted):
        B = int([o for o in ov if o.startswith("data.batch_size=")][0].split("=")[1])
        one = samples_per_s(ov, 1, steps, 1, a.device)
        one_n = samples_per_s(ov, 1, steps, n, a.device) if a.device == "cpu" else one
        strong = samples_per_s(ov, n, steps, 1, a.device)
        weak = samples_per_s([*ov[:-1], f"data.batch_size={B * n}"], n, steps, 1, a.device)
        print(f"{name}: samples/s  1 proc x1 thread {one:9.0f} | 1 proc x{n} threads {one_n:9.0f} | "
              f"{n} procs x B/{n} {strong:9.0f} | {n} procs x B {weak:9.0f}")
        print(f"  ratio {n} procs / 1 proc (1 thread): same global batch {strong / one:.2f}x, "
              f"batch B per rank {weak / one:.2f}x;  vs 1 proc x{n} threads: {strong / one_n:.2f}x, {weak / one_n:.2f}x")


if __name__ == "__main__":
    main()
