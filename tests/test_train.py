"""The training runner end to end: config groups, short runs, TensorBoard, resume, bad input."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import BIN, compose_train, run_cli, scalar_tags
from idx import fake_mnist, write_mnist_raw

from gan_cli.training.loop import build_trainer
from gan_cli.cli.train import train

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
NETS = sorted(p.stem for p in (CONF / "net").glob("*.yaml"))
DIVERGENCES = ["kl", "rkl", "pearson", "hellinger", "js", "gan", "tv", "neyman"]
TINY = ["steps=4", "log_every=2", "image_every=0", "ckpt_every=0", "estimate_batch=64"]


@pytest.mark.parametrize("group,name", [("model", m) for m in MODELS] + [("data", d) for d in DATA] +
                         [("net", n) for n in NETS])
def test_every_component_yaml_has_a_schema_and_an_importable_target(group, name):
    """Every YAML of a group composes against its schema and names a _target_ that imports."""
    from hydra.utils import get_method

    text = (CONF / group / f"{name}.yaml").read_text()
    assert f"/schema/{group}/" in text, "each component names its schema first in its defaults list"
    node = compose_train(f"{group}={name}")[group]
    assert callable(get_method(node._target_))
    assert node.name  # the label used in titles and HParams


def _data_overrides(name, tmp_path):
    if name in ("mnist", "stacked"):  # stacked: three MNIST images as R, G, B (the default base)
        write_mnist_raw(tmp_path / "data" / "MNIST" / "raw", fake_mnist(64, 16))
        return [f"data.root={tmp_path / 'data'}", "data.download=false", *(["data.n=256"] if name == "stacked" else [])]
    if name == "image_folder":
        from PIL import Image

        folder = tmp_path / "imgs"
        folder.mkdir()
        for i in range(6):
            Image.new("RGB", (40, 36), (40 * i, 100, 200)).save(folder / f"{i}.png")
        return [f"data.path={folder}"]
    if name == "fashion_mnist":
        if not Path("/usr/share/datasets/fashion-mnist").is_dir():
            pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
        return [f"data.root={tmp_path / 'data'}", "data.limit=256"]
    return []


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", [d for d in DATA if d != "cifar10"])
def test_every_model_and_data_composes_and_instantiates(model, data, tmp_path):
    cfg = compose_train(f"model={model}", f"data={data}", *_data_overrides(data, tmp_path), tmp_path=tmp_path)
    tr = build_trainer(cfg, tmp_path)
    x = tr.data.sample(4, tr.gen).x
    assert x.shape[1:] == tuple(tr.info.shape)
    fake = tr.G(tr.noise(4, tr.gen))
    assert fake.shape == x.shape
    assert tr.D(fake).shape == (4,)
    # the critic of WGAN-GP has no batch norm
    if model == "wgan_gp":
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in tr.D.modules())


def test_cifar10_offline_is_one_clear_line(tmp_path):
    cfg = compose_train("data=cifar10", f"data.root={tmp_path}", "data.download=false", tmp_path=tmp_path)
    from gan_cli.config import UserError

    with pytest.raises(UserError) as e:
        build_trainer(cfg, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "CIFAR" in msg.upper() and str(tmp_path) in msg


@pytest.mark.parametrize("net", ["mlp", "auto"])
def test_net_options_on_toy(net, tmp_path):
    """net=mlp and net=auto (ring8's default is the MLP) build the same MLPs, sized by net.hidden/depth."""
    cfg = compose_train(f"net={net}", "net.hidden=24", "net.depth=2", tmp_path=tmp_path)
    tr = build_trainer(cfg, tmp_path)
    lin = [m for m in tr.G.modules() if isinstance(m, torch.nn.Linear)]
    assert type(tr.G).__name__ == "MLPGenerator" and type(tr.D).__name__ == "MLPDiscriminator"
    assert [m.out_features for m in lin] == [24, 24, 2] and lin[0].in_features == 2
    assert [m.out_features for m in tr.D.modules() if isinstance(m, torch.nn.Linear)] == [24, 24, 1]
    torch.manual_seed(0)
    assert tr.D(tr.G(tr.noise(5, tr.gen))).shape == (5,)


def test_theta_and_gaussian_nets(tmp_path):
    tr = build_trainer(compose_train("data=lines", "net=theta", "net.theta0=0.5", tmp_path=tmp_path), tmp_path)
    out = tr.G(tr.noise(100, tr.gen))
    assert torch.allclose(out[:, 0], torch.full((100,), 0.5))
    tr = build_trainer(compose_train("data=mog1d", "net=gaussian", tmp_path=tmp_path), tmp_path)
    assert tr.G(tr.noise(10, tr.gen)).shape == (10, 1)


@pytest.mark.parametrize("div", DIVERGENCES)
def test_fgan_divergences_compose(div, tmp_path):
    cfg = compose_train("model=fgan", f"model.divergence={div}", "data=mog1d", tmp_path=tmp_path)
    tr = build_trainer(cfg, tmp_path)
    assert tr.objective.estimate_tag == f"estimate/fdiv_{div}"


def test_model_paper_defaults():
    w = compose_train("model=wgan").model
    assert (w.opt_d.name, w.opt_d.lr, w.clip, w.n_critic) == ("rmsprop", 5e-5, 0.01, 5)
    gp = compose_train("model=wgan_gp").model
    assert (gp.opt_d.lr, gp.opt_d.beta1, gp.opt_d.beta2, gp.n_critic, gp.d_norm) == (1e-4, 0.0, 0.9, 5, "none")
    assert compose_train("model=wgan_gp").reg.gp.weight == 10.0
    ns = compose_train("model=nsgan").model
    assert (ns.opt_g.lr, ns.opt_g.beta1, ns.opt_g.beta2) == (2e-4, 0.5, 0.999)


@pytest.mark.parametrize("model", MODELS)
def test_short_run_writes_tensorboard_tags(model, tmp_path):
    # metrics.num_samples=200: the run still ends with the toy suite's evaluation (not read here), without the
    # exact W1 at 2,500 samples (2-10 s)
    cfg = compose_train(f"model={model}", "steps=6", "log_every=3", "image_every=6", "estimate_batch=64",
                        "model.warmup_critic_steps=0", "metrics.num_samples=200", tmp_path=tmp_path)
    from gan_cli.build import build_objective

    result = train(cfg)
    acc = scalar_tags(tmp_path)
    tags = set(acc.Tags()["scalars"])
    for t in ["loss/d", "loss/g", build_objective(cfg.model).estimate_tag, "grad_norm/d", "grad_norm/g", "lr/g", "lr/d"]:
        assert t in tags, (t, tags)
    assert [e.step for e in acc.Scalars("loss/d")] == [3, 6]
    assert "samples" in acc.Tags()["images"]  # the 2-D scatter plot
    assert result["status"] == "completed" and result["step"] == 6
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "completed"
    # hparams plugin data for comparing runs of a sweep
    plugins = acc.PluginTagToContent("hparams") if hasattr(acc, "PluginTagToContent") else {}
    assert plugins, "no hparams summary written"


def test_wasserstein_estimate_is_dual_value(tmp_path):
    """The logged estimate equals E_real f - E_fake f recomputed on the same held-out batch."""
    cfg = compose_train("model=wgan", "steps=2", "log_every=1", "image_every=0", tmp_path=tmp_path)
    tr = build_trainer(cfg, tmp_path)
    state = tr.est_gen.get_state()
    est = tr.estimate()
    tr.est_gen.set_state(state)
    with torch.no_grad():
        real = tr.data.sample(cfg.estimate_batch, tr.est_gen).x
        fake = tr.G(tr.noise(cfg.estimate_batch, tr.est_gen))
        want = tr.D(real).mean() - tr.D(fake).mean()
    assert torch.allclose(est, want, atol=1e-6)


def test_1d_and_lines_runs_write_pictures(tmp_path):
    for data in ["mog1d", "lines"]:
        out = tmp_path / data
        cfg = compose_train("model=fgan", "model.divergence=rkl", f"data={data}", "steps=4", "log_every=2",
                            "image_every=4", "estimate_batch=64", tmp_path=out)
        train(cfg)
        acc = scalar_tags(out)
        assert "samples" in acc.Tags()["images"]
        assert "estimate/fdiv_rkl" in acc.Tags()["scalars"]


def test_mnist_from_idx_files_without_network(tmp_path):
    write_mnist_raw(tmp_path / "data" / "MNIST" / "raw", fake_mnist(128, 16))
    cfg = compose_train("data=mnist", f"data.root={tmp_path / 'data'}", "data.download=false", "model=nsgan",
                        "net.channels=8", "steps=3", "log_every=3", "image_every=3", "estimate_batch=32", "metrics=none",
                        tmp_path=tmp_path / "run")
    train(cfg)
    acc = scalar_tags(tmp_path / "run")
    img = acc.Images("samples")[-1]
    assert img.width > 28 and img.height > 28


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_run_writes_image_grid(tmp_path):
    cfg = compose_train("data=fashion_mnist", f"data.root={tmp_path / 'data'}", "model=wgan", "net.channels=8",
                        "steps=3", "log_every=3", "image_every=3", "estimate_batch=32", "model.warmup_critic_steps=2", "metrics=none",
                        tmp_path=tmp_path / "run")
    train(cfg)
    acc = scalar_tags(tmp_path / "run")
    assert "samples" in acc.Tags()["images"]
    assert "estimate/w" in acc.Tags()["scalars"]


def _weights(run_dir):
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(run_dir)[-1])


