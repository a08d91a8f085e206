"""Inception preprocessing modes (metrics.preprocess) against the reference libraries themselves.

The real Inception weights cannot be downloaded here, so random but well-scaled weights are written
locally and handed to every library (pytorch-fid through its weight loader, torch-fidelity through
``feature_extractor_weights_path``, clean-fid through ``custom_feat_extractor``).  Images are real PNG
files: 32x32 and 64x64 RGB, a 32x32 grey one, and a 320x300 one (downsampling, where antialias matters).

    PYTHONPATH=. python -m pytest -q -s tests/test_fid_modes.py            # prints the max relative differences
    PYTHONPATH=. python -m pytest -q -s -m slow tests/test_fid_modes.py    # end to end, folder vs folder
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf


from gan_cli.config import UserError
from gan_cli.metrics import inception as inc_mod
from gan_cli.metrics import preprocess as pp
from gan_cli.metrics.folders import folder_features, image_files, load_stats, save_stats

pytest.importorskip("pytorch_fid")
pytest.importorskip("torch_fidelity")
pytest.importorskip("cleanfid")

MODES = ("pytorch_fid", "torch_fidelity", "clean")
REL = 1e-4
# the statistics-file round trip (save_stats, then FID against the file) is file I/O and the one-line KID skip, the
# same in every mode: checked once, in a mode that is not the default (the mode travels in the file)
ROUND_TRIP_MODE = "clean"


def _picture(rng, h: int, w: int, grey: bool = False):
    """A smooth picture with noise (PNG content like a small photo, not white noise)."""
    from PIL import Image

    c = 1 if grey else 3
    base = Image.fromarray((rng.rand(h // 4 + 1, w // 4 + 1, c) * 255).astype(np.uint8).squeeze())
    a = np.asarray(base.resize((w, h), Image.BILINEAR)).astype(np.float64)
    return Image.fromarray(np.clip(a + rng.randn(*a.shape) * 20, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pngs")
    rng = np.random.RandomState(0)
    _picture(rng, 32, 32).save(d / "a_rgb32.png")
    _picture(rng, 64, 64).save(d / "b_rgb64.png")
    _picture(rng, 32, 32, grey=True).save(d / "c_grey32.png")
    _picture(rng, 300, 320).save(d / "d_rgb320x300.png")
    return d


def _rel(ours, ref) -> float:
    ours, ref = torch.as_tensor(np.asarray(ours), dtype=torch.float64), torch.as_tensor(np.asarray(ref), dtype=torch.float64)
    return float((ours - ref).abs().max() / ref.abs().max())


# ----------------------------------------------------------------------------- the libraries' own pipelines
def _pytorch_fid_net(weights, monkeypatch, **kw):
    import pytorch_fid.inception as pf

    monkeypatch.setattr(pf, "load_state_dict_from_url",
                        lambda *a, **k: torch.load(weights, map_location="cpu", weights_only=True))
    return pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True, **kw).eval()


def _reference_features(mode: str, files: list[str], weights: Path, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """(pool3, unbiased logits) of each file as the reference library computes them."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    fc = torch.load(weights, weights_only=True)["fc.weight"].double()
    if mode == "torch_fidelity":
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=str(weights)).eval()
    elif mode == "pytorch_fid":
        net = _pytorch_fid_net(weights, monkeypatch)
    else:
        net = _pytorch_fid_net(weights, monkeypatch, resize_input=False, normalize_input=False)
    pools, logits = [], []
    with torch.no_grad():
        for f in files:
            img = Image.open(f).convert("RGB")
            if mode == "pytorch_fid":  # pytorch_fid.fid_score.ImagePathDataset: ToTensor, [0, 1]; the net resizes
                pool = net(TF.to_tensor(img)[None])[0].flatten(1)
                logit = pool.double() @ fc.T
            elif mode == "torch_fidelity":  # uint8 in; TF1 resize and (x-128)/128 inside the extractor
                pool, logit = net(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None])
            else:  # clean-fid mode="clean": its resizer, ToTensor of float32, then (x-128)/128 (InceptionV3W)
                from cleanfid.resize import build_resizer

                x = TF.to_tensor(build_resizer("clean")(np.array(img)))[None]
                pool = net((x - 128) / 128)[0].flatten(1)
                logit = pool.double() @ fc.T
            pools.append(pool.numpy())
            logits.append(logit.numpy())
    return np.concatenate(pools), np.concatenate(logits)


