import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

import gan_cli.cli.train  # noqa: F401  (registers the config schema and resolvers)

# Under pytest-xdist (make test) the cores are shared out among the test processes.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

BIN = Path(sys.executable).parent


def process_env(**extra: str) -> dict:
    """The environment of a test's real process: this environment with the venv's console scripts first on PATH
    (gan-train, tensorboard, mlflow as a shell finds them) and one torch thread, plus ``extra``."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1", **extra}

def load_file_module(path: Path):
    """The Python file ``path`` (a benchmark script, a docs hook, vendored code) imported as a module named after it;
    registered in sys.modules while it runs, as an import would (its dataclasses look their module up there)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- the console scripts, in this process

_MAINS = {"gan-train": "gan_cli.cli.train", "gan-eval": "gan_cli.cli.evaluate"}
# Python's own warning filters in a fresh process (python -W / PYTHONWARNINGS unset): what the console script sees.
_FRESH_PROCESS_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                          ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                          ("ignore", ResourceWarning, ""))


def _print_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _exit_status(code, err) -> int:
    """What the interpreter makes of ``SystemExit(code)``: None is 0, an int itself, anything else is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


def run_cli(tool: str, args, cwd) -> subprocess.CompletedProcess:
    """``gan-train`` / ``gan-eval`` run in this process exactly as the console script runs it: ``main()`` of its
    module with ``sys.argv`` = [the script, *args], in ``cwd``; returns the exit status (SystemExit's code, 1 and a
    traceback on stderr for an uncaught exception) with what it printed on stdout and stderr, as
    ``subprocess.run(..., capture_output=True, text=True)`` would.

    For tests whose subject is the command line (argv parsing, exit codes, one-line errors, the folders and files a
    run writes): about 2 s less than a process each (no interpreter start, no torch import).  What a fresh process
    has is restored around the call: no root logging handler (Python's last-resort handler prints warnings on
    stderr; Hydra's job logging then configures its own, and they are closed afterwards), Python's default warning
    filters with warnings printed on stderr (not recorded by pytest), Hydra's global state cleared, the cwd, argv,
    environment, SIGINT/SIGTERM handlers, torch's thread count and grad mode put back, and a run lock the
    command's pre-check took but did not hand on released (a process would drop it on exit).  Tests of signals,
    of a lock held by a second process, of launchers that start processes, of torchrun and of commands pasted into a
    shell keep a real process (``subprocess``)."""
    import importlib

    import torch
    from hydra.core.global_hydra import GlobalHydra

    module = importlib.import_module(_MAINS[tool])
    argv = [str(BIN / tool), *(str(a) for a in args)]
    Path(cwd).mkdir(parents=True, exist_ok=True)
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = {"cwd": os.getcwd(), "argv": sys.argv, "env": dict(os.environ), "handlers": root.handlers[:],
             "level": root.level, "threads": torch.get_num_threads(), "grad": torch.is_grad_enabled(),
             "signals": {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}}
    code = 0
    GlobalHydra.instance().clear()
    try:
        os.chdir(cwd)
        sys.argv = argv
        root.handlers = []
        root.setLevel(logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            for action, category, mod in _FRESH_PROCESS_FILTERS:
                warnings.filterwarnings(action, category=category, module=mod, append=True)
            warnings.showwarning = _print_warning
            try:
                module.main()
            except SystemExit as e:
                code = _exit_status(e.code, err)
            except Exception:  # noqa: BLE001  (what the interpreter does with an uncaught exception)
                traceback.print_exc(file=err)
                code = 1
    finally:
        GlobalHydra.instance().clear()
        os.chdir(saved["cwd"])
        sys.argv = saved["argv"]
        for k in set(os.environ) - set(saved["env"]):
            del os.environ[k]
        os.environ.update({k: v for k, v in saved["env"].items() if os.environ.get(k) != v})
        for h in root.handlers:
            if h not in saved["handlers"]:
                h.close()
        root.handlers = saved["handlers"]
        root.setLevel(saved["level"])
        for s, h in saved["signals"].items():
            signal.signal(s, h)
        torch.set_num_threads(saved["threads"])
        torch.set_grad_enabled(saved["grad"])
        from gan_cli.cli import train as train_cli

        lock = train_cli._PRECHECK_LOCK.pop("lock", None)
        if lock is not None:
            lock.release()  # no-op when train() took it over and released it
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def compose_train(*overrides, tmp_path=None):
    """Compose conf/train.yaml exactly as gan-train does, with test overrides."""
    ov = list(overrides) + ["progress=false"]
    if tmp_path is not None:
        ov.append(f"out_dir={tmp_path}")
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        return compose("train", overrides=ov)


def train_job(tmp_path, name, *overrides):
    """Train in-process on the CPU (no progress bar, no pictures) in ``tmp_path / name``; return a sweep Job for
    the run (what gan-eval sweep= hands to a lab report)."""
    from gan_cli.build import plain_config
    from gan_cli.runs.results import Job
    from gan_cli.cli.train import train

    out = tmp_path / name
    cfg = compose_train(*overrides, "device=cpu", "image_every=0", tmp_path=out)
    return Job(dir=out, num=0, overrides={}, config=plain_config(cfg), status="completed", results=train(cfg))


@pytest.fixture
def compose_cfg():
    return compose_train


def scalar_tags(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets train fastest on one thread; on a shared 2-core box two OpenMP threads made
    small matmuls 4-100x slower (measured). Restored for the other test modules."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def assert_figure(path, min_width=200, min_height=150):
    """A PNG figure that decodes, is at least this size and is not blank (several grey levels, some spread)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG", path
        px = np.asarray(im.convert("L"))
    assert px.shape[1] >= min_width and px.shape[0] >= min_height, (path, px.shape)
    assert px.std() > 5 and len(np.unique(px)) > 8, f"{path} looks blank"
    return px


def random_inception_state(seed: int = 0) -> dict:
    """Random but well-scaled weights (He-normal convs, mild BN stats) so activations stay O(1) through 94 layers."""
    import math

    from gan_cli.metrics import inception as inc_mod

    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in inc_mod.FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith("conv.weight"):
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("bn.weight") or key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith("bn.bias") or key.endswith("running_mean") or key == "fc.bias":
            state[key] = torch.randn(value.shape, generator=g) * 0.1
        elif key == "fc.weight":
            state[key] = torch.randn(value.shape, generator=g) / math.sqrt(value.shape[1])
        else:  # pragma: no cover - a new parameter kind must be given a scale here
            raise AssertionError(key)
    return state


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A local FID Inception weight file with random, well-scaled weights (the real ones cannot be downloaded here)."""
    from gan_cli.metrics import inception as inc_mod

    path = tmp_path_factory.mktemp("inception") / inc_mod.WEIGHTS_FILE
    torch.save(random_inception_state(), path)
    return path


@pytest.fixture(scope="session")
def weights(random_weights) -> Path:
    return random_weights


# ----------------------------------------------------------------------------- metric caches, hermetic

@pytest.fixture(scope="session")
def digits_cache_seed(tmp_path_factory) -> Path:
    """A ``metrics.cache_dir`` holding the digits domain classifier, trained once per test process (about 2 s)
    instead of once per test, and never in the user's ~/.cache/gan_cli.  Tests take a copy (``digits_cache``), so
    what one of them writes there (real statistics, a retrained classifier) no other one sees."""
    from gan_cli.build import build_data, build_evaluator

    cache = tmp_path_factory.mktemp("digits_cache_seed")
    cfg = compose_train("data=digits", "metrics=images", f"metrics.cache_dir={cache}")
    build_evaluator(cfg.metrics, cfg.data, build_data(cfg.data, "cpu"), "cpu").extractor()
    assert list((cache / "classifiers").glob("clf_digits_*.pt"))
    return cache


def copy_cache(seed: Path, dst: Path) -> Path:
    shutil.copytree(seed, dst)
    return dst


@pytest.fixture
def digits_cache(digits_cache_seed, tmp_path) -> Path:
    """A private copy of the seeded digits metrics cache, for ``metrics.cache_dir=``."""
    return copy_cache(digits_cache_seed, tmp_path / "metrics_cache")


# ----------------------------------------------------------------------------- shared test doubles and runs

class Quadratic(torch.nn.Module):
    """D(x, c) = sum_j a_j x_j^2 + b . x on 2-D inputs: grad_x D = 2 a * x + b, known by hand; ignores c."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([0.5, -1.5], dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))

    def forward(self, x, c=None):
        return (self.a * x**2).sum(1) + x @ self.b


def interrupted_and_resumed(args, tmp_path, at_step):
    """Train ``args`` straight through into ``tmp_path/full``; train them again into ``tmp_path/part``, stopped by a
    real SIGINT after step ``at_step`` and resumed to the end.  Returns the loaded checkpoints
    ``(straight, at the interruption, resumed)``."""
    from gan_cli.cli.train import train
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint
    from gan_cli.training.loop import Interrupted, build_trainer

    full, part = tmp_path / "full", tmp_path / "part"
    train(compose_train(*args, tmp_path=full))
    tr = build_trainer(compose_train(*args, tmp_path=part), part)

    def progress(step, host):
        if step == at_step:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        tr.run(progress)
    mid = load_checkpoint(list_checkpoints(part)[-1])
    train(compose_train(*args, f"resume={part}"), overrides=[f"resume={part}"])
    return load_checkpoint(list_checkpoints(full)[-1]), mid, load_checkpoint(list_checkpoints(part)[-1])
