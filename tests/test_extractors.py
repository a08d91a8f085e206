"""Feature extractors (FID Inception, domain classifier), batched extraction and the real-stats cache."""
from __future__ import annotations

import gzip
import json
import os
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from gan_cli.config import UserError
from gan_cli.data.images import ImageFolderConfig as DataConfig  # the image data schema (path, root, limit ...)
from gan_cli.metrics import cache as cache_mod
from gan_cli.metrics import classifier as clf_mod
from gan_cli.metrics import inception as inc_mod
from gan_cli.metrics.features import Extractor, extract_features, tensor_sampler, to_unit_range

FASHION = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------- inception
def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> None:
    a, b = a.detach(), b.detach()
    scale = max(float(b.abs().max()), 1e-6)
    err = float((a - b).abs().max())
    assert err <= rel * scale, f"max |diff| {err:.3g} > {rel} * {scale:.3g}"


def test_inception_matches_pytorch_fid(random_weights, monkeypatch):
    pytest.importorskip("pytorch_fid")
    import pytorch_fid.inception as pf

    # pytorch-fid downloads its weights in fid_inception_v3(); hand it our random file instead.
    monkeypatch.setattr(pf, "load_state_dict_from_url",
                        lambda *a, **k: torch.load(random_weights, map_location="cpu", weights_only=True))
    ref = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True).eval()
    ours = inc_mod.get_inception(str(random_weights), "cpu", download=False)
    assert ours.name == "inception" and ours.dims == 2048 and isinstance(ours, Extractor)

    g = torch.Generator().manual_seed(1)
    images = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1  # CIFAR-sized, resized to 299 by both
    out = ours(images)
    with torch.no_grad():
        expected = ref((images + 1) / 2)[0].flatten(1)  # pytorch-fid takes [0, 1]
    assert out["pool"].shape == (1, 2048) and out["logits"].shape == (1, 1008)
    assert float(expected.std()) > 1e-3  # the random network does not collapse
    _close(out["pool"], expected)
    # IS logits: pool3 @ fc.weight.T (no bias, as in improved-gan / torch-fidelity); full parity with
    # torch-fidelity's logits_unbiased is checked below.
    fc_weight = torch.load(random_weights, weights_only=True)["fc.weight"]
    _close(out["logits"], expected @ fc_weight.T)


def test_inception_matches_torch_fidelity_logits(random_weights):
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(random_weights))
    ours = inc_mod.get_inception(str(random_weights), "cpu", download=False)
    # At 299x299 no resize happens in either, so torch-fidelity's uint8 convention (x - 128) / 128 can be fed exactly.
    u8 = torch.randint(0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    with torch.no_grad():
        pool_ref, logits_ref = ref(u8)
    out = ours((u8.float() - 128) / 128)
    _close(out["pool"], pool_ref)
    _close(out["logits"], logits_ref)


def test_inception_preprocess_convention():
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    x = inc_mod.preprocess(grey)
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    # grey is repeated to RGB first, then resized (as pytorch-fid feeds its 3-channel input to interpolate); the
    # kernel's vector path depends on the channel count and thread count, so compare with the same 3-channel call.
    expected = torch.nn.functional.interpolate(grey.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear",
                                               align_corners=False)
    assert torch.equal(x, expected)
    single = torch.nn.functional.interpolate(grey, size=(299, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[:, :1], single, rtol=0, atol=1e-6)  # the same resize, up to float rounding
    full = torch.rand(1, 3, 299, 299, generator=g)
    assert torch.equal(inc_mod.preprocess(full), full)  # already 299: untouched
    with pytest.raises(UserError):
        inc_mod.preprocess(torch.zeros(1, 2, 8, 8))


def test_inception_offline_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError) as info:
        inc_mod.find_weights(None)
    msg = str(info.value)
    assert "\n" not in msg
    assert inc_mod.WEIGHTS_FILE in msg and inc_mod.FID_WEIGHTS_URL in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "metrics.inception_weights" in msg
    # an explicit path that does not exist
    with pytest.raises(UserError, match="metrics.inception_weights"):
        inc_mod.find_weights(str(tmp_path / "nope.pth"))


def test_inception_weights_found_in_hub_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("must not download when the file is cached"))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / inc_mod.TORCH_FIDELITY_WEIGHTS_FILE).write_bytes(b"x")
    assert inc_mod.find_weights(None) == folder / inc_mod.TORCH_FIDELITY_WEIGHTS_FILE
    (folder / inc_mod.WEIGHTS_FILE).write_bytes(b"x")  # pytorch-fid's name is preferred
    assert inc_mod.find_weights(None) == folder / inc_mod.WEIGHTS_FILE