@pytest.mark.parametrize("setup, tag", [
    # the lr schedule resumes from the step count; metrics=none as in the other case: no metric is compared
    (["model=wgan_gp", "model.opt_d.decay=0.1", "metrics=none"], "estimate/w"),
    # D's Fourier features are mid fade-in at the interruption (step 5 of 12: fraction 0.45 of a 0.2-0.7 ramp)
    (["model=nsgan", "net=mlp", "net.hidden=16", "net.codes=5", "net.latent_dim=3", "net.fourier=8",
      "net.fourier_from=0.2", "net.fourier_to=0.7", "model.pack=2", "metrics=none"], "estimate/jsd"),
], ids=["wgan_gp-lr-decay", "codes-fourier-pack"])
def test_resume_equals_uninterrupted_run(tmp_path, setup, tag):
    common = [*setup, "steps=12", "log_every=4", "image_every=0", "estimate_batch=64", "keep_ckpts=10"]
    full = tmp_path / "full"
    train(compose_train(*common, "ckpt_every=0", tmp_path=full))
    part = tmp_path / "part"
    # Interrupted run: a SIGINT after step 5 (not on the log or checkpoint cadence) makes the
    # loop write a checkpoint at step 5 and stop.
    import signal

    from gan_cli.training.loop import Interrupted

    tr = build_trainer(compose_train(*common, "ckpt_every=0", tmp_path=part), part)

    def progress(step, host):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        tr.run(progress)
    assert _weights(part)["step"] == 5
    cfg = compose_train(*common, "ckpt_every=0", f"resume={part}")
    train(cfg, overrides=[f"resume={part}"])
    a, b = _weights(full), _weights(part)
    assert a["step"] == b["step"] == 12
    for k in a["generator"]:
        assert torch.equal(a["generator"][k], b["generator"][k]), k
    for k in a["discriminator"]:
        assert torch.equal(a["discriminator"][k], b["discriminator"][k]), k
    sa, sb = scalar_tags(full), scalar_tags(part)
    assert [(e.step, e.value) for e in sa.Scalars("loss/d")] == [(e.step, e.value) for e in sb.Scalars("loss/d")]
    assert [(e.step, e.value) for e in sa.Scalars(tag)] == [(e.step, e.value) for e in sb.Scalars(tag)]


