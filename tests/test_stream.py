"""Data beyond the device memory budget: the DataLoader stream (gan_cli.data.stream) against the
on-device tensor (gan_cli.data.images.ImageSource): same images, same law, seeded and reproducible,
the auto choice and its line, shards, exact resume, worker start methods, a short gan-train run."""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train
from idx import fake_mnist, write_mnist_raw
from scipy import stats

from gan_cli.build import build_data
from gan_cli.config import UserError
from gan_cli.data import ImageSource, StreamSource
from gan_cli.data.stream import start_method_name

FASHION_SYSTEM = "/usr/share/datasets/fashion-mnist"
N_FOLDER = 40  # images in the test folder; image i is filled with the value 5 * i


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text.strip() == text and text, repr(text)
    return text


def _folder(tmp_path: Path, n: int = N_FOLDER, size: int = 8) -> Path:
    """n grey PNGs ``00.png ..``: image i is constant 5 * i, so a pixel names its image."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size), 5 * i, np.uint8), "L").save(folder / f"{i:02d}.png")
    return folder


def _folder_cfg(folder, **kw) -> dict:
    return {"_target_": "gan_cli.data.images.image_folder", "name": "image_folder", "path": str(folder),
            "image_size": 8, "channels": 1, **kw}


def _mnist_cfg(root, **kw) -> dict:
    return {"_target_": "gan_cli.data.images.mnist", "name": "mnist", "root": str(root), "download": False, **kw}


@pytest.fixture
def mnist_root(tmp_path):
    write_mnist_raw(tmp_path / "data" / "MNIST" / "raw", fake_mnist(96, 8))
    return tmp_path / "data"


def _ids(x: torch.Tensor) -> torch.Tensor:
    """The image number of each folder image in a [-1, 1] batch (its constant value / 5)."""
    return torch.round((x[:, 0, 0, 0].double() + 1) * 127.5 / 5).long()


# ------------------------------------------------------------------------------- same images, same law
@pytest.mark.parametrize("size,channels", [(28, 1), (16, 3)])  # as stored; resized and grey -> RGB
def test_stream_rows_equal_the_tensor_rows(mnist_root, size, channels):
    """Stored arrays fitted a batch at a time in the stream equal the tensor path's whole-set fit, bit for bit;
    the whole split (images), any rows, and the real-feature walk agree."""
    kw = {"image_size": size, "channels": channels}
    t = build_data(_mnist_cfg(mnist_root, loader="tensor", **kw), "cpu")
    s = build_data(_mnist_cfg(mnist_root, loader="stream", num_workers=0, **kw), "cpu")
    assert isinstance(t, ImageSource) and isinstance(s, StreamSource)
    assert s.info == t.info and len(s) == len(t) == 96 and torch.equal(s.labels, t.labels)
    assert t.images.shape == (96, channels, size, size)
    idx = torch.tensor([5, 0, 95, 5, 17])
    assert torch.equal(s.rows(idx), t.images[idx])
    assert torch.equal(s.images, t.images)
    walk = s.real_sampler(torch.arange(90, -1, -1))  # in the given order, in uneven pieces
    assert torch.equal(torch.cat([walk(40), walk(1), walk(50)]), t.images[torch.arange(90, -1, -1)])


def test_real_features_read_through_the_stream_equal_the_tensor_ones(mnist_root, tmp_path, monkeypatch):
    """The evaluator's real side: the same seeded subset, read through the workers, gives the same features."""
    from omegaconf import OmegaConf

    from gan_cli.config import MetricsConfig
    from gan_cli.metrics.evaluator import Evaluator

    class Flat:  # a stand-in extractor: the pixels are the features
        cache_id = "flat-pixels"

        def __call__(self, x):
            return {"pool": x.flatten(1), "logits": x.flatten(1)[:, :10]}

    monkeypatch.setattr(Evaluator, "extractor", lambda self: Flat())
    feats = {}
    for loader in ("tensor", "stream"):
        cfg = _mnist_cfg(mnist_root, loader=loader, num_workers=1)
        metrics = OmegaConf.structured(MetricsConfig(suite="images", num_samples=70, feature_batch=32,
                                                     cache_dir=str(tmp_path / loader)))
        ev = Evaluator(metrics, cfg, build_data(cfg, "cpu"), "cpu")
        feats[loader] = ev._real_features()
    assert feats["tensor"].keys() == feats["stream"].keys() and feats["tensor"]["pool"].shape == (70, 784)
    for k in feats["tensor"]:
        np.testing.assert_array_equal(feats["tensor"][k], feats["stream"][k])


