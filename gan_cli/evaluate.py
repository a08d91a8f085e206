"""gan-eval: score checkpoints (or a folder of images) with a metric suite.

``gan-eval ckpt=<run folder or checkpoint>`` rebuilds the generator from the checkpoint's own
config, samples, runs the suite, prints a table, writes ``metrics.json`` beside the checkpoint
and logs ``eval/*`` scalars to the run's TensorBoard.  ``truncation.kind`` / ``truncation.psi``
apply the truncation trick; ``truncation.sweep=[1.0,0.8,...]`` evaluates each psi and writes a
table and a precision-vs-recall plot (``truncation.kind=both``: resample and interpolate in one
table and figure).  ``folder=<dir> data=<name>`` scores images made by any tool against a data
set.  ``sweep=<multirun folder>`` summarises a whole sweep instead (gan_cli.sweep).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli import checkpoint as ck
from gan_cli.config import UserError, register_configs

register_configs()


def _ckpt_file(path: str) -> tuple[Path, dict | None]:
    """(checkpoint file, its state if already loaded): a run folder gives its newest loadable checkpoint."""
    p = Path(path).expanduser()
    if p.is_dir():  # newer checkpoints that cannot be loaded are skipped with a warning
        return ck.newest_loadable_checkpoint(p, who="gan-eval", option="ckpt")
    if not p.exists():
        raise UserError(f"ckpt={path}: no such file or folder.")
    return p, None


def load_generator(ckpt_path: Path, device, state: dict | None = None):
    """(G, train config, data source, latent size, step) rebuilt from a checkpoint's own config."""
    from gan_cli.data import build_data
    from gan_cli.loop import build_generator_and_critic, load_config, resolved_latent_dim

    if state is None:
        state = ck.load_checkpoint(ckpt_path)
    cfg = load_config(state["config"])
    data = build_data(cfg.data, device)
    G, _ = build_generator_and_critic(cfg, data.info, device)
    try:
        G.load_state_dict(state["generator"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {ckpt_path} does not fit its own config's generator ({str(e).splitlines()[0][:160]}).") from None
    G.eval()
    return G, cfg, data, resolved_latent_dim(cfg), int(state["step"])


def _folder_sampler(folder: Path, data_cfg):
    from gan_cli.data import load_images

    cfg = OmegaConf.merge(data_cfg, {"name": "image_folder", "kind": "image", "path": str(folder), "limit": 0})
    images, _ = load_images(cfg, "train")
    from gan_cli.metrics.features import tensor_sampler

    return tensor_sampler(images), images.shape[0]


def _print_table(title: str, rows: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows.items():
        t.add_row(k, f"{v:.5g}" if isinstance(v, float) else str(v))
    Console().print(t)


def evaluate(cfg: DictConfig) -> dict:
    """Run gan-eval for a composed config; returns what metrics.json holds."""
    from gan_cli.loop import pick_device
    from gan_cli.metrics.suite import SuiteContext, generator_sampler, resolve_suite, run_suite
    from gan_cli.truncation import check

    if cfg.sweep:  # gan-eval sweep=<multirun folder>: one table (and lab report) for all jobs
        if cfg.ckpt or cfg.folder:
            raise UserError("sweep=<folder> summarises a whole sweep: leave out ckpt= and folder=.")
        from gan_cli.sweep import summarize

        return summarize(cfg.sweep, cfg.sort_by, cfg.plot_x, cfg.plot_y, cfg=cfg, tensorboard=cfg.tensorboard)
    device = pick_device(cfg.device)
    if bool(cfg.ckpt) == bool(cfg.folder):
        raise UserError("gan-eval needs exactly one of ckpt=<run folder or checkpoint> or folder=<images> data=<name>.")
    both = cfg.truncation.kind == "both"  # resample and interpolate in one sweep and figure
    if both and not cfg.truncation.sweep:
        raise UserError("truncation.kind=both needs truncation.sweep=[psi,...], e.g. truncation.sweep=[2.0,1.0,0.7,0.5].")
    check("interpolate" if both else cfg.truncation.kind, cfg.truncation.psi)
    for psi in cfg.truncation.sweep:
        for kind in ("resample", "interpolate") if both else (cfg.truncation.kind if cfg.truncation.kind != "none" else "interpolate",):
            check(kind, psi)

    if cfg.ckpt:
        ckpt_path, state = _ckpt_file(cfg.ckpt)
        G, tcfg, data, latent, step = load_generator(ckpt_path, device, state)
        metrics_cfg = OmegaConf.merge(tcfg.metrics, cfg.metrics) if cfg.metrics.suite == "auto" else cfg.metrics
        data_cfg, info = tcfg.data, data.info
        out_dir = Path(cfg.out or ckpt_path.parent.parent)
        source = {"checkpoint": str(ckpt_path), "step": step}
    else:
        if cfg.data is None:
            raise UserError("folder=<images> needs data=<name> to compare against (e.g. data=fashion_mnist).")
        from gan_cli.data import build_data

        data_cfg, metrics_cfg = cfg.data, cfg.metrics
        data = build_data(data_cfg, device)
        info = data.info
        out_dir = Path(cfg.out or cfg.folder)
        source = {"folder": str(cfg.folder), "data": str(data_cfg.name)}
    suite = resolve_suite(metrics_cfg, info, str(data_cfg.name))
    if suite == "none":
        raise UserError(f"no metric suite applies to {data_cfg.name} here: choose metrics=toy|images|inception.")
    ctx = SuiteContext(data_cfg, data, metrics_cfg, device)

    if cfg.folder:
        sampler, n_avail = _folder_sampler(Path(cfg.folder).expanduser(), data_cfg)
        n = int(metrics_cfg.num_samples) or min(n_avail, 10000)
        if n > n_avail:
            raise UserError(f"folder={cfg.folder} holds {n_avail} images but metrics.num_samples={n}; lower it.")
        results = run_suite(suite, sampler, ctx, n)
        runs = {"none": results}
    else:
        kind = cfg.truncation.kind
        psis = list(cfg.truncation.sweep) or [cfg.truncation.psi]
        if cfg.truncation.sweep and kind == "none":
            kind = "interpolate"
        runs = {}
        for kind in ("resample", "interpolate") if both else (kind,):
            for psi in psis:
                sampler = generator_sampler(G, latent, device, cfg.seed, kind, float(psi))
                runs[f"{kind}:{psi:g}" if kind != "none" else "none"] = run_suite(suite, sampler, ctx)
        results = runs[next(iter(runs))]

    report = {**source, "suite": suite, "seed": int(cfg.seed), "truncation": OmegaConf.to_container(cfg.truncation),
              "metrics": results}
    if len(runs) > 1:
        report["truncation_sweep"] = runs
    out_dir.mkdir(parents=True, exist_ok=True)
    ck.write_json(out_dir / "metrics.json", report)
    if len(runs) > 1:
        _write_truncation(out_dir, runs)
    title = f"gan-eval {suite}: {source.get('checkpoint', source.get('folder'))}"
    if len(runs) > 1:
        for name, vals in runs.items():
            _print_table(f"{title} [{name}]", vals)
    else:
        _print_table(title, results)
    if cfg.ckpt and cfg.tensorboard and (out_dir / "tb").is_dir():
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(out_dir / "tb")) as w:
            for k, v in results.items():
                w.add_scalar(f"eval/{k}", v, report["step"])
            if len(runs) > 1:
                from gan_cli.lab.truncation import tradeoff_figure

                fig = tradeoff_figure(runs)
                if fig is not None:
                    w.add_figure("eval/truncation", fig, report["step"])
    print(f"wrote {out_dir / 'metrics.json'}")
    return report


def _write_truncation(out_dir: Path, runs: dict) -> None:
    """truncation.csv and truncation_pr.png: the fidelity/diversity trade-off over psi."""
    import csv

    from gan_cli import viz

    keys = sorted({k for v in runs.values() for k in v})
    with open(out_dir / "truncation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["truncation", *keys])
        for name, vals in runs.items():
            w.writerow([name, *[vals.get(k, "") for k in keys]])
    from gan_cli.lab.truncation import tradeoff_figure

    fig = tradeoff_figure(runs)  # precision vs recall (and FID / W1) against psi, one curve per kind
    if fig is not None:
        viz.figure_to_png(fig, out_dir / "truncation_pr.png")


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except UserError as e:
        print(f"gan-eval: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    torch.set_grad_enabled(True)
    _hydra_main()


if __name__ == "__main__":
    main()
