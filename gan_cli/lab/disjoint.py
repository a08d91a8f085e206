"""Theory lab, experiment 2: disjoint supports (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN",
Example 1 and Figure 2).

Real P_0 = (0, U[0, 1]), model P_theta = (theta, U[0, 1]) (``data=lines net=theta``).  For theta != 0
the supports are disjoint and

    JSD(P_0, P_theta) = log 2,   KL = +inf,   W1(P_0, P_theta) = |theta|   (JSD = W1 = 0 at theta = 0),

so the JS divergence is flat (no gradient in theta) while W1 is continuous and shrinks linearly.

(a) ``gan-train -m experiment=disjoint_estimates``: the generator is frozen at each theta of a grid
    (``train_generator=false``) and the discriminator / critic is trained alone; its estimate is read at
    the end: (V(D) + log 4)/2 for ``gan`` (equals the JSD at the optimal D; Goodfellow et al. 2014,
    Thm. 1) and E_real f - E_fake f for ``wgan_gp`` (Gulrajani et al. 2017).  The penalty is soft:
    with interpolates spread evenly over the gap between the lines, the best critic has slope
    k = 1 + |theta| / (2 lambda) across it (maximise k |theta| - lambda (k - 1)^2), so the penalised
    optimum is |theta| + theta^2 / (2 lambda), slightly above W1; the report draws that curve too.
    Weight clipping (``model=...,wgan``) bounds the critic's Lipschitz constant by some K set by the
    clip value and the architecture, so its estimate is ~K W1 with K unknown: the report fits K by
    least squares and plots estimate / K.
(b) ``gan-train -m experiment=disjoint_theta``: theta is learned from theta0 = 1.  Once the minimax
    discriminator separates the lines, the saturating generator loss E log(1 - D(G(z))) has a
    vanishing gradient (Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs",
    Thm. 2.4); the non-saturating loss does not vanish (Thm. 2.5: its gradient is unstable but
    non-zero); the WGAN-GP critic's slope stays ~1, so theta keeps moving to 0.  The report plots
    theta over steps (from the run's scalars.jsonl) and |dL_G/dtheta| (the ``grad_norm/g`` scalar).
    All models share one Adam setting: Adam divides by a running RMS of the gradient, so a gradient
    that fades 1000x relative to its early size gives ~1000x smaller steps, which is what stalls the
    saturating GAN; Adam is scale-invariant for a gradient that is tiny from the first step on.

``gan-eval sweep=<folder>`` calls :func:`report_estimates` / :func:`report_theta` (registered in
:data:`gan_cli.lab.REPORTS`): table to ``<name>.csv`` / ``<name>.md``, figure to ``<name>.png`` in the sweep
folder and to TensorBoard (``<sweep>/tb_summary``, tag ``lab/<name>``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

LOG2 = math.log(2.0)
MODEL_ORDER = ("gan", "nsgan", "fgan", "wgan", "wgan_gp")


# ----------------------------------------------------------------------------- the exact curves


def exact_jsd(theta: float) -> float:
    """JSD((0, U[0,1]), (theta, U[0,1])): log 2 when the lines differ, 0 when they coincide."""
    return 0.0 if theta == 0 else LOG2


def exact_w1(theta: float) -> float:
    """W1((0, U[0,1]), (theta, U[0,1])) = |theta| (move every point sideways by theta)."""
    return abs(theta)


def gp_optimum(theta: float, gp_weight: float) -> float:
    """The estimate E_real f - E_fake f = k |theta| of the critic that maximises the WGAN-GP objective
    k |theta| - lambda (k - 1)^2 over slopes k across the gap: k = 1 + |theta| / (2 lambda), so the
    estimate is |theta| + theta^2 / (2 lambda) (a constant slope is optimal: the interpolates are spread
    evenly over the gap, and by Jensen a varying slope pays more penalty for the same rise)."""
    if gp_weight <= 0:
        return abs(theta)
    return abs(theta) + theta**2 / (2 * gp_weight)


# ----------------------------------------------------------------------------- job helpers


def model_name(job) -> str:
    m = job.config.get("model") or {}
    name = str(m.get("name", "?"))
    return f"fgan_{m.get('divergence')}" if name == "fgan" else name


def _order(name: str):
    base = name.split("_")[0] if name.startswith("fgan") else name
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), name)


def _estimate(job) -> tuple[Optional[str], Optional[float]]:
    final = (job.results or {}).get("final") or {}
    key = next((k for k in sorted(final) if k.startswith("estimate/")), None)
    return key, (float(final[key]) if key is not None else None)


def _check_lines(jobs):
    from gan_cli.config import UserError

    mine = [j for j in jobs if j.config]
    bad = {str((j.config.get("data") or {}).get("name")) for j in mine} - {"lines"}
    if not mine or bad:
        raise UserError(f"the disjoint-support reports need data=lines runs (gan-train -m experiment=disjoint_estimates "
                        f"or disjoint_theta); got data={','.join(sorted(bad)) or 'nothing'}.")
    return mine


def _fmt(v, nd=4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if v != 0 and abs(v) < 0.01:  # clipped critics: estimates ~1e-3
        return f"{v:.3g}"
    return f"{round(v, nd) + 0.0:.{nd}f}"  # + 0.0: no "-0.0000"


def _md(display: list[dict]) -> str:
    cols = list(display[0])

    def esc(v) -> str:
        return str(v).replace("|", "\\|")

    return "\n".join(["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(esc(r[c]) for c in cols) + " |" for r in display])


def _write(out_dir: Path, name: str, numeric, display, caption, fig, logger) -> list[str]:
    from gan_cli import viz
    from gan_cli.runs.results import write_csv

    files = [out_dir / f"{name}.csv", out_dir / f"{name}.md", out_dir / f"{name}.png"]
    write_csv(files[0], numeric, list(dict.fromkeys(k for r in numeric for k in r)))
    md = _md(display)
    files[1].write_text(f"{md}\n\n{caption}\n")
    if logger is not None:
        logger.log_text(f"lab/{name}", md + "\n\n" + caption, 0)
        logger.log_figure(f"lab/{name}", fig, 0)
    viz.figure_to_png(fig, files[2])
    return [str(f) for f in files]


# ----------------------------------------------------------------------------- (a) estimates vs theta


def estimates_table(jobs) -> tuple[list[dict], dict]:
    """Per (model, theta): the mean (and std over seeds) of the final divergence estimate.
    Returns (rows, fits) where fits["wgan"] = least-squares K of estimate ~ K |theta| for clipped critics."""
    groups: dict[tuple[str, float], list] = {}
    for j in jobs:
        if not j.ok:
            continue
        theta = float((j.config.get("net") or {}).get("theta0"))
        groups.setdefault((model_name(j), theta), []).append(j)
    rows = []
    for (model, theta), g in sorted(groups.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        tag = _estimate(g[0])[0]
        vals = np.array([_estimate(j)[1] for j in g], dtype=float)
        lam = float(((g[0].config.get("reg") or {}).get("gp") or {}).get("weight") or 0.0)
        frozen = all(not j.config.get("train_generator", True) for j in g)
        theta_end = [float(((j.results or {}).get("final") or {}).get("gen/theta", theta)) for j in g]
        rows.append({"model": model, "theta": theta, "estimate_tag": tag, "estimate": float(vals.mean()),
                     "estimate_std": float(vals.std()), "runs": len(g), "gp_weight": lam, "frozen": frozen,
                     "theta_end": float(np.mean(theta_end))})
    fits = {}
    for model in {r["model"] for r in rows if r["estimate_tag"] == "estimate/w" and r["gp_weight"] == 0}:
        pts = [(abs(r["theta"]), r["estimate"]) for r in rows if r["model"] == model]
        den = sum(t * t for t, _ in pts)
        if den > 0:
            fits[model] = sum(t * e for t, e in pts) / den
    for r in rows:
        t = r["theta"]
        if r["estimate_tag"] == "estimate/jsd":
            r["exact"], r["exact_name"] = exact_jsd(t), "JSD"
        elif r["estimate_tag"] == "estimate/w":
            r["exact"], r["exact_name"] = exact_w1(t), "W1"
            if r["gp_weight"] > 0:
                r["gp_optimum"] = gp_optimum(t, r["gp_weight"])
            if r["model"] in fits:
                r["K"] = fits[r["model"]]
                r["estimate_over_K"] = r["estimate"] / fits[r["model"]] if fits[r["model"]] else math.nan
        else:
            r["exact"], r["exact_name"] = math.nan, ""
    return rows, fits


def estimates_figure(rows: list[dict], fits: dict):
    from gan_cli import viz  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt

    thetas = sorted({r["theta"] for r in rows})
    span = max([abs(t) for t in thetas] + [1e-3])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6), dpi=80)
    # JSD panel
    a1.hlines(LOG2, -span * 1.05, span * 1.05, colors="k", linestyles="--", lw=1.0, label="exact JSD = log 2 (theta != 0)")
    a1.plot([0], [LOG2], "o", mfc="white", mec="k", ms=6, zorder=5)
    a1.plot([0], [0.0], "ko", ms=4, zorder=5, label="exact JSD = 0 at theta = 0")
    w_models = []
    for i, model in enumerate(sorted({r["model"] for r in rows}, key=_order)):
        rs = [r for r in rows if r["model"] == model]
        x = np.array([r["theta"] for r in rs])
        y = np.array([r["estimate"] for r in rs])
        e = np.array([r["estimate_std"] for r in rs])
        if rs[0]["estimate_tag"] == "estimate/jsd":
            a1.errorbar(x, y, yerr=e, fmt="o", ms=5, capsize=2, color=f"C{i}", label=f"{model}: (V(D)+log 4)/2")
        elif rs[0]["estimate_tag"] == "estimate/w":
            w_models.append((i, model, x, y, e, rs))
    a1.set_xlabel("theta")
    a1.set_ylabel("JSD estimate")
    a1.set_ylim(-0.05, 0.8)
    a1.set_title("discriminator trained at fixed theta: JSD estimate", fontsize=9)
    a1.legend(fontsize=7, loc="lower left")
    a1.grid(alpha=0.3)
    # W panel
    xs = np.linspace(-span, span, 401)
    a2.plot(xs, np.abs(xs), "k--", lw=1.0, label="exact W1 = |theta|")
    lams = sorted({r["gp_weight"] for r in rows if r["estimate_tag"] == "estimate/w" and r["gp_weight"] > 0})
    for lam in lams:
        a2.plot(xs, [gp_optimum(t, lam) for t in xs], ":", color="0.4", lw=1.2,
                label=f"GP optimum |theta| + theta^2/(2*{lam:g})")
    for i, model, x, y, e, rs in w_models:
        if model in fits and fits[model]:
            K = fits[model]
            a2.errorbar(x, y / K, yerr=e / K, fmt="x-", ms=5, lw=1.0, capsize=2, color=f"C{i}",
                        label=f"{model} (clip) / K, K = {K:.3g}")
        else:
            a2.errorbar(x, y, yerr=e, fmt="o-", ms=4, lw=1.2, capsize=2, color=f"C{i}", label=f"{model}: E_real f - E_fake f")
    a2.set_xlabel("theta")
    a2.set_ylabel("W estimate")
    a2.set_title("critic trained at fixed theta: W estimate", fontsize=9)
    a2.legend(fontsize=7, loc="upper center")
    a2.grid(alpha=0.3)
    fig.suptitle("disjoint supports: real (0, U[0,1]) vs (theta, U[0,1])", fontsize=9)
    fig.tight_layout()
    return fig


def report_estimates(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """Experiment 2a: the JSD and W estimates of a converged D / critic against theta, beside the exact curves."""
    from gan_cli.config import UserError

    jobs = _check_lines(jobs)
    rows, fits = estimates_table(jobs)
    if not rows:
        raise UserError(f"{out_dir}: no completed job to report on (see sweep_summary.csv for the errors).")
    display = []
    for r in rows:
        d = {"model": r["model"], "theta": f"{r['theta']:g}", "runs": str(r["runs"]),
             "estimate": _fmt(r["estimate"]) + (f" ± {r['estimate_std']:.3f}" if r["runs"] > 1 else ""),
             "exact": f"{r['exact_name']} = {r['exact']:.4f}" if r["exact_name"] else "",
             "GP optimum": _fmt(r.get("gp_optimum")), "estimate / K": _fmt(r.get("estimate_over_K"))}
        display.append(d)
    if not any(r.get("gp_optimum") is not None for r in rows):
        for d in display:
            d.pop("GP optimum")
    if not fits:
        for d in display:
            d.pop("estimate / K")
    notes = []
    moved = [r for r in rows if not r["frozen"]]
    if moved:
        notes.append(f"{len(moved)} (model, theta) group(s) trained the generator too (train_generator=true): their theta "
                     f"moved, so their estimate is not at the listed theta")
    jsd = [r for r in rows if r["estimate_tag"] == "estimate/jsd"]
    if jsd:
        off = [r["estimate"] for r in jsd if r["theta"] != 0]
        at0 = [r["estimate"] for r in jsd if r["theta"] == 0]
        if off:
            notes.append(f"JSD estimate for theta != 0: {min(off):.4f} .. {max(off):.4f} (log 2 = {LOG2:.4f})"
                         + (f", at theta = 0: {at0[0]:.4f}" if at0 else ""))
    for model in sorted({r["model"] for r in rows if r["estimate_tag"] == "estimate/w"}, key=_order):
        rs = [r for r in rows if r["model"] == model]
        t = np.array([abs(r["theta"]) for r in rs])
        y = np.array([r["estimate"] for r in rs])
        if (t > 0).sum() >= 2:
            slope = float(np.polyfit(t, y, 1)[0])
            notes.append(f"{model}: least-squares slope of the W estimate against |theta| = {slope:.3f}"
                         + (f" (clipped critic: K = {fits[model]:.3g})" if model in fits else ""))
    caption = "; ".join(notes)
    fig = estimates_figure(rows, fits)
    files = _write(Path(out_dir), "disjoint_estimates", rows, display, caption, fig, logger)
    return {"title": "disjoint supports: divergence estimates of a converged D / critic at fixed theta",
            "rows": display, "columns": list(display[0]), "caption": caption, "numeric": rows, "fits": fits,
            "files": files}


# ----------------------------------------------------------------------------- (b) theta over steps


def trajectory(job) -> dict:
    """{"step": [...], "theta": [...], "grad_step": [...], "grad_g": [...]} of one run: theta and |dL_G/dtheta|
    (``gen/theta``, ``grad_norm/g``) as the loop logged them in the run's scalars.jsonl."""
    log = job.scalar_log()
    pts = [(r["step"], r["gen/theta"]) for r in log if "gen/theta" in r]
    steps, theta = (map(list, zip(*pts)) if pts else ([], []))
    g = [(r["step"], r["grad_norm/g"]) for r in log if "grad_norm/g" in r]
    theta0 = float((job.config.get("net") or {}).get("theta0", 1.0))
    return {"step": [0] + list(steps), "theta": [theta0] + list(theta),
            "grad_step": [s for s, _ in g], "grad_g": [v for _, v in g]}


