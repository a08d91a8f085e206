"""Integrity: damaged feature caches, unreadable checkpoints, one writer per run folder.

Every fault here is real: files cut short or altered on disk, a FIFO made with ``os.mkfifo``
(opening one for reading blocks until a writer shows up, so a tool that opens it hangs), a
symlink to ``/dev/zero`` (endless bytes), a checkpoint deleted under the reader by a second
process that writes and rotates checkpoints like a running ``gan-train``, and second
processes that hold a run lock and are killed with SIGKILL.  Each test has a timeout so a hang
fails instead of blocking the suite.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN, compose_train

from gan_cli.runs import checkpoint as ck
from gan_cli.config import UserError
from gan_cli.metrics import cache as cache_mod

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _lines(text: str) -> list[str]:
    return [ln for ln in text.strip().splitlines() if ln.strip()]


# ============================================================================= A. feature cache

GOOD = {
    "pool": np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32),
    "logits": np.random.default_rng(1).standard_normal((64, 10)).astype(np.float32),
}


def _rewrite_valid_npz(path: Path, change) -> None:
    """Rewrite the cache file as a *valid* npz (good zip CRCs), keeping its ``__meta__`` verbatim
    but passing every other array through ``change`` -- what a buggy tool or a bad copy could leave."""
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays = {name: (a if name == "__meta__" else change(a)) for name, a in arrays.items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_bytes(p: Path):
    b = bytearray(p.read_bytes())
    for i in range(len(b) // 3, len(b) // 3 + 8):  # inside the first array's data
        b[i] ^= 0xFF
    p.write_bytes(bytes(b))


def _altered_values(p: Path):
    _rewrite_valid_npz(p, lambda a: a + np.asarray(1, dtype=a.dtype))


def _fewer_rows(p: Path):
    _rewrite_valid_npz(p, lambda a: a[:32])


def _fifo(p: Path):
    p.unlink()
    os.mkfifo(p)


def _dev_zero(p: Path):
    p.unlink()
    os.symlink("/dev/zero", p)


CACHE_DAMAGE = {
    # name: (how, words the warning must contain)
    "truncated": (_truncate, "truncated or not an npz file"),
    "flipped_bytes": (_flip_bytes, "is damaged"),  # zip's CRC-32 (or the checksum) catches these
    "altered_values": (_altered_values, "checksum"),  # a valid npz whose numbers changed
    "fewer_rows": (_fewer_rows, "'logits' has shape (32, 10) <f4, expected (64, 10) <f4"),
    "fifo": (_fifo, "is not a regular file (a FIFO)"),
    "symlink_dev_zero": (_dev_zero, "is a symlink to a device (/dev/zero)"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_damaged_cache_file_is_recomputed_with_one_warning(damage, tmp_path):
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"test": damage})
    calls = []

    def compute():
        calls.append(1)
        return {name: a.copy() for name, a in GOOD.items()}

    store.get_or_compute(key, compute, meta={"n": 64})
    path = store.path(key)
    how, words = CACHE_DAMAGE[damage]
    how(path)

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = store.get_or_compute(key, compute, meta={"n": 64})
    assert calls == [1, 1], "a damaged cache file was used instead of recomputed"
    assert set(out) == set(GOOD) and all(np.array_equal(out[k], GOOD[k]) for k in GOOD)
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1, msgs
    assert "\n" not in msgs[0] and str(path) in msgs[0] and words in msgs[0] and "recomputing" in msgs[0], msgs[0]

    # replaced atomically by a good regular file: trusted next time, no warning, no temp file left
    assert path.is_file() and not path.is_symlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = store.get_or_compute(key, lambda: pytest.fail("recomputed a good cache file"))
    assert all(np.array_equal(again[k], GOOD[k]) for k in GOOD)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.timeout(60)
def test_cache_file_without_integrity_record_is_recomputed(tmp_path):
    """A file written before checksums were recorded (no 'arrays' in its meta) is not trusted."""
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"test": "old"})
    path = store.path(key)
    path.parent.mkdir(parents=True)
    meta = json.dumps({"key": key, "cache_version": cache_mod.CACHE_VERSION})
    with open(path, "wb") as f:
        np.savez(f, pool=GOOD["pool"][:3], __meta__=np.array(meta))
    with pytest.warns(RuntimeWarning, match="no integrity record.*recomputing"):
        out = store.get_or_compute(key, lambda: dict(GOOD))
    assert np.array_equal(out["pool"], GOOD["pool"])
    assert store.load_meta(key)["arrays"]["pool"]["shape"] == [64, 16]


@pytest.mark.timeout(60)
def test_cache_meta_records_names_shapes_dtypes_and_checksums(tmp_path):
    import hashlib

    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"test": "meta"})
    store.save(key, GOOD, meta={"n": 64})
    meta = store.load_meta(key)
    assert meta["n"] == 64 and meta["key"] == key
    assert set(meta["arrays"]) == {"pool", "logits"}
    for name, a in GOOD.items():
        rec = meta["arrays"][name]
        assert rec["shape"] == list(a.shape) and np.dtype(rec["dtype"]) == a.dtype
        assert rec["sha256"] == hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.timeout(60)
def test_cache_load_meta_of_a_fifo_does_not_hang(tmp_path):
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"test": "fifo-meta"})
    store.path(key).parent.mkdir(parents=True)
    os.mkfifo(store.path(key))
    assert store.load_meta(key) is None
    with pytest.warns(RuntimeWarning, match=r"is not a regular file \(a FIFO\)"):
        assert store.load(key) is None


@pytest.mark.timeout(60)
def test_cache_damaged_anywhere_never_returns_wrong_arrays(tmp_path):
    """Cut the file short, or flip one byte, at ~60 places each (zip headers, npy headers, data,
    meta, central directory): every get_or_compute returns exactly the right arrays, never raises,
    and warns at most once."""
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"test": "anywhere"})
    path = store.save(key, GOOD, meta={"n": 64})
    data = path.read_bytes()
    offsets = sorted({*range(0, len(data), max(1, len(data) // 60)), len(data) - 22, len(data) - 1})
    damaged = [data[:cut] for cut in offsets]
    damaged += [data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:] for i in offsets]
    recomputed = 0
    for bad in damaged:
        path.write_bytes(bad)
        calls = []
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = store.get_or_compute(key, lambda: calls.append(1) or dict(GOOD))
        assert set(out) == set(GOOD) and all(np.array_equal(out[k], GOOD[k]) for k in GOOD)
        assert len(rec) == len(calls) <= 1, [str(w.message) for w in rec]
        recomputed += len(calls)
    assert recomputed >= len(damaged) - 10  # a few flips land in fields nothing reads (zip timestamps)


# ============================================================================= B. checkpoints


def _small_run(run: Path, steps=(5, 10, 15)) -> Path:
    for s in steps:
        ck.save_checkpoint(ck.ckpt_path(run, s), {"step": s, "w": torch.full((3,), float(s))})
    return run


def _make_fifo(p: Path):
    p.unlink(missing_ok=True)
    os.mkfifo(p)


def _make_dev_zero(p: Path):
    p.unlink(missing_ok=True)
    os.symlink("/dev/zero", p)


UNREADABLE = {"fifo": (_make_fifo, "is not a regular file (a FIFO)"),
              "symlink_dev_zero": (_make_dev_zero, "is a symlink to a device (/dev/zero)")}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_load_checkpoint_says_what_is_wrong_and_never_opens_it(kind, tmp_path, monkeypatch):
    path = ck.ckpt_path(tmp_path, 20)
    path.parent.mkdir(parents=True)
    make, words = UNREADABLE[kind]
    make(path)
    opened = []
    real_os_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: (opened.append(str(p)), real_os_open(p, *a, **k))[1])
    import builtins

    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    with pytest.raises(UserError) as e:
        ck.load_checkpoint(path)
    monkeypatch.undo()
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg
    assert str(path) not in opened, "opened a file that is not a regular file"


@pytest.mark.timeout(60)
def test_load_checkpoint_missing_file_says_does_not_exist(tmp_path):
    with pytest.raises(UserError, match=r"does not exist"):
        ck.load_checkpoint(tmp_path / "step_00000005.pt")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_resume_falls_back_past_an_unreadable_newest_checkpoint(kind, tmp_path, capsys):
    run = _small_run(tmp_path / "run")
    newest, older = ck.ckpt_path(run, 15), ck.ckpt_path(run, 10)
    make, words = UNREADABLE[kind]
    make(newest)
    path, state = ck.latest_good_checkpoint(run)
    assert path == older and state["step"] == 10 and torch.equal(state["w"], torch.full((3,), 10.0))
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("gan-train: warning:") and str(newest) in line and words in line and str(older) in line, line


@pytest.mark.timeout(60)
def test_checkpoint_deleted_between_listing_and_loading_falls_back(tmp_path, monkeypatch, capsys):
    run = _small_run(tmp_path / "run")
    listed = ck.list_checkpoints(run)
    ck.ckpt_path(run, 15).unlink()  # a running training rotated it away after we listed it
    monkeypatch.setattr(ck, "list_checkpoints", lambda run_dir: list(listed))
    path, state = ck.newest_loadable_checkpoint(run, who="gan-eval", option="ckpt")
    assert path == ck.ckpt_path(run, 10) and state["step"] == 10
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("gan-eval: warning:") and str(ck.ckpt_path(run, 15)) in line
    assert "does not exist" in line and str(ck.ckpt_path(run, 10)) in line, line


ROTATOR = """
import sys, torch
from pathlib import Path
from gan_cli.runs import checkpoint as ck
run = Path(sys.argv[1])
step = 1
ck.save_checkpoint(ck.ckpt_path(run, step), {"step": step})
print("ready", flush=True)
while True:  # like gan-train with keep_ckpts=1: write the next checkpoint, delete the older one
    step += 1
    ck.save_checkpoint(ck.ckpt_path(run, step), {"step": step})
    ck.rotate_checkpoints(run, keep=1)
