"""gan-eval: score checkpoints (or a folder of images) with the evaluator.

``gan-eval ckpt=<run folder or checkpoint>`` rebuilds the generator from the checkpoint's own
config (through :mod:`gan_cli.build`), samples, runs the evaluator, prints a table, writes
``metrics.json`` beside the checkpoint and logs ``eval/*`` scalars to the run's TensorBoard.
``truncation.kind`` / ``truncation.psi`` apply the truncation trick; ``truncation.sweep=[1.0,0.8,...]``
evaluates each psi and writes ``truncation.csv`` and ``truncation.png`` (``truncation.kind=both``:
resample and interpolate in one table and figure).  ``folder=<dir> data=<name>`` scores images made
by any tool against a data set.  ``sweep=<multirun folder>`` summarises a whole sweep instead
(:mod:`gan_cli.sweep`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli import checkpoint as ck
from gan_cli.config import UserError, register_configs
from gan_cli.hints import shell_path

register_configs()


def _load_checkpoint(path: str):
    """(checkpoint file, state): a run folder's newest loadable checkpoint, or the file given."""
    p = Path(path).expanduser()
    if p.is_dir():
        if not ck.list_checkpoints(p):
            raise UserError(f"ckpt={path}: the folder holds no checkpoint (checkpoints/step_*.pt).")
        return ck.newest_loadable_checkpoint(p, who="gan-eval", option="ckpt")
    if not p.exists() and not p.is_symlink():
        raise UserError(f"ckpt={path}: no such file or folder.")
    return p, ck.load_checkpoint(p)


def _folder_source(folder: str, data_cfg, info):
    """The images of ``folder`` at the data set's size and channels (an image_folder source)."""
    from gan_cli.build import build_data

    if info.kind != "image":
        raise UserError(f"folder= holds images, but data={info.name} is {info.kind} data: compare an image folder "
                        f"with an image data set (data=mnist, fashion_mnist, cifar10, digits or image_folder).")
    spec = {"_target_": "gan_cli.data.images.image_folder", "name": "image_folder", "path": str(folder),
            "image_size": int(info.shape[-1]), "channels": int(info.shape[0])}
    return build_data(OmegaConf.create(spec), "cpu")


def _print_table(title: str, rows: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric", no_wrap=True)
    t.add_column("value", justify="right")
    for k, v in rows.items():
        t.add_row(k, f"{v:.5g}" if isinstance(v, float) else str(v))
    Console(soft_wrap=True).print(t)


def evaluate(cfg: DictConfig) -> dict:
    """Run gan-eval for a composed config; returns what metrics.json holds."""
    from gan_cli.build import build_data, build_evaluator, load_generator, pick_device
    from gan_cli.lab import truncation as trunc
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

    if cfg.export.dir:
        if not cfg.ckpt:
            raise UserError("export=<dir> writes a generator's samples: pass ckpt=<run folder or checkpoint>.")
        ckpt_path, state = _load_checkpoint(cfg.ckpt)
        G, tcfg, data, latent, step = load_generator(ckpt_path, device, state)
        return export_samples(G, latent, device, data.info, cfg)
    if cfg.ckpt:
        ckpt_path, state = _load_checkpoint(cfg.ckpt)
        G, tcfg, data, latent, step = load_generator(ckpt_path, device, state)
        metrics_cfg = OmegaConf.merge(tcfg.metrics, cfg.metrics) if cfg.metrics.suite == "auto" else cfg.metrics
        data_cfg = tcfg.data
        out_dir = Path(cfg.out).expanduser() if cfg.out else ckpt_path.parent.parent
        source = {"checkpoint": str(ckpt_path), "step": step, "weights": getattr(G, "weights_source", "trained")}
    else:
        if cfg.data is None:
            raise UserError("folder=<images> needs data=<name> to compare against (e.g. data=fashion_mnist).")
        data_cfg, metrics_cfg = cfg.data, cfg.metrics
        data = build_data(data_cfg, device)
        folder = _folder_source(Path(cfg.folder).expanduser(), data_cfg, data.info)
        out_dir = Path(cfg.out or cfg.folder).expanduser()
        source = {"folder": str(cfg.folder), "data": str(data_cfg.name)}
    _check_writable(out_dir)  # before any metric is computed
    evaluator = build_evaluator(metrics_cfg, data_cfg, data, device)
    if not evaluator.active:
        raise UserError(f"no metric applies to {data.info.name} here: choose metrics=toy|images|inception.")

    if cfg.folder:
        from gan_cli.metrics.features import tensor_sampler

        n = min(len(folder), evaluator.n) if not metrics_cfg.num_samples else int(metrics_cfg.num_samples)
        if n > len(folder):
            raise UserError(f"folder={cfg.folder} holds {len(folder)} images but metrics.num_samples={n}; lower it.")
        runs = {"none": evaluator(tensor_sampler(folder.images), n)}
    elif cfg.truncation.sweep:
        kinds = ("resample", "interpolate") if both else (cfg.truncation.kind if cfg.truncation.kind != "none" else "interpolate",)
        runs = trunc.sweep(G, latent, device, evaluator, int(cfg.seed), list(cfg.truncation.sweep), kinds)
    else:
        from gan_cli.metrics.evaluator import generator_sampler

        kind, psi = str(cfg.truncation.kind), float(cfg.truncation.psi)
        name = f"{kind}:{psi:g}" if kind != "none" else "none"
        runs = {name: evaluator(generator_sampler(G, latent, device, int(cfg.seed), kind, psi))}
    results = runs[next(iter(runs))]

    report = {**source, "suite": evaluator.suite, "seed": int(cfg.seed), "num_samples": evaluator.n,
              "truncation": OmegaConf.to_container(cfg.truncation), "metrics": results}
    if len(runs) > 1:
        report["truncation_sweep"] = runs
    ck.write_json(out_dir / "metrics.json", report)
    title = f"gan-eval {evaluator.suite}: {source.get('checkpoint', source.get('folder'))}"
    fig = None
    if len(runs) > 1:
        from gan_cli import viz

        trunc.write(out_dir, trunc.rows(runs))
        fig = trunc.tradeoff_figure(runs)  # precision vs recall (and FID / W1) against psi, one curve per kind
        if fig is not None:
            viz.figure_to_png(fig, out_dir / "truncation.png", close=False)
        for name, vals in runs.items():
            _print_table(f"{title} [truncation {name}]" if name != "none" else f"{title} [no truncation]", vals)
    else:
        _print_table(title, results)
    if cfg.ckpt and cfg.tensorboard and (out_dir / "tb").is_dir():
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(out_dir / "tb")) as w:
            for k, v in results.items():
                w.add_scalar(f"eval/{k}", v, report["step"])
            if fig is not None:
                w.add_figure("eval/truncation", fig, report["step"])
    print(f"wrote {shell_path(out_dir / 'metrics.json')}")
    return report


