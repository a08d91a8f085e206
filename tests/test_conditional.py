"""Class-conditional GANs (cond=concat | projection | acgan): the nets take the class, training asks for classes
as the config says, pictures show one row per class, the conditional metrics score against the classes asked for,
gan-eval exports per class with labels.csv, and what cannot be conditioned is refused in one line."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_train, interrupted_and_resumed, run_cli

from gan_cli.config import UserError

TINY = ["steps=4", "log_every=2", "image_every=0", "metrics=none", "device=cpu"]


def _nets(*overrides):
    from gan_cli.build import build_cond, build_data, build_nets

    cfg = compose_train(*overrides)
    torch.manual_seed(0)
    data = build_data(cfg.data, "cpu")
    cond = build_cond(cfg.cond, data.info, getattr(data, "labels", None))
    G, D = build_nets(cfg, data.info, "cpu", cond)
    return cfg, data, cond, G, D


@pytest.mark.parametrize("overrides", [
    ("data=ring8", "net=mlp", "cond=concat"),
    ("data=ring8", "net=mlp", "cond=acgan"),
    ("data=digits", "net=mlp", "cond=concat"),
    ("data=digits", "net=dcgan", "net.channels=8", "cond=concat"),
    ("data=digits", "net=dcgan", "net.channels=8", "cond=projection"),
    ("data=digits", "net=dcgan", "net.channels=8", "cond=acgan"),
    ("data=digits", "data.image_size=28", "net=resnet", "net.g_channels=8", "net.d_channels=8", "cond=projection"),
    ("data=digits", "data.image_size=28", "net=resnet", "net.g_channels=8", "net.d_channels=8", "cond=acgan"),
], ids=lambda o: "-".join(v.split("=")[1] for v in o if v.split("=")[0] in ("data", "net", "cond")))
def test_every_conditioning_builds_conditions_and_trains(overrides, tmp_path):
    from gan_cli.cli.train import train

    cfg, data, cond, G, D = _nets(*overrides)
    assert G.n_classes == data.info.n_classes == cond.n_classes
    z = torch.randn(6, G.latent_dim).repeat(2, 1)
    c = torch.tensor([0] * 6 + [1] * 6)
    G.eval()  # batch statistics would mix the two halves
    with torch.no_grad():
        x = G(z, c)
    assert not torch.allclose(x[:6], x[6:]), "the same latents with another class must give other samples"
    real, c_real = data.sample(6)
    out = D(real, c_real)
    assert out.shape == ((6, 1 + cond.n_classes) if cfg.cond.name == "acgan" else (6,))
    if cfg.cond.name != "acgan":  # D reads the class too
        assert not torch.allclose(out, D(real, (c_real + 1) % cond.n_classes))
    res = train(compose_train(*overrides, *TINY, tmp_path=tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "scalars.jsonl").read_text().splitlines()]
    assert res["step"] == 4 and all(np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) for r in rows)


@pytest.mark.parametrize("overrides,words", [
    (("data=ring8", "net=mlp", "cond=projection"), "cond=projection with net=mlp: its generator has no batch norm"),
    (("data=lines", "cond=concat"), "data=lines has no labels"),
    (("data=mog1d", "net=gaussian", "cond=concat"), "one parametric family"),
    (("data=ring8", "net=mlp", "cond=concat", "model.pack=2"), "model.pack=2 with cond=concat"),
    (("data=ring8", "cond=concat", "cond.sample=often"), "cond.sample=often is unknown"),
])
def test_what_cannot_be_conditioned_is_refused_in_one_line(overrides, words):
    with pytest.raises(UserError) as e:
        _nets(*overrides)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cond_on_unlabelled_data_stops_before_anything_is_written(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    r = run_cli("gan-train", ["data=image_folder", f"data.path={tmp_path / 'imgs'}", "data.image_size=8", "cond=concat",
                              *TINY], tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "cond=concat needs labelled data" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no outputs/, no run folder, no status
    # the same folder read with its sub-folders as classes trains
    for k in range(2):
        (tmp_path / "cls" / str(k)).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 60 * k + i, dtype=np.uint8)).save(tmp_path / "cls" / str(k) / f"{i}.png")
    r = run_cli("gan-train", ["data=image_folder", f"data.path={tmp_path / 'cls'}", "data.labels=folders",
                              "data.image_size=8", "data.batch_size=4", "net.channels=4", "cond=concat", *TINY,
                              f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["step"] == 4


def test_classes_are_drawn_uniformly_or_by_the_label_frequencies():
    from gan_cli.cond.concat import Concat
    from gan_cli.data import DataInfo

    info = DataInfo(name="x", kind="image", shape=(1, 8, 8), n_classes=3)
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    gen = torch.Generator().manual_seed(0)
    uni = torch.bincount(Concat("uniform").bind(info, labels).draw(60_000, gen, "cpu"), minlength=3) / 60_000
    freq = torch.bincount(Concat("data").bind(info, labels).draw(60_000, gen, "cpu"), minlength=3) / 60_000
    # binomial standard errors at n = 60,000 are below 0.0021: 5 of them
    assert torch.allclose(uni, torch.full((3,), 1 / 3, dtype=uni.dtype), atol=0.011)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1], dtype=freq.dtype), atol=0.011)


def test_acgan_adds_the_class_cross_entropy_to_both_losses():
    from gan_cli.cond.acgan import ACGAN
    from gan_cli.data import DataInfo
    from gan_cli.objectives.gan import NSGAN
    from gan_cli.training.step import DPath, discriminator_loss, generator_loss

    torch.manual_seed(0)
    D = torch.nn.Linear(2, 4)  # a D with a class head: column 0 the output, then 3 class logits
    path = DPath(lambda x, c: D(x))
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    c_real, c_fake = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([2, 2, 1, 0, 0])
    obj = NSGAN()
    out_r, out_f = D(real), D(fake)
    base_d = obj.d_loss(out_r[:, 0], out_f[:, 0])
    for fake_in_d in (False, True):
        cond = ACGAN(weight=0.5, fake_in_d=fake_in_d).bind(DataInfo(name="x", kind="toy2d", shape=(2,), n_classes=3))
        loss, real_out = discriminator_loss(obj, {}, path, real, c_real, fake, c_fake, cond)
        want = base_d + 0.5 * (F.cross_entropy(out_r[:, 1:], c_real)
                               + (F.cross_entropy(out_f[:, 1:], c_fake) if fake_in_d else 0))
        assert torch.allclose(loss, want) and torch.equal(real_out, out_r[:, 0])
    g = generator_loss(obj, {}, path, fake, c_fake, real, c_real, cond)
    assert torch.allclose(g, obj.g_loss(out_f[:, 0]) + 0.5 * F.cross_entropy(out_f[:, 1:], c_fake))


def test_the_picture_has_one_row_per_class(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan_cli.cli.train import train
    from gan_cli.training.loop import class_grid

    z = torch.arange(64.0)[:, None]
    zs, cs, cols = class_grid(z, 10)
    assert cols == 6 and torch.equal(cs, torch.arange(10).repeat_interleave(6)) and torch.equal(zs[:, 0], z[:6, 0].repeat(10))
    train(compose_train("data=digits", "net=dcgan", "net.channels=8", "cond=concat", "steps=2", "image_every=2",
                        "metrics=none", "device=cpu", tmp_path=tmp_path / "run"))
    ea = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0})
    ea.Reload()
    img = ea.Images("samples")[-1]
    # make_grid with padding 1: rows x (8 + 1) + 1 pixels high, 6 columns x 9 + 1 wide
    assert (img.height, img.width) == (10 * 9 + 1, 6 * 9 + 1)


def test_evaluation_classes_are_balanced_and_the_same_in_any_chunking():
    from gan_cli.metrics.evaluator import eval_classes

    whole = eval_classes(0, 25, 10)
    assert torch.equal(whole, torch.arange(25) % 10)
    assert torch.equal(torch.cat([eval_classes(lo, min(7, 25 - lo), 10) for lo in range(0, 25, 7)]), whole)
    assert torch.equal(eval_classes(3, 4, 10, cls=7), torch.full((4,), 7))


def _independent_fid(a, b):
    """pytorch-fid's formula with scipy's sqrtm, written out here."""
    import scipy.linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_class_acc_and_intra_class_fid_against_hand_computations():
    from gan_cli.metrics.registry import MetricContext, get_metric

    rng = np.random.default_rng(0)
    info = type("I", (), {"kind": "image", "name": "x"})()
    n, k, d = 3000, 3, 4
    fl, rl = np.arange(n) % k, rng.integers(0, k, n)
    real = {"pool": rng.normal(size=(n, d)) + rl[:, None]}
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), fl] += 1.0  # the asked-for class usually wins
    fake = {"pool": rng.normal(size=(n, d)) * 1.5 + fl[:, None] * 0.8, "logits": logits}
    ext = type("E", (), {"test_accuracy": 0.93})()
    ctx = MetricContext(n, "3k", info, 5, "clf", fake_labels=fl, real_labels=rl, n_classes=k, extractor=ext)
    acc = get_metric("class_acc", "features").fn(real, fake, ctx)
    assert acc == {"class_acc3k_clf": pytest.approx(float((logits.argmax(1) == fl).mean())), "class_acc_real_clf": 0.93}
    want = np.mean([_independent_fid(real["pool"][rl == j], fake["pool"][fl == j]) for j in range(k)])
    assert get_metric("ifid", "features").fn(real, fake, ctx)["ifid3k_clf"] == pytest.approx(want, rel=1e-6)
    few = MetricContext(9, "9", info, 5, "clf", fake_labels=fl[:9], real_labels=rl[:9], n_classes=k)
    with pytest.raises(UserError, match="raise metrics.num_samples"):
        get_metric("ifid", "features").fn({"pool": real["pool"][:9]}, {"pool": fake["pool"][:9]}, few)


def test_a_conditional_run_scores_its_classes_and_exports_per_class(tmp_path, digits_cache):
    r = run_cli("gan-train", ["data=digits", "net=dcgan", "net.channels=8", "cond=projection", "steps=3", "log_every=3",
                              "image_every=0", "metrics=images", "metrics.num_samples=1400",
                              f"metrics.cache_dir={digits_cache}", "device=cpu", "progress=false",
                              f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert {"class_acc1.4k_clf", "class_acc_real_clf", "ifid1.4k_clf", "fid1.4k_clf", "cas1.4k_clf"} <= set(metrics)
    assert 0.9 < metrics["class_acc_real_clf"] <= 1.0 and 0.0 <= metrics["class_acc1.4k_clf"] <= 1.0
    r = run_cli("gan-eval", [f"ckpt={tmp_path / 'run'}", "metrics.num_samples=1400", f"metrics.cache_dir={digits_cache}",
                             "device=cpu"], tmp_path)  # gan-eval scores the classes too
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert again["class_acc1.4k_clf"] == metrics["class_acc1.4k_clf"] and again["ifid1.4k_clf"] == metrics["ifid1.4k_clf"]
    r = run_cli("gan-eval", [f"ckpt={tmp_path / 'run'}", f"export={tmp_path / 'all'}", "export.n=25"], tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "all" / "labels.csv")))
    assert [row["class"] for row in rows] == [str(i % 10) for i in range(25)]
    assert sorted(p.name for p in (tmp_path / "all").glob("*.png")) == [row["file"] for row in rows]
    r = run_cli("gan-eval", [f"ckpt={tmp_path / 'run'}", f"export={tmp_path / 'three'}", "export.n=6", "export.class=3",
                             "truncation.kind=resample", "truncation.psi=0.7"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert {row["class"] for row in csv.DictReader(open(tmp_path / "three" / "labels.csv"))} == {"3"}
    r = run_cli("gan-eval", [f"ckpt={tmp_path / 'run'}", f"export={tmp_path / 'bad'}", "export.class=10"], tmp_path)
    assert r.returncode == 2 and "the generator has 10 classes (0 .. 9)" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_an_unconditional_generator_refuses_a_class():
    from gan_cli.metrics.evaluator import generator_sampler

    G = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="unconditional"):
        generator_sampler(G, 2, "cpu", 0, cls=1)


def test_a_conditional_run_resumes_exactly(tmp_path):
    args = ["data=ring8", "net=mlp", "net.hidden=16", "cond=acgan", "cond.sample=data", "steps=6", "log_every=2",
            "ckpt_every=2", "image_every=0", "metrics=none", "device=cpu"]
    straight, _, resumed = interrupted_and_resumed(args, tmp_path, at_step=3)
    for key in ("generator", "discriminator"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)


def test_cas_of_the_training_set_itself_is_the_domain_classifiers_accuracy(digits_cache):
    """CAS trains the domain classifier's recipe on the 'generated' samples: given the real training images with
    their labels, it is that classifier, so it scores the classifier's held-out accuracy exactly; with the labels
    shuffled it is near chance."""
    from gan_cli.build import build_data, build_evaluator
    from gan_cli.metrics.registry import MetricContext, get_metric

    cfg = compose_train("data=digits", "metrics=images", f"metrics.cache_dir={digits_cache}")
    ev = build_evaluator(cfg.metrics, cfg.data, build_data(cfg.data), "cpu", n_classes=10)
    ext = ev.extractor()
    src = ev.source
    info = src.info
    ctx = MetricContext(len(src), "1.5k", info, 5, "clf", fake_labels=src.labels.numpy(), n_classes=10,
                        extractor=ext, fake_images=src.images, test_split=ev.test_split)
    assert get_metric("cas", "features").fn({}, {}, ctx) == {"cas1.5k_clf": pytest.approx(ext.test_accuracy, abs=1e-12)}
    shuffled = src.labels[torch.randperm(len(src), generator=torch.Generator().manual_seed(0))].numpy()
    ctx = MetricContext(len(src), "1.5k", info, 5, "clf", fake_labels=shuffled, n_classes=10, fake_images=src.images,
                        test_split=ev.test_split)
    assert get_metric("cas", "features").fn({}, {}, ctx)["cas1.5k_clf"] < 0.25
