"""gan_cli.data: toy samplers, image loaders (offline), error lines, determinism."""
from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from scipy import stats

from pathlib import Path

from omegaconf import OmegaConf

from gan_cli.build import build_data
from gan_cli.config import UserError
from gan_cli.data import DataInfo

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"

try:
    from tests.idx import IDX_NAMES, fake_mnist, write_mnist_raw
except ImportError:  # tests/ is not a package
    from idx import IDX_NAMES, fake_mnist, write_mnist_raw

FASHION_SYSTEM = "/usr/share/datasets/fashion-mnist"


def data_cfg(name: str, **kw) -> dict:
    """conf/data/<name>.yaml with ``kw`` on top (what gan-train builds for data=<name>)."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    cfg.pop("defaults", None)
    return {**cfg, **kw}


toy_cfg = data_cfg


def image_cfg(name: str, root, **kw) -> dict:
    return toy_cfg(name, **{"root": str(root), "download": False, "image_size": 28, "channels": 1, **kw})


def load_images(cfg, split: str = "train"):
    """An image data set's split as (uint8 (N, C, H, W), labels or None) on the CPU."""
    src = build_data(cfg, "cpu", split)
    if not hasattr(src, "images"):
        raise UserError(f"data={cfg.get('name')} is not an image data set")
    return src.images, src.labels


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text.strip() == text and text, repr(text)
    return text


def assign(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), centers.double()).argmin(1)


# ------------------------------------------------------------------------------------------- toy
@pytest.mark.parametrize("radius,std", [(1.0, 0.01), (2.0, 0.02)])
def test_ring8_modes(radius, std):
    src = build_data(toy_cfg("ring8", radius=radius, std=std), "cpu")
    info = src.info
    assert isinstance(info, DataInfo) and info.kind == "toy2d" and info.shape == (2,) and info.n_modes == 8
    assert info.std == pytest.approx(std)
    c = info.centers.double()
    assert c.shape == (8, 2)
    # 8 distinct angles, evenly spaced (the linspace-with-endpoint bug gives 7 distinct ones)
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    diffs = torch.diff(torch.sort(angles).values, append=angles.min().view(1) + 2 * math.pi)
    assert torch.allclose(diffs, torch.full((8,), 2 * math.pi / 8, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), radius, dtype=torch.float64), atol=1e-6)
    assert torch.cdist(c, c).add(10 * radius * torch.eye(8, dtype=torch.float64)).min() > 0.7 * radius

    n = 16000
    x = src.sample(n, gen(1)).x
    assert x.shape == (n, 2) and x.dtype == torch.float32
    k = assign(x, info.centers)
    counts = torch.bincount(k, minlength=8).double()
    assert (counts - n / 8).abs().max() < 5 * math.sqrt(n / 8)  # ~5 sigma of a binomial count
    for m in range(8):
        xm = x[k == m].double()
        assert torch.allclose(xm.mean(0), c[m], atol=5 * std / math.sqrt(len(xm)) + 1e-6)
        assert torch.allclose(xm.std(0), torch.full((2,), std, dtype=torch.float64), rtol=0.1)


def test_grid25_modes():
    src = build_data(toy_cfg("grid25"), "cpu")
    info = src.info
    assert info.n_modes == 25 and info.shape == (2,) and info.std == pytest.approx(0.05)
    pts = {tuple(round(v) for v in p) for p in info.centers.tolist()}
    assert pts == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    x = src.sample(25000, gen(2)).x
    k = assign(x, info.centers)
    counts = torch.bincount(k, minlength=25).double()
    assert (counts - 1000).abs().max() < 5 * math.sqrt(1000)
    resid = (x - info.centers[k]).double()
    assert torch.allclose(resid.mean(0), torch.zeros(2, dtype=torch.float64), atol=0.002)
    assert torch.allclose(resid.std(0), torch.full((2,), 0.05, dtype=torch.float64), rtol=0.03)