def export_samples(G, latent: int, device, info, cfg) -> dict:
    """``export=<dir> export.n=N``: N samples as numbered 8-bit PNG files (the data's size and channels),
    for scoring with torch-fidelity, clean-fid or pytorch-fid.  Latents from the eval stream of
    ``seed``, truncated when ``truncation.kind`` is set."""
    from PIL import Image

    from gan_cli.metrics.evaluator import generator_sampler

    if info.kind != "image":
        raise UserError(f"export= writes images, but data={info.name} is {info.kind} data; evaluate it with metrics=toy.")
    n = int(cfg.export.n)
    if n < 1:
        raise UserError(f"export.n={n} must be >= 1.")
    out = Path(cfg.export.dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"export={out} exists and is not an empty folder: choose a new folder, so that samples of "
                        f"different runs are never mixed.")
    _check_writable(out)
    kind = str(cfg.truncation.kind)
    if kind == "both":
        raise UserError("export= takes one truncation kind: truncation.kind=none|resample|interpolate.")
    sample = generator_sampler(G, latent, device, int(cfg.seed), kind, float(cfg.truncation.psi))
    mode = {1: "L", 3: "RGB"}[int(info.shape[0])]
    width = max(6, len(str(n - 1)))
    done = 0
    while done < n:
        k = min(500, n - done)
        x = sample(k).detach().float().cpu()
        u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [-1, 1] -> 0..255
        for i in range(k):
            img = u8[i, :, :, 0] if mode == "L" else u8[i]
            Image.fromarray(img, mode).save(out / f"{done + i:0{width}d}.png")
        done += k
    print(f"wrote {n} PNG files ({info.shape[-1]}x{info.shape[-2]}, {mode}) to {shell_path(out)}")
    return {"export": str(out), "n": n, "truncation": kind, "psi": float(cfg.truncation.psi), "seed": int(cfg.seed)}


def _check_writable(out_dir: Path) -> None:
    """One line before the work starts when the results cannot be written."""
    import os
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".gan-eval-", delete=True) as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise UserError(f"cannot write results into {out_dir} ({e.strerror or e}): pass out=<a writable folder>.") from None


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except UserError as e:
        print(f"gan-eval: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    torch.set_grad_enabled(True)
    # `export=<dir>` is the short form of `export.dir=<dir>` (export.n sets the count)
    sys.argv = [("export.dir=" + a[len("export="):]) if a.startswith("export=") else a for a in sys.argv]
    _hydra_main()


if __name__ == "__main__":
    main()