def test_lr_decay_is_exponential_from_lr_to_lr_times_decay(tmp_path):
    """model.opt_*.decay: step i (0-based) of n trains at lr * decay^(i / (n - 1)); each optimiser its own; the
    logged lr/g and lr/d are the last step's.  Out-of-range values are one line."""
    from gan_cli.config import UserError, validate

    train(compose_train("model=nsgan", "data=ring8", "steps=5", "log_every=1", "image_every=0", "metrics=none",
                        "model.opt_g.lr=1e-3", "model.opt_g.decay=0.01", "model.opt_d.lr=4e-4", tmp_path=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["lr/g"] for r in rows] == pytest.approx([1e-3 * 0.01 ** (i / 4) for i in range(5)], rel=1e-12)
    assert rows[-1]["lr/g"] == pytest.approx(1e-5, rel=1e-12)
    assert {r["lr/d"] for r in rows} == {4e-4}  # opt_d keeps decay 1: a constant lr
    for bad in ("1.5", "-1"):
        with pytest.raises(UserError, match=f"model.opt_g.decay={float(bad)} is out of range"):
            validate(compose_train(f"model.opt_g.decay={bad}"))
    with pytest.raises(UserError, match="model.opt_g.decay=0 with decay_shape=exp would make the lr 0 after the first "
                                        "step: add model.opt_g.decay_shape=linear"):
        validate(compose_train("model.opt_g.decay=0"))
    with pytest.raises(UserError, match="model.opt_d.decay_shape=cosine is out of range: must be exp or linear"):
        validate(compose_train("model.opt_d.decay_shape=cosine"))


def test_linear_lr_decay_goes_from_lr_to_lr_times_decay_in_equal_steps(tmp_path):
    """decay_shape=linear (Mimicry's SNGAN policy with decay=0): step i of n trains at lr * (1 - (1 - decay) i / (n - 1))."""
    train(compose_train("model=nsgan", "data=ring8", "steps=5", "log_every=1", "image_every=0", "metrics=none",
                        "model.opt_g.lr=1e-3", "model.opt_g.decay=0", "model.opt_g.decay_shape=linear",
                        "model.opt_d.lr=4e-4", "model.opt_d.decay=0.5", "model.opt_d.decay_shape=linear",
                        tmp_path=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["lr/g"] for r in rows] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0], abs=1e-15)
    assert [r["lr/d"] for r in rows] == pytest.approx([4e-4, 3.5e-4, 3e-4, 2.5e-4, 2e-4], rel=1e-12)


