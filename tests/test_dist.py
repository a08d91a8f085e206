"""Several processes (gan_cli.training.dist) on the CPU with gloo and 2 ranks.

* equivalence: 2 ranks x B/2 give the weights of 1 rank x B after k steps (1e-5), on an MLP without
  batch norm, fed the same global batches (each rank its half);
* gathered metrics: samples generated on 2 ranks give the numbers of one process on the same samples;
* ``gan-train data=ring8 dist.nproc=2 device=cpu steps=300`` completes, TensorBoard holds each step once;
* killing one rank ends the run with one line and no hang; SIGTERM to one rank stops both with one
  checkpoint; the run resumes on 2 processes and is refused on 1.

The process tests are slow (each process imports torch); the checks of the settings are not.
"""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, compose_train, run_cli, scalar_tags

from gan_cli.runs import checkpoint as ck
from gan_cli.data.base import Batch
from gan_cli.training import dist
from gan_cli import seeds
from gan_cli.config import UserError

GAN_TRAIN = str(BIN / "gan-train")
B, K = 16, 4  # global batch, steps
# samples of the gathered evaluation: three chunks of the toy suite's 1,000 (1000, 1000, 100), so rank 0 makes chunks
# 0 and 2 and rank 1 chunk 1; every metric of the suite is compared (fewer than the default 2,500 keep the exact W1 cheap)
EVAL_N = 2100
TINY = ["model=nsgan", "net=mlp", "net.hidden=16", "net.depth=2", "model.d_norm=none", f"data.batch_size={B}",
        "metrics=none", "device=cpu", "image_every=0", "estimate_batch=32", "log_every=2"]


# ----------------------------------------------------------------------------- settings (no processes)


def test_rank_streams_come_from_the_seed_table():
    assert seeds.seed_for(3, "train", 0) == seeds.seed_for(3, "train")  # rank 0 = one process
    ranks = {seeds.seed_for(3, s, r) for s in seeds.PER_RANK for r in range(4)}
    assert len(ranks) == len(seeds.PER_RANK) * 4  # every rank its own stream
    assert seeds.seed_for(3, "train", 1) != seeds.seed_for(4, "train", 1)
    assert 0 <= seeds.seed_for(-5, "train", 7) < 2**63
    with pytest.raises(ValueError):
        seeds.seed_for(0, "eval", 1)  # evaluation latents are shared by every rank


def test_settings_refused_in_one_line(tmp_path):
    cfg = compose_train(*TINY, "dist.nproc=3", tmp_path=tmp_path)
    with pytest.raises(UserError, match="multiple of 3"):
        dist.check(cfg, None)
    cfg = compose_train(*TINY, "dist.nproc=2", "dist.sync_bn=true", tmp_path=tmp_path)
    with pytest.raises(UserError, match="SyncBatchNorm has no CPU kernel"):
        dist.check(cfg, None)
    cfg = compose_train(*TINY, "dist.nproc=2", tmp_path=tmp_path)
    assert dist.check(cfg, 2) == 2
    with pytest.raises(UserError, match="trained on 1 process.*resumed on 2.*dist.nproc=1"):
        dist.check(cfg, 1)
    with pytest.raises(UserError, match="gloo on the CPU"):
        dist.check(compose_train(*TINY, "dist.nproc=2", "dist.backend=nccl", tmp_path=tmp_path), None)
    from gan_cli.config import validate

    with pytest.raises(UserError, match="dist.nproc=0"):
        validate(compose_train(*TINY, "dist.nproc=0", tmp_path=tmp_path))


# ----------------------------------------------------------------------------- equivalence and metrics


def _feed(trainer, rank: int, world: int):
    """The trainer draws the same global batches whatever the world size; each rank its slice."""
    calls = {"n": 0}

    def take(n, width):
        g = torch.Generator().manual_seed(1000 + calls["n"])  # call i of every rank: the same global batch
        calls["n"] += 1
        full = torch.randn(n * world, width, generator=g)
        return full[rank * n:(rank + 1) * n]

    trainer.data.sample = lambda n, gen=None: Batch(take(n, 2) * 0.5 + 1.0, None)
    trainer.noise = lambda n, gen: take(n, trainer.latent_dim)