# ----------------------------------------------------------------------------- features and logits, per mode
@pytest.mark.parametrize("mode", MODES)
def test_features_and_logits_equal_the_reference_library(mode, weights, pngs, monkeypatch):
    files = image_files(pngs)
    ours = folder_features(inc_mod.get_inception(str(weights), "cpu", download=False, preprocess=mode), files, 8)
    pool, logits = _reference_features(mode, files, weights, monkeypatch)
    assert ours["pool"].shape == pool.shape == (4, 2048) and ours["logits"].shape == (4, 1008)
    assert float(pool.std()) > 1e-3  # the random network does not collapse
    d_pool, d_logits = _rel(ours["pool"], pool), _rel(ours["logits"], logits)
    print(f"\n{mode}: max relative difference pool3 {d_pool:.2e}, logits {d_logits:.2e}", file=sys.stderr)
    assert d_pool <= REL and d_logits <= REL
    # the modes really differ: another mode's features are far from this library's
    other = MODES[(MODES.index(mode) + 1) % 3]
    theirs = folder_features(inc_mod.get_inception(str(weights), "cpu", download=False, preprocess=other), files[:1], 8)
    assert _rel(theirs["pool"], pool[:1]) > 1e-3


def test_tf1_resize_is_torch_fidelitys_bit_for_bit():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x as tf1

    g = torch.Generator().manual_seed(0)
    for h, w in ((32, 32), (28, 28), (64, 48), (300, 320), (299, 299)):
        x = torch.randint(0, 256, (2, 3, h, w), generator=g).float()
        assert torch.equal(pp.resize_bilinear_tf1(x), tf1(x, size=(299, 299), align_corners=False)), (h, w)


def test_clean_resize_matches_clean_fids_pil_resizer():
    from cleanfid.resize import make_resizer

    rs = make_resizer("PIL", False, "bicubic", (299, 299))
    rng = np.random.RandomState(0)
    for h, w in ((32, 32), (64, 48), (300, 320)):
        u8 = (rng.rand(h, w, 3) * 255).astype(np.uint8)
        ref = torch.from_numpy(rs(u8)).permute(2, 0, 1)[None]
        ours = pp.clean(torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1) * 128 + 128
        # PIL accumulates in another order: ~1e-5 of the range upsampling, ~4e-5 downsampling white noise
        assert float((ours - ref).abs().max()) <= REL * 255, (h, w)
        assert not torch.equal(ref, ref.round())  # clean-fid keeps floats, so must we


# ----------------------------------------------------------------------------- the mode travels with the numbers
def test_mode_is_part_of_the_cache_key_and_default_keys_are_unchanged(weights):
    ids = {m: inc_mod.get_inception(str(weights), "cpu", download=False, preprocess=m).cache_id for m in MODES}
    assert len(set(ids.values())) == 3
    assert ids["pytorch_fid"].endswith(":bilinear299")  # the key every cache written before the modes has
    exts = [inc_mod.get_inception(str(weights), "cpu", download=False, preprocess=m) for m in MODES]
    assert exts[0].net is exts[1].net is exts[2].net  # one network, three preprocessing components
    assert [e.tag for e in exts] == ["inception", "inception_tf", "inception_clean"]


class _Src:
    labels = None

    def __init__(self):
        from gan_cli.data.base import DataInfo

        self.info = DataInfo(name="x", kind="image", shape=(3, 32, 32))

    def __len__(self):
        return 100


def _metrics_cfg(**kw):
    from gan_cli.config import MetricsConfig

    return OmegaConf.merge(OmegaConf.structured(MetricsConfig), kw)


