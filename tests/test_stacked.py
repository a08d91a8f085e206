"""data=stacked and metrics=stacked: the stacked 1000-mode benchmark (VEEGAN; PacGAN Table 2) -- the triples, the
mode count and KL against closed forms, the floors of real and of one repeated image through gan-eval, and the
PacGAN presets."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from conftest import compose_train, load_file_module, run_cli

from gan_cli.config import UserError


def test_a_stacked_sample_is_three_base_images_and_its_class_their_labels():
    from gan_cli.data.stacked import stack

    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    labels = torch.arange(10) % 10
    x, c = stack(images, labels, 500, seed=0)
    assert x.shape == (500, 3, 2, 2)
    assert torch.equal(c, x[:, 0, 0, 0].long() * 100 + x[:, 1, 0, 0].long() * 10 + x[:, 2, 0, 0].long())
    x2, c2 = stack(images, labels, 500, seed=0)
    assert torch.equal(x, x2) and torch.equal(c, c2)  # a fixed draw: every run trains on the same set
    assert not torch.equal(stack(images, labels, 500, seed=1)[1], c)  # the test split is another draw


def test_stacked_digits_pools_train_and_test_and_has_1000_classes():
    from gan_cli.build import build_data

    src = build_data(compose_train("data=stacked", "data.base=digits", "data.n=30000").data)
    assert src.info.shape == (3, 8, 8) and src.info.n_classes == 1000
    counts = torch.bincount(src.labels, minlength=1000)
    assert int((counts > 0).sum()) == 1000 and counts.sum() == 30000
    # images of the test split (the last 297 digits) appear as channels too
    from gan_cli.data.download import load_digits

    test_images, _ = load_digits(False)
    first_test = test_images[0, 0]
    assert bool((src.images[:, 0] == first_test).all(-1).all(-1).any())


@pytest.mark.parametrize("hist,modes,kl", [
    (np.full(1000, 26), 1000, 0.0),
    (np.eye(1000)[7] * 26000, 1, math.log(1000)),
    ((np.arange(1000) < 2) * 13000, 2, math.log(500)),
    ((np.arange(1000) < 250) * 104, 250, math.log(4)),
])
def test_modes_and_kl_against_closed_forms(hist, modes, kl):
    from gan_cli.metrics.registry import MetricContext, get_metric

    fake = {"mode": np.repeat(np.arange(1000), hist.astype(int)).astype(np.float32)[:, None]}
    info = type("I", (), {"kind": "image", "name": "stacked"})()
    out = get_metric("stacked", "features").fn({}, fake, MetricContext(int(hist.sum()), "26k", info, 5, "stacked"))
    assert out["modes26k_stacked"] == modes and out["kl26k_stacked"] == pytest.approx(kl, abs=1e-12)


def test_the_extractor_labels_each_channel_with_the_base_classifier():
    from gan_cli.metrics.stacked import StackedExtractor

    class Mean:  # a "classifier" whose class is the image's mean grey level in tenths, at 4 x 4
        name, cache_id, test_accuracy, image_shape = "clf_fake", "fake", 1.0, (1, 4, 4)

        def __call__(self, x):
            assert x.shape[1:] == (1, 4, 4)
            k = ((x.mean((1, 2, 3)) + 1) / 2 * 10).clamp(0, 9.99).floor().long()
            return {"logits": torch.nn.functional.one_hot(k, 10).float()}

    levels = torch.tensor([[0.35, 0.95, 0.05], [0.55, 0.15, 0.75]])  # tenths 3 9 0 and 5 1 7
    images = (levels[:, :, None, None] * 2 - 1).expand(2, 3, 8, 8)  # at 8 px: resized to the classifier's 4
    assert StackedExtractor(Mean())(images)["mode"][:, 0].tolist() == [390.0, 517.0]


def test_floors_of_real_stacked_digits_and_of_one_repeated_image(tmp_path, digits_cache):
    real = tmp_path / "real"
    r = run_cli("gan-eval", ["data=stacked", "data.base=digits", f"export={real}", "export.split=train",
                             "export.n=5000"], tmp_path)
    assert r.returncode == 0, r.stderr
    args = ["data=stacked", "data.base=digits", "metrics=stacked", "metrics.num_samples=5000",
            f"metrics.cache_dir={digits_cache}", "device=cpu"]
    r = run_cli("gan-eval", [f"folder={real}", *args], tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((real / "metrics.json").read_text())["metrics"]
    # 5,000 draws of 1000 equally likely triples leave about 1000 e^-5 = 7 unseen; the digits classifier
    # mislabels a few per cent of channels, which moves few counts
    assert m["modes5k_stacked"] >= 975 and m["kl5k_stacked"] < 0.15
    one = tmp_path / "one"
    one.mkdir()
    for i in range(5000):
        shutil.copyfile(real / "000000.png", one / f"{i:06d}.png")
    r = run_cli("gan-eval", [f"folder={one}", *args], tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((one / "metrics.json").read_text())["metrics"]
    assert m["modes5k_stacked"] == 1 and m["kl5k_stacked"] == pytest.approx(math.log(1000), abs=1e-12)


def test_a_stacked_run_counts_its_modes(tmp_path, digits_cache):
    from gan_cli.cli.train import train

    cfg = compose_train("experiment=stacked_pacgan2", "data.base=digits", "data.n=2000", "net.channels=8", "steps=3",
                        "log_every=3", "image_every=3", "metrics.num_samples=500", f"metrics.cache_dir={digits_cache}",
                        "device=cpu", tmp_path=tmp_path / "run")
    res = train(cfg)
    assert res["suite"] == "stacked"
    assert 1 <= res["metrics"]["modes500_stacked"] <= 500 and 0 <= res["metrics"]["kl500_stacked"] <= math.log(1000)


def test_the_pacgan_table_2_presets():
    dc = compose_train("experiment=stacked_dcgan")
    assert (dc.data.name, dc.data.base, dc.data.n, dc.net.name, dc.model.name, dc.metrics.suite) == (
        "stacked", "mnist", 128_000, "dcgan", "nsgan", "stacked")
    assert (dc.steps, dc.data.batch_size, dc.data.latent_dim, dc.model.opt_g.lr, dc.model.opt_g.beta1,
            dc.metrics.num_samples) == (100_000, 64, 100, 2e-4, 0.5, 26_000)
    pac = compose_train("experiment=stacked_pacgan2")
    assert (pac.model.pack, pac.data.batch_size, pac.steps) == (2, 128, 100_000)


def test_stacked_mnist_offline_stops_with_the_download_line(tmp_path):
    from gan_cli.build import build_data

    with pytest.raises(UserError, match="MNIST is not in .* run once with internet access|data.download=false"):
        build_data(compose_train("data=stacked", f"data.root={tmp_path}", "data.download=false").data)


def test_metrics_stacked_needs_stacked_data():
    from gan_cli.build import build_data, build_evaluator

    cfg = compose_train("data=digits", "metrics=stacked")
    with pytest.raises(UserError, match="metrics=stacked counts the modes of data=stacked"):
        build_evaluator(cfg.metrics, cfg.data, build_data(cfg.data), "cpu")


def test_stacked_best_is_the_recipe_of_the_trial_row_that_won():
    """experiment=stacked_best composes to exactly the overrides of the budget table's winning row (STACKED_BEST),
    so the preset is what the docs' table measured."""
    bt = load_file_module(Path(__file__).resolve().parents[1] / "benchmarks" / "budget_table.py")
    best = OmegaConf.to_container(compose_train("experiment=stacked_best"))
    row = OmegaConf.to_container(compose_train(*bt.STACKED_ROWS[bt.STACKED_BEST][1]))
    assert best.pop("experiment") == "stacked_best" and row.pop("experiment") != "stacked_best"
    assert best == row