def _weights(trainer) -> dict:
    return {f"{net}.{k}": v.clone() for net, m in (("G", trainer.G), ("D", trainer.D)) for k, v in m.state_dict().items()}


def _rank_worker(ctx, tmp: str):
    """Each of 2 ranks: K training steps on fed batches, then one evaluation of a fixed generator."""
    from gan_cli.training.loop import build_trainer

    torch.set_num_threads(1)
    cfg = compose_train(*TINY, f"steps={K}", "dist.nproc=2", tmp_path=tmp)
    tr = build_trainer(cfg, tmp)
    G0 = copy.deepcopy(tr.G)  # scored below: the same weights, bit for bit, as the one-process side's
    _feed(tr, ctx.rank, ctx.world)
    for _ in range(K):
        tr.train_step(want_norms=False)
    ev_cfg = compose_train(*TINY, "metrics=toy", f"metrics.num_samples={EVAL_N}", tmp_path=tmp)
    from gan_cli.build import build_data, build_evaluator

    ev = build_evaluator(ev_cfg.metrics, ev_cfg.data, build_data(ev_cfg.data), tr.device)  # not the fed source
    values = dist.evaluate(ctx, ev, G0, tr.latent_dim, tr.device, seed=5)
    if ctx.is_main:
        torch.save({"weights": _weights(tr), "loss_d": float(tr.acc["loss/d"]), "values": values},
                   Path(tmp) / "rank0.pt")


@pytest.mark.slow
def test_two_ranks_half_batch_train_like_one_rank_and_score_the_same(tmp_path, one_torch_thread):
    from gan_cli.build import build_data, build_evaluator
    from gan_cli.training.loop import build_trainer
    from gan_cli.metrics.evaluator import generator_sampler

    dist.spawn(_rank_worker, 2, (str(tmp_path),))
    two = torch.load(tmp_path / "rank0.pt")

    cfg = compose_train(*TINY, f"steps={K}", tmp_path=tmp_path)
    one = build_trainer(cfg, tmp_path)
    G0 = copy.deepcopy(one.G)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in [*one.G.modules(), *one.D.modules()])
    _feed(one, 0, 1)
    before = _weights(one)
    for _ in range(K):
        one.train_step(want_norms=False)
    after = _weights(one)
    moved = 0
    for k, v in after.items():
        torch.testing.assert_close(two["weights"][k], v, rtol=0, atol=1e-5)
        moved += int(not torch.allclose(v, before[k]))
    assert moved == len(after)  # every tensor trained: the comparison is not of untouched weights
    assert abs(two["loss_d"] - float(one.acc["loss/d"])) < 1e-5  # rank 0 logs the global loss

    ev_cfg = compose_train(*TINY, "metrics=toy", f"metrics.num_samples={EVAL_N}", tmp_path=tmp_path)
    ev = build_evaluator(ev_cfg.metrics, ev_cfg.data, build_data(ev_cfg.data), one.device)
    values = ev(generator_sampler(G0, one.latent_dim, one.device, 5))
    assert values.keys() == two["values"].keys() and len(values) > 3
    for k, v in values.items():  # the same samples (chunks 0, 2 on rank 0; chunk 1 on rank 1)
        w = two["values"][k]
        assert (math.isnan(v) and math.isnan(w)) or w == pytest.approx(v, rel=1e-6, abs=1e-9), (k, w, v)


# ----------------------------------------------------------------------------- gan-train on 2 processes


def _env():
    return dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")


