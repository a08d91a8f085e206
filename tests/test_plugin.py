"""examples/plugin: a user's own objectives (LSGAN; the relativistic pairing GAN with its R1 + R2 regularisers, R2
being the plugin's own), and metric (energy distance), used through hydra.searchpath, with nothing of them in
gan_cli/ or conf/."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Quadratic, process_env

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"
# The manual's command (docs/extending.md), word for word (run from the repository root).
README_COMMAND = "PYTHONPATH=examples/plugin gan-train hydra.searchpath=[file://examples/plugin/conf] model=lsgan data=ring8 steps=300"


@pytest.fixture(scope="module")
def plugin_path():
    sys.path.insert(0, str(PLUGIN))
    yield
    sys.path.remove(str(PLUGIN))


def test_the_manual_shows_the_command():
    assert README_COMMAND in (ROOT / "docs" / "extending.md").read_text()


def test_nothing_in_the_package_names_the_plugin():
    for base in ("gan_cli", "conf"):
        for p in (ROOT / base).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".yaml"):
                text = p.read_text().lower()
                assert not {"lsgan", "energy", "rpgan", "gan_plugin"} & {w for w in text.replace(".", " ").split()}, p
                assert "lsgan" not in text and "energy" not in text and "rpgan" not in text, p


def _run(cmd: str, cwd: Path, extra: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(f"{cmd} {extra}", shell=True, cwd=cwd, env=process_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_readme_command_trains_lsgan_and_the_metric_is_selectable(tmp_path):
    # the README's command as printed (cwd: the repository root), into a folder of our own
    r = _run(README_COMMAND, ROOT, f"progress=false out_dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["step"] == 300 and "estimate/triangular" in res["final"] and "modes_2.5k" in res["final"]
    # the plugin's metric, selected the same way (metrics=energy from the plugin's conf); these two runs score 200
    # samples (the first keeps the README's 2,500)
    r = _run(README_COMMAND.replace("steps=300", "steps=20"), ROOT,
             f"metrics=energy metrics.num_samples=200 progress=false out_dir={tmp_path / 'run2'}")
    assert r.returncode == 0, r.stderr[-2000:]
    final = json.loads((tmp_path / "run2" / "results.json").read_text())["final"]
    assert any("energy" in k for k in final), final
    assert final["energy_200"] > 0 and "w1_200" in final  # the toy suite's metrics as well
    line = json.loads((tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["step"] == 20 and line["energy_200"] == final["energy_200"]
    # or by name, next to named built-ins
    r = _run(README_COMMAND.replace("steps=300", "steps=10"), ROOT,
             f"metrics.imports=[gan_plugin.energy] metrics.names=[energy,w1] metrics.num_samples=200 progress=false "
             f"out_dir={tmp_path / 'run3'}")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "run3" / "results.json").read_text())["metrics"]
    assert sorted(m) == ["energy_200", "w1_200"]


def test_lsgan_losses_and_estimate_closed_form(plugin_path):
    """At the optimal D* = p/(p+q) the estimate 1/4 - D loss is 1/8 of the triangular discrimination."""
    from gan_plugin.lsgan import LSGAN

    obj = LSGAN()
    r, f = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 2.0])
    assert float(obj.d_loss(r, f)) == pytest.approx(0.5 * (0 + 0.25) / 2 + 0.5 * (0 + 4) / 2)
    assert float(obj.g_loss(f)) == pytest.approx(0.5 * (1 + 1) / 2)
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.1, 0.3, 0.2, 0.4])
    d_star = p / (p + q)
    # expectations over the discrete distributions, written as weighted samples
    real = torch.tensor(np.repeat(d_star, (p * 1000).astype(int)))
    fake = torch.tensor(np.repeat(d_star, (q * 1000).astype(int)))
    tri = float(((p - q) ** 2 / (p + q)).sum())
    assert float(obj.estimate(real, fake)) == pytest.approx(tri / 8, abs=1e-12)


def test_energy_distance_matches_scipy_and_pairwise_sums(plugin_path):
    from scipy.stats import energy_distance as scipy_energy

    from gan_plugin.energy import energy_distance

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 1)), rng.normal(0.7, 1.3, size=(200, 1))
    assert energy_distance(x, y) == pytest.approx(scipy_energy(x[:, 0], y[:, 0]) ** 2, rel=1e-9)
    a, b = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + 1
    d = lambda u, v: np.mean([np.linalg.norm(s - t) for s in u for t in v])  # noqa: E731
    assert energy_distance(a, b) == pytest.approx(2 * d(a, b) - d(a, a) - d(b, b), rel=1e-9)
    assert energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)


def test_rpgan_losses_and_estimate_closed_form(plugin_path):
    """RpGAN: D minimises E softplus(D(fake) - D(real)), G E softplus(D(real) - D(fake)) over the i-th pairs; the
    estimate log 2 - D loss is 0 for a constant critic and > 0 for one that ranks real above fake."""
    import math

    from gan_plugin.rpgan import RpGAN

    obj = RpGAN()
    r, f = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64), torch.tensor([0.0, 0.5, -1.0], dtype=torch.float64)
    sp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    rn, fn = r.numpy(), f.numpy()
    assert float(obj.d_loss(r, f)) == pytest.approx(np.mean(sp(fn - rn)), rel=1e-12)
    assert float(obj.g_loss(f, r)) == pytest.approx(np.mean(sp(rn - fn)), rel=1e-12)
    assert obj.g_needs_real and float(obj.estimate(r, r)) == pytest.approx(0.0, abs=1e-12)
    assert float(obj.estimate(r, f)) == pytest.approx(math.log(2) - np.mean(sp(fn - rn)), rel=1e-12)
    assert float(obj.estimate(r + 10, f)) > 0.69  # separates: towards log 2


def test_r2_is_half_gamma_times_mean_squared_input_gradient_at_the_fakes(plugin_path):
    """R2 by hand on D(x) = sum a x^2 + b.x (grad 2 a x + b) at the generated batch, through gan_cli's path."""
    from gan_plugin.r2 import R2

    from gan_cli.objectives.gan import NSGAN
    from gan_cli.training.step import DPath, discriminator_loss

    torch.manual_seed(0)
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    D = Quadratic()
    with_r2 = discriminator_loss(NSGAN(), {"r2": R2(0.4)}, DPath(D), real, None, fake, None)[0]
    without = discriminator_loss(NSGAN(), {}, DPath(D), real, None, fake, None)[0]
    g = 2 * D.a.detach() * fake + D.b.detach()
    assert (with_r2 - without).item() == pytest.approx(0.2 * float((g**2).sum(1).mean()), rel=1e-12)
    from gan_cli.objectives.wgan import WGAN
    assert "reg.r2 with model=wgan" in R2(1.0).refuses(WGAN())


def test_the_rpgan_preset_carries_r1_and_r2_and_trains(tmp_path, plugin_path):
    from conftest import compose_train

    from gan_cli.build import build_objective, build_regularizers
    from gan_cli.cli.train import train

    search = f"hydra.searchpath=[file://{PLUGIN / 'conf'}]"
    cfg = compose_train(search, "model=rpgan")
    regs = build_regularizers(cfg.reg, build_objective(cfg.model))
    assert list(regs) == ["r1", "r2"] and regs["r1"].gamma == regs["r2"].gamma == cfg.reg.r1.gamma
    res = train(compose_train(search, "model=rpgan", "steps=20", "log_every=10", "image_every=0", "metrics=none",
                              "estimate_batch=64", "net.hidden=32", tmp_path=tmp_path / "run"))
    assert res["step"] == 20 and np.isfinite(res["final"]["estimate/rp"])
