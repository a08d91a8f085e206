"""PacGAN's Table 1 side by side, on this machine's CPU, in one command:

    .venv/bin/python benchmarks/pacgan_table.py [--steps 300] [--unrolled-steps 300] [--seeds 5] [--n-jobs 2]
                                                [--subset-steps 100,1000] [--out multirun/pacgan_table]

Runs gan-train sweeps (Hydra multirun, ``hydra/launcher=local``: joblib with ``--n-jobs`` jobs, one torch
thread each) of ``experiment=pacgan_table``:

1. the paper rows GAN, PacGAN2, PacGAN3, PacGAN4 (``--steps``) and unrolled GAN K=5, K=10
   (``--unrolled-steps``) on ring8 and grid25, seeds 0..``--seeds``-1;
2. the best-recipe row (``experiment=grid25_best``'s settings and its own steps) on both data sets;
3. how the numbers move with training length: GAN and PacGAN2 on grid25 at ``--subset-steps``
   (``--subset-seeds`` seeds; skipped with ``--subset-steps ''``);

then reads every job with gan_cli.results and writes ``pacgan_table.md`` (table 1+2 beside the paper's
values) and ``pacgan_steps.md`` (3) into ``--out`` and prints them.  ``--summarize`` only re-reads ``--out``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_cli.lab.pacgan_table import PAPER_STEPS, summarize  # noqa: E402
from gan_cli.results import collect, markdown_table  # noqa: E402

PAPER_ROWS = "pacgan_table_gan,pacgan_table_pac2,pacgan_table_pac3,pacgan_table_pac4"
UNROLLED_ROWS = "pacgan_table_unrolled5,pacgan_table_unrolled10"


def sweep(folder: Path, n_jobs: int, *overrides: str) -> float:
    """One gan-train multirun into ``folder``; returns its wall seconds."""
    cmd = [sys.executable, "-m", "gan_cli.train", "-m", "experiment=pacgan_table", "hydra/launcher=local",
           f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={folder}", "progress=false", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print("+", " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def table(folders: list[Path]) -> str:
    jobs = [j for f in folders if f.is_dir() for j in collect(f)]
    if not jobs:
        return "(no jobs)"
    _, display = summarize(jobs)
    return markdown_table(display, list(display[0]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="generator steps of GAN / PacGAN rows")
    ap.add_argument("--unrolled-steps", type=int, default=None, help="steps of the unrolled rows (default: --steps)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--subset-steps", default="100,1000", help="comma list; '' skips part 3")
    ap.add_argument("--subset-seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "multirun" / "pacgan_table")
    ap.add_argument("--summarize", action="store_true", help="only read --out and print the tables")
    a = ap.parse_args(argv)
    seeds = ",".join(str(s) for s in range(a.seeds))
    out = a.out.resolve()
    parts = {"paper": out / "paper_rows", "unrolled": out / "unrolled_rows", "best": out / "best_row",
             "subset": out / "steps_subset"}
    walls = {}
    if not a.summarize:
        walls["paper"] = sweep(parts["paper"], a.n_jobs, f"experiment@_global_={PAPER_ROWS}", "data=ring8,grid25",
                               f"seed={seeds}", f"steps={a.steps}")
        walls["unrolled"] = sweep(parts["unrolled"], a.n_jobs, f"experiment@_global_={UNROLLED_ROWS}",
                                  "data=ring8,grid25", f"seed={seeds}", f"steps={a.unrolled_steps or a.steps}")
        walls["best"] = sweep(parts["best"], a.n_jobs, "experiment@_global_=pacgan_table_best", "data=ring8,grid25",
                              f"seed={seeds}")
        if a.subset_steps:
            walls["subset"] = sweep(parts["subset"], a.n_jobs, f"experiment@_global_=pacgan_table_gan,pacgan_table_pac2",
                                    "data=grid25", f"seed={','.join(str(s) for s in range(a.subset_seeds))}",
                                    f"steps={a.subset_steps}")
    md = table([parts["paper"], parts["unrolled"], parts["best"]])
    note = (f"\nPaper: {PAPER_STEPS:,} generator steps, 10 trials.  Sweep wall time (2 jobs in parallel): "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items()) + "\n" if walls else "")
    (out / "pacgan_table.md").write_text(md + "\n" + note)
    print(md + "\n" + note)
    if parts["subset"].is_dir():
        sub = table([parts["subset"]])
        (out / "pacgan_steps.md").write_text(sub + "\n")
        print(sub)


if __name__ == "__main__":
    main()