def test_stream_batches_shape_dtype_range_and_uniform_law(tmp_path):
    """Pipeline batches: float32 (n, C, H, W) in [-1, 1], every row one of the images (its uint8 mapped as the
    tensor path maps it), index draws uniform with replacement (chi-square against uniform, as for the tensor
    path's draws)."""
    folder = _folder(tmp_path)
    t = build_data(_folder_cfg(folder, loader="tensor"), "cpu")
    s = build_data(_folder_cfg(folder, loader="stream", num_workers=0), "cpu")
    g_s, g_t = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    xs = torch.cat([s.sample(50, g_s).x for _ in range(40)])
    xt = torch.cat([t.sample(50, g_t).x for _ in range(40)])
    for x in (xs, xt):
        assert x.shape == (2000, 1, 8, 8) and x.dtype == torch.float32 and x.device.type == "cpu"
        assert x.min() >= -1 and x.max() <= 1
    ids = _ids(xs)
    assert torch.equal(xs, t.images[ids].float().div(127.5).sub(1.0))  # the same mapping as the tensor path
    for x in (xs, xt):
        counts = torch.bincount(_ids(x), minlength=N_FOLDER).numpy()
        assert counts.sum() == 2000 and stats.chisquare(counts).pvalue > 1e-3
    assert len(torch.unique(_ids(s.sample(50, g_s).x))) < 50  # with replacement: 50 draws of 40 images repeat


def test_stream_is_seeded_by_the_train_stream_and_independent_of_workers(tmp_path):
    """The same generator seed gives the same batches with 0 or 2 workers; another seed gives others; a batch
    of the pipeline does not draw from the generator (its state is unchanged)."""
    folder = _folder(tmp_path)
    runs = {}
    for key, workers, seed in (("w0", 0, 7), ("w2", 2, 7), ("other", 0, 8)):
        src = build_data(_folder_cfg(folder, loader="stream", num_workers=workers), "cpu")
        g = torch.Generator().manual_seed(seed)
        before = g.get_state()
        runs[key] = [src.sample(16, g).x for _ in range(6)]
        assert torch.equal(g.get_state(), before)
        src.close()
    assert all(torch.equal(a, b) for a, b in zip(runs["w0"], runs["w2"]))
    assert not all(torch.equal(a, b) for a, b in zip(runs["w0"], runs["other"]))


def test_other_generators_draw_like_the_tensor_path(tmp_path):
    """A call from another generator than the pipeline's (the loop's estimate batch) draws its indices from that
    generator exactly as the tensor path does: the same batch."""
    folder = _folder(tmp_path)
    t = build_data(_folder_cfg(folder, loader="tensor"), "cpu")
    s = build_data(_folder_cfg(folder, loader="stream", num_workers=0), "cpu")
    s.sample(8, torch.Generator().manual_seed(0)).x  # the pipeline's owner
    a, b = s.sample(30, torch.Generator().manual_seed(3)).x, t.sample(30, torch.Generator().manual_seed(3)).x
    assert torch.equal(a, b)


def test_resume_state_continues_the_same_batches(tmp_path):
    folder = _folder(tmp_path)
    cfg = _folder_cfg(folder, loader="stream", num_workers=0)
    whole = build_data(cfg, "cpu")
    g = torch.Generator().manual_seed(1)
    ref = [whole.sample(16, g).x for _ in range(7)]
    part = build_data(cfg, "cpu")
    g = torch.Generator().manual_seed(1)
    [part.sample(16, g).x for _ in range(3)]
    state = part.state_dict()
    assert state["batches"] == 3
    resumed = build_data(cfg, "cpu")
    resumed.load_state_dict(state)
    g = torch.Generator().manual_seed(1)
    assert all(torch.equal(resumed.sample(16, g).x, r) for r in ref[3:])


def test_shards_are_disjoint_and_cover_the_data(tmp_path):
    """shard(rank, num_replicas) (DistributedSampler's names): rank r draws only images r, r + R, ...; the
    tensor path shards the same way."""
    folder = _folder(tmp_path)
    seen = set()
    for rank in range(3):
        for loader in ("stream", "tensor"):
            src = build_data(_folder_cfg(folder, loader=loader, num_workers=0), "cpu").shard(rank, 3)
            g = torch.Generator().manual_seed(rank)
            ids = set(_ids(torch.cat([src.sample(64, g).x for _ in range(4)])).tolist())
            assert all(i % 3 == rank for i in ids)
            seen |= ids
    assert seen == set(range(N_FOLDER))
    with pytest.raises(UserError):
        build_data(_folder_cfg(folder, loader="stream", num_workers=0), "cpu").shard(0, N_FOLDER + 1)


