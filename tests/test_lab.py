"""Theory lab experiments 1 (mode collapse), 4 (estimate vs quality) and 5 (truncation), shrunk."""
import csv
import json
import math
from pathlib import Path

import pytest
from conftest import assert_figure, compose_train, copy_cache, run_cli
from hydra import compose, initialize_config_module

from gan_cli.config import UserError
from gan_cli.cli.sweep import summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train_multirun(args, cwd):
    """``gan-train -m ...`` (its main() in this process, conftest.run_cli; Hydra's basic launcher runs the jobs in
    it anyway)."""
    r = run_cli("gan-train", ["-m", *args, "progress=false", "device=cpu", "hydra.sweep.dir=sw"], cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(cwd) / "sw"


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def compose_eval(*overrides):
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        return compose("eval", overrides=list(overrides))


# ----------------------------------------------------------------------------- presets


def test_presets_compose_and_mode_collapse_sweeps_six_models():
    from gan_cli.lab.mode_collapse import model_label
    from gan_cli.build import plain_config

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=mode_collapse"], return_hydra_config=True)
        variants = cfg.hydra.sweeper.params["experiment@_global_"].split(",")
        labels = [model_label(plain_config(compose("train", overrides=["experiment=mode_collapse", f"experiment@_global_={v}"])))
                  for v in variants]
        assert cfg.hydra.sweeper.params["seed"] == "0,1,2"
        q = compose("train", overrides=["experiment=quality"], return_hydra_config=True)
        grid = compose("train", overrides=["experiment=mode_collapse", "data=grid25"])
    assert labels == ["gan", "nsgan", "fgan_kl", "fgan_rkl", "wgan", "wgan_gp"]
    assert cfg.experiment == "mode_collapse" and cfg.data.name == "ring8" and cfg.steps == 1500  # preset beats train.yaml
    assert grid.data.name == "grid25"
    assert q.experiment == "quality" and q.data.name == "fashion_mnist" and q.eval_every > 0
    assert q.hydra.sweeper.params["model"] == "gan,nsgan,wgan"
    t = compose_train("experiment=truncation")
    assert t.experiment == "truncation" and t.metrics.suite == "images"


# ----------------------------------------------------------------------------- 1. mode collapse


@pytest.mark.slow
def test_mode_collapse_sweep_table_has_a_row_per_model_with_mean_and_std(tmp_path):
    sw = _train_multirun(["experiment=mode_collapse",
                          "experiment@_global_=mode_collapse_gan,mode_collapse_fgan_rkl,mode_collapse_wgan_gp",
                          "seed=0,1", "steps=30", "log_every=10", "image_every=0", "metrics.num_samples=300"], tmp_path)
    # one job of the sweep fails afterwards: it is counted, not dropped
    status = next(sw.glob("5_*")) / "status.json"
    status.write_text(json.dumps({"state": "failed", "step": 3, "error": "boom"}))
    out = summarize(sw, quiet=True)
    rows = {r["model"]: r for r in _csv(sw / "mode_collapse.csv")}
    assert list(rows) == ["gan", "fgan_rkl", "wgan_gp"]
    for model, r in rows.items():
        assert r["data"] == "ring8"
        assert (int(r["runs"]), int(r["failed"])) == ((1, 1) if model == "wgan_gp" else (2, 0))
        assert 0 <= float(r["modes_mean"]) <= 8 and float(r["modes_std"]) >= 0
        assert 0 <= float(r["hq_mean"]) <= 100
        assert float(r["w1_mean"]) > 0 and math.isfinite(float(r["w1_std"]))
    assert float(rows["wgan_gp"]["w1_std"]) == 0  # one run left: no spread
    png = sw / "mode_collapse.png"
    assert_figure(png) is not None and png.stat().st_size < 150_000  # small enough for the README
    assert str(png) in out["files"]
    assert [r["status"] for r in out["rows"]].count("failed") == 1


# ----------------------------------------------------------------------------- 4. estimate vs quality


def test_spearman_pairing_of_estimate_with_fid():
    from gan_cli.lab.quality import paired, spearman

    c = {"steps": [10, 20, 30, 40], "fid": [90.0, 60.0, 40.0, 30.0],
         "est_steps": [5, 10, 15, 20, 25, 30, 35, 40], "est": [9, 7, 6, 5, 4, 3, 2.5, 2.0]}
    steps, fids, ests = paired(c)
    assert steps == [10, 20, 30, 40] and ests == [8.0, 5.5, 3.5, 2.25]  # mean over each interval
    assert spearman(ests, fids)[0] == pytest.approx(1.0)
    assert math.isnan(spearman([0.69, 0.69, 0.69, 0.69], fids)[0])  # a constant estimate tracks nothing
    assert spearman([1, 2, 3, 4], fids)[0] == pytest.approx(-1.0)


@pytest.mark.slow
def test_quality_report_correlates_each_runs_estimate_with_fid(tmp_path, digits_cache):
    sw = _train_multirun(["experiment=quality", "data=digits", "model.warmup_critic_steps=0", "steps=40",
                          "log_every=5", "eval_every=10", "metrics.num_samples=300", "net.channels=16",
                          f"metrics.cache_dir={digits_cache}"], tmp_path)
    summarize(sw, quiet=True)
    rows = {r["model"]: r for r in _csv(sw / "quality.csv")}
    assert set(rows) == {"gan", "nsgan", "wgan"}
    assert rows["gan"]["estimate"] == rows["nsgan"]["estimate"] == "estimate/jsd" and rows["wgan"]["estimate"] == "estimate/w"
    for r in rows.values():
        assert int(r["points"]) == 4 and r["fid_key"] == "fid300_clf"
        assert -1 <= float(r["spearman_rho"]) <= 1
        assert float(r["fid_first"]) > 0
    assert_figure(sw / "quality.png") is not None and (sw / "quality.png").stat().st_size < 150_000


# ----------------------------------------------------------------------------- 5. truncation


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits_cache_seed):
    from gan_cli.cli.train import train

    run = tmp_path_factory.mktemp("trunc") / "run"
    cache = copy_cache(digits_cache_seed, run.parent / "metrics_cache")  # the run's own metrics.cache_dir
    # 400 steps (about 20 s on one thread): the generator must be good enough to have recall to lose
    cfg = compose_train("experiment=truncation", "data=digits", "steps=400", "log_every=50", "image_every=0",
                        "metrics.num_samples=500", "net.channels=32", "device=cpu", f"metrics.cache_dir={cache}",
                        tmp_path=run)
    train(cfg)
    # gan-train writes Hydra's record; a run made by train() directly gets the same two files
    (run / ".hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=truncation\n- data=digits\n")
    return run


