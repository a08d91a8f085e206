"""gan-train: the Hydra entry point (thin) and the importable ``train(cfg)``.

Exit codes: 0 done; 1 Hydra rejected the command line (its own message); 2 a one-line error
(bad input, a run that cannot continue, divergence, a run folder in use); 130 / 143 stopped by
Ctrl-C / SIGTERM after writing a checkpoint (the message says how to continue).
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan_cli.runs import checkpoint as ck

from gan_cli.files import probe_writable, read_json, write_json
from gan_cli.cli.precheck import check_argv
from gan_cli.config import UserError, register_configs
from gan_cli.runs.hints import resume_command, shell_path

register_configs()

# Settings a resumed run may change on the command line; everything else comes from the checkpoint.
RESUME_OVERRIDABLE = ("steps", "device", "progress", "log_every", "image_every", "ckpt_every", "keep_ckpts", "eval_every",
                      "dist.nproc", "dist.timeout_s")  # dist.nproc: checked against the checkpoint's world size
# how the run is scored does not change how it trains; the speed path changes the arithmetic, not the run (a
# run resumed on another device needs its own)
RESUME_OVERRIDABLE_GROUPS = ("metrics.", "speed.")

_UNSAFE = re.compile(r"[^A-Za-z0-9._+@%:-]")


def _run_dir_resolver(resume, default):
    return str(resume) if resume not in (None, "", "None", "null") else default


def _hydra_subdir_resolver(resume):
    return ".hydra" if resume in (None, "", "None", "null") else f".hydra_resume_{time.strftime('%Y%m%d-%H%M%S')}"


#: the longest folder name made from the overrides (file systems allow 255 bytes; Hydra adds a time or job prefix)
MAX_DIRNAME = 200


def _dirname_resolver(override_dirname: str) -> str:
    """Hydra's override_dirname (``model=gan,model.opt_g.lr=1e-4``) as a folder name that can be
    pasted unquoted into ``resume=``, ``ckpt=`` and ``folder=``: ``model-gan+model.opt_g.lr-1e-4``.  Longer than
    :data:`MAX_DIRNAME`: cut, with the first 8 hex digits of the whole name's SHA-1 (different overrides, different
    names)."""
    name = _UNSAFE.sub("_", str(override_dirname).replace("=", "-").replace(",", "+"))
    if len(name) > MAX_DIRNAME:
        import hashlib

        name = f"{name[:MAX_DIRNAME - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


OmegaConf.register_new_resolver("gan_run_dir", _run_dir_resolver, replace=True)
OmegaConf.register_new_resolver("gan_hydra_subdir", _hydra_subdir_resolver, replace=True)
OmegaConf.register_new_resolver("gan_dirname", _dirname_resolver, replace=True)


class TrainingDiverged(UserError):
    """The divergence guard stopped the run (a one-line error; an Optuna trial reports it as the worst value)."""


def _resume_overridable(key: str) -> bool:
    return key in RESUME_OVERRIDABLE or key.startswith(RESUME_OVERRIDABLE_GROUPS) or key.startswith("hydra")


def check_resume_overrides(keys) -> None:
    """One line when a resume asks to change a setting that only a new run may set."""
    bad = sorted(k for k in set(keys) - {"resume"} if not _resume_overridable(k))
    if bad:
        raise UserError(f"resume takes the run's saved config; these overrides cannot change on resume: {', '.join(bad)} "
                        f"(allowed: {', '.join(RESUME_OVERRIDABLE)}, metrics.*, speed.*).")


def _config_for_resume(cfg: DictConfig, saved: dict, overrides: list[str]) -> DictConfig:
    from gan_cli.build import load_config

    new = load_config(saved)
    changed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    check_resume_overrides(changed)
    for key in sorted(changed - {"resume"}):
        if not key.startswith("hydra"):
            OmegaConf.update(new, key, OmegaConf.select(cfg, key), merge=False)
    OmegaConf.update(new, "resume", cfg.resume, merge=False)
    return new


def holds_run(folder: Path) -> bool:
    """True when ``folder`` already holds a gan-train run (a status, results or a checkpoint).  A status that only
    records a command refused before training (``before_training``) is not a run: the corrected command may use
    the folder (nothing of a run was written there)."""
    if (folder / "results.json").exists() or ck.list_checkpoints(folder):
        return True
    if not (folder / "status.json").exists():
        return False
    return not (read_json(folder / "status.json") or {}).get("before_training")


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Train one run described by a composed config; returns a result dict.

    ``cfg.out_dir`` (or Hydra's run folder) receives checkpoints, TensorBoard events,
    ``status.json``, ``scalars.jsonl``, ``metrics.jsonl`` and ``results.json``.
    ``cfg.resume=<run folder>`` continues that run from its newest loadable checkpoint.
    One process writes a run folder at a time (an OS lock, :mod:`gan_cli.runs.lock`).
    Several processes (``dist.nproc=N`` or torchrun, :mod:`gan_cli.training.dist`): this process is rank 0 and
    writes, or a rank > 0 that trains in step with rank 0 and returns ``{"status": "follower", ...}``.
    """
    from gan_cli.training import dist, spawn

    with dist.session(cfg) as ctx:
        if not ctx.is_main:  # torchrun's ranks > 0: rank 0 sends them the config and resume state
            code = spawn.follow(ctx)
            if code:
                sys.exit(code)
            return {"status": "follower", "rank": ctx.rank, "final": {}}
        return _train(cfg, overrides)