# ------------------------------------------------------------------------------- the choice and bad values
def test_auto_streams_when_the_budget_is_small_and_says_so(tmp_path, caplog):
    folder = _folder(tmp_path)  # 40 x 8 x 8 = 2,560 bytes of uint8
    with caplog.at_level(logging.INFO, logger="gan_cli.data.images"):
        small = build_data(_folder_cfg(folder, memory_budget_gb=1e-6, num_workers=2), "cpu")  # 1 kB < 2.56 kB
        big = build_data(_folder_cfg(folder, memory_budget_gb=1e-5), "cpu")  # 10 kB
        forced = build_data(_folder_cfg(folder, memory_budget_gb=1e-6, loader="tensor"), "cpu")
    assert isinstance(small, StreamSource) and isinstance(big, ImageSource) and isinstance(forced, ImageSource)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]
    assert len(lines) == 3 and all("\n" not in ln for ln in lines)
    assert lines[0] == (f"data: image_folder/train: {N_FOLDER} images x 1x8x8 = 2.56 kB uint8 exceeds the 1 kB budget "
                        f"(data.memory_budget_gb): streaming through a DataLoader with 2 workers "
                        f"({start_method_name('auto')})")
    assert "fits the 10 kB budget" in lines[1] and lines[1].endswith("on-device tensor (cpu)")
    assert "exceeds" in lines[2] and lines[2].endswith("on-device tensor (cpu) (data.loader=tensor)")


def test_the_default_budget_is_a_quarter_of_the_device_memory():
    from gan_cli.data.placement import device_budget

    budget, how = device_budget("cpu")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert budget == ram / 4 and "a quarter of host RAM" in how


def test_the_real_feature_cache_is_shared_by_both_paths():
    """The loader keys say how the images are read, not which: the real-side feature cache key ignores them."""
    from dataclasses import replace

    from gan_cli.data.images import ImageFolderConfig
    from gan_cli.metrics.cache import real_stats_key

    base = ImageFolderConfig(name="image_folder", path="/x", image_size=8, channels=1)
    args = dict(extractor_id="inception:abc", layer="pool", num_samples=100, seed=0)
    key = real_stats_key(base, **args)
    for field, value in dict(loader="stream", memory_budget_gb=0.5, num_workers=3, start_method="spawn").items():
        assert real_stats_key(replace(base, **{field: value}), **args) == key
    assert real_stats_key(replace(base, image_size=16), **args) != key


def test_an_image_folder_is_sized_without_decoding(tmp_path, monkeypatch):
    """The choice needs the file count only: no image is decoded until a batch is asked for."""
    from gan_cli.data import folder as images_mod

    folder = _folder(tmp_path)
    calls = []
    real = images_mod.read_image
    monkeypatch.setattr(images_mod, "read_image", lambda *a: calls.append(a) or real(*a))
    src = build_data(_folder_cfg(folder, loader="auto", memory_budget_gb=1e-6, num_workers=0), "cpu")
    assert isinstance(src, StreamSource) and len(src) == N_FOLDER and calls == []
    src.sample(4, torch.Generator().manual_seed(0)).x
    assert len(calls) == 4


@pytest.mark.parametrize("key,value,needle", [
    ("loader", "disk", "data.loader=disk is not a loader"),
    ("memory_budget_gb", 0, "data.memory_budget_gb=0 must be a number > 0"),
    ("memory_budget_gb", -2.5, "data.memory_budget_gb=-2.5 must be a number > 0"),
    ("num_workers", -1, "data.num_workers=-1 must be an integer >= 0"),
    ("start_method", "threads", "data.start_method=threads is not a start method"),
])
def test_bad_loader_values_are_refused_in_one_line(tmp_path, key, value, needle):
    with pytest.raises(UserError) as e:
        build_data(_folder_cfg(tmp_path / "not-even-walked", **{key: value}), "cpu")
    assert needle in one_line(e)


def test_bad_values_from_the_command_line(tmp_path):
    """gan-train's composed config: a bad value is the same one line, before the run starts."""
    from gan_cli.cli.train import train

    folder = _folder(tmp_path)
    cfg = compose_train("data=image_folder", f"data.path={folder}", "data.num_workers=-3", tmp_path=tmp_path / "run")
    with pytest.raises(UserError) as e:
        train(cfg)
    assert "data.num_workers=-3" in one_line(e)
    assert not (tmp_path / "run" / "status.json").exists()