def _gan_train(args, cwd, **kw):
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([GAN_TRAIN, *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _rank_pids(pid: int) -> list[int]:
    """The processes dist.nproc started (torch.multiprocessing's spawn children, not its resource tracker)."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "spawn_main" in cmd:
            out.append(int(child))
    return out


def _wait_running(p, run: Path, timeout=240):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (run / "scalars.jsonl").exists():
            return
        if p.poll() is not None:
            raise AssertionError(f"gan-train ended early (rc {p.returncode}): {p.communicate()[1][-2000:]}")
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the run logged nothing in time")


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("[W")]  # gloo's C++ warnings
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _steps_once(run: Path, tag="loss/d") -> list[int]:
    steps = [e.step for e in scalar_tags(run).Scalars(tag)]
    assert len(steps) == len(set(steps)), steps  # one writer: each step once
    return steps


@pytest.mark.slow
def test_gan_train_two_processes_ring8_300_steps(tmp_path):
    run = tmp_path / "run"
    # the default toy suite on 500 samples (the exact W1 at 2,500 costs about a second)
    p = _gan_train(["data=ring8", "dist.nproc=2", "device=cpu", "steps=300", "progress=false", "metrics.num_samples=500",
                    f"out_dir={run}"], tmp_path)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    assert _steps_once(run) == list(range(50, 301, 50))
    assert _steps_once(run, "metrics/modes_500") == [300]
    assert len(list((run / "tb").iterdir())) == 1  # one events file
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    res = json.loads((run / "results.json").read_text())
    assert res["step"] == 300 and "w1_500" in res["metrics"]
    assert [json.loads(ln)["step"] for ln in (run / "scalars.jsonl").read_text().splitlines()] == list(range(50, 301, 50))
    assert [p.name for p in ck.list_checkpoints(run)] == ["step_00000300.pt"]
    state = ck.load_checkpoint(ck.list_checkpoints(run)[-1])
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 1
    assert not torch.equal(state["rng"]["train"], state["rng_ranks"][0]["train"])  # each rank its stream


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_in_one_line(tmp_path):
    run = tmp_path / "run"
    p = _gan_train([*TINY, "dist.nproc=2", "steps=100000", "progress=false", f"out_dir={run}", "dist.timeout_s=60"],
                   tmp_path)
    _wait_running(p, run)
    (child,) = _rank_pids(p.pid)
    os.kill(child, signal.SIGKILL)
    t0 = time.monotonic()
    out, err = p.communicate(timeout=120)
    assert time.monotonic() - t0 < 60  # the broken connection, not the timeout, ends it
    assert p.returncode == 2
    line = _one_line(err)
    assert line.startswith(f"gan-train: error: distributed training failed: rank 1 (pid {child}) was killed by SIGKILL")
    assert "gan-train resume=" in line
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_with_one_checkpoint_and_resume(tmp_path):
    run = tmp_path / "run"
    p = _gan_train([*TINY, "dist.nproc=2", "steps=100000", "ckpt_every=0", "progress=false", f"out_dir={run}"], tmp_path)
    _wait_running(p, run)
    (child,) = _rank_pids(p.pid)
    os.kill(child, signal.SIGTERM)  # the rank that is not the leader: the stop flag reaches rank 0
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    line = _one_line(err)
    assert line.startswith("gan-train: SIGTERM received: stopped at step") and "gan-train resume=" in line
    ckpts = ck.list_checkpoints(run)
    assert len(ckpts) == 1  # ckpt_every=0: the stop's checkpoint, written once
    stop = int(ckpts[0].name[5:13])
    assert stop % 2 == 0  # agreed at a logging step (log_every=2)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()

    refused = run_cli("gan-train", [f"resume={run}", "dist.nproc=1"], tmp_path)  # its main() in this process
    assert refused.returncode == 2
    assert "trained on 2 process(es) and is resumed on 1" in _one_line(refused.stderr)

    done = subprocess.run([GAN_TRAIN, f"resume={run}", f"steps={stop + 4}"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = _steps_once(run)
    assert steps == list(range(2, stop + 5, 2))
    assert json.loads((run / "status.json").read_text()) == {"state": "completed", "step": stop + 4}


@pytest.mark.slow
def test_torchrun_ranks_join_and_rank_0_writes(tmp_path):
    """torchrun starts 2 gan-train processes; rank 1 joins rank 0's group and writes nothing."""
    run = tmp_path / "run"
    env = dict(_env(), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node=2", "-m", "gan_cli.cli.train", *TINY,
                           "steps=6", "progress=false", f"hydra.run.dir={run}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps_once(run) == [2, 4, 6]
    state = ck.load_checkpoint(ck.ckpt_path(run, 6))
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 1
    assert done.stdout.count("run folder:") == 1  # one summary: rank 0's
