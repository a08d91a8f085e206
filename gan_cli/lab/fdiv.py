"""Theory lab, experiment 3: f-divergences, mode covering vs mode seeking.

Claim: fitting a single Gaussian Q = N(mu, sigma^2) to a bimodal P by minimising D_f(P || Q)
gives a *mode-covering* fit (mu between the modes, sigma wide enough for both) for divergences
that punish Q for missing mass of P (KL(P || Q), Pearson chi^2), and a *mode-seeking* fit (one
mode, its width) for those that punish Q for putting mass where P has none (reverse KL, Neyman
chi^2); Hellinger, Jensen-Shannon and total variation lie in between and, for a well separated
mixture, have several local minima.  References: Minka 2005, "Divergence measures and message
passing" (alpha-divergences: inclusive vs exclusive, Fig. 1); Theis, van den Oord & Bethge 2016,
"A note on the evaluation of generative models" (Fig. 1: KL vs reverse KL vs JS fit of an isotropic
Gaussian to a mixture); Nowozin, Cseke & Tomioka 2016, "f-GAN" (Sec. 4.1 and Table 3: the same
experiment, a Gaussian fitted with each divergence, next to the exact minimiser).

The run: ``gan-train -m experiment=fdiv`` trains ``model=fgan net=gaussian data=mog1d`` once per
``model.divergence`` (learnable mu and sigma, an MLP critic); ``gan-eval sweep=<folder>`` calls
:func:`report`, which writes ``fdiv.csv`` / ``fdiv.md`` (the table) and ``fdiv.png`` (the learned
densities over the data density, the exact minimisers dashed) into the sweep folder and the
figure to TensorBoard (``<sweep>/tb_summary``, tag ``lab/fdiv``).

The exact minimiser of D_f(P || N(mu, sigma^2)) (quadrature, every local minimum) is
:mod:`gan_cli.lab.fdiv_exact`; its functions are importable from here too.

Caveat for `model.g_objective=practical` (the default of model=fgan): the paper's *practical* objective
(maximise E_Q g_f(V), Nowozin et al. Sec. 3.2).  At the optimal critic T* = f'(p/q) its gradient
is int dq/dtheta f'(p/q) dx, which is minus the gradient of a *different* divergence (Poole et al.
2016, "Improved generator objectives for GANs"): KL(Q || P) for kl, 2 KL(P || Q) for pearson,
Neyman chi^2 / 2 for rkl (tests/test_lab_theory.py checks these numerically); only the saddle-point
generator (``model.g_objective=saddle``, maximise E_Q f*(T); the default of ``experiment=fdiv``) descends
D_f itself.  With the practical objective a trained MLP critic is also far from T* where p is tiny, so
those runs land near, not on, the D_f minimiser.  The preset (conf/experiment/fdiv.yaml) starts every
divergence at (mu, sigma) = (0.5, 0.6): off the symmetry axis mu = 0 (a stationary point of every D_f here, on
which rkl and tv have covering local minima) and inside Neyman chi^2's finite domain; from there the saddle
fits of kl, rkl, pearson, hellinger and js/gan reach the exact global minimiser (``tests/test_lab_theory.py``,
slow).  Total variation (optimal critic +-1/2, piecewise constant: where the critic saturates the generator
gets no gradient) does not.  The ``learned ~`` column names the exact local minimum the run ended nearest to;
:func:`summary` gives mean ± sd over seeds and how many seeds ended within tolerance.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .fdiv_exact import (DIVERGENCE_ORDER, LABELS, default_starts, divergence, exact_minimiser,  # noqa: F401
                         exact_table, finite_domain, local_minima, log_mixture_pdf, log_normal_pdf, mixture_params,
                         nearest_minimum, regime)


# ----------------------------------------------------------------------------- runs


def _learned(job) -> tuple[float, float]:
    """(mu, sigma) at the end of a run, of the generator evaluations sample from (the EMA one when the run keeps
    one, ``ema.beta``): results.json's gen_ema/* or gen/*, else the checkpoint's generator_ema or generator."""
    final = (job.results or {}).get("final") or {}
    for prefix in ("gen_ema/", "gen/"):
        if prefix + "mu" in final and prefix + "sigma" in final:
            return float(final[prefix + "mu"]), float(final[prefix + "sigma"])
    path = job.checkpoint
    if path is None:
        return math.nan, math.nan
    from gan_cli.runs.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    g = state.get("generator_ema") or state["generator"]
    return float(g["mu"]), float(math.exp(float(g["log_sigma"])))


def _other_minima(ex: dict, center: float, tol: float = 0.02) -> list[tuple[dict, bool]]:
    """The local minima other than the global one (and its mirror image), as (minimum, mirrored) pairs:
    with a symmetric target a pair (mu, sigma), (2 c - mu, sigma) is listed once as ``±``."""
    def same(a, b):
        return abs(a["mu"] - b["mu"]) < tol and abs(a["sigma"] - b["sigma"]) < tol

    def mirror(a):
        return {"mu": 2 * center - a["mu"], "sigma": a["sigma"], "value": a["value"]}

    best = {"mu": ex["mu"], "sigma": ex["sigma"]}
    out: list[tuple[dict, bool]] = []
    for m in ex["minima"]:
        if same(m, best) or (ex["symmetric"] and same(mirror(m), best)):
            continue
        if any(same(m, o) or same(mirror(m), o) for o, _ in out):
            continue
        has_mirror = abs(m["mu"] - center) > tol and any(same(mirror(m), o) for o in ex["minima"])
        out.append(({**m, "mu": center + abs(m["mu"] - center)} if has_mirror else m, has_mirror))
    return out


def notes(numeric: list[dict], std: float) -> list[str]:
    """One line per run that ended away from every exact minimum, with the likely reason."""
    out = []
    for r in numeric:
        if r["status"] != "completed" or r["learned_near"] != "none":
            continue
        est = r.get("estimate_final")
        seen = (f"; its critic's final estimate is {est:.3g} where the exact D_f is {r['D_f_learned']:.3g}"
                if est is not None else "")
        why = ""
        s0 = r.get("sigma0")
        if s0 is not None and not finite_domain(r["divergence"], float(s0), std):
            why = (f" (D_f(P ‖ Q) is infinite at the start, sigma0 = {float(s0):g}: the critic's finite lower bound "
                   f"does not steer the generator)")
        elif r["divergence"] == "tv":
            why = (" (the TV critic tanh(v)/2 is optimal at ±1/2, piecewise constant; where it saturates neither "
                   "player gets a gradient, cf. experiment 2)")
        out.append(f"{r['divergence']} (seed {r['seed']}) ended at ({r['learned_mu']:.2f}, {r['learned_sigma']:.3g}), "
                   f"near no exact minimum{seen}{why}")
    return out


def _fmt(v, nd=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "inf" if isinstance(v, float) and v == math.inf else "n/a"
    v = round(float(v), nd) + 0.0  # no "-0.000"
    return f"{v:.{nd}f}"


def collect_rows(jobs) -> tuple[list[dict], list[dict], tuple[np.ndarray, float]]:
    """(numeric rows, display rows, (centers, std)) — one row per job, in DIVERGENCE_ORDER then seed."""
    from gan_cli.config import UserError

    fjobs = [j for j in jobs if j.config and str((j.config.get("model") or {}).get("name")) == "fgan"]
    if not fjobs:
        raise UserError("the fdiv report needs model=fgan jobs (gan-train -m experiment=fdiv); none found.")
    datas = {str((j.config.get("data") or {}).get("name")) for j in fjobs}
    if datas != {"mog1d"} or any(str((j.config.get("net") or {}).get("name")) != "gaussian" for j in fjobs):
        raise UserError(f"the fdiv report compares a Gaussian generator (net=gaussian) on data=mog1d; got data={','.join(sorted(datas))}.")
    centers, std = mixture_params(fjobs[0].config["data"])

    def key(j):
        d = str(j.config["model"].get("divergence"))
        return (DIVERGENCE_ORDER.index(d) if d in DIVERGENCE_ORDER else 99, d, j.config.get("seed", 0), j.num or 0)

    numeric, display = [], []
    for j in sorted(fjobs, key=key):
        div = str(j.config["model"]["divergence"])
        ex = exact_minimiser(div, centers, std)
        mu, sg = _learned(j) if j.ok else (math.nan, math.nan)
        near, _ = nearest_minimum(mu, sg, ex)
        d_learned = divergence(div, mu, sg, centers, std) if j.ok else math.nan
        others = _other_minima(ex, float(np.mean(centers)))
        net = j.config.get("net") or {}
        sps = (j.results or {}).get("steps_per_s") if j.ok else None
        num = {
            "divergence": div, "seed": j.config.get("seed"), "status": j.status,
            "g_objective": str(j.config["model"].get("g_objective", "practical")),
            "mu0": net.get("mu0"), "sigma0": net.get("sigma0"), "steps": j.config.get("steps"),
            "learned_mu": mu, "learned_sigma": sg, "exact_mu": ex["mu"], "exact_sigma": ex["sigma"],
            "exact_symmetric": ex["symmetric"], "D_f_learned": d_learned, "D_f_min": ex["value"],
            "estimate_final": (j.results or {}).get("final", {}).get(f"estimate/fdiv_{div}") if j.ok else None,
            "learned_regime": regime(mu, sg, centers, std), "exact_regime": regime(ex["mu"], ex["sigma"], centers, std),
            "learned_near": near,
            "other_minima": "; ".join(f"({'±' if pm_ else ''}{_fmt(x['mu'])}, {x['sigma']:.3f}) {x['value']:.4g}"
                                      for x, pm_ in others),
            "seconds": (float(j.config.get("steps")) / sps) if sps else None,
            "dir": str(j.dir) if j.dir else "",
        }
        numeric.append(num)
        pm = "±" if ex["symmetric"] else ""
        display.append({
            "divergence": f"{div} ({LABELS.get(div, div)})", "seed": str(j.config.get("seed")),
            "learned mu": _fmt(mu) if j.ok else j.status, "learned sigma": _fmt(sg) if j.ok else "",
            "exact mu": pm + _fmt(abs(ex["mu"]) if pm else ex["mu"]), "exact sigma": _fmt(ex["sigma"]),
            "D_f(learned)": _fmt(d_learned, 4) if j.ok else "", "min D_f": _fmt(ex["value"], 4),
            "learned fit": num["learned_regime"] if j.ok else "", "exact fit": num["exact_regime"],
            "learned ~": near if j.ok else "",
            "other local minima (mu, sigma) D_f": num["other_minima"] or "-",
        })
    return numeric, display, (centers, std)


# ----------------------------------------------------------------------------- over seeds

MU_TOL, SIGMA_RTOL = 0.15, 0.05  # "fits the exact minimiser": |mu| within 0.15, sigma within 5 %


def within_tolerance(mu: float, sigma: float, ex: dict) -> bool:
    """(mu, sigma) within MU_TOL of the exact mu (of either mirror image when the minimum is symmetric) and
    within SIGMA_RTOL of the exact sigma."""
    if not (math.isfinite(mu) and math.isfinite(sigma)):
        return False
    d_mu = abs(abs(mu) - abs(ex["mu"])) if ex["symmetric"] else abs(mu - ex["mu"])
    return d_mu <= MU_TOL and abs(sigma / ex["sigma"] - 1) <= SIGMA_RTOL


def summary(numeric: list[dict]) -> list[dict]:
    """One row per (generator objective, divergence): learned mu and sigma as mean ± sd over the seeds (|mu| where
    the exact minimum is a mirror pair ±mu, since seeds may pick either mode), the exact minimiser, how many seeds
    ended within tolerance (:func:`within_tolerance`), the steps and the mean seconds per fit."""
    groups: dict[tuple, list[dict]] = {}
    for r in numeric:
        groups.setdefault((r.get("g_objective", "practical"), r["divergence"]), []).append(r)
    rows = []
    for (obj, div), rs in groups.items():
        ok = [r for r in rs if r["status"] == "completed" and math.isfinite(r["learned_mu"])]
        sym = bool(rs[0]["exact_symmetric"])
        mus = np.array([abs(r["learned_mu"]) if sym else r["learned_mu"] for r in ok])
        sgs = np.array([r["learned_sigma"] for r in ok])
        ex = {"mu": rs[0]["exact_mu"], "sigma": rs[0]["exact_sigma"], "symmetric": sym}
        secs = [r["seconds"] for r in ok if r.get("seconds")]

        def ms(a):
            if not a.size:
                return "n/a"
            return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if a.size > 1 else f"{a[0]:.3f}"

        rows.append({
            "objective": obj, "divergence": div, "learned |mu|" if sym else "learned mu": ms(mus),
            "learned sigma": ms(sgs), "exact (mu, sigma)": f"({'±' if sym else ''}{_fmt(abs(ex['mu']) if sym else ex['mu'])}, "
                                                           f"{_fmt(ex['sigma'])})",
            "within tol": f"{sum(within_tolerance(r['learned_mu'], r['learned_sigma'], ex) for r in ok)}/{len(rs)}",
            "seeds": ",".join(str(r["seed"]) for r in rs), "steps": ",".join(sorted({str(r["steps"]) for r in rs})),
            "s per fit": f"{np.mean(secs):.0f}" if secs else "n/a",
        })
    order = {d: i for i, d in enumerate(DIVERGENCE_ORDER)}
    rows.sort(key=lambda r: (r["objective"] != "saddle", order.get(r["divergence"], 99), r["divergence"]))
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """The summary as a markdown table (the learned-mu column is named per row: mu or |mu|)."""
    cols = ["objective", "divergence", "learned mu (|mu| if ±)", "learned sigma", "exact (mu, sigma)", "within tol",
            "seeds", "steps", "s per fit"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        mu = r.get("learned mu", r.get("learned |mu|"))
        cells = [str(v) for v in (r["objective"], r["divergence"], mu, r["learned sigma"], r["exact (mu, sigma)"],
                                  r["within tol"], r["seeds"], r["steps"], r["s per fit"])]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figure


def figure(numeric: list[dict], centers, std: float):
    """One panel per divergence: the data density (grey), the learned Gaussian (colour), the exact
    global minimiser(s) (dashed; both mirror images when symmetric)."""
    from gan_cli import viz  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt

    rows: dict[str, list[dict]] = {}
    for r in numeric:
        rows.setdefault(r["divergence"], []).append(r)
    divs = list(rows)
    ncol = min(4, len(divs))
    nrow = int(math.ceil(len(divs) / ncol))
    c = np.asarray(centers, dtype=np.float64)
    lo, hi = c.min() - 5 * std - 1.5, c.max() + 5 * std + 1.5
    x = np.linspace(lo, hi, 600)
    p = np.exp(log_mixture_pdf(x, c, std))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.3 * nrow), dpi=80, squeeze=False, sharex=True)
    for k, div in enumerate(divs):
        ax = axes[k // ncol][k % ncol]
        ax.fill_between(x, p, color="0.75", label="data P")
        ex = exact_minimiser(div, c, std)
        for sgn in ((1, -1) if ex["symmetric"] else (1,)):
            mu_e = c.mean() + sgn * (ex["mu"] - c.mean())
            ax.plot(x, np.exp(log_normal_pdf(x, mu_e, ex["sigma"])), "k--", lw=1.1,
                    label="exact argmin" if sgn == 1 else None)
        titles = []
        for i, r in enumerate(rows[div]):
            mu, sg = r["learned_mu"], r["learned_sigma"]
            if math.isfinite(mu) and math.isfinite(sg):
                ax.plot(x, np.exp(log_normal_pdf(x, mu, sg)), color=f"C{i}", lw=1.6,
                        label=f"learned (seed {r['seed']})" if len(rows[div]) > 1 else "learned")
                titles.append(f"({_fmt(mu, 2)}, {sg:.2f})")
            else:
                titles.append(r["status"])
        sigmas = [ex["sigma"]] + [r["learned_sigma"] for r in rows[div] if math.isfinite(r["learned_sigma"])]
        peak = max([p.max()] + [1 / (math.sqrt(2 * math.pi) * sg) for sg in sigmas if sg > 0])
        ax.set_ylim(0, 1.1 * min(peak, 3 * p.max()))
        ax.set_xlim(lo, hi)
        ax.set_yticks([])
        pm = "±" if ex["symmetric"] else ""
        mu_txt = _fmt(abs(ex["mu"]) if pm else ex["mu"], 2)
        ax.set_title(f"{div}: exact ({pm}{mu_txt}, {ex['sigma']:.2f})\nlearned " + ",\n".join(", ".join(titles[i:i + 2]) for i in range(0, len(titles), 2)), fontsize=7)
        if k == 0:
            ax.legend(fontsize=6, loc="upper left")
    for k in range(len(divs), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fig.suptitle("N(mu, sigma^2) fitted to 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) by f-GAN: (mu, sigma) learned vs exact "
                 "argmin D_f(P || Q)", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the report


def markdown(display: list[dict]) -> str:
    cols = list(display[0])
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in display]
    return "\n".join(lines)


def _g_objective_note(jobs) -> str:
    """What the runs' generators minimised (model.g_objective of each job's saved config)."""
    kinds = sorted({str(((j.config or {}).get("model") or {}).get("g_objective", "practical")) for j in jobs})
    practical = ("f-GAN's practical objective (Nowozin et al. 2016 Sec. 3.2), which at the optimal critic descends "
                 "another divergence (kl: KL(Q‖P), pearson: KL(P‖Q), rkl: Neyman chi2; Poole et al. 2016)")
    saddle = "the saddle-point objective (G minimises the bound F, eq. 6), which at the optimal critic descends D_f itself"
    text = {"practical": practical, "saddle": saddle}
    if len(kinds) == 1:
        return f"The generator uses {text.get(kinds[0], kinds[0])}."
    return "The runs mix generator objectives (" + ", ".join(kinds) + "): model.g_objective is in each job's config."


def report(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """fdiv.csv / fdiv.md (learned vs exact (mu, sigma) per divergence) and fdiv.png; the figure and the
    table also go to TensorBoard (``lab/fdiv``)."""
    from gan_cli import viz
    from gan_cli.runs.results import write_csv

    numeric, display, (centers, std) = collect_rows(jobs)
    out_dir = Path(out_dir)
    files = [out_dir / "fdiv.csv", out_dir / "fdiv.md"]
    write_csv(files[0], numeric, list(numeric[0]))
    caption = (
        "exact: D_f(P || N(mu, sigma^2)) by quadrature, minimised by Nelder-Mead from "
        f"{len(default_starts(centers, std))} starts; ± = two mirror-image global minima.  "
        "learned ~: the exact local minimum the run ended next to (global / local / none).  "
        "js and gan differ by a constant in T, so they train identically.  " + _g_objective_note(jobs)
    )
    extra = notes(numeric, std)
    if extra:
        caption += "  " + "; ".join(extra) + "."
    md = markdown(display)
    summ = summary(numeric)
    summ_md = summary_markdown(summ)
    caption += (f"  Summary over seeds: mean ± sd (|mu| where the exact minimum is ±mu); within tol: |mu| within "
                f"{MU_TOL} and sigma within {SIGMA_RTOL:.0%} of the exact minimiser.")
    files[1].write_text(f"{md}\n\n{summ_md}\n\n{caption}\n")
    fig = figure(numeric, centers, std)
    if logger is not None:
        logger.log_text("lab/fdiv", md + "\n\n" + caption, 0)
        logger.log_figure("lab/fdiv", fig, 0)
    files.append(out_dir / "fdiv.png")
    viz.figure_to_png(fig, files[-1])
    return {"title": "f-divergences: Gaussian fitted to a two-mode mixture, learned vs exact argmin D_f(P || Q)",
            "rows": display, "columns": list(display[0]), "caption": caption, "numeric": numeric, "summary": summ,
            "files": [str(f) for f in files]}
