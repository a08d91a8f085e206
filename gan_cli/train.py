"""gan-train: the Hydra entry point (thin) and the importable ``train(cfg)``."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan_cli import checkpoint as ck
from gan_cli.config import UserError, register_configs

register_configs()

# Settings a resumed run may change on the command line; everything else comes from the checkpoint.
RESUME_OVERRIDABLE = ("steps", "device", "progress", "log_every", "image_every", "ckpt_every", "keep_ckpts", "eval_every")


def _run_dir_resolver(resume, default):
    return str(resume) if resume not in (None, "", "None", "null") else default


def _hydra_subdir_resolver(resume):
    return ".hydra" if resume in (None, "", "None", "null") else f".hydra_resume_{time.strftime('%Y%m%d-%H%M%S')}"


OmegaConf.register_new_resolver("gan_run_dir", _run_dir_resolver, replace=True)
OmegaConf.register_new_resolver("gan_hydra_subdir", _hydra_subdir_resolver, replace=True)


def _config_for_resume(cfg: DictConfig, saved: dict, overrides: list[str]) -> DictConfig:
    from gan_cli.loop import load_config

    new = load_config(saved)
    changed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for key in RESUME_OVERRIDABLE:
        if key in changed:
            OmegaConf.update(new, key, OmegaConf.select(cfg, key), merge=False)
    ignored = sorted(k for k in changed - set(RESUME_OVERRIDABLE) - {"resume"} if not k.startswith("hydra"))
    if ignored:
        raise UserError(
            f"resume takes the run's saved config; these overrides cannot change on resume: {', '.join(ignored)} "
            f"(allowed: {', '.join(RESUME_OVERRIDABLE)})."
        )
    new.resume = cfg.resume
    return new


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Train one run described by a composed config; returns a result dict.

    ``cfg.out_dir`` (or Hydra's run folder) receives checkpoints, TensorBoard events,
    ``status.json`` and ``results.json``.  ``cfg.resume=<run folder>`` continues that run
    from its newest loadable checkpoint.
    """
    from gan_cli.loop import Diverged, Interrupted, Trainer

    resume_state = None
    if cfg.resume:
        path, resume_state = ck.latest_good_checkpoint(Path(cfg.resume).expanduser())
        cfg = _config_for_resume(cfg, resume_state["config"], overrides or [])
        run_dir = Path(cfg.resume).expanduser()
    else:
        run_dir = Path(cfg.out_dir or HydraConfig.get().runtime.output_dir)
    from gan_cli.config import validate

    validate(cfg)  # before anything is written
    trainer = Trainer(cfg, run_dir, resume_state, resume_from=path if cfg.resume else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = run_dir / "status.json"
    ck.write_json(status, {"state": "running", "step": trainer.step, "pid": os.getpid()})
    try:
        with _progress(cfg) as progress:
            result = trainer.run(progress)
    except Diverged as e:
        _record(status, {"state": "diverged", "step": trainer.step, "error": str(e)})
        raise UserError(f"training diverged: {e}") from None
    except Interrupted as e:
        _record(status, {"state": "interrupted", "step": trainer.step, "error": str(e)})
        raise
    except UserError as e:
        _record(status, {"state": "failed", "step": trainer.step, "error": str(e)})
        raise
    except BaseException as e:
        _record(status, {"state": "failed", "step": trainer.step, "error": f"{type(e).__name__}: {e}"})
        raise
    ck.write_json(run_dir / "results.json", result)
    ck.write_json(status, {"state": "completed", "step": trainer.step})
    _summary(cfg, result)
    return result


def _record(status: Path, obj: dict) -> None:
    """Write status.json on an error path, best effort: a full disk must not hide the error being reported."""
    try:
        ck.write_json(status, obj)
    except OSError:
        pass


class _progress:
    """A rich progress bar: step, it/s, ETA, latest losses (off with progress=false)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.bar = None

    def __enter__(self):
        if not self.cfg.progress:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            transient=False,
        )
        self.bar.__enter__()
        name = f"{self.cfg.model.name.value}/{self.cfg.data.name}"
        self.task = self.bar.add_task("train", total=self.cfg.steps, name=name, rate="", losses="")
        self.t0 = time.perf_counter()
        self.first = None

        def update(step, host):
            if self.first is None:
                self.first = (step - 1, self.t0)
            fields = {}
            if host is not None:
                s0, t0 = self.first
                rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
                est = next((k for k in host if k.startswith("estimate/")), None)
                fields = {
                    "rate": f"{rate:.1f} it/s",
                    "losses": f"D {host['loss/d']:.3f}  G {host['loss/g']:.3f}" + (f"  {est.split('/')[1]} {host[est]:.3f}" if est else ""),
                }
            self.bar.update(self.task, completed=step, **fields)

        return update

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


def _summary(cfg, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"gan-train {cfg.model.name.value} on {cfg.data.name}: {result['step']} steps, {result['steps_per_s']:.1f} steps/s", show_header=False)
    for k, v in result["final"].items():
        t.add_row(k, f"{v:.5g}" if isinstance(v, float) else str(v))
    t.add_row("run folder", result["run_dir"])
    t.add_row("checkpoint", result["checkpoint"])
    con.print(t)
    con.print(f"TensorBoard: tensorboard --logdir {Path(result['run_dir']) / 'tb'}")


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    from gan_cli.loop import Interrupted

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=None)
    if isinstance(n_jobs, int) and n_jobs > 0:  # parallel local sweep: share the cores
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_jobs))
    try:
        result = train(cfg, overrides)
    except UserError as e:
        status = Path(hc.runtime.output_dir) / "status.json"
        if not cfg.resume and not status.exists():  # failed before training: record why
            _record(status, {"state": "failed", "step": 0, "error": str(e)})
        print(f"gan-train: error: {e}", file=sys.stderr)
        if _is_multirun():  # recorded; the sweeper carries on with the other jobs
            raise
        sys.exit(2)
    except Interrupted as e:
        print(f"gan-train: {e}", file=sys.stderr)
        # Also in a sweep: SystemExit passes Hydra's per-job `except Exception`, so Ctrl-C ends
        # the whole sweep instead of counting as one failed job and starting the next.
        sys.exit(128 + e.signum)
    return next((v for k, v in result["final"].items() if k.startswith("estimate/")), None)


def _precheck_resume(argv: list[str]) -> None:
    """Check resume=<folder> before Hydra creates any folder for it."""
    for a in argv:
        if a.startswith("resume="):
            value = a.split("=", 1)[1]
            if value and value not in ("null", "None"):
                folder = Path(value).expanduser()
                if not folder.is_dir():
                    raise UserError(f"resume={value}: no such folder. Pass the run folder printed at the end of a gan-train run.")
                if not ck.list_checkpoints(folder):
                    raise UserError(f"resume={value}: the folder holds no checkpoint (checkpoints/step_*.pt); start a new run instead.")


def main() -> None:
    try:
        _precheck_resume(sys.argv[1:])
    except UserError as e:
        print(f"gan-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