def _cli(args, cwd, env_extra=None, timeout=240):
    # one thread: on a shared 2-core machine two OpenMP threads made the tiny nets' steps several times slower
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    return subprocess.run([str(BIN / "gan-train"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


REAL_PROCESS_CASES = (["steps=abc"], ["model.opt_d.lr=-1"])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["model=nope"], "model"),  # unknown group option (Hydra's message)
        (["steps=abc"], "steps"),  # wrong type (Hydra's message)
        (["model.no_such_key=1"], "no_such_key"),  # unknown key
        (["model.opt_d.lr=-1"], "model.opt_d.lr=-1.0 is out of range"),
        (["model.n_critic=0"], "model.n_critic=0 is out of range"),
        (["model=wgan", "model.clip=0"], "model.clip=0.0 is out of range"),
        (["data.batch_size=0"], "data.batch_size=0 is out of range"),
        (["net=mlp", "net.codes=-1"], "net.codes=-1 is out of range"),
        (["net=mlp", "net.fourier_to=1.5"], "net.fourier_to=1.5 is out of range"),
        (["device=tpu"], "device=tpu"),
        (["resume=/no/such/run"], "no such folder"),
    ],
)
def test_bad_input_exits_nonzero_with_clear_message(args, needle, tmp_path):
    """Hydra's path (steps=abc) and gan-train's (an out-of-range value) run the real console script, so the exit
    status and stderr are what a parent process sees; the other cases run the same main() in this process
    (conftest.run_cli: argv, cwd, exit status, stderr)."""
    argv = [*args, "progress=false", "steps=2"] if args[0] != "steps=abc" else args
    r = _cli(argv, cwd=tmp_path) if args in REAL_PROCESS_CASES else run_cli("gan-train", argv, tmp_path)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if "out of range" in needle or "device" in needle or "no such folder" in needle:
        assert r.stderr.strip().count("\n") == 0, r.stderr  # one line
    assert not list(tmp_path.glob("outputs/*/*/checkpoints"))
    assert not Path("/no/such/run").exists()