@pytest.mark.slow
def test_truncation_report_recall_falls_as_psi_falls_for_both_kinds(digits_run):
    cfg = compose_eval(f"sweep={digits_run}", "truncation.sweep=[2.0,1.0,0.5,0.2]", "metrics.num_samples=500", "device=cpu")
    out = summarize(digits_run, cfg=cfg, quiet=True)
    rows = _csv(digits_run / "truncation.csv")
    assert [(r["kind"], r["psi"]) for r in rows][:3] == [("none", "inf"), ("resample", "2.0"), ("resample", "1.0")]
    for kind in ("resample", "interpolate"):
        rec = {float(r["psi"]): float(r["recall500_k5_clf"]) for r in rows if r["kind"] == kind}
        assert rec[0.2] <= rec[0.5] <= rec[1.0] <= rec[2.0], (kind, rec)  # diversity falls with psi
        assert rec[0.2] < 0.5 * rec[2.0], (kind, rec)
    assert all(float(r["fid500_clf"]) > 0 for r in rows)
    png = digits_run / "truncation.png"
    assert_figure(png, min_width=500) is not None and png.stat().st_size < 150_000 and str(png) in out["files"]


@pytest.mark.slow
def test_gan_eval_truncation_kind_both_writes_one_table_and_figure(digits_run, tmp_path, digits_cache):
    from gan_cli.cli.evaluate import evaluate

    rep = evaluate(compose_eval(f"ckpt={digits_run}", "truncation.kind=both", "truncation.sweep=[1.0,0.3]",
                                "metrics.num_samples=300", f"out={tmp_path}", "device=cpu",
                                f"metrics.cache_dir={digits_cache}"))
    assert list(rep["truncation_sweep"]) == ["none", "resample:1", "resample:0.3", "interpolate:1", "interpolate:0.3"]
    names = [(r["kind"], float(r["psi"])) for r in _csv(tmp_path / "truncation.csv")]
    assert names == [("none", math.inf), ("resample", 1.0), ("resample", 0.3), ("interpolate", 1.0), ("interpolate", 0.3)]
    assert_figure(tmp_path / "truncation.png", min_width=500)
    with pytest.raises(UserError, match="truncation.kind=both needs truncation.sweep"):
        evaluate(compose_eval(f"ckpt={digits_run}", "truncation.kind=both", f"out={tmp_path}",
                              f"metrics.cache_dir={digits_cache}"))
