"""PacGAN's Table 1 side by side, on this machine's CPU, in one command:

    .venv/bin/python benchmarks/pacgan_table.py [--seeds 5] [--n-jobs 2] [--steps N]
                                                [--subset-steps 100] [--out multirun/pacgan_table]

Runs two gan-train sweeps (Hydra multirun, ``hydra/launcher=local``: joblib with ``--n-jobs`` jobs, one torch
thread each):

1. ``experiment=pacgan_table``: the rows GAN, PacGAN2, PacGAN3, PacGAN4, unrolled GAN K=5, K=10 and the best
   recipe (grid25_best's settings) on ring8 and grid25, seeds 0..``--seeds``-1, each row at its preset's
   steps (``--steps N``: every row at N);
2. how the numbers move with training length: GAN and PacGAN2 on grid25 at ``--subset-steps``
   (``--subset-seeds`` seeds, default 5; skipped with ``--subset-steps ''``), beside their rows of 1;

then reads every job with gan_cli.runs.results (all ``table*`` sweeps in ``--out``: rows rerun or added by hand as
``gan-train -m experiment=pacgan_table experiment@_global_=<rows> hydra.sweep.dir=<out>/table_b`` count too) and writes ``pacgan_table.md`` (1, beside the paper's values) and
``pacgan_steps.md`` (2) into ``--out`` and prints them.  ``--summarize`` only re-reads ``--out``.
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
from gan_cli.runs.results import collect, markdown_table  # noqa: E402



def sweep(folder: Path, n_jobs: int, *overrides: str) -> float:
    """One gan-train multirun into ``folder``; returns its wall seconds."""
    cmd = [sys.executable, "-m", "gan_cli.cli.train", "-m", "experiment=pacgan_table", "hydra/launcher=local",
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
    ap.add_argument("--steps", type=int, default=None, help="every row's generator steps (default: the presets')")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--subset-steps", default="100", help="comma list; '' skips part 2")
    ap.add_argument("--subset-seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "multirun" / "pacgan_table")
    ap.add_argument("--summarize", action="store_true", help="only read --out and print the tables")
    ap.add_argument("overrides", nargs="*",
                    help="gan-train overrides for every job (device=cuda metrics.num_samples=...)")
    a = ap.parse_args(argv)
    seeds = ",".join(str(s) for s in range(a.seeds))
    out = a.out.resolve()
    parts = {"table": out / "table", "subset": out / "steps_subset"}
    walls = {}
    if not a.summarize:
        walls["table"] = sweep(parts["table"], a.n_jobs, f"seed={seeds}", *([f"steps={a.steps}"] if a.steps else []),
                               *a.overrides)
        if a.subset_steps:
            walls["subset"] = sweep(parts["subset"], a.n_jobs, "experiment@_global_=pacgan_table_gan,pacgan_table_pac2",
                                    "data=grid25", f"seed={','.join(str(s) for s in range(a.subset_seeds))}",
                                    f"steps={a.subset_steps}", *a.overrides)
    tables = sorted(out.glob("table*"))  # table/ and any extra sweeps of rows added by hand (table_b/ ...)
    md = table(tables)
    note = (f"\nPaper: {PAPER_STEPS:,} generator steps, 10 trials.  Sweep wall time (2 jobs in parallel): "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items()) + "\n" if walls else "")
    (out / "pacgan_table.md").write_text(md + "\n" + note)
    print(md + "\n" + note)
    if parts["subset"].is_dir():
        sub = table([parts["subset"], *tables]).splitlines()
        sub = "\n".join(sub[:2] + [r for r in sub[2:] if "grid25" in r and ("| GAN |" in r or "| PacGAN2 |" in r)])
        (out / "pacgan_steps.md").write_text(sub + "\n")
        print(sub)


if __name__ == "__main__":
    main()