@pytest.mark.parametrize("mode,tag", [("pytorch_fid", "inception"), ("torch_fidelity", "inception_tf"),
                                      ("clean", "inception_clean")])
def test_metric_names_carry_the_mode(mode, tag):
    from gan_cli.metrics.evaluator import Evaluator

    ev = Evaluator(_metrics_cfg(suite="inception", preprocess=mode), None, _Src(), "cpu", n=20)
    assert ev.preprocess == mode and ev.features == tag
    rng = np.random.RandomState(0)
    feats = lambda: {"pool": rng.rand(20, 8), "logits": rng.rand(20, 5)}  # noqa: E731
    out = ev.score(feats(), feats(), 20, allow_singular=True)
    assert f"fid20_{tag}" in out and f"is20_{tag}" in out and f"kid20_{tag}" in out


def test_domain_classifier_ignores_the_mode_and_says_so(capsys):
    from gan_cli.metrics.evaluator import Evaluator

    class Labelled(_Src):
        labels = torch.zeros(100)

    ev = Evaluator(_metrics_cfg(suite="images", preprocess="clean"), None, Labelled(), "cpu", n=20)
    assert ev.preprocess is None and ev.features == "clf"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ignores" in err[0] and "metrics.preprocess=clean" in err[0]


def test_unknown_mode_is_one_line():
    from gan_cli.metrics.evaluator import Evaluator

    with pytest.raises(UserError) as e:
        Evaluator(_metrics_cfg(suite="inception", preprocess="tensorflow"), None, _Src(), "cpu", n=20)
    assert "\n" not in str(e.value) and "pytorch_fid, torch_fidelity, clean" in str(e.value)
    with pytest.raises(UserError, match="metrics.preprocess=bicubic is unknown"):
        inc_mod.get_inception(None, "cpu", download=False, preprocess="bicubic")


def test_sweep_warns_in_one_line_when_modes_differ():
    from gan_cli.runs.results import Job
    from gan_cli.cli.sweep import mixed_preprocess

    def job(num, results):
        return Job(dir=None, num=num, overrides={}, status="completed", results=results)

    old = job(0, {"suite": "inception", "metrics": {"fid10k_inception": 1.0}})  # before the modes: pytorch_fid
    same = job(1, {"suite": "inception", "preprocess": "pytorch_fid"})
    clean = job(2, {"suite": "inception", "preprocess": "clean"})
    toy = job(3, {"suite": "toy", "preprocess": None})
    assert mixed_preprocess([old, same, toy]) is None
    line = mixed_preprocess([old, same, clean, toy])
    assert "\n" not in line and "clean: job(s) 2" in line and "pytorch_fid: job(s) 0, 1" in line


# ----------------------------------------------------------------------------- statistics files
def test_stats_files_pytorch_fid_format(tmp_path, capsys):
    rng = np.random.RandomState(0)
    mu, sigma = rng.rand(2048), np.eye(2048) * 0.5
    path = save_stats(tmp_path / "s.npz", mu, sigma, "clean", 7)
    with np.load(path) as z:  # what pytorch-fid reads: f["mu"][:], f["sigma"][:]
        assert z["mu"].dtype == np.float64 and z["sigma"].dtype == np.float64
        np.testing.assert_array_equal(z["mu"], mu)
    got = load_stats(path, 2048, "clean")
    assert got["preprocess"] == "clean" and np.array_equal(got["sigma"], sigma)
    np.savez(tmp_path / "f32.npz", mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))  # published files
    got = load_stats(tmp_path / "f32.npz", 2048, "pytorch_fid")
    assert got["mu"].dtype == np.float64 and got["preprocess"] is None
    assert capsys.readouterr().err == ""
    load_stats(path, 2048, "torch_fidelity")  # made with another mode: used, with one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.preprocess=clean" in err[0]
    bad = {"nomu.npz": {"sigma": sigma}, "shape.npz": {"mu": mu, "sigma": sigma[:10]},
           "dims.npz": {"mu": mu[:64], "sigma": sigma[:64, :64]}}
    for name, arrays in bad.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(UserError) as e:
            load_stats(tmp_path / name, 2048)
        assert "\n" not in str(e.value)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_stats(tmp_path / "junk.npz", 2048)
    with pytest.raises(UserError, match=r"\.npz"):
        save_stats(tmp_path / "s.txt", mu, sigma, None, 1)


