import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

import gan_cli.cli.train  # noqa: F401  (registers the config schema and resolvers)

# Under pytest-xdist (make test) the cores are shared out among the test processes.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

BIN = Path(sys.executable).parent


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
