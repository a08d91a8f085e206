"""Theory lab, experiment 5: the truncation trade-off (fidelity against diversity).

Claim (Brock et al. 2019, BigGAN, Sec. 3.1 and Fig. 17; Karras et al. 2019, StyleGAN, Sec. 3.1
and Appendix B; Kynkaanniemi et al. 2019, "Improved Precision and Recall", Sec. 5.1 / Fig. 9):
drawing the latent closer to its mode makes samples more typical — precision goes up — at the
cost of variety — recall goes down — and FID, which charges both, has an optimum near no
truncation.  Two kinds (gan_cli.truncation): ``resample`` (BigGAN: redraw entries with
|z| > psi; psi -> inf is no truncation) and ``interpolate`` (StyleGAN: z' = psi z; psi = 1 is no
truncation, psi > 1 extrapolates).

Two ways in:

- ``gan-eval ckpt=<run> truncation.kind=both truncation.sweep=[2.0,1.5,1.0,0.75,0.5,0.25]``
  (any run) writes ``truncation.csv`` and ``truncation.png`` beside the run;
- ``gan-train experiment=truncation`` trains a generator for it; ``gan-eval sweep=<run folder>``
  then runs :func:`report` (table ``truncation.csv``, figure ``truncation.png`` in the folder,
  figure in ``<folder>/tb_summary``); ``truncation.sweep=[...]`` / ``metrics.num_samples=N`` on
  that command change the psi grid / sample count.

The figure has three panels: precision against recall (one curve per kind, points labelled
with psi), precision and recall against psi, and FID (W1 for toy data) against psi.
"""
from __future__ import annotations

import math
from pathlib import Path

KINDS = ("resample", "interpolate")
DEFAULT_PSIS = (2.0, 1.5, 1.0, 0.75, 0.5, 0.25)
_COLORS = {"resample": "tab:blue", "interpolate": "tab:orange", "none": "k"}


def _split(name: str) -> tuple[str, float]:
    kind, _, psi = name.partition(":")
    return kind, (float(psi) if psi else 1.0)


def _key(keys, prefix: str):
    return next((k for k in sorted(keys) if k.startswith(prefix)), None)


