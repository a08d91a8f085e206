"""Tables of runs at a fixed CPU budget per run: the quality, stacked-mode and conditional tables of the docs.

    .venv/bin/python benchmarks/budget_table.py TABLE [--rows a,b] [--seeds 2] [--budget 600] [--n-jobs 1]
                                                      [--out quality_runs/TABLE] [--num-samples N]
    .venv/bin/python benchmarks/budget_table.py TABLE --summarize        # the table from what --out holds

TABLE is one of :data:`TABLES`: ``fashion`` (image quality on Fashion-MNIST, also ``benchmarks/fashion_quality.py``),
``stacked_fashion`` / ``stacked_digits`` (modes of 1000 and KL on stacked Fashion-MNIST / digits: PacGAN Table 2's
rows), ``cond_digits`` / ``cond_fashion`` (class-conditional GANs: class accuracy, intra-class FID, FID).

Each row is a set of gan-train overrides added to the table's own.  A run gets ``--budget`` CPU-seconds of training
at one torch thread: the row's CPU-seconds per step are measured first (the difference of a ``--calib-steps`` run
and one a quarter as long, kept in ``calibration.json``) and the run trains ``budget / that`` steps, so the step
count is fixed and the run reproducible (the table says it); the measured CPU time of the training loop is reported
beside it, and a run that used under 90 % of its budget makes its own rate the row's calibration and is done again.
The final evaluation is not counted in the budget.  A ``floor`` row scores real data the same way (the table's
``floor`` function).

Results go to ``<out>/results.jsonl``, one line per finished run as soon as it finishes, and the table to
``<out>/table.md``; rerunning skips finished runs and starts killed ones over, so a stopped session loses at most
the runs in flight.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Table:
    base: list  # gan-train / gan-eval overrides of every run (the data set)
    rows: dict  # row -> (label, overrides); a row "floor" scores real data (its overrides: None)
    metrics: tuple  # (key name, column, format, suffix of the key) read from results.json's metrics
    num_samples: int
    floor: Optional[Callable] = None  # floor(table, out, run, num_samples) -> the metrics dict of real data
    eval_args: list = field(default_factory=list)  # the evaluation's overrides (metrics=...)
    # rows trained on part of the data (data.limit): scored against the full training set like every other row
    # (the run's own evaluation can only draw as many real images as it trained on)
    full_eval: tuple = ()


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _tool(tool: str, args: list, log: Path) -> None:
    with open(log, "a") as f:
        subprocess.run([str(BIN / tool), *args], check=True, env=_env(), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


def metric(final: dict, name: str, suffix: str):
    """The value of ``<name><count tag>_<suffix>`` (or ``<name>_<suffix>``) in ``final``, else None."""
    pat = re.compile(rf"^{re.escape(name)}(\d[\w.]*)?_{re.escape(suffix)}$")
    for k, v in final.items():
        if pat.match(k.split("/", 1)[-1]):
            return v
    return None


# ----------------------------------------------------------------------------- floors


def real_floor(split: str, extra: list):
    """The floor: ``split``'s first N images of the table's data set, exported as PNG files, scored like a run."""

    def floor(table: Table, out: Path, run: Path, n: int) -> dict:
        pngs = run / f"{split}_pngs"
        if not pngs.is_dir():
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            _tool("gan-eval", [*table.base, f"export={pngs}", f"export.split={split}", f"export.n={n}"], run / "log")
        _tool("gan-eval", [f"folder={pngs}", *table.base, *extra, f"metrics.num_samples={n}", f"out={run}",
                           "device=cpu"], run / "log")
        final = json.loads((run / "metrics.json").read_text())
        return final.get("metrics", final)

    return floor


# ----------------------------------------------------------------------------- the tables

CLF = (("fid", "FID_clf", "{:.2f}", "clf"), ("kid", "KID_clf", "{:.4f}", "clf"),
       ("precision", "precision", "{:.3f}", "clf"), ("recall", "recall", "{:.3f}", "clf"),
       ("density", "density", "{:.3f}", "clf"), ("coverage", "coverage", "{:.3f}", "clf"))
STACKED = (("modes", "modes (of 1000)", "{:.1f}", "stacked"), ("kl", "KL(p_gen, uniform)", "{:.3f}", "stacked"))
COND = (("class_acc", "class accuracy", "{:.3f}", "clf"), ("class_acc_real", "ceiling (real test split)", "{:.3f}", "clf"),
        ("ifid", "intra-class FID_clf", "{:.2f}", "clf"), ("fid", "FID_clf", "{:.2f}", "clf"), ("cas", "CAS", "{:.3f}", "clf"))

SNGAN_32 = ["experiment=sngan", "net.g_channels=32", "net.d_channels=32"]
FASHION_ROWS = {
    "floor": ("floor: test split vs training split", None),
    "dcgan_ns": ("DCGAN + NS GAN (defaults)", []),
    "dcgan_wgan_gp": ("DCGAN + WGAN-GP", ["model=wgan_gp", "net=dcgan"]),
    "resnet_sn": ("ResNet (32 ch) + hinge + SN (experiment=sngan)", SNGAN_32),
    "resnet_sn_da": ("ResNet (32 ch) + hinge + SN + DiffAugment", [*SNGAN_32, "augment=diffaugment"]),
    # the search for experiment=fashion_mnist_best (one seed each; the winner became the preset)
    "t_ema": ("DCGAN + NS GAN + EMA 0.999", ["ema.beta=0.999"]),
    "t_hinge_sn_ema": ("DCGAN + hinge + SN + EMA 0.999 (TTUR 1e-4 / 4e-4)",
                       ["model=hinge", "net=dcgan", "net.spectral_norm=true", "ema.beta=0.999"]),
    "t_ema_c32": ("DCGAN (32 ch) + NS GAN + EMA 0.999", ["ema.beta=0.999", "net.channels=32"]),
    "t_ema_c16": ("DCGAN (16 ch) + NS GAN + EMA 0.999", ["ema.beta=0.999", "net.channels=16"]),
    "t_hinge_sn_ema_c32": ("DCGAN (32 ch) + hinge + SN + EMA 0.999",
                           ["model=hinge", "net=dcgan", "net.spectral_norm=true", "ema.beta=0.999", "net.channels=32"]),
    "best": ("experiment=fashion_mnist_best", ["experiment=fashion_mnist_best"]),
    # limited data: the first 1000 training images
    "l1k_none": ("1k images: best recipe, no augmentation", ["experiment=fashion_mnist_best", "data.limit=1000"]),
    "l1k_da": ("1k images: best recipe + DiffAugment",
               ["experiment=fashion_mnist_best", "data.limit=1000", "augment=diffaugment"]),
    "l1k_ada": ("1k images: best recipe + ADA", ["experiment=fashion_mnist_best", "data.limit=1000", "augment=ada"]),
}
STACKED_ROWS = {
    "floor": ("floor: real stacked samples (train draw)", None),
    "dcgan": ("DCGAN (experiment=stacked_dcgan)", ["experiment=stacked_dcgan"]),
    "pacgan2": ("PacDCGAN2 (experiment=stacked_pacgan2)", ["experiment=stacked_pacgan2"]),
    # trials for experiment=stacked_best (the preset is the winner's recipe: STACKED_BEST)
    "t_pac2_half_ema": ("trial: PacDCGAN2 at half width (net.channels=32) + EMA 0.999",
                        ["experiment=stacked_pacgan2", "net.channels=32", "ema.beta=0.999"]),
    "t_ema": ("trial: DCGAN + EMA 0.999", ["experiment=stacked_dcgan", "ema.beta=0.999"]),
    # PacGAN's Table 3 (after Unrolled GAN): a discriminator too weak for G, where their DCGAN collapsed and packing
    # helped
    "dcgan_d4": ("DCGAN, D at 1/4 of G's width (net.d_channels=16)", ["experiment=stacked_dcgan", "net.d_channels=16"]),
    "pacgan3_d4": ("PacDCGAN3, D at 1/4 of G's width",
                   ["experiment=stacked_pacgan2", "model.pack=3", "data.batch_size=192", "estimate_batch=1026",
                    "net.d_channels=16"]),
}

#: the trial row whose recipe experiment=stacked_best is (the lowest mean KL on both stacked sets; a test holds the
#: preset to the row's overrides)
STACKED_BEST = "t_ema"


def _cond_rows(recipe: list) -> dict:
    return {"none": ("unconditional (cond=none)", [*recipe]),
            "concat": ("cond=concat", [*recipe, "cond=concat"]),
            "projection": ("cond=projection", [*recipe, "cond=projection"]),
            "acgan": ("cond=acgan", [*recipe, "cond=acgan"])}


TABLES = {
    "fashion": Table(["data=fashion_mnist"], FASHION_ROWS, CLF, 10000,
                     real_floor("test", ["metrics=images"]), ["metrics=images"],
                     full_eval=("l1k_none", "l1k_da", "l1k_ada")),
    "stacked_fashion": Table(["data=stacked", "data.base=fashion_mnist"], STACKED_ROWS, STACKED, 26000,
                             real_floor("train", ["metrics=stacked"]), ["metrics=stacked"]),
    "stacked_digits": Table(["data=stacked", "data.base=digits"], STACKED_ROWS, STACKED, 26000,
                            real_floor("train", ["metrics=stacked"]), ["metrics=stacked"]),
    "cond_digits": Table(["data=digits"], _cond_rows([]), COND, 1500, None, ["metrics=images"]),
    "cond_fashion": Table(["data=fashion_mnist"], _cond_rows(["experiment=fashion_mnist_best"]), COND, 10000, None,
                          ["metrics=images"]),
}

# ----------------------------------------------------------------------------- the runs

# the runs log (losses, the divergence estimate on estimate_batch samples) every LOG_EVERY steps; the calibration
# runs log as often, so the measured rate carries the same share of that cost (at 10 it over-estimated a stacked
# Fashion-MNIST step by 1.7x, and every such run was done twice)
LOG_EVERY = 100
_lock = threading.Lock()
_row_locks: dict = {}  # one calibration at a time per row (its seeds may run side by side)


def calibrate(table: Table, out: Path, row: str, steps: int) -> float:
    """CPU-seconds per training step of ``row`` (cached in calibration.json): the difference of two runs, of
    ``steps // 4`` and ``steps`` steps, so the first steps' warm-up is not counted as the steady rate."""
    with _lock:
        row_lock = _row_locks.setdefault(row, threading.Lock())
    with row_lock:
        cache = out / "calibration.json"
        with _lock:
            known = json.loads(cache.read_text()) if cache.exists() else {}
        if row in known:
            return known[row]["cpu_s_per_step"]
        cpu = {}
        for n in (max(2, steps // 4), steps):
            run = out / "calibration" / f"{row}_{n}"
            shutil.rmtree(run, ignore_errors=True)
            run.parent.mkdir(parents=True, exist_ok=True)
            _tool("gan-train", [*table.base, "device=cpu", "progress=false", *table.rows[row][1], f"steps={n}",
                                "metrics=none", "image_every=0", "ckpt_every=0", f"log_every={LOG_EVERY}",
                                f"out_dir={run}"],
                  out / "calibration" / f"{row}_{n}.log")
            cpu[n] = float(json.loads((run / "results.json").read_text())["cpu_s"])
        (short, s_cpu), (long, l_cpu) = sorted(cpu.items())
        per_step = (l_cpu - s_cpu) / (long - short)
        _set_rate(out, row, per_step, {"runs": {str(k): v for k, v in cpu.items()}})
        return per_step


def _set_rate(out: Path, row: str, per_step: float, info: dict) -> None:
    with _lock:
        cache = out / "calibration.json"
        known = json.loads(cache.read_text()) if cache.exists() else {}
        known[row] = {**known.get(row, {}), "cpu_s_per_step": per_step, **info}
        cache.write_text(json.dumps(known, indent=1))


def _record(table: Table, out: Path, line: dict) -> None:
    with _lock:
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        write_table(table, out)


def _values(table: Table, final: dict) -> dict:
    return {name: metric(final, name, suffix) for name, _, _, suffix in table.metrics}


def run_job(table: Table, out: Path, row: str, seed: int, budget: float, calib_steps: int, num_samples: int) -> None:
    """One run of ``row`` at ``budget`` CPU-seconds (see the module docstring)."""
    if row == "floor":
        run = out / row / f"seed{seed}"
        final = table.floor(table, out, run, num_samples)
        return _record(table, out, {"row": "floor", "seed": 0, "steps": 0, "train_cpu_s": 0.0, "run": str(run),
                                    **_values(table, final)})
    for _ in range(3):
        run = out / row / f"seed{seed}"
        per_step = calibrate(table, out, row, calib_steps)
        steps = max(10, int(budget / per_step))
        args = [*table.base, "device=cpu", "progress=false", *table.rows[row][1], f"seed={seed}", f"steps={steps}",
                *table.eval_args, f"metrics.num_samples={num_samples}", "eval_every=0", f"image_every={steps}",
                "ckpt_every=1000", "keep_ckpts=1", f"log_every={LOG_EVERY}"]
        if run.is_dir() and not (run / "results.json").exists():
            shutil.rmtree(run)  # a killed run starts over: a resumed one would count only the CPU since the resume
        if not (run / "results.json").exists():
            run.parent.mkdir(parents=True, exist_ok=True)
            _tool("gan-train", [*args, f"out_dir={run}"], out / row / f"seed{seed}.log")
        res = json.loads((run / "results.json").read_text())
        cpu, done = float(res["cpu_s"]), int(res["step"])
        if cpu >= 0.9 * budget:
            break
        _set_rate(out, row, cpu / done, {"from": f"seed {seed}: {done} steps in {cpu:.0f} CPU-s"})
        short = run.with_name(f"seed{seed}_short")
        shutil.rmtree(short, ignore_errors=True)
        run.rename(short)
    final = res.get("metrics") or res.get("final") or {}
    if row in table.full_eval:
        final = full_eval(table, run, num_samples)
    _record(table, out, {"row": row, "seed": seed, "steps": done, "train_cpu_s": round(cpu, 1),
                         "calib_cpu_s_per_step": round(per_step, 4), "run": str(run), **_values(table, final),
                         **({"scored_against": "the full training set"} if row in table.full_eval else {})})


def full_eval(table: Table, run: Path, n: int) -> dict:
    """``n`` samples of the run's generator (PNG files) scored against the table's data set as a whole."""
    pngs, out = run / "full_eval" / "samples", run / "full_eval"
    if not (out / "metrics.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        _tool("gan-eval", [f"ckpt={run}", f"export={pngs}", f"export.n={n}", "device=cpu"], out / "log")
        _tool("gan-eval", [f"folder={pngs}", *table.base, *table.eval_args, f"metrics.num_samples={n}", f"out={out}",
                           "device=cpu"], out / "log")
    final = json.loads((out / "metrics.json").read_text())
    return final.get("metrics", final)


def write_table(table: Table, out: Path) -> str:
    lines = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln.strip()] \
        if (out / "results.jsonl").exists() else []
    latest = {}
    for ln in lines:  # a row / seed recorded twice: the last
        latest[(ln["row"], ln["seed"])] = ln
    head = "| row | seeds | G steps | train CPU-s | " + " | ".join(col for _, col, _, _ in table.metrics) + " |"
    rows = [head, "|" + "---|" * 4 + "---:|" * len(table.metrics)]
    for row, (label, _) in table.rows.items():
        got = [v for (r, _), v in sorted(latest.items()) if r == row]
        if not got:
            continue
        cells = [label, ",".join(str(g["seed"]) for g in got), "/".join(str(g["steps"]) for g in got),
                 "/".join(f"{g['train_cpu_s']:.0f}" for g in got)]
        for m, _, fmt, _ in table.metrics:
            vals = [g[m] for g in got if g.get(m) is not None]
            if not vals:
                cells.append("-")
            elif len(vals) == 1:
                cells.append(fmt.format(vals[0]))
            else:
                cells.append(f"{fmt.format(statistics.mean(vals))} ({' / '.join(fmt.format(v) for v in vals)})")
        rows.append("| " + " | ".join(cells) + " |")
    text = "\n".join(rows) + "\n"
    (out / "table.md").write_text(text)
    return text


def main(argv=None, table_name: Optional[str] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if table_name is None:
        ap.add_argument("table", choices=sorted(TABLES))
    ap.add_argument("--rows", default=None, help="comma-separated rows (default: every row but the t_* trials)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of training per run")
    ap.add_argument("--calib-steps", type=int, default=40)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--num-samples", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--summarize", action="store_true")
    a = ap.parse_args(argv)
    name = table_name or a.table
    table = TABLES[name]
    out = a.out or ROOT / "quality_runs" / ("fashion_mnist" if name == "fashion" else name)
    out.mkdir(parents=True, exist_ok=True)
    if not a.summarize:
        rows = [r.strip() for r in a.rows.split(",") if r.strip()] if a.rows else \
            [r for r in table.rows if not r.startswith("t_")]
        unknown = [r for r in rows if r not in table.rows]
        if unknown:
            sys.exit(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(table.rows)}")
        jobs = [(r, s) for r in rows for s in (range(1) if r == "floor" else range(a.seeds))]
        n = a.num_samples or table.num_samples
        with ThreadPoolExecutor(a.n_jobs) as pool:
            futures = {pool.submit(run_job, table, out, r, s, a.budget, a.calib_steps, n): (r, s) for r, s in jobs}
            for fut, (r, s) in futures.items():
                try:
                    fut.result()
                except subprocess.CalledProcessError as e:
                    print(f"{r} seed {s} failed ({e}); see its log under {out / r}", file=sys.stderr, flush=True)
    print(write_table(table, out))


if __name__ == "__main__":
    main()
