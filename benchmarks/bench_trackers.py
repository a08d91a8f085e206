"""What the trackers cost, side by side in one run (a ratio, not a test; part of `make bench`).

    .venv/bin/python benchmarks/bench_trackers.py [--repeats 3] [--steps 3000]

The default run (``gan-train``: nsgan on ring8, 3000 steps, ``log_every=50``, pictures every 500 steps, the final
evaluation) as a whole command, with ``logger=[tensorboard]`` (the default) and with all four trackers
``logger=[tensorboard,csv,mlflow,wandb]`` (MLflow's SQLite store, W&B offline), alternately ``--repeats`` times
each after one warm-up of each (the warm-up creates the MLflow store, as a user's first run does).  Wall time of the
whole command (interpreter start, imports, the trackers' start and close included) and the CPU time of the
command and its child processes (W&B's service is one).  Goal: all four at most 5 % over the default.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def once(args: list, cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "gan-train"), "progress=false", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "WANDB_SILENT": "true"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3000)
    a = ap.parse_args(argv)
    rows = {"logger=[tensorboard] (default)": ["logger=[tensorboard]"],
            "logger=[tensorboard,csv,mlflow,wandb]": ["logger=[tensorboard,csv,mlflow,wandb]"]}
    got: dict = {k: [] for k in rows}
    with tempfile.TemporaryDirectory() as d:
        cwd = Path(d)
        for rep in range(a.repeats + 1):
            for name, args in rows.items():
                res = once([f"steps={a.steps}", *args], cwd)
                if rep:  # the first round warms up (a new MLflow store, file caches)
                    got[name].append(res)
    out = [f"default ring8 run, {a.steps} steps, whole gan-train commands, median of {a.repeats} "
           f"(alternating, after one warm-up each)", "",
           f"| {'trackers':40s} | wall s | CPU s (with children) |", f"|{'-' * 42}|-------:|------:|"]
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in got.items()}
    for k, (w, c) in med.items():
        out.append(f"| {k:40s} | {w:6.1f} | {c:6.1f} |")
    (bw, bc), (tw, tc) = med.values()
    out += ["", f"all four / default: wall {tw / bw:.3f}x, CPU {tc / bc:.3f}x (goal: <= 1.05x)"]
    text = "\n".join(out)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
