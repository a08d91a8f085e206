"""Theory lab, experiment 4: which divergence estimate tracks sample quality?

Claim (Arjovsky et al. 2017, WGAN, Sec. 4.2 and Figs. 3-4): the critic's estimate of the
Wasserstein distance, E_real f - E_fake f, falls as the samples get better, so it can be read as
a training curve; the GAN discriminator's Jensen-Shannon estimate does not follow sample quality
(it saturates near log 2 or moves independently of it).  Here "quality" is FID on the features of
a Fashion-MNIST classifier (``fid<n>_clf``, gan_cli.metrics), measured every ``eval_every``
steps during training.

For each run the report pairs the FID at each evaluation step s with the run's estimate
(``estimate/w`` or ``estimate/jsd``, logged every ``log_every`` steps on a held-out batch),
averaged over the logged values in (previous evaluation step, s] to damp batch noise, and
reports Spearman's rank correlation rho(estimate, FID) (scipy.stats.spearmanr).  An estimate
that tracks quality falls with FID: rho near +1.  Figure: FID and the estimate against steps,
one panel per run.

``gan-train -m experiment=quality`` (gan, nsgan and wgan on Fashion-MNIST, FID every 100 steps),
then ``gan-eval sweep=<multirun folder>`` writes ``quality.csv`` and ``quality.png``.  The minimax
``gan`` usually shows the saturated case (D wins, the JSD estimate sits at log 2, FID does not
move); ``nsgan`` learns, so it shows whether its JSD estimate follows FID.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def curves(run_dir: Path) -> dict:
    """{"steps", "fid", "est_steps", "est", "fid_key", "est_key"} from a run's scalars.jsonl and metrics.jsonl."""
    from gan_cli.runs import records

    hist = records.read(Path(run_dir) / records.SCALARS)
    mhist = records.read(Path(run_dir) / records.METRICS)
    est_key = next((k for h in hist for k in h if k.startswith("estimate/")), None)
    fid_key = next((k for m in mhist for k in sorted(m) if k.startswith("fid")), None)
    est = [(h["step"], h[est_key]) for h in hist if est_key in h]
    fid = [(m["step"], m[fid_key]) for m in mhist if fid_key in m]
    return {"fid_key": fid_key, "est_key": est_key,
            "steps": [s for s, _ in fid], "fid": [v for _, v in fid],
            "est_steps": [s for s, _ in est], "est": [v for _, v in est]}


def paired(c: dict) -> tuple[list[int], list[float], list[float]]:
    """(eval steps, FID, the estimate averaged over the log steps since the previous evaluation)."""
    steps, fids, ests = [], [], []
    es, ev = np.array(c["est_steps"]), np.array(c["est"], dtype=float)
    prev = -math.inf
    for s, f in zip(c["steps"], c["fid"]):
        sel = (es > prev) & (es <= s)
        if not sel.any():  # no log step in the window: the latest one before s
            sel = es <= s
            if not sel.any():
                continue
            sel = es == es[sel].max()
        steps.append(s)
        fids.append(float(f))
        ests.append(float(np.nanmean(ev[sel])))
        prev = s
    return steps, fids, ests


def spearman(a, b) -> tuple[float, float]:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan, math.nan
    r = spearmanr(a[ok], b[ok])
    return float(r.statistic if hasattr(r, "statistic") else r[0]), float(r.pvalue if hasattr(r, "pvalue") else r[1])


def _label(j) -> str:
    m = (j.config.get("model") or {})
    name = str(m.get("name", "?"))
    return f"fgan_{m.get('divergence')}" if name == "fgan" else name


def report(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """quality.csv (Spearman rho of estimate vs FID per run) and quality.png (both curves vs steps)."""
    from gan_cli import viz  # noqa: F401
    import matplotlib.pyplot as plt

    from gan_cli.config import UserError
    from gan_cli.runs.results import write_csv

    done = [j for j in jobs if j.ok and j.checkpoint is not None]
    if not done:
        raise UserError(f"{out_dir}: no completed run to report on (see sweep_summary.csv for the errors).")
    done.sort(key=lambda j: (_label(j), j.config.get("seed", 0)))
    rows, data = [], []
    for j in done:
        c = curves(j.dir)
        if c["fid_key"] is None or c["est_key"] is None:
            raise UserError(f"{j.dir}: the run has no FID history (train with metrics=images and eval_every>0, "
                            f"as experiment=quality does).")
        steps, fids, ests = paired(c)
        rho, p = spearman(ests, fids)
        rows.append({"job": j.num, "model": _label(j), "seed": j.config.get("seed"), "estimate": c["est_key"],
                     "points": len(steps), "spearman_rho": rho, "p_value": p,
                     "fid_first": fids[0] if fids else math.nan, "fid_last": fids[-1] if fids else math.nan,
                     "est_first": ests[0] if ests else math.nan, "est_last": ests[-1] if ests else math.nan,
                     "fid_key": c["fid_key"]})
        data.append((j, c, rho))
    out_dir = Path(out_dir)
    files = [out_dir / "quality.csv"]
    write_csv(files[0], rows, list(rows[0]))

    n = len(data)
    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), dpi=80, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (j, c, rho) in zip(axes.flat, data):
        ax.plot(c["steps"], c["fid"], "o-", color="tab:red", ms=3, lw=1.2, label=c["fid_key"])
        ax.set_xlabel("generator step")
        ax.set_ylabel(c["fid_key"], color="tab:red")
        ax2 = ax.twinx()
        ax2.plot(c["est_steps"], c["est"], "-", color="tab:blue", lw=0.8, alpha=0.8, label=c["est_key"])
        ax2.set_ylabel(c["est_key"], color="tab:blue")
        ax.set_title(f"{_label(j)} seed {j.config.get('seed')}: Spearman rho(estimate, FID) = {rho:.2f}", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("does the divergence estimate track sample quality (FID, lower is better)?", fontsize=9)
    fig.tight_layout()
    if logger is not None:
        logger.log_figure("lab/quality", fig, 0)
    files.append(out_dir / "quality.png")
    viz.figure_to_png(fig, files[-1])
    shown = ["model", "seed", "estimate", "points", "spearman_rho", "p_value", "fid_first", "fid_last", "est_first", "est_last"]
    return {"title": "Spearman rank correlation of each run's divergence estimate with FID (+1: falls with FID)",
            "rows": rows, "columns": shown, "files": [str(f) for f in files]}