def test_mog1d():
    src = build_data(toy_cfg("mog1d"), "cpu")
    info = src.info
    assert info.kind == "toy1d" and info.shape == (1,) and info.n_modes == 2
    assert info.centers.flatten().tolist() == [-2.0, 2.0] and info.std == 0.5
    x = src.sample(20000, gen(3)).x
    assert x.shape == (20000, 1)
    pos, neg = x[x > 0].double(), x[x <= 0].double()
    assert abs(len(pos) / 20000 - 0.5) < 0.02
    assert pos.mean().item() == pytest.approx(2.0, abs=0.02) and neg.mean().item() == pytest.approx(-2.0, abs=0.02)
    assert pos.std().item() == pytest.approx(0.5, rel=0.03) and neg.std().item() == pytest.approx(0.5, rel=0.03)


def test_lines():
    src = build_data(toy_cfg("lines"), "cpu")
    info = src.info
    assert info.kind == "toy2d" and info.shape == (2,) and info.centers is None and info.std is None
    x = src.sample(5000, gen(4)).x
    assert x.shape == (5000, 2)
    assert torch.equal(x[:, 0], torch.zeros(5000))  # exactly on the line x = 0
    y = x[:, 1].double().numpy()
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert stats.kstest(y, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("name", ["ring8", "grid25", "mog1d", "lines"])
def test_toy_determinism(name):
    src = build_data(toy_cfg(name), "cpu")
    a, b = src.sample(100, gen(7)).x, src.sample(100, gen(7)).x
    assert torch.equal(a, b)
    assert not torch.equal(a, src.sample(100, gen(8)).x)
    g = gen(7)
    first, second = src.sample(50, g).x, src.sample(50, g).x  # one stream: consecutive draws differ
    assert not torch.equal(first, second)


def test_unknown_target_and_unknown_key():
    with pytest.raises(UserError) as e:
        build_data({**toy_cfg("ring8"), "_target_": "gan_cli.data.toy.ring9"}, "cpu")
    assert "data._target_=gan_cli.data.toy.ring9 cannot be imported" in one_line(e)
    with pytest.raises(UserError) as e:
        build_data(toy_cfg("ring8", image_size=28), "cpu")
    assert "data.image_size is not a parameter of gan_cli.data.toy.ring" in one_line(e)
    with pytest.raises(UserError):
        load_images(toy_cfg("ring8"))


# ---------------------------------------------------------------------------------------- MNIST
def test_mnist_from_idx_files(tmp_path):
    arrays = fake_mnist(n_train=12, n_test=6)
    write_mnist_raw(tmp_path / "MNIST" / "raw", arrays)
    cfg = image_cfg("mnist", tmp_path)
    images, labels = load_images(cfg, "train")
    assert images.dtype == torch.uint8 and images.shape == (12, 1, 28, 28)
    assert torch.equal(images[:, 0], torch.from_numpy(arrays[("train", "images")]))
    assert labels.dtype == torch.long and labels.tolist() == arrays[("train", "labels")].tolist()
    test_images, test_labels = load_images(cfg, "test")
    assert torch.equal(test_images[:, 0], torch.from_numpy(arrays[("test", "images")]))
    assert len(test_labels) == 6

    src = build_data(cfg, "cpu")
    assert src.info.kind == "image" and src.info.shape == (1, 28, 28) and src.info.n_modes == 10
    x = src.sample(40, gen(0)).x
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1 and x.max() == 1
    # every sample is one of the stored images, mapped exactly by u8 / 127.5 - 1
    back = ((x + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(back.float() / 127.5 - 1, x)
    flat = images.flatten(1)
    for row in back.flatten(1):
        assert (flat == row).all(1).any()
    assert torch.equal(src.sample(40, gen(0)).x, x)  # deterministic given the generator


def test_mnist_limit_resize_channels(tmp_path):
    write_mnist_raw(tmp_path / "MNIST" / "raw", fake_mnist(n_train=12, n_test=6))
    src = build_data(image_cfg("mnist", tmp_path, limit=5, image_size=32, channels=3), "cpu")
    assert len(src) == 5 and src.info.shape == (3, 32, 32)
    full, _ = load_images(image_cfg("mnist", tmp_path, limit=5), "test")
    assert len(full) == 6  # the limit applies to the training split only


def test_mnist_gz_files_in_raw_are_decompressed(tmp_path):
    arrays = fake_mnist()
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_raw(raw, arrays, gz=True)
    images, _ = load_images(image_cfg("mnist", tmp_path))
    assert torch.equal(images[:, 0], torch.from_numpy(arrays[("train", "images")]))
    assert sorted(os.listdir(raw)) == sorted(list(IDX_NAMES.values()) + [n + ".gz" for n in IDX_NAMES.values()])


def test_mnist_offline_download_fails_fast_with_one_line(tmp_path, monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "data"
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        build_data(image_cfg("mnist", root, download=True), "cpu")
    assert time.perf_counter() - t0 < 10
    text = one_line(e)
    assert calls, "torchvision's downloader was not reached"
    raw = str(root / "MNIST" / "raw")
    assert "downloading it failed" in text and "name resolution" in text
    assert raw in text and "train-images-idx3-ubyte" in text and "run once with internet access" in text
    assert "http" not in text
    # nothing half-written: no staging folder, no partial files
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert not any(p.name.startswith(".gan_cli-download") for p in root.iterdir())


def test_mnist_missing_without_download(tmp_path):
    with pytest.raises(UserError) as e:
        build_data(image_cfg("mnist", tmp_path, download=False), "cpu")
    text = one_line(e)
    assert "data.download=false" in text and str(tmp_path / "MNIST" / "raw") in text


def test_mnist_truncated_file_is_reported(tmp_path):
    arrays = fake_mnist()
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_raw(raw, arrays)
    p = raw / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(UserError) as e:
        load_images(image_cfg("mnist", tmp_path))
    assert "train-images-idx3-ubyte damaged" in one_line(e)


def test_mnist_damaged_gz_is_reported_and_nothing_left(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_raw(raw, fake_mnist(), gz=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(UserError) as e:
        load_images(image_cfg("mnist", tmp_path))
    assert "t10k-images-idx3-ubyte.gz" in one_line(e) and "damaged" in str(e.value)
    assert not (raw / "t10k-images-idx3-ubyte").exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_data_root_not_writable(tmp_path, monkeypatch):
    # small gzipped IDX files written here stand in for Debian's /usr/share/datasets/fashion-mnist, so the
    # loader reaches the copy into data.root (without source files it stops earlier: "not in ... raw")
    sys_root = tmp_path / "sys"
    write_mnist_raw(sys_root, fake_mnist(), gz=True)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError) as e:
        load_images(image_cfg("fashion_mnist", blocker / "data", system_root=str(sys_root)))
    assert "is not writable" in one_line(e) and str(blocker / "data") in str(e.value)

    # a read-only folder (simulated: the tests may run as root, which ignores permission bits): creating the
    # temporary file of the atomic write is refused
    import gan_cli.files

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gan_cli.files, "open", denied, raising=False)
    with pytest.raises(UserError) as e:
        load_images(image_cfg("fashion_mnist", tmp_path / "ro", system_root=str(sys_root)))
    assert "is not writable (Permission denied)" in one_line(e)


@pytest.mark.parametrize("gz", [True, False])
def test_system_root_fake_files(tmp_path, gz):
    """data.system_root with gzipped (what Debian's package installs) or plain IDX files, written by the test."""
    arrays = fake_mnist(n_train=9, n_test=4)
    sys_root = tmp_path / "sys"
    write_mnist_raw(sys_root, arrays, gz=gz)
    images, labels = load_images(image_cfg("fashion_mnist", tmp_path / "root", system_root=str(sys_root)))
    assert torch.equal(images[:, 0], torch.from_numpy(arrays[("train", "images")]))
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(IDX_NAMES.values())


def test_fashion_mnist_offline_message_mentions_apt(tmp_path):
    with pytest.raises(UserError) as e:
        load_images(image_cfg("fashion_mnist", tmp_path, system_root=str(tmp_path / "nope")))
    text = one_line(e)
    assert "apt-get install dataset-fashion-mnist" in text and str(tmp_path / "FashionMNIST" / "raw") in text


@pytest.mark.skipif(not os.path.isfile(os.path.join(FASHION_SYSTEM, "train-images-idx3-ubyte.gz")),
                    reason=f"Debian's Fashion-MNIST files are not in {FASHION_SYSTEM} "
                           f"(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_from_debian_files(tmp_path):
    cfg = image_cfg("fashion_mnist", tmp_path, system_root=FASHION_SYSTEM)
    t0 = time.perf_counter()
    src = build_data(cfg, "cpu")
    first = time.perf_counter() - t0
    assert src.info.shape == (1, 28, 28) and len(src) == 60000
    assert torch.equal(torch.bincount(src.labels), torch.full((10,), 6000))
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(IDX_NAMES.values())  # no temp files left
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 60000 * 28 * 28
    t0 = time.perf_counter()
    images, labels = load_images(cfg, "test")
    second = time.perf_counter() - t0
    assert images.shape == (10000, 1, 28, 28) and torch.equal(torch.bincount(labels), torch.full((10,), 1000))
    assert images.float().mean().item() == pytest.approx(72.9, abs=1.0)  # Fashion-MNIST's mean pixel ~ 0.286
    print(f"\nfashion_mnist: first load (decompress + load) {first:.2f} s, second load {second:.2f} s")
    assert second < 5


# ------------------------------------------------------------------------------------------ digits
def test_digits():
    cfg = data_cfg("digits", image_size=8, channels=1)
    images, labels = load_images(cfg, "train")
    test_images, test_labels = load_images(cfg, "test")
    assert images.shape == (1500, 1, 8, 8) and test_images.shape == (297, 1, 8, 8)
    assert images.dtype == torch.uint8 and images.min() == 0 and images.max() == 255
    from sklearn.datasets import load_digits

    d = load_digits()
    assert torch.equal(images[:, 0], torch.from_numpy(np.rint(d.images[:1500] * 255 / 16).astype(np.uint8)))
    assert labels.tolist() == d.target[:1500].tolist() and test_labels.tolist() == d.target[1500:].tolist()
    src = build_data(cfg, "cpu")
    assert src.info.shape == (1, 8, 8)
    assert torch.equal(src.sample(16, gen(5)).x, src.sample(16, gen(5)).x)


# ------------------------------------------------------------------------------------ image folder
def _png(path, array, mode=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)


def test_image_folder(tmp_path):
    folder = tmp_path / "imgs"
    # 32 high x 64 wide: left half red, right half blue -> resize to 16x32, centre crop columns 8..23
    split = np.zeros((32, 64, 3), np.uint8)
    split[:, :32, 0] = 255
    split[:, 32:, 2] = 255
    _png(folder / "a_split.png", split)
    _png(folder / "sub" / "b_grey.png", np.full((40, 20), 100, np.uint8))  # grey, portrait, in a subfolder
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 255  # green, half transparent
    rgba[..., 3] = 128
    _png(folder / "c_rgba.png", rgba)
    from PIL import Image

    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(folder / "D_upper.JPG", quality=95)
    (folder / "notes.txt").write_text("not an image")
    _png(folder / ".hidden.png", np.zeros((8, 8), np.uint8))  # hidden files are skipped

    cfg = data_cfg("image_folder", path=str(folder), image_size=16, channels=3)
    images, labels = load_images(cfg)
    assert labels is None
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8
    # sorted by relative path: D_upper.JPG, a_split.png, c_rgba.png, sub/b_grey.png
    jpg, sp, rgba_img, grey = images
    assert (jpg.int() - 7).abs().max() <= 3
    assert torch.equal(sp[:, 4, 2], torch.tensor([255, 0, 0], dtype=torch.uint8))
    assert torch.equal(sp[:, 4, 13], torch.tensor([0, 0, 255], dtype=torch.uint8))
    assert (rgba_img[1].int() - 255).abs().max() <= 1 and (rgba_img[0].int() - 127).abs().max() <= 1  # on white
    assert torch.equal(grey, torch.full((3, 16, 16), 100, dtype=torch.uint8))

    src = build_data(data_cfg("image_folder", path=str(folder), image_size=8, channels=1), "cpu")
    assert src.info.shape == (1, 8, 8) and len(src) == 4 and src.info.n_modes is None
    x = src.sample(10, gen(0)).x
    assert x.shape == (10, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    limited = load_images(data_cfg("image_folder", path=str(folder), image_size=8,
                                     channels=1, limit=2))[0]
    assert len(limited) == 2


def test_image_folder_errors(tmp_path):
    def cfg(path):
        return data_cfg("image_folder", path=path, image_size=16, channels=3)

    with pytest.raises(UserError) as e:
        build_data(cfg(None), "cpu")
    assert "data.path=" in one_line(e)
    with pytest.raises(UserError) as e:
        build_data(cfg(str(tmp_path / "missing")), "cpu")
    assert "does not exist" in one_line(e)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("hi")
    with pytest.raises(UserError) as e:
        build_data(cfg(str(empty)), "cpu")
    assert "holds no images" in one_line(e) and str(empty) in str(e.value)
    bad = tmp_path / "bad"
    _png(bad / "good.png", np.zeros((16, 16, 3), np.uint8))
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(UserError) as e:
        build_data(cfg(str(bad)), "cpu")
    assert "broken.png" in one_line(e) and "cannot read image file" in str(e.value)


def _folder_cfg(path, **kw) -> dict:
    return data_cfg("image_folder", path=str(path), image_size=8, channels=1, **kw)


def _rel(paths, folder):
    return [os.path.relpath(p, folder) for p in paths]


def test_list_images_sorted_by_relative_path(tmp_path):
    from gan_cli.data.folder import list_images

    names = ["a_b.png", "a/c/d.png", "B.png", "a.png", "a/b.png", "ab.png", "a-b/x.png"]
    for n in names:
        _png(tmp_path / n, np.zeros((4, 4), np.uint8))
    assert _rel(list_images(str(tmp_path)), tmp_path) == sorted(names)  # "a.png" < "a/b.png" < "a_b.png"
    assert _rel(list_images(str(tmp_path), limit=3), tmp_path) == sorted(names)[:3]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("links", [["a"], ["a", "b"]])
def test_image_folder_symlink_to_itself_walked_once(tmp_path, links):
    """`ln -s . a` listed every image ~40 times (until ELOOP); two such links made the walk exponential."""
    from gan_cli.data.folder import list_images

    folder = tmp_path / "imgs"
    _png(folder / "x.png", np.full((8, 8), 10, np.uint8))
    _png(folder / "sub" / "y.png", np.full((8, 8), 20, np.uint8))
    for name in links:
        os.symlink(".", folder / name)
    os.symlink("..", folder / "sub" / "up")
    assert _rel(list_images(str(folder)), folder) == ["sub/y.png", "x.png"]
    images, _ = load_images(_folder_cfg(folder))
    assert images[:, 0, 0, 0].tolist() == [20, 10]


@pytest.mark.timeout(30)
def test_image_folder_symlink_outside_followed_once(tmp_path):
    """A link to a folder outside data.path is followed, once, however many links lead there."""
    from gan_cli.data.folder import list_images

    folder, outside = tmp_path / "imgs", tmp_path / "outside"
    _png(folder / "a.png", np.zeros((8, 8), np.uint8))
    _png(outside / "x.png", np.zeros((8, 8), np.uint8))
    os.symlink(outside, folder / "l1")
    os.symlink(outside, folder / "l2")
    os.symlink(folder, outside / "back")  # a cycle through the outside folder
    os.symlink(outside / "x.png", folder / "link.png")  # a link to an image file is an image
    assert _rel(list_images(str(folder)), folder) == ["a.png", "l1/x.png", "link.png"]
    assert len(load_images(_folder_cfg(folder))[0]) == 3


@pytest.mark.timeout(30)
def test_image_folder_fifo_does_not_block(tmp_path):
    """A FIFO named x.png made open() block forever (until some process wrote to it)."""
    from gan_cli.data.folder import read_image

    folder = tmp_path / "imgs"
    _png(folder / "good.png", np.full((8, 8), 5, np.uint8))
    os.mkfifo(folder / "x.png")
    images, _ = load_images(_folder_cfg(folder))
    assert images.shape == (1, 1, 8, 8) and int(images.max()) == 5
    with pytest.raises(OSError, match="not a regular file"):  # read_image itself never blocks either
        read_image(str(folder / "x.png"), 8, 1)


@pytest.mark.timeout(30)
def test_image_folder_skips_non_regular_files_with_one_warning(tmp_path, monkeypatch, caplog):
    """A FIFO, a socket and a broken link named like images: skipped, counted in one warning line."""
    import socket

    folder = tmp_path / "imgs"
    _png(folder / "good.png", np.full((8, 8), 5, np.uint8))
    os.mkfifo(folder / "fifo.png")
    os.symlink(tmp_path / "nowhere.png", folder / "broken.png")
    monkeypatch.chdir(folder)  # a relative name: AF_UNIX paths are limited to ~100 bytes
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.png")
    try:
        with caplog.at_level("WARNING", logger="gan_cli.data.images"):
            images, _ = load_images(_folder_cfg(folder))
    finally:
        sock.close()
    assert images.shape == (1, 1, 8, 8)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "skipped 3 entries" in warnings[0] and "not regular files" in warnings[0]
    assert "\n" not in warnings[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target", ["/proc", "/sys/kernel", "/dev", "link to /proc"])
def test_image_folder_refuses_pseudo_filesystems(tmp_path, target):
    if target.startswith("link"):
        path = tmp_path / "data"
        os.symlink("/proc", path)
    else:
        path = target
    if not os.path.isdir(os.path.realpath(path)):
        pytest.skip(f"{target} is not a folder on this machine")
    with pytest.raises(UserError) as e:
        load_images(_folder_cfg(path))
    text = one_line(e)
    assert f"data.path={path}" in text and "pseudo-filesystem" in text and "point data.path at" in text
    if target.startswith("link"):
        assert "really /proc" in text


@pytest.mark.timeout(30)
def test_image_folder_skips_pseudo_filesystems_met_in_walk(tmp_path):
    """Links to /proc, /sys, /dev inside data.path (as data.path=/ meets them) are not walked."""
    from gan_cli.data.folder import list_images

    folder = tmp_path / "imgs"
    _png(folder / "a.png", np.zeros((8, 8), np.uint8))
    for name, target in (("d", "/dev"), ("p", "/proc"), ("s", "/sys"), ("self", "/proc/self")):
        os.symlink(target, folder / name)
    assert _rel(list_images(str(folder)), folder) == ["a.png"]


@pytest.mark.timeout(30)
def test_image_folder_file_cap_progress_and_limit(tmp_path, monkeypatch, capsys):
    """Too many files: one UserError (after progress lines); data.limit stops the scan before the cap."""
    from gan_cli.data import folder as images_mod

    monkeypatch.setattr(images_mod, "MAX_IMAGE_FILES", 20)
    monkeypatch.setattr(images_mod, "SCAN_PROGRESS_EVERY", 10)
    folder = tmp_path / "imgs"
    for i in range(25):
        _png(folder / f"d{i % 3}" / f"{i:02d}.png", np.full((8, 8), i, np.uint8))

    with pytest.raises(UserError) as e:
        load_images(_folder_cfg(folder))
    text = one_line(e)
    assert "more than 20 image files" in text and "data.limit" in text and str(folder) in text
    err = capsys.readouterr().err
    assert f"scanning {folder}: 10 images so far" in err and f"scanning {folder}: 20 images so far" in err

    images, _ = load_images(_folder_cfg(folder, limit=5))  # the scan stops at 5: no cap, no progress line
    assert capsys.readouterr().err == ""
    first = sorted(f"d{i % 3}/{i:02d}.png" for i in range(25))[:5]
    assert images[:, 0, 0, 0].tolist() == [int(n[3:5]) for n in first]

    small = tmp_path / "small"
    for i in range(9):
        _png(small / f"{i}.png", np.zeros((8, 8), np.uint8))
    assert len(load_images(_folder_cfg(small))[0]) == 9
    assert capsys.readouterr().err == ""  # fewer than SCAN_PROGRESS_EVERY images: silent


# 16 x 16 samples spread over 0..65535, off the multiples of 257 (k * 257 + 0, 128, 129 or 200) so that
# the rounding to 8 bits is checked too: the expected value is round(v / 257)
_GRADIENT16 = np.minimum(np.arange(256) * 257 + np.tile([0, 128, 129, 200], 64), 65535).reshape(16, 16)
_EXPECTED8 = np.rint(_GRADIENT16 / 257.0).astype(np.uint8)


def _png16_rgb(path, array):
    """Write uint16 ``(H, W, 3)`` as a 16-bit-per-channel RGB PNG by hand (PIL cannot write one)."""
    import struct
    import zlib

    a = np.ascontiguousarray(array, dtype=">u2")
    h, w, _ = a.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + a[y].tobytes() for y in range(h))  # filter type 0 (none) on every row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name,mode,scale", [
    ("g16.png", "I;16", None),  # 16-bit grey PNG
    ("g16be.tif", "I;16B", None),  # 16-bit big-endian grey TIFF
    ("g16.pgm", "I", None),  # 16-bit PGM (PIL reads it as 32-bit int)
    ("f65535.tif", "F", 1.0),  # float TIFFs: 0..65535, 0..255 and 0..1
    ("f255.tif", "F", 1 / 257),
    ("f1.tif", "F", 1 / 65535),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_high_bit_depth_grey(tmp_path, name, mode, scale, channels):
    """Grey images of more than 8 bits load scaled to 0..255 (convert("L") used to clip them: all white)."""
    from PIL import Image

    path = tmp_path / "imgs" / name
    path.parent.mkdir()
    if scale is not None:
        Image.fromarray((_GRADIENT16 * scale).astype(np.float32)).save(path)
    elif mode == "I;16B":
        Image.frombytes("I;16B", (16, 16), _GRADIENT16.astype(">u2").tobytes()).save(path)
    else:
        Image.fromarray(_GRADIENT16.astype(np.uint16)).save(path)
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is what this case is about
    images, _ = load_images(data_cfg("image_folder", path=str(path.parent), image_size=16,
                                       channels=channels))
    assert images.shape == (1, channels, 16, 16)
    for c in range(channels):
        np.testing.assert_array_equal(images[0, c].numpy(), _EXPECTED8)


def test_image_folder_16bit_rgb_png(tmp_path):
    """A 48-bit RGB PNG: each channel keeps its gradient (PIL itself reduces these to 8 bits per channel)."""
    from PIL import Image

    rgb = np.stack([_GRADIENT16, _GRADIENT16[::-1, ::-1], np.full((16, 16), 0x8000)], axis=-1)
    path = tmp_path / "imgs" / "rgb16.png"
    _png16_rgb(path, rgb)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (16, 16)  # decoded as 8 bits per channel by PIL
    images, _ = load_images(data_cfg("image_folder", path=str(path.parent), image_size=16,
                                       channels=3))
    got = images[0].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - rgb / 257.0).max() <= 1.0  # PIL keeps the high byte: v >> 8, within 1 of v / 257


# ------------------------------------------------------------------------------------------ CIFAR-10
def test_cifar10_offline_one_line_and_clean(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "data"
    with pytest.raises(UserError) as e:
        build_data(data_cfg("cifar10", root=str(root), download=True), "cpu")
    text = one_line(e)
    assert "CIFAR-10" in text and "downloading it failed" in text and "cifar-10-python.tar.gz" in text
    assert str(root) in text and "http" not in text
    assert list(root.iterdir()) == []  # the staging folder is gone
    with pytest.raises(UserError) as e:
        load_images(data_cfg("cifar10", root=str(root), download=False), "test")
    assert "data.download=false" in one_line(e)


def test_fit_images_grey_rgb_resize():
    from gan_cli.data.placement import fit_images

    rgb = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    rgb[:, 0] = 255  # pure red -> luma 0.299 * 255 = 76.2
    grey = fit_images(rgb, 4, 1)
    assert grey.shape == (2, 1, 4, 4) and (grey == 76).all()
    up = fit_images(grey, 8, 3)
    assert up.shape == (2, 3, 8, 8) and up.dtype == torch.uint8 and (up == 76).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sampling_on_cuda_with_cpu_or_cuda_generator(tmp_path):
    write_mnist_raw(tmp_path / "MNIST" / "raw", fake_mnist())
    for cfg in (toy_cfg("ring8"), toy_cfg("lines"), image_cfg("mnist", tmp_path)):
        src = build_data(cfg, "cuda")
        for g in (torch.Generator("cuda").manual_seed(0), gen(0)):
            a = src.sample(32, g).x
            g.manual_seed(0)
            assert a.is_cuda and torch.equal(a, src.sample(32, g).x)
