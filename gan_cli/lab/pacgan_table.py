"""PacGAN's Table 1 side by side (Lin et al. 2018, "PacGAN: the power of two samples in GANs", Table 1)
and the runs of ``experiment=grid25_best``.

``gan-train -m experiment=pacgan_table hydra/launcher=local`` trains the rows GAN, PacGAN2-4 (the paper's
nets, loss and optimiser: ``conf/experiment/pacgan/paper.yaml``), unrolled GAN K=5 / 10 (Metz et al. 2017)
and this project's best recipe (``conf/experiment/pacgan/best.yaml``) on ring8 and grid25 over 5 seeds;
``gan-eval sweep=<folder>`` then writes ``pacgan_table.md`` / ``.csv``: per (data, row) the mean ± standard
error over seeds (std with ddof 1 over sqrt(n), as the paper's "mean ± s.e. over 10 trials") of modes
captured, high-quality % and the reverse KL of the mode histogram (gan_cli.metrics.toy, 2,500 samples,
3-std rule), the generator steps, and the training's process CPU seconds and wall seconds per run
(``results.json`` ``cpu_s`` / ``train_s``), beside the paper's values (its Table 1: 400,000 steps,
10 trials).  ``experiment=grid25_best`` sweeps get the same table (one row).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: the paper's Table 1 (fjxmlzn/PacGAN synthetic_data_experiments/results/Table1.png): modes (± s.e.), HQ %,
#: reverse KL; the unrolled GAN and the best recipe have no entry there
PAPER: dict[tuple[str, str], tuple[str, str, str]] = {
    ("ring8", "GAN"): ("6.3 ± 0.5", "98.2", "0.45"),
    ("ring8", "PacGAN2"): ("7.9 ± 0.1", "95.6", "0.07"),
    ("ring8", "PacGAN3"): ("7.8 ± 0.1", "97.7", "0.10"),
    ("ring8", "PacGAN4"): ("7.8 ± 0.1", "95.9", "0.07"),
    ("grid25", "GAN"): ("17.3 ± 0.8", "94.8", "0.70"),
    ("grid25", "PacGAN2"): ("23.8 ± 0.7", "91.3", "0.13"),
    ("grid25", "PacGAN3"): ("24.6 ± 0.4", "94.2", "0.06"),
    ("grid25", "PacGAN4"): ("24.8 ± 0.2", "93.6", "0.04"),
}
PAPER_STEPS = 400_000  # 400 epochs x 100,000 samples / batch 100
ROW_ORDER = ("GAN", "PacGAN2", "PacGAN3", "PacGAN4", "unrolled GAN K=5", "unrolled GAN K=10", "best recipe")
_PRESETS = {"pacgan_table_gan": "GAN", "pacgan_table_pac2": "PacGAN2", "pacgan_table_pac3": "PacGAN3",
            "pacgan_table_pac4": "PacGAN4", "pacgan_table_unrolled5": "unrolled GAN K=5",
            "pacgan_table_unrolled10": "unrolled GAN K=10", "pacgan_table_best": "best recipe"}


def row_label(config: dict, overrides: dict | None = None) -> str:
    """The table row of a job: its row preset (``experiment@_global_=pacgan_table_<row>``), ``best recipe``
    for experiment=grid25_best, else read from the config (paper net: GAN / PacGAN<m> / unrolled GAN K=<k>)."""
    preset = (overrides or {}).get("experiment@_global_")
    if preset in _PRESETS:
        return _PRESETS[preset]
    if config.get("experiment") == "grid25_best":
        return "best recipe"
    m = config.get("model") or {}
    k, pack = int(((config.get("reg") or {}).get("unrolled") or {}).get("steps") or 0), int(m.get("pack") or 1)
    label = f"unrolled GAN K={k}" if k else (f"PacGAN{pack}" if pack > 1 else "GAN")
    if k and pack > 1:
        label += f" + PacGAN{pack}"
    net = (config.get("net") or {}).get("name")
    return label if net == "pacgan" else f"{label} (net={net})"


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error = std with ddof 1 / sqrt(n)) of the finite values; s.e. NaN for n < 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan


def _pm(mean: float, se: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"


def _metric(scalars: dict, prefix: str):
    """The toy metric ``<prefix>_<n samples>`` (``modes_2.5k``; not the k-NN ``..._k5`` ones)."""
    key = next((k for k in sorted(scalars) if k.startswith(prefix + "_") and "_k" not in k[len(prefix):]), None)
    return scalars.get(key) if key else None


def summarize(jobs) -> tuple[list[dict], list[dict]]:
    """(numeric rows for the CSV, display rows for the markdown) per (data, row, steps)."""
    groups: dict[tuple[str, str, int], list] = {}
    for j in jobs:
        if j.config:
            data = str((j.config.get("data") or {}).get("name", "?"))
            groups.setdefault((data, row_label(j.config, j.overrides), int(j.config.get("steps", 0))), []).append(j)

    def order(key):
        data, row, steps = key
        base = row.split(" (")[0]
        return (data != "ring8", data, ROW_ORDER.index(base) if base in ROW_ORDER else len(ROW_ORDER), row, steps)

    numeric, display = [], []
    for data, row, _steps in sorted(groups, key=order):
        g = groups[(data, row, _steps)]
        done = [j for j in g if j.ok]
        n_modes = (g[0].config.get("data") or {}).get("n_modes") or (g[0].config.get("data") or {}).get("grid", 0) ** 2
        s = [{"modes": _metric(j.scalars, "modes"), "hq": _metric(j.scalars, "hq"), "rkl": _metric(j.scalars, "rkl"),
              "cpu_s": j.scalars.get("cpu_s"), "train_s": j.scalars.get("train_s")} for j in done]
        modes = mean_se(x["modes"] for x in s)
        hq = mean_se(100.0 * x["hq"] if x["hq"] is not None else None for x in s)
        rkl = mean_se(x["rkl"] for x in s)
        cpu, wall = mean_se(x["cpu_s"] for x in s), mean_se(x["train_s"] for x in s)
        steps = sorted({int(j.config.get("steps", 0)) for j in done})
        all_modes = sum(1 for x in s if x["modes"] == n_modes)
        hq90 = sum(1 for x in s if x["modes"] == n_modes and (x["hq"] or 0) >= 0.9)
        paper = PAPER.get((data, row), ("—", "—", "—"))
        numeric.append({"data": data, "method": row, "runs": len(done), "failed": len(g) - len(done),
                        "seeds": " ".join(str(j.config.get("seed")) for j in done), "steps": " ".join(map(str, steps)),
                        "modes_mean": modes[0], "modes_se": modes[1], "hq_mean": hq[0], "hq_se": hq[1],
                        "rkl_mean": rkl[0], "rkl_se": rkl[1], "cpu_s_mean": cpu[0], "cpu_s_se": cpu[1],
                        "train_s_mean": wall[0], "train_s_se": wall[1], "all_modes_runs": all_modes,
                        "all_modes_hq90_runs": hq90, "paper_modes": paper[0], "paper_hq": paper[1], "paper_rkl": paper[2]})
        display.append({"data": f"{data} ({n_modes} modes)", "method": row, "seeds": f"{len(done)}/{len(g)}",
                        "steps": ", ".join(f"{x:,}" for x in steps) or "—",
                        "modes": _pm(*modes, 1), "HQ %": _pm(*hq, 1), "reverse KL": _pm(*rkl, 2),
                        "runs with all modes & HQ >= 90%": f"{hq90}/{len(done)}",
                        "CPU s/run": _pm(*cpu, 0), "wall s/run": _pm(*wall, 0),
                        "paper modes": paper[0], "paper HQ %": paper[1], "paper rKL": paper[2]})
    return numeric, display


def report(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """pacgan_table.md / pacgan_table.csv (the name of the sweep's experiment: grid25_best.md for those)."""
    from gan_cli.config import UserError
    from gan_cli.runs.results import markdown_table, write_csv

    numeric, display = summarize(jobs)
    if not numeric:
        raise UserError("pacgan_table: no job with a config in this sweep; run gan-train -m experiment=pacgan_table.")
    name = next((j.config.get("experiment") for j in jobs if j.config), None) or "pacgan_table"
    out_dir = Path(out_dir)
    files = [out_dir / f"{name}.csv", out_dir / f"{name}.md"]
    write_csv(files[0], numeric, list(numeric[0]))
    caption = (f"mean ± s.e. over seeds (2,500 samples; high quality within 3 std of the nearest mode).  Paper: "
               f"PacGAN Table 1, {PAPER_STEPS:,} steps, 10 trials.  CPU s: the training process's CPU time "
               f"(final evaluation excluded); wall s depends on the machine's load.")
    md = markdown_table(display, list(display[0]))
    files[1].write_text(f"{md}\n\n{caption}\n")
    if logger is not None:
        logger.log_text(f"lab/{name}", md + "\n\n" + caption, 0)
    return {"title": "PacGAN Table 1 side by side (mean ± s.e. over seeds)", "rows": display,
            "columns": list(display[0]), "caption": caption, "numeric": numeric, "files": [str(f) for f in files]}