def _train(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    from gan_cli.training import dist, spawn
    from gan_cli.build import plain_config
    from gan_cli.training.loop import Diverged, Interrupted, build_trainer
    from gan_cli.runs.lock import RunLock

    resume_state = path = None
    if cfg.resume:
        run_dir = Path(cfg.resume).expanduser()
    else:
        run_dir = Path(cfg.out_dir or HydraConfig.get().runtime.output_dir).expanduser()
        if holds_run(run_dir):
            raise UserError(f"{run_dir} already holds a run; use resume={shell_path(run_dir)} or another out_dir.")
    held = _PRECHECK_LOCK.get("lock")
    lock = held if held is not None and held.held and held.run_dir.resolve() == run_dir.resolve() else RunLock(run_dir)
    with lock:
        if cfg.resume:
            path, resume_state = ck.latest_good_checkpoint(run_dir)
            cfg = _config_for_resume(cfg, resume_state["config"], overrides or [])
            check_resume_steps(run_dir, int(resume_state["step"]), int(cfg.steps))
        from gan_cli.config import validate

        validate(cfg)  # before anything is written
        dist.check(cfg, int(resume_state.get("world_size", 1)) if resume_state is not None else None)
        ctx = spawn.start(cfg, {"config": plain_config(cfg), "run_dir": str(run_dir), "resume_state": resume_state,
                               "resume_from": str(path) if path else None})  # several processes: ranks 1..N-1 join
        trainer = build_trainer(cfg, run_dir, resume_state, resume_from=path)
        run_dir.mkdir(parents=True, exist_ok=True)
        status = run_dir / "status.json"
        write_json(status, {"state": "running", "step": trainer.step, "pid": os.getpid()})
        try:
            with _progress(cfg, status) as progress, dist.failures(ctx, run_dir):
                result = trainer.run(progress)
        except Diverged as e:
            _record(status, {"state": "diverged", "step": trainer.step, "error": str(e)})
            raise TrainingDiverged(f"training diverged: {e}") from None
        except Interrupted as e:
            _record(status, {"state": "interrupted", "step": trainer.step, "error": str(e)})
            raise
        except UserError as e:
            _record(status, {"state": "failed", "step": trainer.step, "error": str(e)})
            raise
        except BaseException as e:
            _record(status, {"state": "failed", "step": trainer.step, "error": f"{type(e).__name__}: {e}"})
            raise
        write_json(status, {"state": "completed", "step": trainer.step})  # results.json: written by the run
    _summary(cfg, result)
    return result


def check_resume_steps(run_dir: Path, ckpt_step: int, steps: int) -> None:
    """Refuse a resume that has nothing to do: steps below the checkpoint's, or a completed run."""
    state = (read_json(run_dir / "status.json") or {}).get("state")
    if steps < ckpt_step or (steps == ckpt_step and state == "completed"):
        raise UserError(f"{run_dir} is already at step {ckpt_step}; pass steps greater than {ckpt_step} to continue "
                        f"({resume_command(run_dir)} steps={ckpt_step * 2}).")


def _record(status: Path, obj: dict) -> None:
    """Write status.json on an error path, best effort: a full disk must not hide the error being reported."""
    try:
        write_json(status, obj)
    except OSError:
        pass


class _progress:
    """A rich progress bar: step, it/s, ETA, latest losses (off with progress=false).  At each log
    step status.json is updated with the current step."""

    def __init__(self, cfg, status: Path):
        self.cfg = cfg
        self.status = status
        self.bar = None

    def __enter__(self):
        status, pid = self.status, os.getpid()

        def record(step, host):
            if host is not None:
                _record(status, {"state": "running", "step": step, "pid": pid})

        if not self.cfg.progress:
            return record
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
        name = f"{self.cfg.model.name}/{self.cfg.data.name}"
        self.task = self.bar.add_task("train", total=self.cfg.steps, name=name, rate="", losses="")
        self.t0 = time.perf_counter()
        self.first = None

        def update(step, host):
            record(step, host)
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

    con = Console(soft_wrap=True)  # paths are printed whole, never cut with "..."
    t = Table(title=f"gan-train {cfg.model.name} on {cfg.data.name}: {result['step']} steps, "
                    f"{result['steps_per_s']:.1f} steps/s", show_header=False)
    t.add_column("key", no_wrap=True)
    t.add_column("value", overflow="fold")
    for k, v in result["final"].items():
        t.add_row(k, f"{v:.5g}" if isinstance(v, float) else str(v))
    if result.get("preprocess"):  # beside the FID/KID/IS values: which Inception preprocessing made them
        t.add_row("preprocess", str(result["preprocess"]))
    con.print(t)
    con.print(f"run folder: {shell_path(result['run_dir'])}")
    con.print(f"checkpoint: {shell_path(result['checkpoint'])}")
    from gan_cli.build import build_loggers

    for lg in build_loggers(cfg.get("logger")).loggers:  # how to look at each tracker's record
        line = lg.hint(Path(result["run_dir"]))
        if line:
            con.print(line)


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """The task function: trains one run; returns ``optimized_metric`` when set (an Optuna study's
    objective, :mod:`gan_cli.cli.search`), else the run's divergence estimate."""
    from gan_cli.cli.launch import configure_job, requeued_run
    from gan_cli.training.loop import Interrupted

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    direction = None
    try:
        if cfg.optimized_metric:  # a wrong direction or metric is the whole study's error: checked before training
            from gan_cli.cli.search import check_direction

            direction = check_direction(cfg.optimized_metric, OmegaConf.select(hc, "sweeper.direction", default=None))
    except UserError as e:
        print(f"gan-train: error: {e}", file=sys.stderr)
        sys.exit(2)  # SystemExit passes Hydra's per-job `except Exception`: the sweep ends here
    note = configure_job(cfg, hc)  # parallel local jobs: one GPU each (k mod #GPUs), a share of the cores
    if note and _is_multirun():
        print(f"gan-train: {note}", file=sys.stderr)
    job_dir = Path(cfg.out_dir or hc.runtime.output_dir).expanduser()
    if not cfg.resume and requeued_run(job_dir):  # a requeued Slurm job continues its run from its checkpoint
        from omegaconf import open_dict, read_write

        with read_write(cfg), open_dict(cfg):
            cfg.resume = str(job_dir)
        overrides = []  # the run's saved config already holds the job's overrides
        print(f"gan-train: requeued job: continuing the run in {shell_path(job_dir)}", file=sys.stderr)
    try:
        result = train(cfg, overrides)
    except UserError as e:
        status = Path(cfg.out_dir or hc.runtime.output_dir).expanduser() / "status.json"
        if not cfg.resume and status.parent.is_dir() and not holds_run(status.parent):  # failed before training: record why
            _record(status, {"state": "failed", "step": 0, "error": str(e), "before_training": True})
        if direction is not None and isinstance(e, TrainingDiverged) and _is_multirun():
            from gan_cli.cli.search import worst

            print(f"gan-train: {e} (trial reported to the study as the worst value, {worst(direction)})", file=sys.stderr)
            return worst(direction)
        print(f"gan-train: error: {e}", file=sys.stderr)
        if _is_multirun():  # recorded; the sweeper carries on with the other jobs
            raise
        sys.exit(2)
    except Interrupted as e:
        print(f"gan-train: {e}", file=sys.stderr)
        # Also in a sweep: SystemExit passes Hydra's per-job `except Exception`, so Ctrl-C ends
        # the whole sweep instead of counting as one failed job and starting the next.
        sys.exit(128 + e.signum)
    if direction is not None:
        from gan_cli.cli.search import objective_value

        try:
            value, why = objective_value(result, cfg.optimized_metric, direction)
        except UserError as e:  # every trial would miss it: end the study
            print(f"gan-train: error: {e}", file=sys.stderr)
            sys.exit(2)
        if why:
            print(f"gan-train: {why}", file=sys.stderr)
        return value
    return next((v for k, v in result["final"].items() if k.startswith("estimate/")), None)


def _argv_value(argv: list[str], key: str):
    for a in argv:
        if a.startswith(key + "="):
            value = a.split("=", 1)[1]
            return value if value not in ("", "null", "None") else None
    return None


def _precheck_resume(argv: list[str]):
    """Check resume=<folder> and take its lock before Hydra writes anything into it (its record of
    the resume); the lock is kept in _PRECHECK_LOCK for train()."""
    value = _argv_value(argv, "resume")
    if value is None:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise UserError(f"resume={value}: no such folder. Pass the run folder printed at the end of a gan-train run.")
    if not ck.list_checkpoints(folder):
        raise UserError(f"resume={value}: the folder holds no checkpoint (checkpoints/step_*.pt); start a new run instead.")
    from gan_cli.runs.lock import RunLock

    check_resume_overrides({a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a and not a.startswith("-")})
    lock = RunLock(folder).acquire()
    try:
        _, state = ck.latest_good_checkpoint(folder)
        steps = _argv_value(argv, "steps")
        steps = int(steps) if steps is not None and steps.lstrip("-").isdigit() else int(state["config"]["steps"])
        check_resume_steps(folder, int(state["step"]), steps)
    except BaseException:
        lock.release()  # a refused resume leaves the folder as it was
        raise
    _PRECHECK_LOCK["lock"] = lock  # train() takes it over (one lock per folder and process)
    return lock


_PRECHECK_LOCK: dict = {}


def _precheck_writable(argv: list[str]) -> None:
    """A fresh run's output folder (out_dir, hydra.run.dir / hydra.sweep.dir, else outputs/ or multirun/)
    must be writable: one line before Hydra or the training starts, instead of a traceback later."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    target = _argv_value(argv, "out_dir") or _argv_value(argv, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    folder = Path(target or ("multirun" if multirun else "outputs")).expanduser().absolute()
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"cannot write the run into {folder}: {probe} is not a folder; choose another out_dir.")
    e = probe_writable(probe, ".gan-train-probe-")
    if e is not None:
        raise UserError(f"cannot write the run into {folder} ({e.strerror or e} in {probe}): run from a folder you "
                        f"can write to, or set out_dir=<a writable folder>.")


def main() -> None:
    from gan_cli.training.dist import env_rank

    if env_rank():  # torchrun's ranks > 0 follow rank 0: no lock, no Hydra record or log file in the run folder
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
        return _hydra_main()
    try:
        check_argv(sys.argv[1:])  # a missing preset / option or a moved key: one line, before anything is written
        if _argv_value(sys.argv[1:], "resume") is None and not any(a in ("--help", "-h", "--cfg", "-c", "--info")
                                                                   or a.startswith("--cfg") for a in sys.argv[1:]):
            _precheck_writable(sys.argv[1:])
        _precheck_resume(sys.argv[1:])  # holds the run's lock until train() releases it
    except UserError as e:
        print(f"gan-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
