"""The step contract: a batch is (x, c) from every source (labels where the data has them), every G is called as
G(z, c) and every D as D(x, c), every call of D goes through the one path into D (augment pipe -> input
transforms -> packing), G's loss can read the real batch, and an augment pipe's randomness and state belong to
the run (seed stream, checkpoint, exact resume, logged scalars)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import Quadratic, compose_train, interrupted_and_resumed
from idx import fake_mnist, write_mnist_raw
from omegaconf import OmegaConf
from torch import nn

from gan_cli.augment import AugmentPipe
from gan_cli.build import build_data
from gan_cli.config import UserError

FASHION_SYSTEM = "/usr/share/datasets/fashion-mnist"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- labels from every source


@pytest.mark.parametrize("name", ["ring8", "grid25", "mog1d"])
def test_a_toy_mixture_labels_each_sample_with_its_component_and_draws_as_before(name):
    cfg = OmegaConf.to_container(compose_train(f"data={name}").data)
    src = build_data(cfg, "cpu")
    x, c = src.sample(4000, gen(3))
    n = src.info.n_modes
    assert src.info.n_classes == n and c.dtype == torch.int64 and c.shape == (4000,)
    assert int(c.min()) == 0 and int(c.max()) == n - 1
    centers = src.info.centers
    # each sample lies around its own component's centre (std << spacing; mog1d: 4 std from the midpoint)
    nearest = torch.cdist(x.double(), centers.double()).argmin(1)
    assert float((nearest == c).float().mean()) > 0.999
    # the labels come with the draw: the same generator calls as an unlabelled draw (component, then noise)
    g = gen(3)
    k = torch.randint(0, n, (4000,), generator=g)
    noise = torch.randn((4000, centers.shape[1]), generator=g)
    assert torch.equal(c, k) and torch.equal(x, centers[k] + src.info.std * noise)


def test_lines_is_unlabelled():
    cfg = OmegaConf.to_container(compose_train("data=lines").data)
    src = build_data(cfg, "cpu")
    x, c = src.sample(10, gen(0))
    assert x.shape == (10, 2) and c is None and src.info.n_classes is None


def _lookup(images: torch.Tensor, labels: torch.Tensor):
    """uint8 image bytes -> label, for checking that a batch's labels are its images' labels."""
    table = {}
    for im, lb in zip(images, labels):
        table.setdefault(im.numpy().tobytes(), set()).add(int(lb))
    return lambda x: [table[((xi + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()] for xi in x]


def _check_labels(src, n=64, seed=1):
    images, labels = src.images.cpu(), src.labels
    find = _lookup(images, labels)
    x, c = src.sample(n, gen(seed))
    assert c is not None and c.dtype == torch.int64 and c.device == x.device and c.shape == (n,)
    assert all(int(ci) in found for ci, found in zip(c, find(x.cpu())))
    return c


@pytest.mark.parametrize("loader", ["tensor", "stream"])
def test_mnist_family_batches_carry_their_images_labels(tmp_path, loader):
    write_mnist_raw(tmp_path / "MNIST" / "raw", fake_mnist(60, 12))
    cfg = {**OmegaConf.to_container(compose_train("data=mnist").data), "root": str(tmp_path), "download": False,
           "loader": loader, "num_workers": 0}
    src = build_data(cfg, "cpu")
    assert src.info.n_classes == 10
    c = _check_labels(src)
    assert len(set(c.tolist())) > 5
    if loader == "stream":  # the pipeline's batches (the train stream's owner) and other draws alike
        _check_labels(src, n=16, seed=2)


def test_digits_and_fashion_mnist_batches_carry_labels():
    src = build_data(OmegaConf.to_container(compose_train("data=digits").data), "cpu")
    assert src.info.n_classes == 10
    _check_labels(src, n=200)
    if not os.path.isdir(FASHION_SYSTEM):
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")


@pytest.mark.skipif(not os.path.isdir(FASHION_SYSTEM), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_batches_carry_labels(tmp_path):
    cfg = {**OmegaConf.to_container(compose_train("data=fashion_mnist").data), "root": str(tmp_path / "d"),
           "limit": 500}
    _check_labels(build_data(cfg, "cpu"), n=100)


def _class_folders(root, counts):
    from PIL import Image

    for i, (name, k) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for j in range(k):
            Image.new("L", (8, 8), 30 * i + j).save(root / name / f"{j}.png")


@pytest.mark.parametrize("loader", ["tensor", "stream"])
def test_image_folder_labels_are_its_class_folders_in_imagefolder_order(tmp_path, loader, caplog):
    from torchvision.datasets import ImageFolder

    root = tmp_path / "imgs"
    _class_folders(root, {"dog": 3, "ant": 2, "cat": 4})
    from PIL import Image

    Image.new("L", (8, 8), 250).save(root / "loose.png")  # in no class folder
    cfg = {**OmegaConf.to_container(compose_train("data=image_folder").data), "path": str(root), "labels": "folders",
           "image_size": 8, "channels": 1, "loader": loader, "num_workers": 0}
    with caplog.at_level("WARNING"):
        src = build_data(cfg, "cpu")
    assert "1 images lie directly in data.path" in caplog.text
    ref = ImageFolder(str(root))
    assert src.info.class_names == tuple(ref.classes) == ("ant", "cat", "dog") and src.info.n_classes == 3
    assert len(src) == 9 and sorted(src.labels.tolist()) == sorted(t for _, t in ref.samples)
    x, c = src.sample(200, gen(0))
    grey = ((x[:, 0, 0, 0] + 1) * 127.5).round()
    # class i's images are grey levels 30 i + j (dog: i=0, ant: 1, cat: 2 in creation order)
    want = {0: 1, 1: 2, 2: 0}  # ImageFolder index -> creation order (ant, cat, dog)
    assert all(int(g) // 30 == want[int(ci)] for g, ci in zip(grey, c))
    none = build_data({**cfg, "labels": "none"}, "cpu")
    assert none.sample(4, gen(0)).c is None and none.info.n_classes is None and len(none) == 10


def test_image_folder_label_refusals_are_one_line(tmp_path):
    root = tmp_path / "imgs"
    _class_folders(root, {"a": 2})
    (root / "empty").mkdir()
    cfg = {**OmegaConf.to_container(compose_train("data=image_folder").data), "path": str(root), "labels": "folders",
           "image_size": 8, "channels": 1}
    with pytest.raises(UserError, match="class folder.s. empty of data.path=.* hold no images") as e:
        build_data(cfg, "cpu")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="data.labels=folder is not a labelling: use none"):
        build_data({**cfg, "labels": "folder"}, "cpu")


def test_a_shard_draws_its_own_images_with_their_labels(tmp_path):
    src = build_data(OmegaConf.to_container(compose_train("data=digits").data), "cpu").shard(1, 2)
    labels = src.labels
    images = src.images.cpu()
    x, c = src.sample(300, gen(4))
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    for xi, ci in zip(u8, c):
        hits = [i for i in range(1, len(images), 2) if torch.equal(images[i], xi)]  # shard 1 of 2: odd indices
        assert hits and int(ci) in {int(labels[i]) for i in hits}


# ----------------------------------------------------------------------------- every net takes c


@pytest.mark.parametrize("net,data", [("mlp", "ring8"), ("dcgan", "digits"), ("pacgan", "grid25"), ("theta", "lines"),
                                      ("gaussian", "mog1d"), ("auto", "digits")])
def test_every_net_is_called_with_labels_and_an_unconditional_one_ignores_them(net, data):
    from gan_cli.build import build_nets

    cfg = compose_train(f"net={net}", f"data={data}")
    info = build_data(cfg.data).info
    G, D = build_nets(cfg, info)
    G.eval(), D.eval()
    z = torch.randn(6, G.latent_dim, generator=gen(0))
    c = torch.randint(0, 10, (6,), generator=gen(1))
    x = G(z, c)
    assert torch.equal(x, G(z, None)) and x.shape == (6, *info.shape)
    assert torch.equal(D(x, c), D(x, None)) and D(x, c).shape == (6,)


# ----------------------------------------------------------------------------- the step sees the labels


class _Recorder(nn.Module):
    """Wraps D: records (x, c) of every call."""

    def __init__(self, D):
        super().__init__()
        self.inner, self.calls = D, []

    def forward(self, x, c=None):
        self.calls.append((x.detach().clone(), None if c is None else c.clone()))
        return self.inner(x, c)


def test_the_d_step_sees_the_real_batch_with_its_labels_and_g_the_same_path(tmp_path):
    from gan_cli.training.loop import build_trainer

    tr = build_trainer(compose_train("net.hidden=16", "estimate_batch=64", "data.batch_size=32", tmp_path=tmp_path),
                       tmp_path)
    tr.path.D = rec = _Recorder(tr.path.D)
    state = tr.gen.get_state()
    tr.train_step(want_norms=False)
    g = torch.Generator().set_state(state)
    x, c = tr.data.sample(32, g)  # the batch the D step drew first
    (d_real, c_real), (d_fake, c_fake), (g_fake, c_g) = rec.calls
    assert torch.equal(d_real, x) and torch.equal(c_real, c) and c_fake is None and c_g is None


def test_g_loss_reads_d_on_the_last_real_batch_when_the_objective_asks(tmp_path):
    """A relativistic objective (g_needs_real) gets D(real) in G's loss: D on the last D step's real batch."""
    from gan_cli.objectives.gan import NSGAN
    from gan_cli.training.step import DPath, generator_loss

    seen = {}

    class Pair(NSGAN):
        g_needs_real = True

        def g_loss(self, fake_out, real_out=None):
            seen["real_out"] = real_out
            return torch.nn.functional.softplus(real_out - fake_out).mean()

    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    call = lambda x, c=None: D(x)  # noqa: E731
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    loss = generator_loss(Pair(), {}, DPath(call), fake, None, real, None)
    torch.testing.assert_close(seen["real_out"], D(real))
    torch.testing.assert_close(loss, torch.nn.functional.softplus(D(real) - D(fake)).mean())
    assert generator_loss(NSGAN(), {}, DPath(call), fake, None, real, None).shape == ()  # others: fake only


# ----------------------------------------------------------------------------- the augment seam


class ShiftPipe(AugmentPipe):
    """A test augmentation for 2-D points: x + 0.1 N(0, I) from the pipe's own generator, a counter buffer,
    and D's mean real output seen through ``observe``."""

    kinds = ("toy2d",)

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("rt", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return x + 0.1 * torch.randn(x.shape, generator=self.generator, device=x.device)

    def observe(self, real_out):
        self.rt.copy_(real_out.sign().mean())

    def log_scalars(self):
        return {"augment/calls": self.calls.clone(), "augment/rt": self.rt.clone()}


class ImagePipe(ShiftPipe):
    kinds = ("image",)


PIPE = ["augment._target_=test_step_contract.ShiftPipe", "augment.name=shift"]
TINY = ["net.hidden=16", "estimate_batch=64", "data.batch_size=32", "image_every=0", "metrics=none", "log_every=4",
        "keep_ckpts=10"]


def test_the_path_augments_real_and_fake_in_both_losses_from_the_runs_augment_stream(tmp_path):
    from gan_cli import seeds
    from gan_cli.training.loop import build_trainer

    plain = build_trainer(compose_train(*TINY, tmp_path=tmp_path / "a"), tmp_path / "a")
    tr = build_trainer(compose_train(*PIPE, *TINY, tmp_path=tmp_path / "b"), tmp_path / "b")
    assert isinstance(tr.augment, ShiftPipe) and tr.path.augment is tr.augment
    tr.path.D = rec = _Recorder(tr.path.D)
    state = tr.gen.get_state()
    tr.train_step(want_norms=False)
    plain.train_step(want_norms=False)
    assert torch.equal(tr.gen.get_state(), plain.gen.get_state())  # nothing taken from the train stream
    assert int(tr.augment.calls) == 3  # D's real and fake, G's fake
    g = torch.Generator().set_state(state)
    x, _ = tr.data.sample(32, g)
    aug = seeds.generator(0, "augment")
    torch.testing.assert_close(rec.calls[0][0], x + 0.1 * torch.randn(x.shape, generator=aug))
    assert tr.augment.rt.abs() <= 1  # observed D's outputs on the real batch
    # the held-out estimate sees the data as it is
    rec.calls.clear()
    tr.estimate()
    assert int(tr.augment.calls) == 3


def test_r1_is_taken_through_the_augmentation_with_respect_to_the_clean_input():
    """stylegan2-ada takes R1 through its augment pipe: grad_x D(T(x)) at the un-augmented x.  With T(x) = 2x
    and D(x) = sum a x^2 + b.x, grad_x D(2x) = 2 (2 a (2x) + b)."""
    from gan_cli.build import build_objective, build_regularizers
    from gan_cli.training.step import DPath, discriminator_loss

    class Double(AugmentPipe):
        def forward(self, x):
            return 2 * x

    cfg = compose_train("reg=[r1]", "reg.r1.gamma=2.0")
    obj = build_objective(cfg.model)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = Quadratic()
    with_r1 = discriminator_loss(obj, build_regularizers(cfg.reg, obj), DPath(D, Double()), real, None, fake, None)[0]
    without = discriminator_loss(obj, {}, DPath(D, Double()), real, None, fake, None)[0]
    grad = 2 * (2 * D.a.detach() * (2 * real) + D.b.detach())
    np.testing.assert_allclose((with_r1 - without).item(), float((grad**2).sum(1).mean()), rtol=1e-12)


def test_the_augment_state_is_checkpointed_logged_and_a_resumed_run_ends_as_the_straight_one(tmp_path):
    a, mid, b = interrupted_and_resumed([*PIPE, *TINY, "steps=10", "ckpt_every=0"], tmp_path, at_step=5)
    assert mid["step"] == 5 and float(mid["augment"]["calls"]) == 15 and "generator" in mid["augment"]["_extra_state"]
    assert torch.equal(a["augment"]["_extra_state"]["generator"], b["augment"]["_extra_state"]["generator"])
    for net in ("generator", "discriminator"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    logged = [json.loads(line) for line in (tmp_path / "full" / "scalars.jsonl").read_text().splitlines()]
    assert [r["augment/calls"] for r in logged] == [12.0, 24.0, 30.0] and all(-1 <= r["augment/rt"] <= 1 for r in logged)


def test_an_augmentation_for_images_on_toy_data_is_one_line(tmp_path):
    from gan_cli.training.loop import build_trainer

    cfg = compose_train("augment._target_=test_step_contract.ImagePipe", "augment.name=img", tmp_path=tmp_path)
    with pytest.raises(UserError, match="augment=img augments image data, and data=ring8 is toy2d data") as e:
        build_trainer(cfg, tmp_path)
    assert "\n" not in str(e.value)