"""


@pytest.mark.timeout(60)
def test_newest_loadable_survives_a_second_process_rotating_checkpoints(tmp_path, monkeypatch, capsys):
    """A real race: another process writes a checkpoint and deletes the previous one in a loop
    (gan-train with keep_ckpts=1) while this one keeps asking for the newest loadable checkpoint.
    This reader is made slow right after its first listing (as on a busy machine), so what it
    listed is gone when it opens it; every call must still return a checkpoint that loads."""
    run = tmp_path / "run"
    real_list, slow = ck.list_checkpoints, [False]

    def slow_listing(run_dir):
        found = real_list(run_dir)
        if slow[0]:
            slow[0] = False
            time.sleep(0.05)  # the rotator writes several newer checkpoints and deletes these meanwhile
        return found

    monkeypatch.setattr(ck, "list_checkpoints", slow_listing)
    p = subprocess.Popen([sys.executable, "-c", ROTATOR, str(run)], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        t0, calls, steps = time.monotonic(), 0, set()
        while time.monotonic() - t0 < 3 or len(steps) < 3:
            slow[0] = True
            path, state = ck.newest_loadable_checkpoint(run, who="gan-eval", option="ckpt")
            assert state["step"] == int(path.name[5:13])
            calls, steps = calls + 1, steps | {state["step"]}
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() - t0 < 40
    finally:
        p.kill()
        p.wait()
    vanished = [ln for ln in _lines(capsys.readouterr().err) if "does not exist" in ln]
    assert calls > 10 and len(steps) >= 3 and vanished, (calls, steps)
    assert all(ln.startswith("gan-eval: warning: checkpoint ") for ln in vanished), vanished[:3]


@pytest.mark.timeout(60)
def test_all_checkpoints_unloadable_is_one_user_error_line(tmp_path, capsys):
    run = _small_run(tmp_path / "run")
    _make_fifo(ck.ckpt_path(run, 15))
    _make_dev_zero(ck.ckpt_path(run, 10))
    ck.ckpt_path(run, 5).write_bytes(b"PK\x03\x04 cut short")
    for who, option in (("gan-train", "resume"), ("gan-eval", "ckpt")):
        with pytest.raises(UserError) as e:
            ck.newest_loadable_checkpoint(run, who=who, option=option)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{option}={run}:") and "none of the 3 checkpoints" in msg, msg
        assert str(ck.ckpt_path(run, 15)) in msg and "is not a regular file (a FIFO)" in msg, msg
    with pytest.raises(UserError):
        ck.latest_good_checkpoint(run)
    assert capsys.readouterr().err == ""  # no warnings when nothing could be used: the error says it all


# ----------------------------------------------------------------------------- gan-eval on a run folder

TRAIN = ["model=nsgan", "steps=10", "log_every=5", "ckpt_every=5", "image_every=0", "estimate_batch=64",
         "data.batch_size=64", "net.hidden=32", "metrics=toy", "metrics.num_samples=200", "device=cpu"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    from gan_cli.cli.train import train

    run = tmp_path_factory.mktemp("trained")
    train(compose_train(*TRAIN, tmp_path=run))
    assert [p.name for p in ck.list_checkpoints(run)] == ["step_00000005.pt", "step_00000010.pt"]
    return run


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src / ck.CKPT_DIR, dst / ck.CKPT_DIR)
    return dst


@pytest.mark.timeout(90)
def test_gan_eval_cli_falls_back_past_a_fifo_newest_checkpoint(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    newest, good = ck.ckpt_path(run, 15), ck.ckpt_path(run, 10)
    os.mkfifo(newest)
    r = subprocess.run([str(BIN / "gan-eval"), f"ckpt={run}", "metrics.num_samples=200", "tensorboard=false"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=80, env=_env())
    assert r.returncode == 0, r.stderr
    (line,) = _lines(r.stderr)
    assert line.startswith("gan-eval: warning:") and str(newest) in line and str(good) in line, line
    assert "is not a regular file (a FIFO)" in line, line
    report = json.loads((run / "metrics.json").read_text())
    assert report["checkpoint"] == str(good) and report["step"] == 10


@pytest.mark.timeout(60)
def test_gan_eval_falls_back_past_a_symlink_to_dev_zero(trained_run, tmp_path, capsys):
    from hydra import compose, initialize_config_module

    from gan_cli.cli.evaluate import evaluate

    run = _copy_run(trained_run, tmp_path / "run")
    newest, good = ck.ckpt_path(run, 15), ck.ckpt_path(run, 10)
    os.symlink("/dev/zero", newest)
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt={run}", "metrics.num_samples=200", "tensorboard=false",
                                         f"out={tmp_path / 'out'}"])
    report = evaluate(cfg)
    assert report["checkpoint"] == str(good) and report["step"] == 10
    warn = [ln for ln in _lines(capsys.readouterr().err) if "warning" in ln]
    assert len(warn) == 1 and str(newest) in warn[0] and "is a symlink to a device" in warn[0] and str(good) in warn[0]


# ============================================================================= C. one writer per run folder

HOLDER = """
import os, sys
from gan_cli.runs.lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()           # hold the lock until the parent says so (or kills us)
os._exit(0)                    # exit without releasing: the kernel drops the lock
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], env=_env(), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line == "locked", (line, p.stderr.read() if p.poll() is not None else "")
    return p


