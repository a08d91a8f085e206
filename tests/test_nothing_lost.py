"""Nothing lost, nothing confusing: each test makes the fault happen for real (a real signal during an
evaluation, a second process, a read-only folder, a folder that already holds a run) and checks that
the run is kept and the user gets one line.

Signals, a second process holding the run's lock, dropped privileges and commands pasted into a shell run real
processes; the other gan-train / gan-eval calls run the console scripts' main() in this process
(conftest.run_cli: the same argv, cwd, exit status, stdout and stderr, without 2 s of interpreter start each)."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, compose_train, process_env, run_cli

from gan_cli.runs import checkpoint as ck

from gan_cli.files import read_json

TINY = ["steps=10", "log_every=5", "ckpt_every=5", "image_every=0", "estimate_batch=64", "data.batch_size=64",
        "net.hidden=32", "device=cpu", "progress=false"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _env():
    return process_env(PYTHONUNBUFFERED="1")


def _run(args, cwd, timeout=300, tool="gan-train"):
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _cli(args, cwd, tool="gan-train"):
    """The console script's main() in this process (conftest.run_cli)."""
    return run_cli(tool, args, cwd)


def _sh(command: str, cwd, timeout=300):
    """A command line exactly as a user pastes it into a shell."""
    return subprocess.run(command, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _one_error_line(r, code=2):
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}  # the lock file is not the run


# ----------------------------------------------------------------------------- 1. checkpoint before evaluation


