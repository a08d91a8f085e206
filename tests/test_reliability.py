"""Reliability: kills, signals, divergence, unsafe/broken checkpoints, bad input, sweeps, full disks.

Every test injects one fault and checks what the tool does.  Where the point is about the
process (signals, SIGKILL, exit status after a signal) the real ``gan-train`` runs as a subprocess;
one such run goes through a small wrapper script that patches ``torch.save`` and then calls
``gan_cli.cli.train.main()`` exactly as the console script does -- no test hooks live in the
package.  Independent subprocesses run concurrently to keep the file fast on two CPU cores.
Command-line checks (bad input, refused checkpoints, a sweep with failing jobs, the divergence
guard's exit) run the same ``main()`` in this process (conftest.run_cli: argv, cwd, exit status,
stdout, stderr), patching with monkeypatch where a fault is injected.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, compose_train, run_cli, scalar_tags

from gan_cli.runs import checkpoint as ck

from gan_cli.files import atomic_write_bytes
from gan_cli.config import UserError

GAN_TRAIN = str(BIN / "gan-train")
# A tiny run: ~1 s of training on a slow CPU, a checkpoint and a log line every 5 steps.
BASE = ["model=nsgan", "steps=40", "log_every=5", "ckpt_every=5", "image_every=0", "estimate_batch=64",
        "data.batch_size=64", "net.hidden=32", "metrics=none", "device=cpu", "progress=false"]
# Runs that get killed or signalled are set to 1000 steps so the signal always lands mid-run;
# their resume sets steps=40 (a setting resume may change) to compare with the 40-step reference.
LONG = [a for a in BASE if not a.startswith("steps=")] + ["steps=1000"]
TIMEOUT = 150


# ----------------------------------------------------------------------------- helpers


def _env():
    # One thread: the nets are tiny, and on a busy 2-core machine two spinning OpenMP threads
    # made each step ~4x slower.  Reference and resumed runs use the same count (determinism).
    return dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _start(args, cwd, wrapper: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(wrapper), *args] if wrapper else [GAN_TRAIN, *args]
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"gan-train hung: {p.args}\n{err[-3000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _run_all(jobs, width: int = 3) -> list[subprocess.CompletedProcess]:
    """Run ``[(args, cwd) | (args, cwd, wrapper)]`` concurrently, ``width`` at a time, in order."""
    results, running = [None] * len(jobs), []
    for i, job in enumerate(jobs):
        if len(running) >= width:
            j, p = running.pop(0)
            results[j] = _finish(p)
        running.append((i, _start(*job)))
    for j, p in running:
        results[j] = _finish(p)
    return results


def _wrapper(tmp_path: Path, patch: str) -> Path:
    """A script that applies ``patch`` and then runs gan-train's real entry point."""
    w = tmp_path / "wrapped_gan_train.py"
    w.write_text(
        "import sys\n" + textwrap.dedent(patch)
        + "\nfrom gan_cli.cli.train import main\nsys.argv[0] = 'gan-train'\nmain()\n"
    )
    return w


def _steps(run: Path) -> list[int]:
    return [int(p.name[5:13]) for p in ck.list_checkpoints(run)]