def test_cli_default_run_and_multirun(tmp_path):
    """The console script itself, a run and a sweep (metrics.num_samples=200: the default toy suite still runs at
    the end of each, without the exact W1 at 2,500 samples)."""
    r = _cli(["steps=4", "log_every=2", "image_every=0", "progress=false", "estimate_batch=64",
              "metrics.num_samples=200"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    runs = list(tmp_path.glob("outputs/*/*/checkpoints/step_*.pt"))
    assert len(runs) == 1
    assert "tensorboard --logdir" in r.stdout
    r = _cli(["-m", "model=gan,nsgan", "data=ring8", "steps=3", "log_every=3", "image_every=0", "progress=false",
              "estimate_batch=64", "metrics.num_samples=200"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    jobs = sorted(p.parent.parent.name for p in tmp_path.glob("multirun/*/*/*/checkpoints/step_00000003.pt"))
    assert len(jobs) == 2 and jobs[0].startswith("0_") and "model-gan+" in jobs[0] and "model-nsgan+" in jobs[1]


def test_trainer_tells_scheduled_modules_the_fraction_of_training_done(tmp_path):
    """net.fourier's fade-in follows the step count: before step i (0-based) of n, a = ramp(i / (n - 1)); with
    packing the features see the packed input.  The fraction comes from the step count alone, so a resumed run
    (which restores the step) gets the same."""
    from gan_cli.training.loop import build_trainer
    from gan_cli.nets.mlp import FourierFeatures

    cfg = compose_train("net=mlp", "net.hidden=16", "net.fourier=8", "net.fourier_from=0.25", "net.fourier_to=0.75",
                        "net.codes=7", "net.latent_dim=3", "model.pack=2", "steps=9", "estimate_batch=64",
                        tmp_path=tmp_path)
    tr = build_trainer(cfg, tmp_path)
    ff = next(m for m in tr.D.modules() if isinstance(m, FourierFeatures))
    assert ff.B.shape == (4, 8)  # 2 packed 2-D samples
    seen = []
    for i in range(9):
        tr.step = i
        tr.train_step(want_norms=False)
        seen.append(float(ff.alpha))
    assert seen == pytest.approx([min(1, max(0, (i / 8 - 0.25) / 0.5)) for i in range(9)])
    assert torch.isfinite(tr.estimate())


def test_parametric_generator_with_ema_logs_both_and_the_fdiv_lab_reads_the_ema_one(tmp_path):
    """With ema.beta a parametric toy G's parameters are logged twice: gen/* (the trained G) and gen_ema/* (the
    EMA G, which evaluations sample from); the f-divergence lab reports the EMA one."""
    import math

    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint
    from gan_cli.lab.fdiv import _learned
    from gan_cli.runs.results import Job

    cfg = compose_train("model=fgan", "data=mog1d", "net=gaussian", "net.hidden=8", "ema.beta=0.9", "steps=6",
                        "log_every=3", "image_every=0", "metrics=none", tmp_path=tmp_path)
    res = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and all("gen_ema/mu" in r and "gen/mu" in r for r in rows)
    state = load_checkpoint(list_checkpoints(tmp_path)[-1])
    ema, trained = state["generator_ema"], state["generator"]
    assert rows[-1]["gen_ema/mu"] == pytest.approx(float(ema["mu"]), rel=1e-6)
    assert rows[-1]["gen_ema/sigma"] == pytest.approx(math.exp(float(ema["log_sigma"])), rel=1e-6)
    assert rows[-1]["gen/mu"] == pytest.approx(float(trained["mu"]), rel=1e-6) != rows[-1]["gen_ema/mu"]
    job = Job(dir=tmp_path, num=0, overrides={}, config={}, status="completed", results=res)
    assert _learned(job) == pytest.approx((rows[-1]["gen_ema/mu"], rows[-1]["gen_ema/sigma"]), rel=1e-6)
