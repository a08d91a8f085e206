"""Launchers: joblib's per-job device and threads (gan_cli.cli.launch), the submitit presets, real 2-job sweeps."""
import json
import os
import re
import subprocess

import pytest
import torch
from conftest import BIN, compose_train
from omegaconf import OmegaConf

from gan_cli.cli.launch import configure_job, job_device, job_threads, launcher_kind, parallel_jobs

ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
TINY = ["model=gan", "data=ring8", "steps=4", "log_every=2", "image_every=0", "ckpt_every=0", "progress=false",
        "metrics=none", "seed=0,1", "hydra.sweep.dir=sw"]


@pytest.mark.parametrize("n_gpus,expect", [(4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]),
                                           (2, ["cuda:0", "cuda:1"] * 3),
                                           (1, ["cuda:0"] * 6),
                                           (0, ["cpu"] * 6)])
def test_job_k_gets_cuda_k_mod_gpus(n_gpus, expect):
    assert [job_device("auto", k, n_gpus) for k in range(6)] == expect
    if n_gpus:
        assert [job_device("cuda", k, n_gpus) for k in range(6)] == expect


def test_an_explicit_device_is_kept():
    assert job_device("cpu", 3, 4) == "cpu" and job_device("cuda:2", 3, 4) == "cuda:2" and job_device("mps", 1, 0) == "mps"
    assert job_device("cuda", 1, 0) == "cuda"  # no GPU: left to build's one-line error