def _wait_for_checkpoint(p: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        have = _steps(run)
        if have and have[-1] >= step:
            return have[-1]
        if p.poll() is not None:
            raise AssertionError(f"gan-train ended early (rc {p.returncode}): {p.communicate()[1][-2000:]}")
        time.sleep(0.01)
    p.kill()
    raise AssertionError(f"no checkpoint for step {step} after {timeout} s")


def _status(run: Path) -> dict:
    return json.loads((Path(run) / "status.json").read_text())


def _scalars(run: Path) -> dict:
    acc = scalar_tags(run)
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _assert_same_run(a: Path, b: Path, step: int = 40):
    """Same final weights (bit for bit) and the same logged scalars as the reference run."""
    wa, wb = ck.load_checkpoint(ck.ckpt_path(a, step)), ck.load_checkpoint(ck.ckpt_path(b, step))
    for net in ("generator", "discriminator"):
        assert wa[net].keys() == wb[net].keys()
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), (net, k)
    sa, sb = _scalars(a), _scalars(b)
    assert sa.keys() == sb.keys()
    for tag in sa:
        assert sa[tag] == sb[tag], (tag, sa[tag], sb[tag])
    assert [s for s, _ in sa["loss/d"]] == list(range(5, step + 1, 5))


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _no_tmp_files(run: Path):
    assert not list(Path(run).rglob("*.tmp-*")), list(Path(run).rglob("*.tmp-*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted 40-step run of the real CLI, the yardstick for every resumed run."""
    root = tmp_path_factory.mktemp("reference")
    r = _run_all([([*BASE, f"out_dir={root / 'run'}"], root)])[0]
    assert r.returncode == 0, r.stderr
    assert _steps(root / "run")[-1] == 40
    return root / "run"


# ----------------------------------------------------------------------------- 1. killed at any moment


def test_sigkill_at_random_step_then_resume_equals_uninterrupted(reference, tmp_path):
    """SIGKILL at a seeded random moment: the newest checkpoint loads, and ``gan-train resume=``
    reaches bit-identical weights and the same TensorBoard scalars as the uninterrupted run
    (events logged after the last checkpoint are dropped through SummaryWriter's purge_step)."""
    rng = random.Random(1234)
    target, delay = rng.choice(range(5, 30, 5)), rng.uniform(0.0, 0.1)
    run = tmp_path / "run"
    p = _start([*LONG, f"out_dir={run}"], tmp_path)
    _wait_for_checkpoint(p, run, target)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    assert _finish(p).returncode == -signal.SIGKILL
    steps = _steps(run)
    assert steps and target <= steps[-1] < 40, steps
    for path in ck.list_checkpoints(run):  # every listed checkpoint is complete and loadable
        assert ck.load_checkpoint(path)["step"] == int(path.name[5:13])
    assert _status(run)["state"] == "running"  # a killed process cannot say more

    r = _run_all([([f"resume={run}", "steps=40"], tmp_path)])[0]
    assert r.returncode == 0, r.stderr
    assert _status(run) == {"state": "completed", "step": 40}
    _assert_same_run(reference, run)


KILL_MID_WRITE = """
import io, os, signal, torch
_real_save = torch.save
def _save(obj, f, *a, **k):
    if isinstance(obj, dict) and obj.get("step") == 15:  # the checkpoint of step 15: die half-way
        buf = io.BytesIO(); _real_save(obj, buf, *a, **k); data = buf.getvalue()
        f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_save(obj, f, *a, **k)
torch.save = _save
"""


def test_sigkill_while_writing_a_checkpoint_keeps_previous_and_resume_ignores_temp(reference, tmp_path):
    """The process dies half-way through writing step 15's checkpoint: step 10's file is intact,
    the half-written ``.step_00000015.pt.tmp-PID`` is never listed, and resume starts at 10."""
    run = tmp_path / "run"
    r = _run_all([([*BASE, f"out_dir={run}"], tmp_path, _wrapper(tmp_path, KILL_MID_WRITE))])[0]
    assert r.returncode == -signal.SIGKILL, r.stderr
    leftovers = list((run / "checkpoints").glob(".step_00000015.pt.tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert _steps(run) == [5, 10]
    path, state = ck.latest_good_checkpoint(run)
    assert path == ck.ckpt_path(run, 10) and state["step"] == 10

    r = _run_all([([f"resume={run}"], tmp_path)])[0]
    assert r.returncode == 0, r.stderr
    _assert_same_run(reference, run)


def test_crash_inside_atomic_write_keeps_previous_file(tmp_path):
    run = tmp_path / "run"
    good = ck.ckpt_path(run, 5)
    ck.save_checkpoint(good, {"step": 5, "w": torch.arange(4.0)})
    before = good.read_bytes()

    def dies_half_way(f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # e.g. a second Ctrl-C in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(good, dies_half_way)  # overwrite of the same name
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(ck.ckpt_path(run, 10), dies_half_way)
    assert good.read_bytes() == before
    _no_tmp_files(run)
    assert ck.list_checkpoints(run) == [good]
    # a temp file left by a killed process (SIGKILL cannot clean up) is ignored by resume
    (run / "checkpoints" / ".step_00000010.pt.tmp-4242").write_bytes(b"PK\x03\x04 half")
    assert ck.list_checkpoints(run) == [good]
    path, state = ck.latest_good_checkpoint(run)
    assert path == good and torch.equal(state["w"], torch.arange(4.0))


def test_corrupt_newest_checkpoint_falls_back_to_older_with_warning(tmp_path, capsys):
    run = tmp_path / "run"
    ck.save_checkpoint(ck.ckpt_path(run, 5), {"step": 5})
    ck.save_checkpoint(ck.ckpt_path(run, 10), {"step": 10})
    newest = ck.ckpt_path(run, 10)
    newest.write_bytes(newest.read_bytes()[:100])  # e.g. a copy cut short
    path, state = ck.latest_good_checkpoint(run)
    assert path == ck.ckpt_path(run, 5) and state["step"] == 5
    err = capsys.readouterr().err
    assert str(newest) in err and "truncated" in err


# ----------------------------------------------------------------------------- 2. graceful stop


@pytest.mark.slow  # several gan-train processes (> 20 s on a busy 2-core machine)
def test_sigterm_and_sigint_checkpoint_exit_128_plus_signum_and_resume(reference, tmp_path):
    """SIGTERM / SIGINT: a checkpoint at the current step, one line saying how to resume, exit
    143 / 130, status.json 'interrupted'; ``gan-train resume=`` then finishes the same run."""
    runs = {sig: tmp_path / sig.name for sig in (signal.SIGTERM, signal.SIGINT)}
    procs = {sig: _start([*LONG, f"out_dir={run}"], tmp_path / f"cwd_{sig.name}") for sig, run in runs.items()}
    waiting, t0 = dict(procs), time.monotonic()
    while waiting:  # signal each run as soon as it has written its first checkpoint
        for sig, p in list(waiting.items()):
            if _steps(runs[sig]):
                p.send_signal(sig)
                del waiting[sig]
            assert p.poll() is None, p.communicate()[1][-2000:]
        assert time.monotonic() - t0 < 120, "no checkpoint after 120 s"
        time.sleep(0.01)
    for sig, p in procs.items():
        r, run = _finish(p), runs[sig]
        assert r.returncode == 128 + sig, (sig, r.returncode, r.stderr)
        line = _one_line(r.stderr)
        assert f"{sig.name} received" in line and f"gan-train resume={run}" in line, line
        st = _status(run)
        assert st["state"] == "interrupted" and 5 <= st["step"] < 40, st
        assert _steps(run)[-1] == st["step"]  # a checkpoint at the step it stopped
        assert ck.load_checkpoint(ck.ckpt_path(run, st["step"]))["step"] == st["step"]
        assert str(ck.ckpt_path(run, st["step"])) in line
    results = _run_all([([f"resume={run}", "steps=40"], tmp_path / f"cwd_{sig.name}") for sig, run in runs.items()])
    for r, run in zip(results, runs.values()):
        assert r.returncode == 0, r.stderr
        assert _status(run)["state"] == "completed"
        _assert_same_run(reference, run)


# ----------------------------------------------------------------------------- 3. divergence guard

def test_divergence_stops_with_one_line_exit_2_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from gan_cli.objectives import NSGAN

    real, calls = NSGAN.d_loss, [0]

    def d_loss(self, real_out, fake_out):
        calls[0] += 1  # one D step per G step for nsgan: call k is step k
        loss = real(self, real_out, fake_out)
        return loss * float("nan") if calls[0] > 12 else loss

    monkeypatch.setattr(NSGAN, "d_loss", d_loss)
    run = tmp_path / "run"
    r = run_cli("gan-train", [*BASE, f"out_dir={run}"], tmp_path)  # gan-train's main() with d_loss patched
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    good = ck.ckpt_path(run, 10)
    for needle in ("diverged", "loss/d", "between steps 10 and 15", f"last good checkpoint: {good}", "lr"):
        assert needle in line, (needle, line)
    st = _status(run)
    assert st["state"] == "diverged" and "loss/d" in st["error"]
    assert _steps(run) == [5, 10]  # nothing written from NaN weights
    state = ck.load_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in state["generator"].values())
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values())


def test_skip_mode_skips_bad_steps_and_completes(tmp_path, monkeypatch):
    from gan_cli.objectives import NSGAN
    from gan_cli.cli.train import train

    real, calls = NSGAN.d_loss, [0]

    def d_loss(self, real_out, fake_out):
        calls[0] += 1
        loss = real(self, real_out, fake_out)
        return loss * float("nan") if 12 < calls[0] <= 15 else loss  # steps 13, 14, 15 are bad

    monkeypatch.setattr(NSGAN, "d_loss", d_loss)
    cfg = compose_train(*[a for a in BASE if not a.startswith("steps")], "steps=20", "guard.on_nonfinite=skip",
                        tmp_path=tmp_path)
    result = train(cfg)
    assert result["status"] == "completed" and result["step"] == 20
    assert _status(tmp_path)["state"] == "completed"
    skipped = _scalars(tmp_path)["guard/skipped_steps"]
    assert skipped == [(5, 0.0), (10, 0.0), (15, 3.0), (20, 3.0)]
    state = ck.load_checkpoint(ck.ckpt_path(tmp_path, 20))
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values())
    assert state["skips"] == 3


# ----------------------------------------------------------------------------- 4. safe loading


class _Evil:
    """Unpickling this would run a shell command (harmless here: it creates a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _real_checkpoint(tmp_path_factory) -> Path:
    from gan_cli.cli.train import train

    run = tmp_path_factory.mktemp("small")
    train(compose_train(*[a for a in BASE if not a.startswith("steps")], "steps=5", tmp_path=run))
    return ck.ckpt_path(run, 5)


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    return _real_checkpoint(tmp_path_factory)


def _bad_checkpoints(good: Path, root: Path) -> dict[str, tuple[Path, str, Path | None]]:
    """name -> (run folder holding one bad step_00000005.pt, expected words, marker file)."""
    cases = {}

    def make(name, write, words, marker=None):
        run = root / name
        path = ck.ckpt_path(run, 5)
        path.parent.mkdir(parents=True)
        write(path)
        cases[name] = (run, words, marker)

    marker = root / "PWNED"
    make("pickled_code", lambda p: torch.save({"format": ck.FORMAT, "version": ck.VERSION, "x": _Evil(marker)}, p),
         "refusing to run code", marker)
    make("truncated", lambda p: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]), "truncated")
    make("empty", lambda p: p.write_bytes(b""), "truncated")
    make("random_bytes", lambda p: p.write_bytes(random.Random(0).randbytes(4096)), "not a PyTorch file")
    make("plain_tensor", lambda p: torch.save(torch.zeros(3), p), "not a gan_cli checkpoint")
    make("other_version", lambda p: torch.save({**torch.load(good, weights_only=True), "version": 99}, p),
         "version 99")

    def other_arch(p):  # weights of net.hidden=32 under a config that says net.hidden=16
        s = torch.load(good, weights_only=True)
        s["config"]["net"]["hidden"] = 16
        torch.save(s, p)

    make("other_architecture", other_arch, "does not fit")
    return cases


def test_bad_checkpoints_are_refused_in_process(good_ckpt, tmp_path):
    from gan_cli.cli.train import train

    cases = _bad_checkpoints(good_ckpt, tmp_path)
    for name, (run, words, marker) in cases.items():
        path = ck.ckpt_path(run, 5)
        if name == "other_architecture":  # loads fine; the fit is checked when building the Trainer
            ck.load_checkpoint(path)
            with pytest.raises(UserError) as e:
                train(compose_train(f"resume={run}"), overrides=[f"resume={run}"])
        else:
            with pytest.raises(UserError) as e:
                ck.load_checkpoint(path)
        msg = str(e.value)
        assert "\n" not in msg and str(path) in msg and words in msg, (name, msg)
        if marker is not None:
            assert not marker.exists(), "unpickling ran code from the checkpoint"
    # gan-eval-like use: a Trainer built for another architecture refuses a checkpoint
    from gan_cli.training.loop import build_trainer

    cfg = compose_train(*[a for a in BASE if not a.startswith("net.hidden")], "net.hidden=16", tmp_path=tmp_path)
    with pytest.raises(UserError) as e:
        build_trainer(cfg, tmp_path / "eval", ck.load_checkpoint(good_ckpt), resume_from=good_ckpt)
    assert "\n" not in str(e.value) and str(good_ckpt) in str(e.value) and "size mismatch" in str(e.value)


def test_checkpoint_cut_short_anywhere_says_truncated(good_ckpt, tmp_path):
    """Where the cut lands decides torch's error (EOFError, 'failed finding central directory',
    or OSError EINVAL from the zip reader); every cut must read as 'truncated'."""
    data = good_ckpt.read_bytes()
    bad = tmp_path / "step_00000005.pt"
    for cut in [*range(0, len(data), max(1, len(data) // 40)), len(data) - 22, len(data) - 1]:
        bad.write_bytes(data[:cut])
        with pytest.raises(UserError) as e:
            ck.load_checkpoint(bad)
        assert "truncated" in str(e.value) and str(bad) in str(e.value), (cut, str(e.value))


@pytest.mark.slow  # five resumes through gan-train's command line
def test_bad_checkpoints_are_refused_by_resume_cli(good_ckpt, tmp_path):
    cases = _bad_checkpoints(good_ckpt, tmp_path)
    for name in ("empty", "plain_tensor"):  # same code path as truncated / other_version; in-process above
        del cases[name]
    results = [run_cli("gan-train", [f"resume={run}"], tmp_path) for run, _, _ in cases.values()]  # main(), here
    for (name, (run, words, marker)), r in zip(cases.items(), results):
        assert r.returncode == 2, (name, r.returncode, r.stderr)
        line = _one_line(r.stderr)
        assert line.startswith("gan-train: error:") and str(ck.ckpt_path(run, 5)) in line and words in line, (name, line)
        if marker is not None:
            assert not marker.exists(), "unpickling ran code from the checkpoint"
        assert "status.json" not in os.listdir(run)  # a failed resume writes nothing into the run


# ----------------------------------------------------------------------------- 5. bad input


@pytest.mark.slow  # twelve gan-train command lines
def test_bad_input_exits_nonzero_with_clear_line_and_no_half_made_run(tmp_path):
    from PIL import Image

    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "notes.txt").write_text("not an image")
    bad = tmp_path / "bad_images"
    bad.mkdir()
    Image.new("RGB", (40, 40), (10, 20, 30)).save(bad / "ok.png")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty_run").mkdir()
    tiny = [a for a in BASE if not a.startswith("steps")] + ["steps=5"]
    cases = [
        # (overrides, words expected on the first stderr line, Hydra-composed? (Hydra's own multi-line text))
        (["model=nope"], "model=nope: there is no such model option", False),  # unknown group option: one line
        (["experiment=nope"], "experiment=nope: there is no such experiment option", False),  # a missing preset
        (["reg=[r1,nope]"], "reg=nope: there is no such reg option", False),
        (["augment=nope"], "augment=nope: there is no such augment option", False),
        (["model.r1_gamma=10"], "model.r1_gamma=10 has moved: write reg=[r1] reg.r1.gamma=10", False),
        (["steps=abc"], "steps=abc", True),  # wrong type
        (["model.opt_d.lr=-1"], "model.opt_d.lr=-1.0 is out of range", False),  # out of range
        ([f"resume={tmp_path / 'no_such_run'}"], "no such folder", False),
        ([f"resume={tmp_path / 'empty_run'}"], "holds no checkpoint", False),
        (["data=image_folder", f"data.path={tmp_path / 'no_images'}", "net.channels=8"], "holds no images", False),
        (["data=image_folder", f"data.path={bad}", "net.channels=8"], "cannot read image file", False),
        (["data=mnist", f"data.root={tmp_path / 'a_file' / 'data'}", "net.channels=8"], "is not writable", False),
    ]
    jobs = [([*tiny, *ov], tmp_path / f"case{i}") for i, (ov, _, _) in enumerate(cases)]
    results = [run_cli("gan-train", args, cwd) for args, cwd in jobs]  # gan-train's main() in this process
    for (ov, words, hydra_text), r, (_, cwd) in zip(cases, results, jobs):
        assert r.returncode != 0, (ov, r.stdout)
        assert "Traceback" not in r.stderr, r.stderr
        first = r.stderr.strip().splitlines()[0]
        assert words in first, (ov, r.stderr)
        if not hydra_text:
            assert r.returncode == 2
            assert _one_line(r.stderr).startswith("gan-train: error:")
        # no half-made run: no checkpoints anywhere; any status.json says failed
        assert not list(cwd.rglob("checkpoints")), ov
        for st in cwd.rglob("status.json"):
            assert json.loads(st.read_text())["state"] == "failed", (ov, st)
        if hydra_text or ov[0].startswith(("resume=", "model=nope", "experiment=", "reg=", "augment=", "model.r1")):
            assert not (cwd / "outputs").exists(), ov  # nothing at all was created
    assert not (tmp_path / "no_such_run").exists()
    assert os.listdir(tmp_path / "empty_run") == []


def test_a_command_refused_before_training_leaves_its_folder_to_the_corrected_command(tmp_path):
    """A refused command records why in its folder (status.json 'failed'), but that record is not a run: pasting the
    corrected command with the same out_dir trains there (it was refused with 'already holds a run; use resume=',
    and resume found no checkpoint). A folder that holds a real run is still refused."""
    out = tmp_path / "run"
    tiny = [a for a in BASE if not a.startswith("steps")] + ["steps=5", f"out_dir={out}"]
    r = run_cli("gan-train", [*tiny, "model.opt_d.lr=-1"], tmp_path)
    assert r.returncode == 2 and "model.opt_d.lr=-1.0 is out of range" in r.stderr, r.stderr
    assert _status(out)["state"] == "failed" and not ck.list_checkpoints(out)
    r = run_cli("gan-train", tiny, tmp_path)
    assert r.returncode == 0, r.stderr
    assert _status(out) == {"state": "completed", "step": 5} and (out / "results.json").is_file()
    r = run_cli("gan-train", tiny, tmp_path)
    assert r.returncode == 2 and "already holds a run; use resume=" in r.stderr, r.stderr
    assert _status(out) == {"state": "completed", "step": 5}


# ----------------------------------------------------------------------------- 6. sweeps


def test_sweep_with_failing_jobs_runs_the_others_and_records_failures(tmp_path):
    """``gan-train -m`` with Hydra's basic launcher: the jobs of a batch (the whole sweep here)
    run one after another in one process; a job's exception is caught by
    ``hydra.core.utils.run_job`` and stored as JobStatus.FAILED, so later jobs still run.
    After the batch, BasicSweeper reads each job's ``return_value``, which re-raises the first
    failure: Hydra prints "Error executing job with overrides [...]" with that job's traceback
    and the process exits 1.  gan-train prints each failed job's one-line error as it happens
    and records it in that job's folder (status.json 'failed' / 'diverged' with the error)."""
    tiny = [a for a in BASE if not a.startswith("steps")] + ["steps=10"]
    r = run_cli("gan-train", ["-m", *tiny, "model.opt_d.lr=-1,1e30,1e-4"], tmp_path)  # main(), in this process
    assert r.returncode == 1, r.stderr
    jobs = sorted(tmp_path.glob("multirun/*/*/*_*"), key=lambda p: int(p.name.split("_")[0]))
    assert len(jobs) == 3, jobs
    bad_value, diverged, good = (_status(j) for j in jobs)
    assert bad_value["state"] == "failed" and "model.opt_d.lr=-1.0 is out of range" in bad_value["error"]
    # a real divergence, no patching: lr=1e30 blows up within the first 5 steps, before any checkpoint
    assert diverged["state"] == "diverged" and "loss/d became nan between steps 0 and 5" in diverged["error"]
    assert "no checkpoint was written yet" in diverged["error"]
    assert good == {"state": "completed", "step": 10}
    assert _steps(jobs[2]) == [5, 10] and (jobs[2] / "results.json").is_file()
    assert not (jobs[0] / "checkpoints").exists() and not (jobs[1] / "checkpoints").exists()
    assert "gan-train: error: model.opt_d.lr=-1.0 is out of range" in r.stderr
    assert "gan-train: error: training diverged" in r.stderr
    assert "Error executing job with overrides" in r.stderr


def test_ctrl_c_stops_the_whole_sweep(tmp_path):
    """SIGINT during job 0 of a sweep checkpoints that job and ends the sweep (exit 130);
    the remaining jobs do not start (Hydra would otherwise treat it as one failed job)."""
    tiny = [a for a in BASE if not a.startswith("steps")] + ["steps=200"]
    p = _start(["-m", *tiny, "seed=0,1"], tmp_path)
    t0 = time.monotonic()
    while not list(tmp_path.glob("multirun/*/*/0_*/checkpoints/step_*.pt")):
        assert p.poll() is None and time.monotonic() - t0 < 120, p.communicate()[1][-2000:]
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    r = _finish(p)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "gan-train resume=" in r.stderr
    (job0,) = tmp_path.glob("multirun/*/*/0_*")
    assert _status(job0)["state"] == "interrupted"
    assert not list(tmp_path.glob("multirun/*/*/1_*"))


# ----------------------------------------------------------------------------- 7. disk


def test_old_checkpoints_are_rotated(tmp_path):
    from gan_cli.cli.train import train

    cfg = compose_train(*[a for a in BASE if not a.startswith("steps")], "steps=20", "keep_ckpts=2", tmp_path=tmp_path)
    train(cfg)
    assert _steps(tmp_path) == [15, 20]
    _no_tmp_files(tmp_path)


def test_disk_full_while_writing_checkpoint_keeps_previous(tmp_path, monkeypatch):
    """ENOSPC half-way through writing step 10's checkpoint (and, the disk being full, through
    writing status.json too): one UserError line naming the kept checkpoint, no temp file left,
    and a resume once there is room finishes the run."""
    from gan_cli.cli.train import train

    real_save, full = torch.save, [False]

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("step") == 10:
            full[0] = True
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    real_fsync = os.fsync

    def fsync(fd):
        if full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(os, "fsync", fsync)
    tiny = [a for a in BASE if not a.startswith("steps")] + ["steps=20"]
    with pytest.raises(UserError) as e:
        train(compose_train(*tiny, tmp_path=tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "No space left on device" in msg, msg
    assert f"previous checkpoint {ck.ckpt_path(tmp_path, 5)} is kept" in msg, msg
    assert _steps(tmp_path) == [5]
    assert ck.load_checkpoint(ck.ckpt_path(tmp_path, 5))["step"] == 5
    _no_tmp_files(tmp_path)

    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.setattr(os, "fsync", real_fsync)
    full[0] = False
    result = train(compose_train(*tiny, f"resume={tmp_path}"), overrides=[f"resume={tmp_path}"])
    assert result["step"] == 20 and _status(tmp_path)["state"] == "completed"


def test_a_long_override_still_gets_a_run_folder(tmp_path):
    """Hydra names the run folder after the overrides; a long value (a store's URI, a long number) made a name over
    the file system's 255 bytes and a traceback.  The name is cut, with a hash of the whole, below that."""
    lr = "0.0002" + "0" * 260 + "1"
    r = run_cli("gan-train", ["steps=2", "log_every=1", "image_every=0", "metrics=none", "progress=false",
                              "device=cpu", f"model.opt_g.lr={lr}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "outputs").glob("*/*") if (p / "results.json").exists()]
    assert len(run.name.encode()) <= 255 and "model.opt_g.lr-0.0002" in run.name
    other = r"0.0002" + "0" * 259 + "1"
    r = run_cli("gan-train", ["steps=2", "log_every=1", "image_every=0", "metrics=none", "progress=false",
                              "device=cpu", f"model.opt_g.lr={other}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    names = {p.name.split("_", 1)[1] for p in (tmp_path / "outputs").glob("*/*")}
    assert len(names) == 2  # cut names of different overrides stay different