@pytest.mark.timeout(60)
def test_run_lock_held_by_another_process_is_refused_naming_its_pid(tmp_path):
    from gan_cli.runs.lock import RunLock

    run = tmp_path / "run"
    child = _holder(run)
    try:
        t0 = time.monotonic()
        with pytest.raises(UserError) as e:
            with RunLock(run):
                pass
        assert time.monotonic() - t0 < 5  # non-blocking
        msg = str(e.value)
        assert "\n" not in msg and str(run) in msg and f"pid {child.pid}" in msg and "wait for it" in msg, msg
        info = json.loads((run / ".lock").read_text())
        assert info["pid"] == child.pid and info["host"] == os.uname().nodename
    finally:
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=20) == 0
    # (3) the lock file left behind by a holder that exited does not block, and now names us
    assert json.loads((run / ".lock").read_text())["pid"] == child.pid
    with RunLock(run) as lock:
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
        assert lock.path == run / ".lock"


@pytest.mark.timeout(60)
def test_run_lock_of_a_sigkilled_holder_is_never_stale(tmp_path):
    from gan_cli.runs.lock import RunLock

    run = tmp_path / "run"
    child = _holder(run)
    with pytest.raises(UserError):
        RunLock(run).acquire()
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=20) == -signal.SIGKILL
    assert json.loads((run / ".lock").read_text())["pid"] == child.pid  # it could not clean up
    lock = RunLock(run).acquire()  # immediately: the kernel released the dead process's lock
    try:
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    finally:
        lock.release()


