"""Optuna studies (hparams_search=<preset>, hydra-optuna-sweeper) and the launcher presets."""
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, compose_train, run_cli

from gan_cli.config import UserError, validate
from gan_cli.cli.search import best_job, check_direction, metric_direction, objective_value, worst

optuna = pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install -e '.[optuna]')")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper is not installed")

ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
PRESETS = ("ring8", "fashion_mnist")
TINY = ["steps=4", "log_every=2", "metrics.num_samples=200", "optimized_metric=rkl_200"]


def _run(args, cwd, timeout=600):
    return subprocess.run([str(BIN / "gan-train"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def _compose_hydra(*overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


# ----------------------------------------------------------------------------- presets (compose only)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_a_seeded_tpe_study_with_the_registry_direction(preset):
    cfg = _compose_hydra(f"hparams_search={preset}")
    sw = cfg.hydra.sweeper
    assert sw._target_.endswith("OptunaSweeper")
    assert sw.sampler._target_ == "optuna.samplers.TPESampler" and isinstance(sw.sampler.seed, int)
    assert sw.storage is None and sw.max_failure_rate == 1.0  # in memory; a failed trial does not end the study
    assert check_direction(cfg.optimized_metric, sw.direction) == "minimize"
    assert {"model", "model.opt_g.lr", "model.opt_d.lr", "model.opt_g.beta1", "model.opt_d.beta2",
            "model.n_critic"} <= set(sw.params)
    want = {"ring8": ("ring8", "toy", "rkl_"), "fashion_mnist": ("fashion_mnist", "images", "fid")}[preset]
    assert (cfg.data.name, cfg.metrics.suite) == want[:2] and cfg.optimized_metric.startswith(want[2])
    if preset == "fashion_mnist":  # the domain FID: the project's classifier features
        assert cfg.optimized_metric == "fid2k_clf" and cfg.metrics.num_samples == 2000


@pytest.mark.parametrize("preset", PRESETS)
def test_every_model_of_the_search_space_composes_with_sampled_values(preset):
    """Each choice of the model group together with lr/beta/n_critic values, as a trial's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = _compose_hydra(f"hparams_search={preset}").hydra.sweeper.params
    models = OverridesParser.create().parse_overrides([f"model={params.model}"])[0].value().list
    assert len(models) >= 3
    for m in models:
        cfg = compose_train(f"hparams_search={preset}", f"model={m}", "model.opt_g.lr=3e-5", "model.opt_d.lr=9e-3",
                            "model.opt_g.beta1=0.0", "model.opt_d.beta2=0.9", "model.n_critic=2")
        assert cfg.model.name == m and cfg.model.opt_d.lr == 9e-3 and cfg.model.n_critic == 2
        validate(cfg)


def _sampled(seed, n=5):
    """Parameters the preset's sampler asks for, built as the sweeper builds them (its own parser)."""
    from hydra.utils import instantiate
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    sw = _compose_hydra("hparams_search=ring8", f"hydra.sweeper.sampler.seed={seed}").hydra.sweeper
    dists, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sw.params.items()])
    assert not fixed
    study = optuna.create_study(sampler=instantiate(sw.sampler), direction=sw.direction)
    out = []
    for _ in range(n):
        t = study.ask()
        out.append({k: t._suggest(k, d) for k, d in dists.items()})
        study.tell(t, 1.0)
    return dists, out


def test_the_search_space_and_its_seeded_samples():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists, a = _sampled(0)
    _, b = _sampled(0)
    _, c = _sampled(1)
    assert a == b and a != c  # the same seed asks for the same parameters
    lr = dists["model.opt_g.lr"]
    assert isinstance(lr, optuna.distributions.LogUniformDistribution) and (lr.low, lr.high) == (1e-5, 1e-2)
    assert dists["model"].choices == ("nsgan", "hinge", "wgan_gp") and dists["model.n_critic"].choices == (1, 2, 5)
    for p in a:
        assert 1e-5 <= p["model.opt_d.lr"] <= 1e-2 and p["model.opt_g.beta1"] in (0.0, 0.5)


# ----------------------------------------------------------------------------- the objective value


def test_direction_comes_from_the_registry_and_a_mismatch_is_one_line():
    from hydra_plugins.hydra_optuna_sweeper.config import Direction

    assert metric_direction("rkl_2.5k") == "minimize" and metric_direction("modes_2.5k") == "maximize"
    assert metric_direction("fid2k_clf") == "minimize"
    assert check_direction("modes_200", Direction.maximize) == "maximize"
    with pytest.raises(UserError) as e:
        check_direction("rkl_2.5k", "maximize")
    assert "\n" not in str(e.value) and "set hydra.sweeper.direction=minimize" in str(e.value)
    with pytest.raises(UserError, match="optimized_metric=loss/d: no registered metric"):
        check_direction("loss/d", "minimize")
    with pytest.raises(UserError, match="one direction"):
        check_direction("rkl_2.5k", ["minimize", "maximize"])


def test_objective_value_and_the_worst_value():
    res = {"final": {"loss/d": 0.7, "rkl_200": 0.25}, "metrics": {"rkl_200": 0.25, "modes_200": 8.0}}
    assert objective_value(res, "rkl_200", "minimize") == (0.25, None)
    nan = {"final": {}, "metrics": {"rkl_200": float("nan"), "modes_200": 0.0}}
    value, why = objective_value(nan, "rkl_200", "minimize")
    assert value == math.inf and "worst value" in why
    assert worst("maximize") == -math.inf
    with pytest.raises(UserError, match=r"optimized_metric=rkl_2.5k is not among this run's results \(.*rkl_200"):
        objective_value(res, "rkl_2.5k", "minimize")


def test_best_job_matches_the_trial_parameters():
    from gan_cli.runs.results import Job

    jobs = [Job(dir=Path(f"/s/{i}"), num=i, overrides={"model": m, "model.opt_d.lr": lr})
            for i, (m, lr) in enumerate([("hinge", "0.0001234"), ("nsgan", "0.0001234"), ("nsgan", "0.002")])]
    assert best_job(jobs, {"model": "nsgan", "model.opt_d.lr": 1.234e-4}).num == 1
    assert best_job(jobs, {"model": "wgan_gp"}) is None and best_job(jobs, {}) is None


# ----------------------------------------------------------------------------- real studies


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real 4-trial study on ring8 with the preset's TPE sampler (seed 5) over a search space given on the command
    line: D's lr 2e-4 (trains), 1e8 (diverges within 2 steps) or -1 (out of range: the trial fails); sqlite storage
    so that what the study was told can be read back.  The objective is W1 (4 steps leave the reverse KL
    undefined: no sample near a mode).  gan-train's main() runs in this process (conftest.run_cli): the sweeper and
    Hydra's basic launcher run the trials in it anyway."""
    root = tmp_path_factory.mktemp("study")
    db = root / "study.db"
    r = run_cli("gan-train", ["-m", "hparams_search=ring8", "hydra.sweeper.n_trials=4",
                              f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.study_name=t",
                              "hydra.sweeper.sampler.seed=5", "model.opt_d.lr=choice(2e-4,1e8,-1)", "model=nsgan",
                              "model.n_critic=1", "model.opt_g.lr=2e-4", *TINY, "optimized_metric=w1_200",
                              "hydra.sweep.dir=sw", "logger=[tensorboard,mlflow]",
                              f"logger.mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}"], root)
    return root, r, optuna.load_study(study_name="t", storage=f"sqlite:///{db}")


@pytest.mark.slow
def test_a_study_carries_on_past_diverged_and_failed_trials(study):
    import json

    root, r, st = study
    assert r.returncode == 0, r.stderr[-3000:]
    lrs = {t.number: t.params["model.opt_d.lr"] for t in st.trials}
    assert len(st.trials) == 4 and {2e-4, 1e8, -1} <= set(lrs.values()), lrs  # seed 5 draws 1e8, 2e-4, -1, 2e-4
    finite = {}
    for t in st.trials:
        job = root / "sw" / str(t.number)
        status = json.loads((job / "status.json").read_text())
        if lrs[t.number] == 1e8:  # diverged: told as the worst value, recorded as diverged
            assert t.state.name == "COMPLETE" and t.value == math.inf and status["state"] == "diverged"
        elif lrs[t.number] == -1:  # failed: a failed trial, and the study went on
            assert t.state.name == "FAIL" and status["state"] == "failed" and "out of range" in status["error"]
        else:  # trained: the value told is the run's metric
            res = json.loads((job / "results.json").read_text())
            assert t.state.name == "COMPLETE" and t.value == res["metrics"]["w1_200"] and math.isfinite(t.value)
            finite[t.number] = t.value
    assert "trial reported to the study as the worst value, inf" in r.stderr
    assert finite and st.best_value == min(finite.values())
    import yaml

    best = yaml.safe_load((root / "sw" / "optimization_results.yaml").read_text())
    assert best["best_value"] == st.best_value and best["best_params"] == st.best_params
    # MLflow: one run per trial that started training, all tagged with the study's sweep folder
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ring8").experiment_id])
    started = [t for t in st.trials if lrs[t.number] != -1]
    assert len(runs) == len(started) and {x.data.tags["gan_cli.sweep"] for x in runs} == {str((root / "sw").resolve())}
    assert sorted(x.info.status for x in runs) == sorted("FAILED" if lrs[t.number] == 1e8 else "FINISHED"
                                                         for t in started)


@pytest.mark.slow
def test_gan_eval_sweep_shows_the_best_trial(study):
    from gan_cli.cli.sweep import summarize

    root, r, st = study
    out = summarize(root / "sw", quiet=True, tensorboard=False)
    s = out["study"]
    assert s["finished"] and s["metric"] == "w1_200" and s["direction"] == "minimize"
    assert s["best_value"] == st.best_value and s["best_job"] == st.best_trial.number
    assert s["best_params"]["model.opt_d.lr"] == st.best_trial.params["model.opt_d.lr"]
    assert out["rows"][0]["job"] == st.best_trial.number  # sorted by the objective, best first
    e = run_cli("gan-eval", [f"sweep={root / 'sw'}"], root)  # gan-eval's main() in this process
    assert e.returncode == 0, e.stderr
    assert re.search(rf"Optuna study t \(minimize w1_200, 4 trials, storage sqlite:///\S+\): best value "
                     rf"\S+ from trial {st.best_trial.number} ", e.stdout), e.stdout
    assert f"model.opt_d.lr={st.best_trial.params['model.opt_d.lr']}" in e.stdout


@pytest.mark.slow
def test_a_direction_that_contradicts_the_registry_ends_the_study_before_training(tmp_path):
    # gan-train's main() in this process (conftest.run_cli): the sweeper and its basic launcher run here anyway
    r = run_cli("gan-train", ["-m", "hparams_search=ring8", "hydra.sweeper.n_trials=3",
                              "hydra.sweeper.direction=maximize", *TINY, "hydra.sweep.dir=sw"], tmp_path)
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("gan-train: error:")]
    assert errors == ["gan-train: error: hydra.sweeper.direction=maximize contradicts optimized_metric=rkl_200, which "
                      "the metric registry says to minimize: set hydra.sweeper.direction=minimize."]
    assert not list((tmp_path / "sw").glob("*/results.json")) and not list((tmp_path / "sw").glob("1"))


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST IDX files are not in {FASHION} (apt install dataset-fashion-mnist)")
def test_fashion_mnist_study_tiny(tmp_path):
    """The image preset end to end: 2 trials of 3 steps, the domain FID on 300 samples of a classifier trained
    on the first 2,000 images (cached after its first use: in this test's own metrics.cache_dir, as the data's
    copy is in its own data.root, never in ~/.cache/gan_cli)."""
    import yaml

    r = _run(["-m", "hparams_search=fashion_mnist", "hydra.sweeper.n_trials=2", "steps=3", "log_every=1",
              "metrics.num_samples=300", "optimized_metric=fid300_clf", "net.channels=8", "data.batch_size=16",
              "data.limit=2000", f"data.root={tmp_path / 'data'}", f"metrics.cache_dir={tmp_path / 'cache'}",
              "hydra.sweep.dir=sw"], cwd=tmp_path, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sw" / "optimization_results.yaml").read_text())
    import json

    fids = [json.loads((tmp_path / "sw" / str(i) / "results.json").read_text())["metrics"]["fid300_clf"] for i in (0, 1)]
    assert best["best_value"] == min(fids) > 0
