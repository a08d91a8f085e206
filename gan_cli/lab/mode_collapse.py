"""Theory lab, experiment 1: mode collapse on mixtures of Gaussians (ring8, grid25).

Claim: the minimax and non-saturating GANs and the mode-seeking reverse-KL f-GAN tend to drop
modes of a multi-modal target; the mode-covering KL f-GAN and the Wasserstein critics
(WGAN, WGAN-GP) spread over more of them, often at the price of fewer high-quality samples
(Goodfellow 2016 NIPS tutorial Sec. 5.1.1; Nowozin et al. 2016 f-GAN Sec. 2 / Fig. 1 on KL vs
reverse KL; Arjovsky et al. 2017 Sec. 4.2; Gulrajani et al. 2017 Fig. 1/2 on the 8-Gaussian and
25-Gaussian toys).  Metrics: the VEEGAN/PacGAN protocol (2,500 samples, a sample is high
quality within 3 std of its nearest mode, a mode is captured by >= 1 high-quality sample,
reverse KL of the mode histogram to uniform) and the exact W1 between 2,500 generated and
2,500 real points (gan_cli.metrics.toy), each as mean and std over seeds.

``gan-train -m experiment=mode_collapse`` (6 models x 3 seeds on ring8; ``data=grid25`` for
the grid), then ``gan-eval sweep=<multirun folder>`` writes ``mode_collapse.csv`` (the table)
and ``mode_collapse.png`` (one scatter plot per model: the final generator of the model's
lowest-seed job, 2,000 samples, modes marked) into the sweep folder and the figure into
``<sweep>/tb_summary``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

MODEL_ORDER = ("gan", "nsgan", "fgan_kl", "fgan_rkl", "fgan_js", "fgan_pearson", "fgan_hellinger", "fgan_gan",
               "fgan_tv", "fgan_neyman", "wgan", "wgan_gp")
METRICS = (("modes", "modes"), ("hq", "hq %"), ("rkl", "reverse KL"), ("w1", "W1"))
N_SCATTER = 2000


def model_label(config: dict) -> str:
    """gan / nsgan / wgan / wgan_gp, or fgan_<divergence>."""
    m = config.get("model", {}) or {}
    name = str(m.get("name", "?"))
    return f"fgan_{m.get('divergence', 'kl')}" if name == "fgan" else name


def _order(label: str):
    return (MODEL_ORDER.index(label) if label in MODEL_ORDER else len(MODEL_ORDER), label)


def _metric(scalars: dict, prefix: str):
    key = next((k for k in sorted(scalars) if k.startswith(prefix + "_") and "_k" not in k[len(prefix):]), None)
    return key, scalars.get(key) if key else None


def summarize_jobs(jobs) -> tuple[list[dict], list[dict]]:
    """(numeric rows for the CSV, display rows "mean ± std") per (data, model)."""
    groups: dict[tuple[str, str], list] = {}
    for j in jobs:
        if not j.config:
            continue
        data = str((j.config.get("data") or {}).get("name", "?"))
        groups.setdefault((data, model_label(j.config)), []).append(j)
    numeric, display = [], []
    for (data, model) in sorted(groups, key=lambda k: (k[0], _order(k[1]))):
        g = groups[(data, model)]
        done = [j for j in g if j.ok]
        n_modes = (g[0].config.get("data") or {}).get("n_modes")
        row = {"data": data, "model": model, "runs": len(done), "failed": len(g) - len(done),
               "seeds": " ".join(str(j.config.get("seed")) for j in done)}
        disp = {"data": data, "model": model, "runs": f"{len(done)}/{len(g)}"}
        for prefix, title in METRICS:
            vals = [v for v in (_metric(j.scalars, prefix)[1] for j in done) if v is not None]
            vals = np.array(vals, dtype=float)
            if prefix == "hq":
                vals = 100.0 * vals
            finite = vals[np.isfinite(vals)]
            mean = float(finite.mean()) if finite.size else math.nan
            std = float(finite.std()) if finite.size else math.nan
            row[f"{prefix}_mean"], row[f"{prefix}_std"] = mean, std
            head = f"{title} (of {n_modes})" if prefix == "modes" and n_modes else title
            nan_note = f" ({vals.size - finite.size} NaN)" if finite.size < vals.size else ""
            disp[head] = (f"{mean:.3g} ± {std:.2g}" if finite.size else "n/a") + nan_note
        numeric.append(row)
        display.append(disp)
    return numeric, display


def scatter_figure(jobs, n: int = N_SCATTER, seed: int = 0, device: str = "cpu"):
    """One scatter plot per (data, model): the lowest-seed completed job's final generator."""

    from gan_cli import viz  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt

    from gan_cli import seeds
    from gan_cli.build import load_generator, pick_device
    from gan_cli.metrics.evaluator import generator_sampler

    done = [j for j in jobs if j.ok and j.checkpoint is not None]
    panels: dict[tuple[str, str], object] = {}
    for j in sorted(done, key=lambda j: (j.config.get("seed", 0), j.num or 0)):
        key = (str(j.config["data"]["name"]), model_label(j.config))
        panels.setdefault(key, j)
    datas = sorted({d for d, _ in panels})
    models = sorted({m for _, m in panels}, key=_order)
    if not panels:
        return None
    dev = pick_device(device)
    fig, axes = plt.subplots(len(datas), len(models), figsize=(2.3 * len(models), 2.4 * len(datas)), dpi=80,
                             squeeze=False)
    for r, data in enumerate(datas):
        for c, model in enumerate(models):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            j = panels.get((data, model))
            if j is None:
                ax.set_title(f"{model}: no run", fontsize=8)
                continue
            G, _cfg, src, latent, step = load_generator(j.checkpoint, dev)
            fake = generator_sampler(G, latent, dev, seed)(n).cpu().numpy()
            real = src.sample(n, seeds.generator(seed, "pictures_real", dev)).x.cpu().numpy()
            centers = src.info.centers.cpu().numpy() if src.info.centers is not None else None
            ax.scatter(real[:, 0], real[:, 1], s=1, c="tab:blue", alpha=0.25, rasterized=True)
            ax.scatter(fake[:, 0], fake[:, 1], s=1, c="tab:orange", alpha=0.5, rasterized=True)
            if centers is not None:
                ax.scatter(centers[:, 0], centers[:, 1], s=12, marker="x", c="k", lw=0.8)
                lim = np.abs(centers).max() * 1.45
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            _, modes = _metric(j.scalars, "modes")
            _, hq = _metric(j.scalars, "hq")
            _, w1 = _metric(j.scalars, "w1")
            stats = ""
            if modes is not None and hq is not None and centers is not None:
                stats = f"\n{modes:.0f}/{len(centers)} modes, hq {100 * hq:.0f}%" + (f", W1 {w1:.2f}" if w1 is not None else "")
            ax.set_title(f"{model} ({data}, seed {j.config.get('seed')}){stats}", fontsize=7)
    fig.suptitle("mode collapse: generated (orange) vs real (blue), modes x", fontsize=9)
    fig.tight_layout()
    return fig


def report(jobs, out_dir: Path, logger, cfg=None) -> dict:
    """mode_collapse.csv (mean/std over seeds per model) and mode_collapse.png (scatter per model)."""
    from gan_cli import viz
    from gan_cli.config import UserError
    from gan_cli.runs.results import write_csv

    if not any(j.ok for j in jobs):
        raise UserError(f"{out_dir}: no completed job to report on (see sweep_summary.csv for the errors).")
    numeric, display = summarize_jobs(jobs)
    out_dir = Path(out_dir)
    files = [out_dir / "mode_collapse.csv"]
    write_csv(files[0], numeric, list(numeric[0]))
    fig = scatter_figure(jobs, seed=int(cfg.seed) if cfg is not None else 0,
                         device=str(cfg.device) if cfg is not None else "cpu")
    if fig is not None:
        if logger is not None:
            logger.log_figure("lab/mode_collapse", fig, 0)
        files.append(out_dir / "mode_collapse.png")
        viz.figure_to_png(fig, files[-1])
    return {"title": "mode collapse: mean ± std over seeds", "rows": display, "columns": list(display[0]),
            "numeric": numeric, "files": [str(f) for f in files]}