def test_an_unreadable_file_stops_the_stream_with_its_line(tmp_path):
    folder = _folder(tmp_path, n=3)
    (folder / "00.png").write_bytes(b"not a png")
    src = build_data(_folder_cfg(folder, loader="stream", num_workers=1), "cpu")
    g = torch.Generator().manual_seed(0)
    with pytest.raises(UserError) as e:
        for _ in range(20):  # image 0 of 3 is drawn within 20 batches of 8 (all but surely)
            src.sample(8, g).x
    assert "cannot read image file" in one_line(e) and "00.png" in one_line(e)
    src.close()


# ------------------------------------------------------------------------------- start methods, launchers
def _stream_in_a_loky_worker(folder: str) -> list:
    src = build_data(_folder_cfg(folder, loader="stream", num_workers=1), "cpu")
    g = torch.Generator().manual_seed(5)
    out = [src.sample(8, g).x for _ in range(3)]
    src.close()
    import multiprocessing as mp

    return [mp.get_start_method(), [x.tolist() for x in out]]


@pytest.mark.slow
def test_workers_run_inside_a_joblib_loky_worker(tmp_path):
    """hydra-joblib-launcher runs jobs in loky workers, whose start method (loky) kills DataLoader workers
    unless it is set: the stream sets spawn there, and gives the same batches as in this process."""
    from joblib import Parallel, delayed

    folder = _folder(tmp_path)
    (method, batches), = Parallel(n_jobs=2, backend="loky")([delayed(_stream_in_a_loky_worker)(str(folder))])
    assert method == "spawn"
    src = build_data(_folder_cfg(folder, loader="stream", num_workers=0), "cpu")
    g = torch.Generator().manual_seed(5)
    assert [src.sample(8, g).x.tolist() for _ in range(3)] == batches


# ------------------------------------------------------------------------------- gan-train end to end
TINY = ["data=image_folder", "data.image_size=8", "data.channels=1", "data.batch_size=8", "net=mlp",
        "net.hidden=16", "net.latent_dim=4", "log_every=2", "image_every=0", "estimate_batch=16", "metrics=none"]


def _last_state(run_dir):
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(run_dir)[-1])


def test_gan_train_streams_a_folder_and_resumes_exactly(tmp_path, one_torch_thread):
    """A short gan-train run streams an image folder (tiny budget, 1 worker) to the end; interrupted at step 3
    and resumed, it ends with the weights of the uninterrupted run (the sampler's batch count is in the
    checkpoint)."""
    from gan_cli.training.loop import Interrupted, build_trainer
    from gan_cli.cli.train import train

    folder = _folder(tmp_path)
    args = [*TINY, f"data.path={folder}", "data.memory_budget_gb=1e-6", "data.num_workers=1", "steps=6",
            "ckpt_every=0"]
    full, part = tmp_path / "full", tmp_path / "part"
    res = train(compose_train(*args, tmp_path=full))
    assert res["status"] == "completed" and res["step"] == 6
    a = _last_state(full)
    assert a["data"]["loader"] == "stream" and a["data"]["batches"] == 6

    tr = build_trainer(compose_train(*args, tmp_path=part), part)
    assert isinstance(tr.data, StreamSource)

    def progress(step, host):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        tr.run(progress)
    tr.data.close()
    assert _last_state(part)["data"]["batches"] == 3
    train(compose_train(*args, f"resume={part}"), overrides=[f"resume={part}"])
    b = _last_state(part)
    assert b["step"] == 6 and b["data"] == a["data"]
    for net in ("generator", "discriminator"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


@pytest.mark.skipif(not Path(FASHION_SYSTEM).is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_streams_the_same_images(tmp_path):
    """The real Fashion-MNIST files: the stream's rows are the tensor path's rows."""
    kw = {"_target_": "gan_cli.data.images.fashion_mnist", "name": "fashion_mnist", "root": str(tmp_path / "d"),
          "download": False, "system_root": FASHION_SYSTEM, "limit": 1000}
    t = build_data({**kw, "loader": "tensor"}, "cpu")
    s = build_data({**kw, "memory_budget_gb": 1e-4, "num_workers": 0}, "cpu")  # 784 kB > 100 kB
    assert isinstance(s, StreamSource) and len(s) == 1000
    idx = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:64]
    assert torch.equal(s.rows(idx), t.images[idx])
    x = s.sample(64, torch.Generator().manual_seed(0)).x
    assert x.shape == (64, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
