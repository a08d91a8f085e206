"""What one job of a sweep uses, set from the Hydra launcher that started it.

* joblib (``hydra/launcher=local``, parallel jobs on one machine): job k trains on
  ``cuda:(k mod #GPUs)`` when GPUs exist (``device=auto`` or ``cuda``; an explicit ``cuda:N`` or
  ``cpu`` is kept), and on the CPU otherwise; torch's intra-op threads are split between the parallel
  jobs (``cores // n_jobs``, at least 1; under the Optuna sweeper at most ``hydra.sweeper.n_jobs`` trials
  run at a time).  Jobs that run at the same time have consecutive numbers,
  so with ``n_jobs <= #GPUs`` no two of them share a GPU.  loky's worker processes get the ``spawn``
  start method for any DataLoader workers (they crash under loky's default).
* submitit (``hydra/launcher=slurm`` / ``slurm_local``): each job is its own allocation
  (``gpus_per_node``, ``cpus_per_task``): ``device=auto`` picks its first visible GPU.
* the basic launcher: jobs run one after another with every core and GPU.

A requeued Slurm job (:func:`requeued_run`) continues the unfinished run in its folder.
"""
from __future__ import annotations

import os
from typing import Optional


def launcher_kind(target: Optional[str]) -> str:
    """``joblib``, ``submitit`` or ``basic`` (any other launcher) from the launcher's ``_target_``."""
    t = str(target or "").lower()
    if "joblib" in t:
        return "joblib"
    if "submitit" in t:
        return "submitit"
    return "basic"


def parallel_jobs(n_jobs, cpus: int) -> int:
    """joblib's ``n_jobs`` as a count: -1 is every core, -2 all but one ... (joblib's rule), at least 1."""
    n = int(n_jobs) if n_jobs is not None else 1
    if n < 0:
        n = cpus + 1 + n
    return max(1, n)


def job_threads(n_jobs, cpus: int) -> int:
    """torch intra-op threads of one of ``n_jobs`` parallel jobs on ``cpus`` cores."""
    return max(1, cpus // parallel_jobs(n_jobs, cpus))


def job_device(device: str, job_num: int, n_gpus: int) -> str:
    """The device of parallel job ``job_num``: ``cuda:(job_num mod n_gpus)`` for ``auto``/``cuda`` when there
    are GPUs, ``cpu`` for ``auto`` without GPUs; any other choice (``cpu``, ``cuda:N``, ``mps``) is kept."""
    device = str(device)
    if device not in ("auto", "cuda"):
        return device
    if n_gpus > 0:
        return f"cuda:{int(job_num) % n_gpus}"
    return "cpu" if device == "auto" else device  # device=cuda without a GPU: build's own one-line error


def configure_job(cfg, hydra_cfg) -> Optional[str]:
    """Set the job's device (in ``cfg``) and torch threads for the launcher that runs it; returns a short
    description for the log (None under the basic launcher)."""
    import torch
    from omegaconf import OmegaConf, open_dict, read_write

    kind = launcher_kind(OmegaConf.select(hydra_cfg, "launcher._target_", default=None))
    if kind != "joblib":
        return None
    cpus = os.cpu_count() or 1
    n_jobs = parallel_jobs(OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=None), cpus)
    batch = OmegaConf.select(hydra_cfg, "sweeper.n_jobs", default=None)  # the Optuna sweeper asks this many at a time
    if isinstance(batch, int) and batch > 0:
        n_jobs = min(n_jobs, batch)
    threads = job_threads(n_jobs, cpus)
    torch.set_num_threads(threads)
    job_num = int(OmegaConf.select(hydra_cfg, "job.num", default=0) or 0)
    device = job_device(cfg.device, job_num, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    with read_write(cfg), open_dict(cfg):
        cfg.device = device
    try:  # DataLoader workers inside a loky worker need spawn (fork crashes there)
        import multiprocessing

        multiprocessing.set_start_method("spawn", force=True)
    except RuntimeError:
        pass
    return f"job {job_num}: device {device}, {threads} torch thread(s) ({parallel_jobs(n_jobs, cpus)} parallel job(s) on {cpus} cores)"


#: states of a run that a requeued job continues (a completed or diverged run is not trained again)
REQUEUE_STATES = ("interrupted", "running", "failed")


def requeued_run(run_dir, env=None) -> bool:
    """True when this job is a Slurm requeue (``SLURM_RESTART_COUNT`` > 0: preemption with requeue,
    ``scontrol requeue``, submitit's requeue at the time limit) and its folder holds an unfinished run with a
    checkpoint: the job then continues that run (``resume=<its folder>``) instead of refusing the folder."""
    from pathlib import Path

    from gan_cli.runs import checkpoint as ck

    from gan_cli.files import read_json

    env = os.environ if env is None else env
    try:
        restarts = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        restarts = 0
    run_dir = Path(run_dir)
    if restarts < 1 or not ck.list_checkpoints(run_dir):
        return False
    state = (read_json(run_dir / "status.json") or {}).get("state")
    return state in REQUEUE_STATES
