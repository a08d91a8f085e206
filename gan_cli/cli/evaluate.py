"""gan-eval: score checkpoints (or a folder of images) with the evaluator.

``gan-eval ckpt=<run folder or checkpoint>`` rebuilds the generator from the checkpoint's own
config (through :mod:`gan_cli.build`), samples, runs the evaluator, prints a table, writes
``metrics.json`` beside the checkpoint and logs ``eval/*`` scalars to the run's TensorBoard.
``truncation.kind`` / ``truncation.psi`` apply the truncation trick; ``truncation.sweep=[1.0,0.8,...]``
evaluates each psi and writes ``truncation.csv`` and ``truncation.png`` (``truncation.kind=both``:
resample and interpolate in one table and figure).  ``folder=<dir> data=<name>`` scores images made
by any tool against a data set.  ``sweep=<multirun folder>`` summarises a whole sweep instead
(:mod:`gan_cli.cli.sweep`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli.runs import checkpoint as ck

from gan_cli.files import atomic_write_text, probe_writable, write_json
from gan_cli.cli.precheck import check_argv
from gan_cli.config import UserError, register_configs
from gan_cli.runs.hints import shell_path

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
        from gan_cli.cli.sweep import summarize

        return summarize(cfg.sweep, cfg.sort_by, cfg.plot_x, cfg.plot_y, cfg=cfg, tensorboard=cfg.tensorboard)
    device = pick_device(cfg.device)
    if cfg.ref or cfg.save_stats:  # folder against folder / statistics, or a folder's statistics
        return evaluate_folders(cfg, device)
    if cfg.export.dir and not cfg.ckpt and not cfg.folder and cfg.data is not None:
        return export_data(cfg)  # a data set's images as PNG files (e.g. CIFAR-10 train and test)
    if bool(cfg.ckpt) == bool(cfg.folder):
        raise UserError("gan-eval needs exactly one of ckpt=<run folder or checkpoint> or folder=<images> data=<name>.")
    both = cfg.truncation.kind == "both"  # resample and interpolate in one sweep and figure
    if both and not cfg.truncation.sweep:
        raise UserError("truncation.kind=both needs truncation.sweep=[psi,...], e.g. truncation.sweep=[2.0,1.0,0.7,0.5].")
    check("interpolate" if both else cfg.truncation.kind, cfg.truncation.psi)

    if cfg.export.dir:
        if not cfg.ckpt:
            raise UserError("export=<dir> writes a generator's samples (ckpt=<run folder or checkpoint>) or a data "
                            "set's images (data=<name> export.split=train|test).")
        ckpt_path, state = _load_checkpoint(cfg.ckpt)
        G, tcfg, data, latent, step = load_generator(ckpt_path, device, state)
        return export_samples(G, latent, device, data.info, cfg)
    if cfg.export.cls is not None:
        raise UserError("export.class=K picks the class of exported samples: add export=<dir> ckpt=<run>.")
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
    from gan_cli.metrics.evaluator import class_count

    evaluator = build_evaluator(metrics_cfg, data_cfg, data, device, n_classes=0 if cfg.folder else class_count(G))
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

    report = {**source, "suite": evaluator.suite, "preprocess": evaluator.preprocess, "seed": int(cfg.seed),
              "num_samples": evaluator.n,
              "truncation": OmegaConf.to_container(cfg.truncation), "metrics": results}
    if len(runs) > 1:
        report["truncation_sweep"] = runs
    write_json(out_dir / "metrics.json", report)
    title = f"gan-eval {evaluator.suite}: {source.get('checkpoint', source.get('folder'))}"
    if evaluator.preprocess:  # which Inception preprocessing made these numbers
        title += f" (preprocess={evaluator.preprocess})"
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
    if cfg.ckpt and cfg.tensorboard and out_dir == ckpt_path.parent.parent:  # the run's own trackers, at its step
        from gan_cli.build import build_loggers

        loggers = build_loggers(tcfg.get("logger"))
        loggers.start(out_dir, report["step"])
        try:
            loggers.log_scalars({f"eval/{k}": v for k, v in results.items()}, report["step"])
            if fig is not None:
                loggers.log_figure("eval/truncation", fig, report["step"])
        finally:
            loggers.close()
    if fig is not None:
        from gan_cli import viz

        viz.close(fig)
    print(f"wrote {shell_path(out_dir / 'metrics.json')}")
    return report


class _FolderSet:
    """What the Evaluator needs to know of a folder of images scored against another (no data set)."""

    labels = None

    def __init__(self, folder: str, files: list[str]):
        from gan_cli.data.base import DataInfo
        from gan_cli.metrics.folders import read_rgb

        self.files = files
        self.info = DataInfo(name=f"folder {folder}", kind="image", shape=tuple(read_rgb(files[0]).shape))

    def __len__(self) -> int:
        return len(self.files)


def evaluate_folders(cfg: DictConfig, device) -> dict:
    """``folder=A ref=B``: A scored against the images of folder B (FID, KID, IS of A, PRDC) or against the
    statistics B.npz (FID, IS of A); ``folder=A save_stats=A.npz``: A's Inception statistics.  All images of
    each folder at their own size (``metrics.num_samples=N``: the first N of each), Inception features with
    ``metrics.preprocess``.  One JSON line on stdout (and ``metrics.json`` in ``out``, default the folder)."""
    import json

    from gan_cli.metrics import folders as fo
    from gan_cli.metrics.evaluator import Evaluator, _warn
    from gan_cli.metrics.fid import features_to_stats

    if not cfg.folder:
        raise UserError("ref= and save_stats= score a folder of images: pass folder=<dir> (gan-eval folder=A ref=B, "
                        "or folder=A save_stats=A.npz).")
    if cfg.ckpt or cfg.data is not None:
        raise UserError("folder=<dir> ref=<dir or .npz> compares a folder with another folder or statistics: "
                        "leave out ckpt= and data=.")
    suite = str(cfg.metrics.suite)
    if suite not in ("auto", "inception"):
        raise UserError(f"ref= and save_stats= use the FID Inception network, not metrics={suite} (the domain "
                        f"classifier needs a labelled data set: folder=<dir> data=<name> metrics=images).")
    mcfg = OmegaConf.merge(cfg.metrics, {"suite": "inception"})
    want = int(mcfg.num_samples or 0)

    def take(files: list[str], option: str, folder: str) -> list[str]:
        if want > len(files):
            raise UserError(f"{option}={folder} holds {len(files)} images but metrics.num_samples={want}; lower it.")
        return files[:want] if want else files

    files = take(fo.image_files(cfg.folder, "folder"), "folder", cfg.folder)
    ref_files = stats = None
    if cfg.ref:
        if Path(str(cfg.ref)).expanduser().is_dir():
            ref_files = take(fo.image_files(cfg.ref, "ref"), "ref", cfg.ref)
        elif not Path(str(cfg.ref)).expanduser().is_file():
            raise UserError(f"ref={cfg.ref} does not exist: give a folder of images or a .npz of statistics "
                            f"(mu, sigma).")
    ev = Evaluator(mcfg, None, _FolderSet(cfg.folder, files), device, n=len(files))
    ext = ev.extractor()  # no weights: one line naming the file and where it goes
    report = {"folder": str(cfg.folder), "preprocess": ev.preprocess, "suite": ev.suite, "num_samples": len(files)}
    out_dir = Path(cfg.out or cfg.folder).expanduser()
    if cfg.ref:
        if ref_files is None:
            stats = fo.load_stats(cfg.ref, ext.dims, ev.preprocess)
            kept = [m for m in ev.metrics if m.name in ("fid", "is")]
            dropped = [m.name for m in ev.metrics if m not in kept]
            if dropped:
                _warn(f"ref={cfg.ref} holds statistics only (mu, sigma): {', '.join(dropped)} need the reference "
                      f"images and are skipped; FID{' and the IS of folder=' if any(m.name == 'is' for m in kept) else ''}"
                      f" are reported (give ref=<folder of images> for all metrics).")
            if not kept:
                raise UserError(f"ref={cfg.ref} holds statistics only: of metrics.names only fid (and is) can run.")
            ev.metrics = kept
        _check_writable(out_dir)
    fake = fo.folder_features(ext, files, int(mcfg.feature_batch), device)
    if cfg.save_stats:
        mu, sigma = features_to_stats(fake["pool"], allow_singular=True)
        report["save_stats"] = str(fo.save_stats(cfg.save_stats, mu, sigma, ev.preprocess, len(files)))
    if cfg.ref:
        if ref_files is not None:
            real = fo.folder_features(ext, ref_files, int(mcfg.feature_batch), device)
            report.update(ref=str(cfg.ref), num_ref=len(ref_files))
        else:
            real = {"mu": stats["mu"], "sigma": stats["sigma"]}
            report.update(ref=str(cfg.ref), num_ref=None, ref_preprocess=stats["preprocess"])
        smallest = min(len(files), len(ref_files) if ref_files is not None else len(files))
        if "fid" in ev.names and smallest <= ext.dims:
            _warn(f"FID of {smallest} <= {ext.dims} images: the covariance is singular and the FID biased upward "
                  f"(pytorch-fid, torch-fidelity and clean-fid compute it the same way); use 10,000 or more images.")
        report["metrics"] = ev.score(real, fake, len(files), allow_singular=True)
        write_json(out_dir / "metrics.json", report)
        print(f"wrote {shell_path(out_dir / 'metrics.json')}", file=sys.stderr)
    if cfg.save_stats:
        print(f"wrote {shell_path(report['save_stats'])}", file=sys.stderr)
    print(json.dumps(report, sort_keys=False))  # one line for scripts
    return report


def export_samples(G, latent: int, device, info, cfg) -> dict:
    """``export=<dir> export.n=N``: N samples as numbered 8-bit PNG files (the data's size and channels),
    for scoring with torch-fidelity, clean-fid or pytorch-fid.  Latents from the eval stream of
    ``seed``, truncated when ``truncation.kind`` is set.  A class-conditional G: the samples of class
    ``export.class`` only, or every class equally often (sample i of class i mod K); either way ``labels.csv``
    (file,class) is written beside the PNG files."""
    from gan_cli.metrics.evaluator import class_count, generator_sampler
    from gan_cli.metrics.features import to_uint8

    if info.kind != "image":
        raise UserError(f"export= writes images, but data={info.name} is {info.kind} data; evaluate it with metrics=toy.")
    n = int(cfg.export.n)
    if n < 1:
        raise UserError(f"export.n={n} must be >= 1.")
    out = Path(cfg.export.dir).expanduser()
    kind = str(cfg.truncation.kind)
    if kind == "both":
        raise UserError("export= takes one truncation kind: truncation.kind=none|resample|interpolate.")
    cls = cfg.export.cls
    sample = generator_sampler(G, latent, device, int(cfg.seed), kind, float(cfg.truncation.psi), cls)  # checks cls
    _new_folder(out)

    def u8_batch(k):  # [-1, 1] -> 0..255
        return to_uint8(sample(k))

    mode = _write_pngs(out, u8_batch, n, int(info.shape[0]))
    report = {"export": str(out), "n": n, "truncation": kind, "psi": float(cfg.truncation.psi), "seed": int(cfg.seed)}
    what, n_classes = "", class_count(G)
    if n_classes:
        labels = sample.labels(n)
        names = png_names(n)
        atomic_write_text(out / "labels.csv", "file,class\n" + "".join(f"{f},{c}\n" for f, c in zip(names, labels)))
        report.update({"class": None if cls is None else int(cls), "labels": str(out / "labels.csv")})
        what = f" of class {cls}" if cls is not None else f", {n_classes} classes equally often, labels.csv"
    print(f"wrote {n} PNG files ({info.shape[-1]}x{info.shape[-2]}, {mode}){what} to {shell_path(out)}")
    return report


def png_names(n: int) -> list:
    """The file names :func:`_write_pngs` gives ``n`` images: ``000000.png`` ... (at least six digits)."""
    width = max(6, len(str(n - 1)))
    return [f"{i:0{width}d}.png" for i in range(n)]


def _new_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"export={out} exists and is not an empty folder: choose a new folder, so that images of "
                        f"different sources are never mixed.")
    _check_writable(out)


def _write_pngs(out: Path, u8_batch, n: int, channels: int) -> str:
    """``n`` numbered PNG files from ``u8_batch(k) -> uint8 (k, C, H, W)``; returns the PIL mode."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}[channels]
    names = png_names(n)
    done = 0
    while done < n:
        k = min(500, n - done)
        u8 = u8_batch(k).permute(0, 2, 3, 1).numpy()
        for i in range(k):
            Image.fromarray(u8[i, :, :, 0] if mode == "L" else u8[i], mode).save(out / names[done + i])
        done += k
    return mode


def export_data(cfg) -> dict:
    """``data=<name> export=<dir> export.split=train|test [export.n=N]``: the data set's images (the first N
    of the split) as PNG files, e.g. to score CIFAR-10 train against test with ``folder= ref=``."""
    from gan_cli.build import build_data

    split = str(cfg.export.split)
    if split not in ("train", "test"):
        raise UserError(f"export.split={split}: use train or test.")
    out = Path(cfg.export.dir).expanduser()
    _new_folder(out)
    src = build_data(cfg.data, "cpu", split)  # offline and missing: the data set's one line (file and folder)
    if src.info.kind != "image":
        raise UserError(f"export= writes images, but data={src.info.name} is {src.info.kind} data.")
    images = src.images.cpu()
    n = min(int(cfg.export.n), images.shape[0])
    if n < 1:
        raise UserError(f"export.n={cfg.export.n} must be >= 1.")
    pos = {"i": 0}

    def u8_batch(k):
        pos["i"] += k
        return images[pos["i"] - k:pos["i"]]

    mode = _write_pngs(out, u8_batch, n, int(images.shape[1]))
    print(f"wrote {n} PNG files ({src.info.name} {split}, {images.shape[-1]}x{images.shape[-2]}, {mode}) to "
          f"{shell_path(out)}")
    return {"export": str(out), "n": n, "data": str(src.info.name), "split": split}


def _check_writable(out_dir: Path) -> None:
    """One line before the work starts when the results cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err = e
    else:
        err = probe_writable(out_dir, ".gan-eval-", 4096)
    if err is not None:
        raise UserError(f"cannot write results into {out_dir} ({err.strerror or err}): pass out=<a writable folder>.")


def eval_argv(argv: list) -> list:
    """gan-eval's short spellings: ``export=<dir>`` for ``export.dir=<dir>`` (export.n sets the count) and
    ``export.class=K`` for ``export.cls=K`` (a config field cannot be named ``class``)."""
    short = {"export=": "export.dir=", "export.class=": "export.cls="}
    out = []
    for a in argv:
        prefix = next((p for p in short if a.startswith(p)), None)
        out.append(short[prefix] + a[len(prefix):] if prefix else a)
    return out


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except UserError as e:
        print(f"gan-eval: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    torch.set_grad_enabled(True)
    sys.argv = eval_argv(sys.argv)
    try:
        check_argv(sys.argv[1:])  # a missing option (data=nope): one line, before anything is written
    except UserError as e:
        print(f"gan-eval: error: {e}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