def theta_figure(runs: list[tuple[str, int, dict]]):
    from gan_cli import viz  # noqa: F401
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6), dpi=80)
    models = sorted({m for m, _, _ in runs}, key=_order)
    color = {m: f"C{i}" for i, m in enumerate(models)}
    seen = set()
    for model, seed, tr in runs:
        lab = model if model not in seen else None
        seen.add(model)
        a1.plot(tr["step"], tr["theta"], color=color[model], lw=1.4, label=lab)
        if tr["grad_step"]:
            a2.semilogy(tr["grad_step"], np.maximum(np.array(tr["grad_g"]), 1e-12), color=color[model], lw=1.2, label=lab)
    a1.axhline(0.0, color="k", lw=0.8, ls="--", label="real data (theta = 0)")
    a1.set_xlabel("generator step")
    a1.set_ylabel("theta")
    a1.set_title("theta learned from theta0 (one line per run)", fontsize=9)
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.set_xlabel("generator step")
    a2.set_ylabel("|dL_G / d theta|")
    a2.set_title("generator gradient (grad_norm/g)", fontsize=9)
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3, which="both")
    fig.suptitle("disjoint supports: learning theta", fontsize=9)
    fig.tight_layout()
    return fig


def report_theta(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """Experiment 2b: theta over generator steps per model, the generator's gradient, and a table."""
    from gan_cli.config import UserError

    jobs = _check_lines(jobs)
    done = sorted([j for j in jobs if j.ok], key=lambda j: (_order(model_name(j)), j.config.get("seed", 0), j.num or 0))
    if not done:
        raise UserError(f"{out_dir}: no completed job to report on (see sweep_summary.csv for the errors).")
    runs, numeric, display = [], [], []
    for j in done:
        tr = trajectory(j)
        model, seed = model_name(j), int(j.config.get("seed", 0))
        runs.append((model, seed, tr))
        th = np.array(tr["theta"], dtype=float)
        st = np.array(tr["step"])
        close = np.nonzero(np.abs(th) < 0.05)[0]
        g = np.array(tr["grad_g"], dtype=float)
        tail = g[-max(1, len(g) // 10):] if g.size else g
        theta_at = dict(zip(tr["step"], tr["theta"]))  # both from the same log steps
        far = np.array([v for s_, v in zip(tr["grad_step"], g) if abs(theta_at.get(s_, 0.0)) > 0.5])
        n = {"model": model, "seed": seed, "theta0": float(th[0]), "theta_final": float(th[-1]),
             "min_abs_theta": float(np.abs(th).min()),
             "first_step_abs_theta_below_0.05": int(st[close[0]]) if close.size else None,
             "grad_g_first": float(g[0]) if g.size else None,
             "grad_g_last10pct_median": float(np.median(tail)) if g.size else None,
             "grad_g_median_while_abs_theta_gt_0.5": float(np.median(far)) if far.size else None,
             "steps": int(st[-1]), "dir": str(j.dir)}
        numeric.append(n)
        display.append({"model": model, "seed": str(seed), "theta0": f"{n['theta0']:g}",
                        "theta final": f"{n['theta_final']:.4f}", "min |theta|": f"{n['min_abs_theta']:.4f}",
                        "first step |theta|<0.05": str(n["first_step_abs_theta_below_0.05"] or "never"),
                        "|grad G| first log": _fmt(n["grad_g_first"], 3) if n["grad_g_first"] is not None else "",
                        "|grad G| while |theta|>0.5 (median)": (f"{n['grad_g_median_while_abs_theta_gt_0.5']:.2e}"
                                                                if n["grad_g_median_while_abs_theta_gt_0.5"] is not None else ""),
                        "|grad G| late (median)": f"{n['grad_g_last10pct_median']:.2e}" if n["grad_g_last10pct_median"] is not None else ""})
    notes = []
    for model in sorted({r["model"] for r in numeric}, key=_order):
        rs = [r for r in numeric if r["model"] == model]
        notes.append(f"{model}: theta {np.mean([r['theta0'] for r in rs]):g} -> {np.mean([r['theta_final'] for r in rs]):.3f}"
                     + (f", late |grad G| ~ {np.median([r['grad_g_last10pct_median'] for r in rs if r['grad_g_last10pct_median'] is not None]):.1e}"
                        if any(r["grad_g_last10pct_median"] is not None for r in rs) else ""))
    caption = "; ".join(notes)
    fig = theta_figure(runs)
    files = _write(Path(out_dir), "disjoint_theta", numeric, display, caption, fig, logger)
    return {"title": "disjoint supports: learning theta from theta0", "rows": display, "columns": list(display[0]),
            "caption": caption, "numeric": numeric, "files": files}