@pytest.mark.slow
def test_digits_with_default_metrics_completes_and_keeps_its_weights(tmp_path, digits_cache):
    """Before: "metrics.num_samples=10000 but digits has only 1500 training images" and no checkpoint."""
    r = _cli(["data=digits", "steps=20", "log_every=10", "image_every=0", "progress=false", "device=cpu",
              f"out_dir={tmp_path / 'run'}", f"metrics.cache_dir={digits_cache}"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "evaluating with 1500 samples" in r.stderr
    assert ck.list_checkpoints(tmp_path / "run")[-1].name == "step_00000020.pt"
    final = json.loads((tmp_path / "run" / "results.json").read_text())["final"]
    assert np.isfinite(final["fid1.5k_clf"]) and 0 <= final["precision1.5k_k5_clf"] <= 1


def test_no_sample_count_warning_when_nothing_is_evaluated(tmp_path):
    """Before: metrics=none on digits still warned that metrics.num_samples=2500 exceeds its 1500 images."""
    r = _cli(["data=digits", "metrics=none", "steps=2", "image_every=0", "progress=false", "device=cpu",
              "net.channels=8", f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "evaluating with" not in r.stderr and "warning" not in r.stderr


def test_a_metric_that_cannot_run_is_skipped_and_the_run_completes(tmp_path):
    """Before: metrics=toy metrics.num_samples=3 stopped after training with no checkpoint."""
    r = _cli([*TINY, "metrics=toy", "metrics.num_samples=3", f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "metric prdc skipped: it needs at least 6 samples" in r.stderr
    assert (tmp_path / "run" / "checkpoints" / "step_00000010.pt").exists()
    assert "w1_3" in json.loads((tmp_path / "run" / "results.json").read_text())["final"]


# ----------------------------------------------------------------------------- 2. signals during an evaluation


def _wait_for(pred, p, timeout=240):
    t0 = time.time()
    while not pred():
        if p.poll() is not None:
            raise AssertionError(f"gan-train ended early: {p.communicate()[1][-3000:]}")
        if time.time() - t0 > timeout:
            p.kill()
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_the_final_evaluation_keeps_the_run_and_resumes(sig, code, tmp_path):
    """Before: no checkpoint, status.json "running" at step 0.  The evaluation is made slow for real
    (a freshly trained critic for W1, metrics.critic_w=true: about 1.2 s of its 1.5 s on 200 samples) and the
    signal lands while it runs.  (On the default 2,500 samples the exact W1, a C routine of about a second that the
    signal cannot interrupt, comes first.)"""
    run = tmp_path / "run"
    p = subprocess.Popen([str(BIN / "gan-train"), *TINY, "metrics=toy", "metrics.critic_w=true",
                          "metrics.num_samples=200", f"out_dir={run}"],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run / "checkpoints" / "step_00000010.pt").exists(), p)  # written just before the evaluation
    time.sleep(0.3)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err[-2000:]
    assert "Traceback" not in err and f"Continue with: gan-train resume={run}" in err
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "interrupted" and st["step"] == 10
    assert not (run / "results.json").exists()
    # the printed command, pasted as printed, finishes the evaluation
    hint = next(ln for ln in err.splitlines() if "Continue with: " in ln).split("Continue with: ")[1]
    r = _sh(f"{hint} metrics.critic_w=false", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((run / "results.json").read_text())
    assert res["step"] == 10 and "w1_200" in res["final"]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"


def test_a_second_signal_exits_at_once_without_a_traceback():
    from gan_cli.training.loop import graceful_signals

    state = {}
    with graceful_signals(state):
        os.kill(os.getpid(), signal.SIGTERM)
        assert state["signal"] == signal.SIGTERM  # the first one is a flag: the step finishes
        with pytest.raises(SystemExit) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert e.value.code == 143


# ----------------------------------------------------------------------------- 3. a fresh run into an existing run


def test_fresh_run_into_an_existing_run_folder_is_refused_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    assert _cli([*TINY, "metrics=none", f"out_dir={run}"], tmp_path).returncode == 0
    before = _snapshot(run)
    line = _one_error_line(_cli([*TINY, "metrics=none", "seed=1", f"out_dir={run}"], tmp_path))
    assert f"{run} already holds a run; use resume={run} or another out_dir" in line
    assert _snapshot(run) == before


# ----------------------------------------------------------------------------- 4. one writer per run


def test_a_second_resume_of_a_running_run_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    assert _cli([*TINY, "metrics=none", f"out_dir={run}"], tmp_path).returncode == 0
    first = subprocess.Popen([str(BIN / "gan-train"), f"resume={run}", "steps=100000"], cwd=tmp_path, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (read_json(run / "status.json") or {}).get("pid") == first.pid, first)
        line = _one_error_line(_cli([f"resume={run}", "steps=100000"], tmp_path))  # the lock is the other process's
        assert f"in use by another gan-train (pid {first.pid})" in line
        assert len(list(run.glob(".hydra_resume_*"))) == 1  # only the first one's record
        # status.json follows the training step by step
        _wait_for(lambda: (read_json(run / "status.json") or {}).get("step", 0) >= 20, first)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 143


# ----------------------------------------------------------------------------- 5. resume with nothing to do


def test_resume_at_or_below_the_checkpoint_step_is_refused_and_rewrites_nothing(tmp_path):
    run = tmp_path / "run"
    assert _cli([*TINY, "metrics=none", f"out_dir={run}"], tmp_path).returncode == 0
    before = _snapshot(run)
    for steps in ("10", "5"):
        line = _one_error_line(_cli([f"resume={run}", f"steps={steps}"], tmp_path))
        assert f"{run} is already at step 10; pass steps greater than 10 to continue" in line
    line = _one_error_line(_cli([f"resume={run}"], tmp_path))  # the saved steps (10): a completed run
    assert "already at step 10" in line
    line = _one_error_line(_cli([f"resume={run}", "model.opt_g.lr=1"], tmp_path))
    assert "cannot change on resume: model.opt_g.lr" in line
    assert _snapshot(run) == before and not list(run.glob(".hydra_resume_*"))


# ----------------------------------------------------------------------------- 10. read-only output folder


def _no_dac_override():
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root ignores file permissions and setpriv is not installed")
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("root ignores file permissions and cannot drop CAP_DAC_OVERRIDE here")
    return prefix


def test_read_only_output_folder_is_one_line_before_any_work(tmp_path):
    prefix = _no_dac_override()
    ro = tmp_path / "ro"
    ro.mkdir()
    run = tmp_path / "run"
    assert _cli([*TINY, "metrics=none", f"out_dir={run}"], tmp_path).returncode == 0
    ro.chmod(0o555)
    try:
        r = subprocess.run([*prefix, str(BIN / "gan-train"), *TINY], cwd=ro, env=_env(), capture_output=True, text=True,
                           timeout=120)
        line = _one_error_line(r)
        assert "cannot write the run into" in line and "Permission denied" in line and str(ro) in line
        r = subprocess.run([*prefix, str(BIN / "gan-eval"), f"ckpt={run}", f"out={ro / 'eval'}", "metrics=toy"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        line = _one_error_line(r)
        assert "cannot write results into" in line and f"{ro / 'eval'}" in line
        assert "w1" not in r.stdout  # no metric was computed first
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


# ----------------------------------------------------------------------------- 11. folders that paste back in


@pytest.mark.slow
def test_sweep_folders_paste_back_into_ckpt_resume_and_folder(tmp_path):
    # the sweep: gan-train's main() in this process (Hydra's basic launcher runs the jobs in it anyway); the two
    # commands that paste its folders back run in a shell
    r = _cli(shlex.split("-m model=gan,wgan_gp model.opt_g.lr=1e-4,2e-4 steps=2 log_every=1 image_every=0 "
                         "ckpt_every=0 metrics=none estimate_batch=64 net.hidden=16 device=cpu progress=false "
                         "model.warmup_critic_steps=0"), tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = sorted(p.parent.parent for p in tmp_path.glob("multirun/*/*/*/checkpoints/step_00000002.pt"))
    assert len(jobs) == 4
    for job in jobs:
        assert job.name == shlex.quote(job.name) and "=" not in job.name and "," not in job.name
    rel = jobs[0].relative_to(tmp_path)
    r = _sh(f"gan-eval ckpt={rel} metrics=toy metrics.num_samples=50", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _sh(f"gan-train resume={jobs[1]} steps=3", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ck.list_checkpoints(jobs[1])[-1].name == "step_00000003.pt"


def test_printed_paths_with_spaces_are_shell_quoted(tmp_path):
    run = tmp_path / "my runs" / "first run"
    r = _cli([*TINY, "metrics=none", f"out_dir={run}"], tmp_path)  # what it prints; the resume below is pasted
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("run folder: "))
    assert line == f"run folder: {shlex.quote(str(run))}"
    tb = next(ln for ln in r.stdout.splitlines() if ln.startswith("TensorBoard: "))
    assert shlex.split(tb.split(": ", 1)[1])[-1] == str(run / "tb")
    r = _sh(f"gan-train resume={shlex.quote(str(run))} steps=15", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]


# ----------------------------------------------------------------------------- 13 - 17


def test_end_of_run_shows_metrics_and_no_matplotlib_warnings(tmp_path):
    # a real process: what a fresh interpreter prints on stderr, import-time warnings included
    r = _run([*TINY, "image_every=5", "metrics=toy", "metrics.num_samples=100", f"out_dir={tmp_path / 'r'}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "w1_100" in r.stdout and "modes_100" in r.stdout and "…" not in r.stdout
    assert "Ignoring fixed" not in r.stderr


def test_hparams_have_the_same_columns_for_every_model():
    from gan_cli.build import flat_hparams

    models = [p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "model").glob("*.yaml")]
    cols = {m: set(flat_hparams(compose_train(f"model={m}"))) for m in models}
    assert len({frozenset(c) for c in cols.values()}) == 1 and "divergence" in cols["gan"]
    # r1_gamma: the weight the run trains with: without reg=[r1] f-GAN's tv row has its own (0.003 at box points), kl none
    r1 = {d: flat_hparams(compose_train("model=fgan", f"model.divergence={d}"))["r1_gamma"] for d in ("tv", "kl")}
    assert r1 == {"tv": 0.003, "kl": 0.0}
    assert flat_hparams(compose_train("model=fgan", "model.divergence=tv"))["r1_points"] == "box"
    assert flat_hparams(compose_train("model=nsgan"))["r1_points"] == "-"
    assert flat_hparams(compose_train("model=nsgan", "reg=[r1]"))["r1_points"] == "real"
    off = flat_hparams(compose_train("model=fgan", "model.divergence=tv", "reg=[r1]", "reg.r1.gamma=0"))
    assert off["r1_gamma"] == 0.0 and off["reg"] == "r1"
    both = flat_hparams(compose_train("model=wgan_gp", "reg=[r1]", "reg.r1.gamma=0.5"))
    assert (both["r1_gamma"], both["gp_weight"], both["reg"]) == (0.5, 10.0, "gp+r1")


def test_a_run_that_fails_before_its_first_step_says_so_in_its_folder(tmp_path):
    run = tmp_path / "run"
    line = _one_error_line(_cli([*TINY, "data=image_folder", f"data.path={tmp_path / 'nope'}", f"out_dir={run}"], tmp_path))
    assert "does not exist" in line
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "failed" and "does not exist" in st["error"] and not ck.list_checkpoints(run)


def test_skip_mode_does_not_suggest_skip_mode(tmp_path):
    from gan_cli.training.loop import Diverged, build_trainer

    for mode, says in (("stop", True), ("skip", False)):
        tr = build_trainer(compose_train(f"guard.on_nonfinite={mode}", tmp_path=tmp_path), tmp_path)
        with pytest.raises(Diverged) as e:
            tr.check_finite({"loss/d": float("nan"), "loss/g": 0.0, tr.objective.estimate_tag: 0.0})
        assert ("guard.on_nonfinite=skip" in str(e.value)) == says


def test_gan_eval_on_an_image_folder_with_toy_data_is_one_line(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    line = _one_error_line(_cli([f"folder={tmp_path / 'imgs'}", "data=ring8"], tmp_path, tool="gan-eval"))
    assert "an image folder" in line and "ring8" in line


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("digits") / "run"
    r = _cli(["data=digits", "steps=6", "log_every=3", "image_every=0", "progress=false", "device=cpu", "metrics=none",
              "net.channels=8", f"out_dir={run}"], run.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    return run


def test_export_writes_numbered_8bit_pngs_of_the_data_size(digits_ckpt, tmp_path):
    from PIL import Image

    out = tmp_path / "samples"
    r = _cli([f"ckpt={digits_ckpt}", f"export={out}", "export.n=30"], tmp_path, tool="gan-eval")
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(30)]
    with Image.open(files[0]) as im:
        assert im.mode == "L" and im.size == (8, 8)
    pix = np.stack([np.asarray(Image.open(f)) for f in files])
    assert pix.dtype == np.uint8 and pix.std() > 0 and len({p.tobytes() for p in pix}) == 30
    again = _cli([f"ckpt={digits_ckpt}", f"export={tmp_path / 'again'}", "export.n=30"], tmp_path, tool="gan-eval")
    assert again.returncode == 0
    assert all((tmp_path / "again" / f.name).read_bytes() == f.read_bytes() for f in files)  # same seed, same files
    line = _one_error_line(_cli([f"ckpt={digits_ckpt}", f"export={out}", "export.n=3"], tmp_path, tool="gan-eval"))
    assert "is not an empty folder" in line


def test_ckpt_best_keeps_the_best_checkpoint_beside_the_rotating_ones(tmp_path):
    run = tmp_path / "run"
    r = _cli(["steps=30", "log_every=5", "eval_every=5", "ckpt_every=5", "keep_ckpts=1", "image_every=0",
              "metrics=toy", "metrics.num_samples=200", "ckpt_best=w1", "progress=false", "device=cpu",
              "net.hidden=32", f"out_dir={run}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    evals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(evals, key=lambda e: e["w1_200"])
    meta = json.loads((run / "checkpoints" / "best.json").read_text())
    assert meta["key"] == "w1_200" and meta["value"] == best["w1_200"] and meta["step"] == best["step"]
    assert ck.load_checkpoint(run / "checkpoints" / "best.pt")["step"] == best["step"]
    assert [p.name for p in ck.list_checkpoints(run)] == ["step_00000030.pt"]  # rotation left best.pt alone
    line = _one_error_line(_cli([*TINY, "metrics=toy", "ckpt_best=nonsense", f"out_dir={tmp_path / 'x'}"], tmp_path))
    assert "ckpt_best=nonsense" in line