@pytest.mark.timeout(60)
def test_run_lock_in_this_process_blocks_a_second_process(tmp_path):
    from gan_cli.runs.lock import RunLock

    run = tmp_path / "run"
    probe = textwrap.dedent("""
        import sys
        from gan_cli.config import UserError
        from gan_cli.runs.lock import RunLock
        try:
            RunLock(sys.argv[1]).acquire()
        except UserError as e:
            print(e)
            sys.exit(3)
    """)
    with RunLock(run):
        r = subprocess.run([sys.executable, "-c", probe, str(run)], env=_env(), capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 3 and f"pid {os.getpid()}" in r.stdout, (r.stdout, r.stderr)
    r = subprocess.run([sys.executable, "-c", probe, str(run)], env=_env(), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)  # released on exit from the with block


@pytest.mark.timeout(60)
def test_run_lock_creates_a_missing_run_folder(tmp_path):
    from gan_cli.runs.lock import RunLock

    run = tmp_path / "a" / "b" / "run"
    with RunLock(run):
        assert (run / ".lock").is_file()
        with pytest.raises(UserError, match="already locked by this process"):
            RunLock(run).acquire()  # a second lock from the same process is refused too
    assert (run / ".lock").read_text() == ""  # released: no holder named any more


READ_ONLY_PROBE = """
import sys
from gan_cli.config import UserError
from gan_cli.runs.lock import RunLock
for run in sys.argv[1:]:
    try:
        RunLock(run).acquire()
        print("acquired", run)
    except UserError as e:
        print(e)
"""


@pytest.mark.timeout(60)
def test_run_lock_in_a_read_only_folder_is_one_line(tmp_path):
    """A real read-only folder (chmod 0o500).  Root ignores permissions, so as root the probe runs
    without CAP_DAC_OVERRIDE (setpriv); where that is not possible the test is skipped."""
    import shutil

    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root ignores file permissions and setpriv is not installed")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
            pytest.skip("root ignores file permissions and cannot drop CAP_DAC_OVERRIDE here")
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o500)
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_PROBE, str(run), str(run / "sub")],
                           env=_env(), capture_output=True, text=True, timeout=30)
    finally:
        run.chmod(0o700)
    assert r.returncode == 0, r.stderr
    existing, missing = _lines(r.stdout)
    assert str(run) in existing and "is not writable" in existing and "Permission denied" in existing, existing
    assert str(run / "sub") in missing and "cannot create the run folder" in missing, missing
    assert not (run / ".lock").exists() and not (run / "sub").exists()