def test_inception_rejects_wrong_weight_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="not the FID Inception weight file"):
        inc_mod.load_network(bad)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="Cannot read"):
        inc_mod.load_network(tmp_path / "garbage.pth")


# ----------------------------------------------------------------------------- classifier
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.round(d.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    labels = torch.from_numpy(d.target).long()
    return images[:1500], labels[:1500], images[1500:], labels[1500:]


@pytest.fixture(autouse=True)
def _fresh_memo():
    clf_mod._MEMO.clear()
    yield
    clf_mod._MEMO.clear()


@pytest.fixture
def one_thread():
    """8x8 convolutions gain nothing from intra-op threads, and on a busy 2-core machine OpenMP barriers
    can make them 10x slower; the digits tests run single-threaded to stay fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_classifier_digits_trains_caches_and_reloads(one_thread, tmp_path, monkeypatch):
    xtr, ytr, xte, yte = _digits()
    rng_before = torch.get_rng_state()
    ex = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path, "cpu")
    assert torch.equal(torch.get_rng_state(), rng_before)  # training ran in a forked RNG
    assert not ex.loaded_from_cache
    assert ex.test_accuracy >= 0.9, ex.test_accuracy
    assert ex.name == "clf_digits" and ex.dims == 128 and ex.num_classes == 10
    assert isinstance(ex, Extractor)
    files = list((tmp_path / "classifiers").glob("clf_digits_*.pt"))
    assert len(files) == 1 and not list((tmp_path / "classifiers").glob(".*tmp"))
    blob = torch.load(files[0], weights_only=True)
    assert blob["meta"]["test_accuracy"] == pytest.approx(ex.test_accuracy)

    ex.train()
    assert not ex.net.training  # frozen: batch norm keeps its running statistics
    out = ex(to_unit_range(xte))
    assert out["pool"].shape == (len(xte), 128) and out["logits"].shape == (len(xte), 10)
    acc = float((out["logits"].argmax(1) == yte).float().mean())
    assert acc == pytest.approx(ex.test_accuracy)

    # second call in a fresh process (memo cleared): loads the file, does not train
    clf_mod._MEMO.clear()
    monkeypatch.setattr(clf_mod, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    again = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path, "cpu")
    assert again.loaded_from_cache and again.cache_id == ex.cache_id
    assert torch.equal(again(to_unit_range(xte))["pool"], out["pool"])


TINY = clf_mod.TrainSettings(epochs=1, min_steps=5)


def test_classifier_training_is_deterministic_and_keyed(one_thread, tmp_path):
    xtr, ytr, xte, yte = _digits()
    a = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path / "a", "cpu", settings=TINY)
    b = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path / "b", "cpu", settings=TINY)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.cache_id == b.cache_id
    # any change of settings, data or name gives another file
    other = clf_mod.TrainSettings(epochs=1, min_steps=5, seed=1)
    c = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path / "a", "cpu", settings=other)
    d = clf_mod.get_classifier("digits", xtr[:-1], ytr[:-1], xte, yte, tmp_path / "a", "cpu", settings=TINY)
    e = clf_mod.get_classifier("digits2", xtr, ytr, xte, yte, tmp_path / "a", "cpu", settings=TINY)
    assert len({a.cache_id, c.cache_id, d.cache_id, e.cache_id}) == 4
    assert len(list((tmp_path / "a" / "classifiers").glob("*.pt"))) == 4


def test_classifier_corrupt_file_is_retrained(one_thread, tmp_path):
    xtr, ytr, xte, yte = _digits()
    first = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path, "cpu", settings=TINY)
    path = next((tmp_path / "classifiers").glob("*.pt"))
    path.write_bytes(b"truncated")
    clf_mod._MEMO.clear()
    with pytest.warns(RuntimeWarning, match="unreadable classifier"):
        second = clf_mod.get_classifier("digits", xtr, ytr, xte, yte, tmp_path, "cpu", settings=TINY)
    assert not second.loaded_from_cache and second.cache_id == first.cache_id
    assert torch.load(path, weights_only=True)["meta"]["key"].startswith(first.cache_id.rsplit(":", 1)[1])


def test_classifier_input_checks(one_thread, tmp_path):
    xtr, ytr, xte, yte = _digits()
    ex = clf_mod.get_classifier("digits", xtr, ytr, None, None, tmp_path, "cpu", settings=TINY)
    assert ex.meta["n_test"] == 150 and ex.meta["n_train"] == 1350  # 10% held out without a test split
    with pytest.raises(UserError, match="expects images shaped"):
        ex(torch.zeros(2, 1, 28, 28))
    with pytest.raises(UserError, match="no labels"):
        clf_mod.get_classifier("folder", xtr, None, None, None, tmp_path, "cpu")


def _idx(path: Path) -> np.ndarray:
    """Minimal gzipped IDX reader (LeCun's MNIST format)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_classifier_fashion_mnist_accuracy(one_thread, tmp_path):
    xtr = torch.from_numpy(_idx(FASHION / "train-images-idx3-ubyte.gz")).unsqueeze(1)
    ytr = torch.from_numpy(_idx(FASHION / "train-labels-idx1-ubyte.gz")).long()
    xte = torch.from_numpy(_idx(FASHION / "t10k-images-idx3-ubyte.gz")).unsqueeze(1)
    yte = torch.from_numpy(_idx(FASHION / "t10k-labels-idx1-ubyte.gz")).long()
    ex = clf_mod.get_classifier("fashion_mnist", xtr, ytr, xte, yte, tmp_path, "cpu")
    print(f"fashion_mnist classifier: accuracy {ex.test_accuracy:.4f}, {ex.meta['train_seconds']:.1f} s")
    assert ex.test_accuracy >= 0.90


# ----------------------------------------------------------------------------- features
class _Toy(nn.Module):
    name, dims, num_classes, cache_id = "toy", 3, 2, "toy:v1"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        assert x.dtype == torch.float32 and float(x.min()) >= -1 and float(x.max()) <= 1
        pool = self.drop(self.lin(x.flatten(1)))
        return {"pool": pool, "logits": pool[:, :2]}


def test_extract_features_batches_and_concatenates():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (10, 1, 2, 2), generator=g, dtype=torch.uint8)
    toy = _Toy().train()
    feats = extract_features(toy, tensor_sampler(u8), n=10, batch=4)
    assert toy.calls == [4, 4, 2] and not toy.training  # batched, eval mode (dropout off)
    assert set(feats) == {"pool", "logits"}
    assert isinstance(feats["pool"], np.ndarray) and feats["pool"].dtype == np.float32
    with torch.no_grad():
        full = toy.lin(to_unit_range(u8).flatten(1)).numpy()
    np.testing.assert_allclose(feats["pool"], full, rtol=1e-6, atol=1e-6)
    only = extract_features(toy, tensor_sampler(u8), n=10, batch=10, keys=["logits"], dtype=np.float64)
    assert set(only) == {"logits"} and only["logits"].dtype == np.float64
    with pytest.raises(KeyError):
        extract_features(toy, tensor_sampler(u8), n=2, batch=2, keys=["nope"])
    with pytest.raises(ValueError):
        extract_features(toy, tensor_sampler(u8), n=11, batch=4)  # sampler runs dry


def test_to_unit_range():
    u8 = torch.tensor([0, 255], dtype=torch.uint8)
    assert torch.equal(to_unit_range(u8), torch.tensor([-1.0, 1.0]))
    f = torch.tensor([0.25], dtype=torch.float64)
    assert to_unit_range(f).dtype == torch.float32


# ----------------------------------------------------------------------------- cache
BASE = dict(extractor_id="inception:abc", layer="pool", num_samples=10000, seed=0, split="train")


def test_key_is_canonical_and_sensitive():
    cfg = DataConfig(name="fashion_mnist", image_size=28, channels=1)
    k0 = cache_mod.real_stats_key(cfg, **BASE)
    assert k0 == cache_mod.real_stats_key(cfg, **dict(reversed(list(BASE.items()))))
    assert len(k0) == 64
    from omegaconf import OmegaConf

    assert cache_mod.real_stats_key(OmegaConf.structured(cfg), **BASE) == k0  # same key from a Hydra config
    changed = set()
    for field, value in dict(name="mnist", image_size=32, channels=3, limit=100, path="/x", root="/r").items():
        other = DataConfig(**{**cfg.__dict__, field: value})
        changed.add(cache_mod.real_stats_key(other, **BASE))
    for field, value in dict(extractor_id="inception:abd", layer="logits", num_samples=9999, seed=1,
                             split="test").items():
        changed.add(cache_mod.real_stats_key(cfg, **{**BASE, field: value}))
    assert len(changed) == 11 and k0 not in changed
    # loader knobs do not change the real images
    assert cache_mod.real_stats_key(DataConfig(**{**cfg.__dict__, "batch_size": 7}), **BASE) == k0
    assert cache_mod.make_key({"a": 1, "b": [1, 2]}) == cache_mod.make_key({"b": [1, 2], "a": 1})
    assert cache_mod.make_key({"a": 1}) != cache_mod.make_key({"a": 1.5})


def test_cache_roundtrip_and_atomic_write(tmp_path, monkeypatch):
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"x": 1})
    assert store.load(key) is None
    mu, sigma = np.arange(3.0), np.eye(3)
    path = store.save(key, {"mu": mu, "sigma": sigma}, meta={"parts": {"x": 1}})
    got = store.load(key)
    np.testing.assert_array_equal(got["mu"], mu)
    np.testing.assert_array_equal(got["sigma"], sigma)
    assert got["mu"].dtype == np.float64 and set(got) == {"mu", "sigma"}
    assert store.load_meta(key)["parts"] == {"x": 1}

    # a save that dies half-way leaves the old file intact and no temp file behind
    def dying_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(OSError):
        store.save(key, {"mu": mu + 1, "sigma": sigma})
    monkeypatch.undo()
    np.testing.assert_array_equal(store.load(key)["mu"], mu)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]

    # the bytes reach the final name only through os.replace of a temp file in the same folder
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append((Path(src), Path(dst))), real_replace(src, dst)))
    store.save(key, {"mu": mu + 2, "sigma": sigma})
    assert len(seen) == 1 and seen[0][1] == path and seen[0][0].parent == path.parent and seen[0][0] != path
    np.testing.assert_array_equal(store.load(key)["mu"], mu + 2)


def test_cache_corrupt_file_warns_once_and_recomputes(tmp_path):
    store = cache_mod.StatsCache(tmp_path)
    key = cache_mod.make_key({"x": 2})
    store.path(key).parent.mkdir(parents=True)
    store.path(key).write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.warns(RuntimeWarning, match="unreadable feature cache"):
        assert store.load(key) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(key) is None  # warned once only
    calls = []
    out = store.get_or_compute(key, lambda: calls.append(1) or {"mu": np.ones(2)})
    assert calls == [1] and np.array_equal(out["mu"], np.ones(2))
    out = store.get_or_compute(key, lambda: pytest.fail("recomputed a good file"))
    assert np.array_equal(out["mu"], np.ones(2))
    # a file stored under another key (renamed or copied) is not trusted
    other = cache_mod.make_key({"x": 3})
    os.replace(store.path(key), store.path(other))
    with pytest.warns(RuntimeWarning, match="stored key differs"):
        assert store.load(other) is None
    meta = store.load_meta(other)
    assert meta["key"] == key and json.dumps(meta)
