"""Image quality on Fashion-MNIST at a fixed CPU budget per run, against the floor (the test split scored against
the training split): the table of the image-GAN docs.

    .venv/bin/python benchmarks/fashion_quality.py [--rows dcgan_ns,...] [--seeds 2] [--budget 600] [--n-jobs 2]
                                                   [--out quality_runs/fashion_mnist] [--num-samples 10000]
    .venv/bin/python benchmarks/fashion_quality.py --summarize      # the table from what --out holds

Each row is a set of gan-train overrides on ``data=fashion_mnist`` (Debian's files, or torchvision's download).
A run gets ``--budget`` CPU-seconds of training at one torch thread: the row's CPU-seconds per step are measured
first (the difference of a ``--calib-steps`` run and one a quarter as long, kept in ``calibration.json``) and
the run trains ``budget / that`` steps, so the step count is fixed and the run reproducible (``steps.txt`` and the table say it); the measured CPU time of the
training loop is reported beside it.  The final evaluation (not counted in the budget) scores
``--num-samples`` generated images against as many training images with the domain classifier's features:
FID_clf, KID_clf, precision / recall / density / coverage (``metrics=images``).  ``--n-jobs`` runs go side by side
(one core each).

Results go to ``<out>/results.jsonl`` one line per finished run, as soon as it finishes, and the table to
``<out>/table.md``; rerunning skips finished runs and starts killed ones over, so a stopped session loses at most
the runs in flight.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SNGAN_32 = ["experiment=sngan", "net.g_channels=32", "net.d_channels=32"]
#: row -> (label, overrides); data=fashion_mnist is added to every row
ROWS = {
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
METRICS = (("fid", "FID_clf", "{:.2f}"), ("kid", "KID_clf", "{:.4f}"), ("precision", "precision", "{:.3f}"),
           ("recall", "recall", "{:.3f}"), ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}"))
_lock = threading.Lock()
_row_locks: dict = {}  # one calibration at a time per row (its seeds run side by side)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _train(args: list, log: Path) -> None:
    with open(log, "a") as f:
        subprocess.run([str(BIN / "gan-train"), "data=fashion_mnist", "device=cpu", "progress=false", *args],
                       check=True, env=_env(), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


def calibrate(out: Path, row: str, steps: int) -> float:
    """CPU-seconds per training step of ``row`` (cached in calibration.json): the difference of two runs, of
    ``steps // 4`` and ``steps`` steps, so the first steps' warm-up (allocations, the first convolutions) is not
    counted as the steady rate."""
    with _lock:
        row_lock = _row_locks.setdefault(row, threading.Lock())
    with row_lock:
        return _calibrate(out, row, steps)


def _calibrate(out: Path, row: str, steps: int) -> float:
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
        _train([*ROWS[row][1], f"steps={n}", "metrics=none", "image_every=0", "ckpt_every=0", "log_every=10",
                f"out_dir={run}"], out / "calibration" / f"{row}_{n}.log")
        cpu[n] = float(json.loads((run / "results.json").read_text())["cpu_s"])
    (short, s_cpu), (long, l_cpu) = sorted(cpu.items())
    per_step = (l_cpu - s_cpu) / (long - short)
    with _lock:
        known = json.loads(cache.read_text()) if cache.exists() else {}
        known[row] = {"cpu_s_per_step": per_step, "runs": {str(k): v for k, v in cpu.items()}}
        cache.write_text(json.dumps(known, indent=1))
    return per_step


def _metric(final: dict, name: str):
    for k, v in final.items():
        base = k.split("/", 1)[-1]
        if base.startswith(name) and base.endswith("_clf"):
            return v
    return None


def _record(out: Path, line: dict) -> None:
    with _lock:
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        write_table(out)


def _set_rate(out: Path, row: str, per_step: float, source: str) -> None:
    with _lock:
        cache = out / "calibration.json"
        known = json.loads(cache.read_text()) if cache.exists() else {}
        known[row] = {**known.get(row, {}), "cpu_s_per_step": per_step, "from": source}
        cache.write_text(json.dumps(known, indent=1))


def run_job(out: Path, row: str, seed: int, budget: float, calib_steps: int, num_samples: int) -> None:
    """One run of ``row`` at ``budget`` CPU-seconds.  The calibration is a short measurement on a shared machine;
    a finished run measures its own rate over thousands of steps: when it used less than 90 % of the budget, its
    rate becomes the row's calibration and the run is done again with the steps that rate gives (the short one
    is kept beside it as ``seed<N>_short``)."""
    if row == "floor":
        return run_floor(out, out / row / f"seed{seed}", num_samples)
    for _ in range(3):
        run = out / row / f"seed{seed}"
        per_step = calibrate(out, row, calib_steps)
        steps = max(10, int(budget / per_step))
        args = [*ROWS[row][1], f"seed={seed}", f"steps={steps}", "metrics=images", f"metrics.num_samples={num_samples}",
                "eval_every=0", f"image_every={steps}", "ckpt_every=1000", "keep_ckpts=1", "log_every=100"]
        log = out / row / f"seed{seed}.log"
        if (run / "checkpoints").is_dir() and not (run / "results.json").exists():
            shutil.rmtree(run)  # a killed run starts over: a resumed one would count only the CPU since the resume
        if not (run / "results.json").exists():
            run.parent.mkdir(parents=True, exist_ok=True)
            _train([*args, f"out_dir={run}"], log)
        res = json.loads((run / "results.json").read_text())
        cpu, done = float(res["cpu_s"]), int(res["step"])
        if cpu >= 0.9 * budget:
            break
        _set_rate(out, row, cpu / done, f"seed {seed}: {done} steps in {cpu:.0f} CPU-s")
        short = run.with_name(f"seed{seed}_short")
        shutil.rmtree(short, ignore_errors=True)
        run.rename(short)
    final = res.get("metrics") or res.get("final") or {}
    _record(out, {"row": row, "seed": seed, "steps": done, "train_cpu_s": round(cpu, 1),
                  "calib_cpu_s_per_step": round(per_step, 4), "run": str(run),
                  **{m: _metric(final, m) for m, _, _ in METRICS}})


def run_floor(out: Path, run: Path, num_samples: int) -> None:
    """The test split's first ``num_samples`` images, exported as PNG files, scored against the training split."""
    pngs = run / "test_pngs"
    if not pngs.is_dir():
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        subprocess.run([str(BIN / "gan-eval"), "data=fashion_mnist", f"export={pngs}", "export.split=test",
                        f"export.n={num_samples}"], check=True, env=_env(), cwd=ROOT, capture_output=True)
    subprocess.run([str(BIN / "gan-eval"), f"folder={pngs}", "data=fashion_mnist", "metrics=images",
                        f"metrics.num_samples={num_samples}", f"out={run}", "device=cpu"], check=True, env=_env(),
                       cwd=ROOT, capture_output=True, text=True)
    final = json.loads((run / "metrics.json").read_text())
    final = final.get("metrics", final)
    _record(out, {"row": "floor", "seed": 0, "steps": 0, "train_cpu_s": 0.0, "run": str(run),
                  **{m: _metric(final, m) for m, _, _ in METRICS}})