def tradeoff_figure(runs: dict, title: str = ""):
    """Figure of a truncation sweep ``{"<kind>:<psi>": {metric: value}}``; None without precision/recall."""
    from gan_cli import viz  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt

    keys = {k for v in runs.values() for k in v}
    prec, rec = _key(keys, "precision"), _key(keys, "recall")
    if not (prec and rec):
        return None
    dist = _key(keys, "fid") or _key(keys, "w1")
    by_kind: dict[str, list[tuple[float, dict]]] = {}
    for name, vals in runs.items():
        if name == "none":
            continue
        kind, psi = _split(name)
        by_kind.setdefault(kind, []).append((psi, vals))
    ncol = 3 if dist else 2
    fig, axes = plt.subplots(1, ncol, figsize=(3.6 * ncol, 3.4), dpi=90)
    for kind, pts in by_kind.items():
        pts.sort(key=lambda p: p[0])
        c = _COLORS.get(kind, None)
        psis = [p for p, _ in pts]
        r = [v.get(rec, math.nan) for _, v in pts]
        p = [v.get(prec, math.nan) for _, v in pts]
        axes[0].plot(r, p, "o-", color=c, label=kind, ms=4)
        for psi, x, y in zip(psis, r, p):
            axes[0].annotate(f"{psi:g}", (x, y), fontsize=6, textcoords="offset points", xytext=(3, 3), color=c)
        axes[1].plot(psis, p, "o-", color=c, label=f"precision ({kind})", ms=4)
        axes[1].plot(psis, r, "s--", color=c, label=f"recall ({kind})", ms=4)
        if dist:
            axes[2].plot(psis, [v.get(dist, math.nan) for _, v in pts], "o-", color=c, label=kind, ms=4)
    if "none" in runs:  # the untruncated generator, for reference
        axes[0].plot([runs["none"].get(rec)], [runs["none"].get(prec)], "k*", ms=9, label="no truncation")
    axes[0].set_xlabel(rec)
    axes[0].set_ylabel(prec)
    axes[0].set_title("precision vs recall (labels: psi)", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("psi (smaller = stronger truncation)")
    axes[1].set_ylabel("precision / recall")
    axes[1].set_title("fidelity and diversity vs psi", fontsize=8)
    axes[1].legend(fontsize=6)
    if dist:
        axes[2].set_xlabel("psi")
        axes[2].set_ylabel(dist)
        axes[2].set_title(f"{dist} vs psi (lower is better)", fontsize=8)
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def sweep(G, latent: int, device, evaluator, seed: int, psis, kinds=KINDS, with_none: bool = True) -> dict:
    """``{"none": metrics, "<kind>:<psi>": metrics, ...}``: the evaluator on G's samples, untruncated and
    with every truncation kind and psi (the one truncation sweep of gan-eval and the lab)."""
    from gan_cli.metrics.evaluator import generator_sampler
    from gan_cli.truncation import check

    for kind in kinds:
        for psi in psis:
            check(kind, float(psi))
    runs = {"none": evaluator(generator_sampler(G, latent, device, seed))} if with_none else {}
    for kind in kinds:
        for psi in psis:
            runs[f"{kind}:{float(psi):g}"] = evaluator(generator_sampler(G, latent, device, seed, kind, float(psi)))
    return runs


def sweep_checkpoint(ckpt: Path, psis, num_samples: int = 0, seed: int = 0, device: str = "auto", kinds=KINDS) -> dict:
    """:func:`sweep` for a checkpoint, scored with its run's own metrics config."""
    from omegaconf import OmegaConf

    from gan_cli.build import build_evaluator, load_generator, pick_device

    dev = pick_device(device)
    G, tcfg, data, latent, _step = load_generator(ckpt, dev)
    metrics_cfg = tcfg.metrics if not num_samples else OmegaConf.merge(tcfg.metrics, {"num_samples": int(num_samples)})
    return sweep(G, latent, dev, build_evaluator(metrics_cfg, tcfg.data, data, dev), seed, psis, kinds)


def rows(runs: dict, **lead) -> list[dict]:
    """One row per entry of a sweep: ``kind``, ``psi`` (inf: no truncation), then every metric."""
    out = []
    for name, vals in runs.items():
        kind, psi = _split(name) if name != "none" else ("none", math.inf)
        out.append({**lead, "kind": kind, "psi": psi, **vals})
    return out


def columns(rows_: list[dict], lead=("kind", "psi")) -> list[str]:
    """The one CSV schema: lead columns, precision, recall, FID (or W1), then the other metrics sorted."""
    keys = sorted({k for r in rows_ for k in r} - set(lead))
    first = [k for k in (_key(keys, "precision"), _key(keys, "recall"), _key(keys, "fid") or _key(keys, "w1")) if k]
    return list(lead) + first + [k for k in keys if k not in first]


def write(out_dir: Path, rows_: list[dict], lead=("kind", "psi")) -> Path:
    """``truncation.csv`` in ``out_dir`` (the one schema: :func:`columns`)."""
    from gan_cli.runs.results import write_csv

    path = Path(out_dir) / "truncation.csv"
    write_csv(path, rows_, columns(rows_, lead))
    return path


def report(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """Truncation sweep (both kinds) of every completed job: truncation.csv, truncation.png."""
    from gan_cli import viz
    from gan_cli.config import UserError

    done = [j for j in jobs if j.ok and j.checkpoint is not None]
    if not done:
        raise UserError(f"{out_dir}: no completed run with a checkpoint to sweep truncation on.")
    psis = list(cfg.truncation.sweep) if cfg is not None and cfg.truncation.sweep else list(DEFAULT_PSIS)
    n = int(cfg.metrics.num_samples) if cfg is not None and cfg.metrics.num_samples else 0
    seed = int(cfg.seed) if cfg is not None else 0
    device = str(cfg.device) if cfg is not None else "auto"
    all_rows, files = [], []
    multi = len(done) > 1
    for j in done:
        runs = sweep_checkpoint(j.checkpoint, psis, n, seed, device)
        all_rows += rows(runs, **({"job": j.num} if multi else {}))
        suffix = f"_{j.num}" if multi else ""
        model = j.config.get("model", {}).get("name", "?")
        data = j.config.get("data", {}).get("name", "?")
        job = f"job {j.num}, " if j.num is not None else ""
        n_used = n or (j.config.get("metrics") or {}).get("num_samples") or "the default"
        fig = tradeoff_figure(runs, f"truncation trade-off: {model} on {data} ({job}step {j.results.get('step')}, "
                                    f"{n_used} samples)")
        if fig is not None:
            if logger is not None:
                logger.log_figure(f"lab/truncation{suffix}", fig, 0)
            png = Path(out_dir) / f"truncation{suffix}.png"
            viz.figure_to_png(fig, png)
            files.append(png)
    lead = ("job", "kind", "psi") if multi else ("kind", "psi")
    files.insert(0, write(out_dir, all_rows, lead))
    shown = columns(all_rows, lead)[:len(lead) + 3]
    return {"title": "truncation trade-off (psi=inf: no truncation)", "rows": all_rows, "columns": shown,
            "files": [str(f) for f in files]}
