"""gan-eval end to end, metric suites, truncation."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch
from conftest import BIN, compose_train, run_cli
from hydra import compose, initialize_config_module

from gan_cli.build import build_data, build_evaluator
from gan_cli.metrics.evaluator import generator_sampler, resolve_suite
from gan_cli.metrics.registry import count_tag
from gan_cli.cli.train import train
from gan_cli.truncation import truncated_noise


def compose_eval(*overrides):
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        return compose("eval", overrides=list(overrides))


def _gan_eval(args, cwd, timeout=900):
    # one thread: on a shared 2-core machine two OpenMP threads made the child several times slower
    return subprocess.run([str(BIN / "gan-eval"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"))


def test_count_tag():
    assert [count_tag(n) for n in (10000, 2500, 50000, 500)] == ["10k", "2.5k", "50k", "500"]


def test_truncation_kinds():
    g = torch.Generator().manual_seed(0)
    z = truncated_noise(5000, 3, "resample", 0.5, g, "cpu")
    assert z.abs().max() <= 0.5 and z.std() > 0.2  # resampled, not clipped to a point
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.allclose(truncated_noise(10, 3, "interpolate", 0.7, g1, "cpu"), 0.7 * torch.randn(10, 3, generator=g2))
    from gan_cli.config import UserError

    with pytest.raises(UserError):
        truncated_noise(2, 2, "clip", 0.5, g, "cpu")


class GridGenerator(torch.nn.Module):
    """A perfect grid25 generator: latent dims 0-1 pick the mode, dims 2-3 the jitter (std 0.05)."""

    latent_dim = 4

    def forward(self, z, c=None):
        mode = torch.clamp(torch.round(z[:, :2] * 1.2), -2, 2) * 2.0
        return mode + 0.05 * z[:, 2:]


def test_truncation_lowers_recall_on_toy_problem():
    cfg = compose_train("data=grid25", "metrics=toy", "metrics.num_samples=1500")
    data = build_data(cfg.data, torch.device("cpu"))
    ev = build_evaluator(cfg.metrics, cfg.data, data, "cpu")
    G = GridGenerator()
    res = {psi: ev(generator_sampler(G, 4, "cpu", 0, "interpolate", psi)) for psi in (1.0, 0.3)}
    t = "1.5k_k5"
    assert res[0.3][f"recall_{t}"] < res[1.0][f"recall_{t}"] - 0.3
    assert res[0.3][f"precision_{t}"] > 0.9  # fidelity kept
    assert res[0.3]["modes_1.5k"] < res[1.0]["modes_1.5k"]
    assert res[1.0]["modes_1.5k"] == 25


def test_toy_suite_counts_modes_of_known_generator():
    cfg = compose_train("data=ring8", "metrics=toy", "metrics.num_samples=1000")
    data = build_data(cfg.data, torch.device("cpu"))
    ev = build_evaluator(cfg.metrics, cfg.data, data, "cpu")
    centers = data.info.centers[:4].float()

    def four_modes(k):  # samples from 4 of the 8 modes
        idx = torch.arange(k) % 4
        return centers[idx] + 0.01 * torch.randn(k, 2, generator=torch.Generator().manual_seed(k))

    out = ev(four_modes)
    assert out["modes_1k"] == 4
    assert out["hq_1k"] > 0.95
    assert abs(out["rkl_1k"] - np.log(2)) < 0.01  # uniform over 4 of 8 modes: KL = log 2
    assert 0.4 < out["recall_1k_k5"] < 0.6


def test_resolve_suite_defaults():
    cfg = compose_train("data=fashion_mnist")
    from gan_cli.data import DataInfo

    img = DataInfo(name="fashion_mnist", kind="image", shape=(1, 28, 28), n_modes=10, centers=None, std=None)
    rgb = DataInfo(name="image_folder", kind="image", shape=(3, 32, 32), centers=None, std=None)
    toy = DataInfo(name="ring8", kind="toy2d", shape=(2,), n_modes=8, centers=None, std=None)
    labelled, unlabelled = type("S", (), {"labels": torch.zeros(3)})(), type("S", (), {"labels": None})()
    assert resolve_suite(cfg.metrics, img, labelled) == "images"  # grey-scale with labels: a domain classifier
    assert resolve_suite(cfg.metrics, toy) == "toy"
    no_weights = compose_train("metrics.inception_weights=/nonexistent/pt_inception.pth").metrics
    assert resolve_suite(no_weights, rgb, unlabelled) == "none"  # no Inception weights here: nothing to score with
    from gan_cli.config import UserError

    with pytest.raises(UserError):
        resolve_suite(compose_train("metrics=images").metrics, toy)
    with pytest.raises(UserError, match="has none"):
        resolve_suite(compose_train("metrics=images").metrics, rgb, unlabelled)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = compose_train("model=nsgan", "steps=20", "log_every=10", "image_every=0", "estimate_batch=64",
                        "metrics=toy", "metrics.num_samples=500", tmp_path=run)
    result = train(cfg)
    assert "w1_500" in result["metrics"]
    return run


def test_gan_eval_end_to_end_on_checkpoint(short_run, tmp_path):
    """The console script itself (a real process)."""
    r = _gan_eval([f"ckpt={short_run}", "metrics.num_samples=400", "truncation.sweep=[1.0,0.5]", "metrics.critic_w=true"], tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads((short_run / "metrics.json").read_text())
    assert report["suite"] == "toy" and report["step"] == 20
    assert set(report["truncation_sweep"]) == {"none", "interpolate:1", "interpolate:0.5"}
    assert report["metrics"] == report["truncation_sweep"]["none"]
    m = report["metrics"]
    for k in ["modes_400", "hq_400", "w1_400", "precision_400_k5", "recall_400_k5", "critic_w_400"]:
        assert k in m and np.isfinite(m[k]) or k == "rkl_400", k
    from conftest import assert_figure

    assert_figure(short_run / "truncation.png", min_width=500)
    lines = (short_run / "truncation.csv").read_text().splitlines()
    assert lines[0].startswith("kind,psi,precision_400_k5,recall_400_k5,w1_400") and len(lines) == 4
    from conftest import scalar_tags

    assert "eval/w1_400" in scalar_tags(short_run).Tags()["scalars"]
    assert not list(tmp_path.iterdir())  # gan-eval writes nothing in the working directory


def test_gan_eval_same_seed_same_numbers(short_run, tmp_path):
    from gan_cli.cli.evaluate import evaluate

    a = evaluate(compose_eval(f"ckpt={short_run}", "metrics.num_samples=300", f"out={tmp_path / 'a'}", "tensorboard=false"))
    b = evaluate(compose_eval(f"ckpt={short_run}", "metrics.num_samples=300", f"out={tmp_path / 'b'}", "tensorboard=false"))
    assert a["metrics"] == b["metrics"]


@pytest.mark.parametrize("case", ["missing", "truncated", "foreign", "empty_dir"])
def test_gan_eval_bad_checkpoint_is_one_line(case, short_run, tmp_path):
    from gan_cli.runs.checkpoint import list_checkpoints

    good = list_checkpoints(short_run)[-1]
    if case == "missing":
        target = tmp_path / "nope.pt"
    elif case == "truncated":
        target = tmp_path / "trunc.pt"
        target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "foreign":
        target = tmp_path / "foreign.pt"
        torch.save({"state_dict": {"w": torch.zeros(2)}}, target)
    else:
        target = tmp_path / "emptyrun"
        target.mkdir()
    r = run_cli("gan-eval", [f"ckpt={target}"], tmp_path)  # gan-eval's main() in this process: exit status, stderr
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_gan_eval_scores_a_folder_of_images(tmp_path, digits_cache):
    """Real digits written as PNGs score a far lower classifier FID than noise images (gan-eval's main() in this
    process; the digits classifier comes from the session's seeded cache)."""
    from PIL import Image

    cfg = compose_train("data=digits")
    test_x = build_data(cfg.data, "cpu", split="test").images
    real_dir, noise_dir = tmp_path / "real", tmp_path / "noise"
    real_dir.mkdir()
    noise_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        Image.fromarray(test_x[i, 0].numpy()).save(real_dir / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(noise_dir / f"{i}.png")
    cache = f"metrics.cache_dir={digits_cache}"
    fids = {}
    for name, d in [("real", real_dir), ("noise", noise_dir)]:
        r = run_cli("gan-eval", [f"folder={d}", "data=digits", "metrics=images", "metrics.num_samples=200", cache],
                    tmp_path)
        assert r.returncode == 0, r.stderr
        fids[name] = json.loads((d / "metrics.json").read_text())["metrics"]["fid200_clf"]
    assert fids["real"] < 0.2 * fids["noise"]