def test_threads_split_the_cores_between_parallel_jobs():
    assert [job_threads(n, 16) for n in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert parallel_jobs(-1, 16) == 16 and parallel_jobs(-2, 16) == 15 and job_threads(-1, 16) == 1  # joblib's rule
    assert parallel_jobs(None, 8) == 1 and job_threads(2, 1) == 1


def test_launcher_kind():
    assert launcher_kind(JOBLIB) == "joblib"
    assert launcher_kind("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher") == "submitit"
    assert launcher_kind("hydra._internal.core_plugins.basic_launcher.BasicLauncher") == "basic" == launcher_kind(None)


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("n_gpus,device,want", [(3, "auto", "cuda:2"), (2, "auto", "cuda:1"), (0, "auto", "cpu"),
                                                (2, "cpu", "cpu"), (2, "cuda:0", "cuda:0")])
def test_configure_job_under_joblib_with_a_mocked_gpu_count(monkeypatch, restore_threads, n_gpus, device, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n_gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cfg = compose_train(f"device={device}")
    hc = OmegaConf.create({"launcher": {"_target_": JOBLIB, "n_jobs": 2}, "job": {"num": 5}})
    note = configure_job(cfg, hc)
    assert cfg.device == want and torch.get_num_threads() == 4
    assert note == f"job 5: device {want}, 4 torch thread(s) (2 parallel job(s) on 8 cores)"
    optuna_batch = OmegaConf.create({"launcher": {"_target_": JOBLIB, "n_jobs": 4}, "sweeper": {"n_jobs": 1},
                                     "job": {"num": 5}})
    cfg3 = compose_train(f"device={device}")
    assert configure_job(cfg3, optuna_batch).startswith(f"job 5: device {want}, 8 torch thread(s) (1 parallel job(s)")
    basic = OmegaConf.create({"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
                              "job": {"num": 5}})
    cfg2 = compose_train(f"device={device}")
    assert configure_job(cfg2, basic) is None and cfg2.device == device  # other launchers: left alone


def test_slurm_and_its_local_twin_share_one_base():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        slurm = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
        local = compose("train", overrides=["hydra/launcher=slurm_local"], return_hydra_config=True).hydra.launcher
        common = OmegaConf.load(os.path.join(os.path.dirname(__file__), "..", "conf", "hydra", "launcher",
                                             "submitit_common.yaml"))
    assert slurm._target_.endswith("SlurmLauncher") and local._target_.endswith("LocalLauncher")
    for k, v in common.items():
        assert slurm[k] == local[k] == v, k
    assert "partition" in slurm and "partition" not in local
    assert set(local) - set(slurm) == set()  # local's every setting is also the Slurm preset's


def _run(args, cwd, timeout=900):
    return subprocess.run([str(BIN / "gan-train"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def _completed(sweep):
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    return jobs, [json.loads((j / "status.json").read_text())["state"] for j in jobs]


@pytest.mark.slow
def test_joblib_two_job_sweep_assigns_device_and_threads(tmp_path):
    r = _run(["-m", "hydra/launcher=local", *TINY], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs, states = _completed(tmp_path / "sw")
    assert len(jobs) == 2 and states == ["completed", "completed"]
    cpus = os.cpu_count() or 1
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for k in (0, 1):
        want = f"cuda:{k % n_gpus}" if n_gpus else "cpu"
        assert f"gan-train: job {k}: device {want}, {max(1, cpus // 2)} torch thread(s) (2 parallel job(s) on {cpus} cores)" \
            in r.stderr, r.stderr[-2000:]
        ckpt = torch.load(next((jobs[k] / "checkpoints").glob("step_*.pt")), map_location="cpu", weights_only=False)
        assert ckpt["config"]["device"] == want  # the job trained with the device it was given


@pytest.mark.slow
def test_submitit_local_two_job_sweep(tmp_path):
    """The Slurm preset's settings through submitit's local executor: each job its own process."""
    pytest.importorskip("submitit")
    r = _run(["-m", "hydra/launcher=slurm_local", "hydra.launcher.timeout_min=20", *TINY], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs, states = _completed(tmp_path / "sw")
    assert len(jobs) == 2 and states == ["completed", "completed"]
    sub = tmp_path / "sw" / ".submitit"
    assert len([p for p in sub.iterdir() if p.is_dir() and p.name.isdigit()]) == 2  # a submitit job per Hydra job
    hydra_cfg = OmegaConf.load(jobs[0] / ".hydra" / "hydra.yaml").hydra.launcher
    assert hydra_cfg._target_.endswith("LocalLauncher") and hydra_cfg.gpus_per_node == 1 and hydra_cfg.cpus_per_task == 8
    logs = sorted(sub.glob("[0-9]*/*_log.out"))
    assert len(logs) == 2 and all(re.search(r"gan-train gan on ring8: 4 steps", p.read_text()) for p in logs)


def test_a_requeued_slurm_job_continues_its_run(tmp_path, one_torch_thread):
    """Slurm requeues a preempted job (SLURM_RESTART_COUNT > 0) into the same job folder: the unfinished run
    there is continued from its newest checkpoint; a first start, a finished run or no checkpoint are not."""
    import shutil


    from gan_cli.files import write_json
    from gan_cli.cli.launch import requeued_run
    from gan_cli.cli.train import train

    run = tmp_path / "job"
    cfg = compose_train("model=gan", "data=ring8", "steps=4", "log_every=2", "ckpt_every=2", "image_every=0",
                        "metrics=none", "device=cpu", tmp_path=run)
    train(cfg)
    requeue = {"SLURM_RESTART_COUNT": "1"}
    assert not requeued_run(run, requeue)  # completed: nothing to continue
    (run / "checkpoints" / "step_00000004.pt").unlink()  # as if SIGTERM had come after step 2
    write_json(run / "status.json", {"state": "interrupted", "step": 2})
    assert requeued_run(run, requeue) and not requeued_run(run, {}) and not requeued_run(run, {"SLURM_RESTART_COUNT": "0"})
    empty = tmp_path / "empty"
    shutil.copytree(run, empty)
    shutil.rmtree(empty / "checkpoints")
    assert not requeued_run(empty, requeue)
    resumed = compose_train("model=gan", "data=ring8", "steps=4", "metrics=none", "device=cpu", f"resume={run}")
    assert train(resumed, [])["step"] == 4  # what the task function then does: resume=<job folder>, no overrides
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
