"""Image-GAN presets: experiment=sngan / cifar10_sngan / cifar10_dcgan say what the papers and Mimicry say, and
an SNGAN with DiffAugment or ADA trains end to end on (fake) MNIST files, both through gan-train's own path."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_train
from idx import fake_mnist, write_mnist_raw
from omegaconf import OmegaConf


def _opt(cfg, which):
    return OmegaConf.to_container(cfg.model[which])


def test_sngan_presets_are_the_papers_recipes():
    adam = {"name": "adam", "lr": 2e-4, "beta1": 0.0, "beta2": 0.9, "decay": 0.0, "decay_shape": "linear"}
    for name, data, steps in (("sngan", "ring8", 3000), ("cifar10_sngan", "cifar10", 100_000)):
        cfg = compose_train(f"experiment={name}")
        assert (cfg.model.name, cfg.net.name, cfg.data.name, cfg.steps) == ("hinge", "resnet", data, steps)
        assert cfg.model.n_critic == 5 and cfg.data.batch_size == 64 and cfg.net.spectral_norm
        assert (cfg.net.g_channels, cfg.net.d_channels, cfg.net.latent_dim) == (256, 128, 128)
        assert _opt(cfg, "opt_g") == adam and _opt(cfg, "opt_d") == adam
    cfg = compose_train("experiment=cifar10_sngan")
    assert (cfg.metrics.suite, cfg.metrics.num_samples, cfg.metrics.preprocess) == ("inception", 50_000, "torch_fidelity")
    cfg = compose_train("experiment=cifar10_dcgan")
    assert (cfg.model.name, cfg.net.name, cfg.data.name, cfg.steps, cfg.model.n_critic) == ("nsgan", "dcgan", "cifar10",
                                                                                           100_000, 1)
    assert _opt(cfg, "opt_g") == {**adam, "beta1": 0.5, "beta2": 0.999}
    cfg = compose_train("experiment=fashion_mnist_best")
    assert (cfg.data.name, cfg.net.name, cfg.net.channels, cfg.model.name, cfg.ema.beta) == ("fashion_mnist", "dcgan",
                                                                                           32, "nsgan", 0.999)


@pytest.mark.parametrize("aug", ["diffaugment", "ada"])
def test_sngan_with_an_augmentation_trains_on_mnist_files(aug, tmp_path):
    from gan_cli.cli.train import train

    write_mnist_raw(tmp_path / "data" / "MNIST" / "raw", fake_mnist(64, 16))
    cfg = compose_train("experiment=sngan", "data=mnist", f"data.root={tmp_path / 'data'}", "data.download=false",
                        f"augment={aug}", "augment.ada_kimg=0.2" if aug == "ada" else "augment.cutout=0.5",
                        "net.g_channels=8", "net.d_channels=8", "net.latent_dim=16", "data.batch_size=8", "steps=4",
                        "log_every=2", "image_every=0", "metrics=none", "progress=false", "device=cpu", tmp_path=tmp_path / "run")
    res = train(cfg)
    assert res["step"] == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(torch.isfinite(torch.tensor(r["loss/d"])) for r in rows)
    assert rows[-1]["lr/g"] == 0.0  # the linear decay ends at 0
    if aug == "ada":
        assert "augment/p" in rows[-1] and "augment/rt" in rows[-1]