def write_table(out: Path) -> str:
    lines = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln.strip()] \
        if (out / "results.jsonl").exists() else []
    latest = {}
    for ln in lines:  # a row / seed recorded twice: the last
        latest[(ln["row"], ln["seed"])] = ln
    head = "| row | seeds | G steps | train CPU-s | " + " | ".join(label for _, label, _ in METRICS) + " |"
    rows = [head, "|" + "---|" * 4 + "---:|" * len(METRICS)]
    for row, (label, _) in ROWS.items():
        got = [v for (r, _), v in sorted(latest.items()) if r == row]
        if not got:
            continue
        cells = [label, ",".join(str(g["seed"]) for g in got), "/".join(str(g["steps"]) for g in got),
                 "/".join(f"{g['train_cpu_s']:.0f}" for g in got)]
        for m, _, fmt in METRICS:
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="floor,dcgan_ns,dcgan_wgan_gp,resnet_sn,resnet_sn_da,best,l1k_none,l1k_da,l1k_ada")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of training per run")
    ap.add_argument("--calib-steps", type=int, default=40)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--num-samples", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=ROOT / "quality_runs" / "fashion_mnist")
    ap.add_argument("--summarize", action="store_true")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.summarize:
        rows = [r.strip() for r in a.rows.split(",") if r.strip()]
        unknown = [r for r in rows if r not in ROWS]
        if unknown:
            sys.exit(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(ROWS)}")
        jobs = [(r, s) for r in rows for s in (range(1) if r == "floor" else range(a.seeds))]
        with ThreadPoolExecutor(a.n_jobs) as pool:
            futures = {pool.submit(run_job, a.out, r, s, a.budget, a.calib_steps, a.num_samples): (r, s) for r, s in jobs}
            for fut, (r, s) in futures.items():
                try:
                    fut.result()
                except subprocess.CalledProcessError as e:
                    print(f"{r} seed {s} failed ({e}); see its log under {a.out / r}", file=sys.stderr, flush=True)
    print(write_table(a.out))


if __name__ == "__main__":
    main()