# ----------------------------------------------------------------------------- end to end: gan-eval folder=A ref=B
def _folder(path: Path, n: int, size: int, seed: int) -> Path:
    path.mkdir()
    rng = np.random.RandomState(seed)
    for i in range(n):
        _picture(rng, size, size, grey=(i == 0)).save(path / f"{i:03d}.png")
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    # A: 20 images, so that each of the 10 IS splits holds 2 (with 1 the IS is exactly 1 in any mode)
    return _folder(root / "A", 20, 32, 1), _folder(root / "B", 10, 48, 2)


def _gan_eval(*args):
    from hydra import compose, initialize_config_module

    from gan_cli.cli.evaluate import evaluate

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        cfg = compose(config_name="eval", overrides=["device=cpu", "tensorboard=false", *args])
    return evaluate(cfg)


def test_gan_eval_folder_errors_are_one_line(tmp_path, weights, folders):
    a, b = folders
    cases = [([f"ref={b}"], "pass folder="), ([f"folder={a}", f"ref={tmp_path / 'none'}"], "does not exist"),
             ([f"folder={a}", f"ref={b}", "data=digits"], "leave out ckpt= and data="),
             ([f"folder={a}", f"ref={b}", "metrics=images"], "metrics=images")]
    for args, text in cases:
        with pytest.raises(UserError, match=text) as e:
            _gan_eval(*args, f"metrics.inception_weights={weights}")
        assert "\n" not in str(e.value)


def _library_metrics(mode, a: Path, b: Path, weights: Path, monkeypatch) -> dict:
    """FID (the library's folder-vs-folder function), KID and IS (torch-fidelity's, on the library's features)."""
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    fa, fb = image_files(a), image_files(b)
    if mode == "torch_fidelity":
        import torch_fidelity

        m = torch_fidelity.calculate_metrics(input1=str(a), input2=str(b), cuda=False, isc=True, fid=True, kid=True,
                                             kid_subset_size=min(len(fa), len(fb)),
                                             feature_extractor_weights_path=str(weights),
                                             cache=False, verbose=False, batch_size=4)
        return {"fid": m["frechet_inception_distance"], "kid": m["kernel_inception_distance_mean"],
                "is": m["inception_score_mean"], "is_std": m["inception_score_std"]}
    if mode == "pytorch_fid":
        from pytorch_fid.fid_score import calculate_fid_given_paths

        _pytorch_fid_net(weights, monkeypatch)  # patches the loader for calculate_fid_given_paths
        fid = calculate_fid_given_paths([str(a), str(b)], batch_size=5, device="cpu", dims=2048, num_workers=0)
    else:
        from cleanfid import fid as cf

        net = _pytorch_fid_net(weights, monkeypatch, resize_input=False, normalize_input=False)
        fid = cf.compute_fid(str(a), str(b), mode="clean", custom_feat_extractor=lambda x: net((x - 128) / 128)[0].flatten(1),
                             device=torch.device("cpu"), num_workers=0, batch_size=5, verbose=False,
                             use_dataparallel=False)
    pa, la = _reference_features(mode, fa, weights, monkeypatch)
    pb, _ = _reference_features(mode, fb, weights, monkeypatch)
    kid = kid_features_to_metric(torch.from_numpy(pa), torch.from_numpy(pb), kid_subset_size=min(len(fa), len(fb)),
                                 verbose=False)
    isc = isc_features_to_metric(torch.from_numpy(la))
    return {"fid": fid, "kid": kid["kernel_inception_distance_mean"], "is": isc["inception_score_mean"],
            "is_std": isc["inception_score_std"]}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_folder_vs_folder_equals_the_library(mode, weights, folders, tmp_path, monkeypatch, capsys):
    a, b = folders
    stats = tmp_path / "b.npz"
    report = _gan_eval(f"folder={a}", f"ref={b}", f"metrics.inception_weights={weights}", f"metrics.preprocess={mode}",
                       f"out={tmp_path}")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["metrics"] == report["metrics"]  # one line for scripts
    assert json.loads((tmp_path / "metrics.json").read_text())["preprocess"] == mode
    tag = pp.metric_tag(mode)
    m = report["metrics"]
    ours = {"fid": m[f"fid20_{tag}"], "kid": m[f"kid20_{tag}"], "is": m[f"is20_{tag}"], "is_std": m[f"is20_{tag}_std"]}
    ref = _library_metrics(mode, a, b, weights, monkeypatch)
    diffs = {k: abs(ours[k] - ref[k]) / abs(ref[k]) for k in ours}
    with capsys.disabled():
        print(f"\n{mode} end to end, relative differences: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    assert ours["is"] > 1 + 1e-6 and ours["is_std"] > 0  # not the degenerate value
    assert all(v <= REL for v in diffs.values()), (ours, ref)

    if mode != ROUND_TRIP_MODE:
        return
    # B's statistics in a file, then A against the file: the same FID, KID skipped with one line
    _gan_eval(f"folder={b}", f"save_stats={stats}", f"metrics.inception_weights={weights}", f"metrics.preprocess={mode}")
    capsys.readouterr()
    again = _gan_eval(f"folder={a}", f"ref={stats}", f"metrics.inception_weights={weights}",
                      f"metrics.preprocess={mode}", f"out={tmp_path / 's'}")
    err = [line for line in capsys.readouterr().err.splitlines() if "statistics only" in line]
    assert len(err) == 1 and "kid" in err[0]
    assert set(again["metrics"]) == {f"fid20_{tag}", f"is20_{tag}", f"is20_{tag}_std"}
    assert abs(again["metrics"][f"fid20_{tag}"] - ours["fid"]) <= 1e-9 * abs(ours["fid"])


# ----------------------------------------------------------------------------- torchmetrics (README: which mode it matches)
def test_torchmetrics_fid_matches_torch_fidelity_mode_only_without_antialias(weights, pngs):
    tm = pytest.importorskip("torchmetrics.image.fid")
    from PIL import Image

    u8 = torch.from_numpy(np.array(Image.open(pngs / "a_rgb32.png").convert("RGB"))).permute(2, 0, 1)[None]
    x = u8.float() / 127.5 - 1
    ours = {m: inc_mod.get_inception(str(weights), "cpu", download=False, preprocess=m)(x)["pool"] for m in MODES}
    with torch.no_grad():
        plain = tm.NoTrainInceptionV3("inception-v3-compat", ["2048"], str(weights), antialias=False)(u8)[0]
        default = tm.NoTrainInceptionV3("inception-v3-compat", ["2048"], str(weights))(u8)[0]  # antialias=True
    assert _rel(ours["torch_fidelity"], plain) <= REL
    assert all(_rel(ours[m], default) > 1e-3 for m in MODES)  # its default is none of the three


def test_hparams_column_and_run_records_name_the_mode():
    from conftest import compose_train

    from gan_cli.build import flat_hparams

    cfg = compose_train("metrics.preprocess=clean")
    assert cfg.metrics.preprocess == "clean"
    assert flat_hparams(cfg, "clean")["preprocess"] == "clean"
    assert flat_hparams(cfg)["preprocess"] == "-"  # a run without Inception metrics


def test_export_a_data_split_as_pngs(tmp_path):
    from PIL import Image

    out = tmp_path / "digits_test"
    report = _gan_eval("data=digits", f"export.dir={out}", "export.split=test", "export.n=5")
    files = sorted(out.iterdir())
    assert report["n"] == 5 and len(files) == 5 and Image.open(files[0]).size == (8, 8)
    with pytest.raises(UserError, match="export.split=val: use train or test"):
        _gan_eval("data=digits", f"export.dir={tmp_path / 'x'}", "export.split=val")
