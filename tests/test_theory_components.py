"""Modern GAN components: hinge loss, R1 (lazy), spectral norm, EMA of G.

Expected values are written out by hand (numpy or explicit autograd on tiny nets), never by calling
the code under test for the expected side.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
import pytest
import torch
from conftest import compose_train
from torch import nn

from gan_cli.config import UserError

REAL = np.array([0.5, -1.0, 2.0, 0.25, 1.0])
FAKE = np.array([-0.3, 1.5, 0.0, -2.0])


def t64(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _built(*overrides):
    from gan_cli.build import build_objective

    return build_objective(compose_train(*overrides).model)


# ----------------------------------------------------------------------------- hinge


def test_hinge_built_from_its_yaml_with_sagan_settings():
    from gan_cli.objectives.hinge import Hinge

    cfg = compose_train("model=hinge").model
    assert type(_built("model=hinge")) is Hinge
    assert (cfg.opt_g.lr, cfg.opt_d.lr, cfg.opt_d.beta1, cfg.opt_d.beta2, cfg.n_critic) == (1e-4, 4e-4, 0.0, 0.9, 1)


def test_hinge_values_by_hand():
    obj = _built("model=hinge")
    d = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
    np.testing.assert_allclose(float(obj.d_loss(t64(REAL), t64(FAKE))), d, rtol=1e-12)
    np.testing.assert_allclose(float(obj.g_loss(t64(FAKE))), -FAKE.mean(), rtol=1e-12)
    np.testing.assert_allclose(float(obj.estimate(t64(REAL), t64(FAKE))), 1 - d / 2, rtol=1e-12)
    assert obj.estimate_tag == "estimate/tv"


def test_hinge_margins_give_no_gradient_and_violations_do():
    obj = _built("model=hinge")
    real = t64([2.0, 0.5]).requires_grad_(True)
    fake = t64([-3.0, -0.5]).requires_grad_(True)
    obj.d_loss(real, fake).backward()
    # beyond the margin (real > 1, fake < -1): zero; inside: -1/N for real, +1/N for fake
    np.testing.assert_array_equal(real.grad.numpy(), [0.0, -0.5])
    np.testing.assert_array_equal(fake.grad.numpy(), [0.0, 0.5])


def test_hinge_estimate_is_total_variation_at_the_optimal_d_and_below_it_otherwise():
    """P, Q on three points; D* = sign(p - q); sample counts proportional to the probabilities."""
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.2, 0.6])
    tv = 0.5 * np.abs(p - q).sum()  # 0.4
    real_pts = np.repeat([0, 1, 2], (p * 10).astype(int))
    fake_pts = np.repeat([0, 1, 2], (q * 10).astype(int))
    obj = _built("model=hinge")

    def est(d_values):
        d_values = np.asarray(d_values, dtype=np.float64)
        return float(obj.estimate(t64(d_values[real_pts]), t64(d_values[fake_pts])))

    np.testing.assert_allclose(est(np.sign(p - q)), tv, rtol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert est(rng.normal(scale=2.0, size=3)) <= tv + 1e-12


# ----------------------------------------------------------------------------- R1


class _Quadratic(nn.Module):
    """D(x) = sum_j a_j x_j^2 + b . x: grad_x D = 2 a * x + b, known by hand."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.5, -1.5], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))

    def forward(self, x):
        return (self.a * x**2).sum(1) + x @ self.b


def _r1_by_hand(D, real, gamma):
    g = 2 * D.a.detach() * real + D.b.detach()
    return gamma / 2 * float((g**2).sum(1).mean())


def test_r1_term_is_half_gamma_times_mean_squared_input_gradient():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    D = _Quadratic()
    for model in ("nsgan", "hinge", "fgan", "wgan_gp"):
        plain = _built(f"model={model}")
        obj = _built(f"model={model}", "model.r1_gamma=3.0")
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        whole = obj.discriminator_loss(D, real, fake, g1)
        base = plain.discriminator_loss(D, real, fake, g2)  # with the subclass's own regulariser (WGAN-GP's GP)
        np.testing.assert_allclose((whole - base).item(), _r1_by_hand(D, real, 3.0), rtol=1e-12, err_msg=model)


def test_fgan_tv_defaults_to_r1_0_003_at_box_points_and_explicit_values_win():
    """model.r1_gamma=null and model.r1_points=null (FGANConfig's defaults) are the divergence's own: tv 0.003 at
    box points (its step-shaped optimal critic saturates tanh; R1 at the real samples biased the fit, see
    gan_cli/objectives/fgan.py), 0 for every other row; any value given, 0 included, is taken as is."""
    from gan_cli.objectives.base import box_points

    torch.manual_seed(0)
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    D = _Quadratic()
    tv, tv_off = _built("model=fgan", "model.divergence=tv"), _built("model=fgan", "model.divergence=tv", "model.r1_gamma=0")
    assert (tv.r1_gamma, tv.r1_points, tv_off.r1_gamma) == (0.003, "box", 0.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    extra = (tv.discriminator_loss(D, real, fake, g1) - tv_off.discriminator_loss(D, real, fake)).item()
    np.testing.assert_allclose(extra, _r1_by_hand(D, box_points(real, fake, g2), 0.003), rtol=1e-12)
    for name in ("kl", "rkl", "pearson", "hellinger", "js", "gan", "neyman"):
        obj = _built("model=fgan", f"model.divergence={name}")
        assert (obj.r1_gamma, obj.r1_points) == (0.0, "real"), name
    assert _built("model=fgan", "model.divergence=kl", "model.r1_gamma=0.5").r1_gamma == 0.5
    assert _built("model=fgan", "model.divergence=tv", "model.r1_points=real").r1_points == "real"
    assert compose_train("model=nsgan").model.r1_gamma == 0.0  # other objectives keep the plain float default


def test_box_points_are_uniform_over_the_box_of_real_and_fake_and_any_model_can_use_them():
    """model.r1_points=box: the zero-centred penalty at points uniform over [min, max] per feature of the real and
    fake batch together (as many as real samples), from the generator passed in; with nsgan the term is
    gamma/2 E||grad D||^2 at those points (by hand); an unknown value is one line."""
    from gan_cli.objectives.base import box_points

    real = torch.tensor([[0.0, -1.0], [1.0, 4.0]], dtype=torch.float64).repeat(5000, 1)
    fake = torch.tensor([[-2.0, 0.0], [3.0, 1.0]], dtype=torch.float64).repeat(5000, 1)
    pts = box_points(real, fake, torch.Generator().manual_seed(0))
    assert pts.shape == real.shape
    lo, hi = torch.tensor([-2.0, -1.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert bool(((pts >= lo) & (pts <= hi)).all())
    u = ((pts - lo) / (hi - lo)).numpy()
    for j in range(2):
        assert stats.kstest(u[:, j], "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.05  # independent per feature
    torch.manual_seed(2)
    r, f = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64) + 3
    D = _Quadratic()
    obj, plain = _built("model=nsgan", "model.r1_gamma=0.4", "model.r1_points=box"), _built("model=nsgan")
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    extra = (obj.discriminator_loss(D, r, f, g1) - plain.discriminator_loss(D, r, f)).item()
    np.testing.assert_allclose(extra, _r1_by_hand(D, box_points(r, f, g2), 0.4), rtol=1e-12)
    with pytest.raises(UserError, match="model.r1_points=fake is unknown: use real"):
        _built("model=nsgan", "model.r1_gamma=1", "model.r1_points=fake")


def test_r1_backpropagates_into_d_and_not_into_the_data():
    real = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    D = _Quadratic()
    obj = _built("model=nsgan", "model.r1_gamma=2.0")
    loss_r1 = obj.discriminator_loss(D, real, real) - _built("model=nsgan").discriminator_loss(D, real, real)
    loss_r1.backward()
    # R1 = (2 a x + b)^2 summed (gamma/2 = 1): d/da_j = 2 (2 a_j x_j + b_j) 2 x_j, d/db_j = 2 (2 a_j x_j + b_j)
    g = 2 * D.a.detach() * real[0] + D.b.detach()
    np.testing.assert_allclose(D.a.grad.numpy(), (4 * g * real[0]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(D.b.grad.numpy(), (2 * g).numpy(), rtol=1e-12)
    assert not real.requires_grad


def test_lazy_r1_only_every_kth_call_times_k_and_the_counter_is_checkpointed():
    torch.manual_seed(1)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = _Quadratic()
    plain = _built("model=hinge").discriminator_loss(D, real, fake).item()
    obj = _built("model=hinge", "model.r1_gamma=0.5", "model.r1_every=4")
    extra = [obj.discriminator_loss(D, real, fake).item() - plain for _ in range(9)]
    r1 = _r1_by_hand(D, real, 0.5)
    np.testing.assert_allclose(extra, [4 * r1, 0, 0, 0, 4 * r1, 0, 0, 0, 4 * r1], atol=1e-12)
    assert obj.state_dict() == {"d_calls": 9}
    again = _built("model=hinge", "model.r1_gamma=0.5", "model.r1_every=4")
    again.load_state_dict({"d_calls": 7})
    assert [again.discriminator_loss(D, real, fake).item() - plain > 0 for _ in range(2)] == [False, True]


def test_r1_refusals_are_one_line():
    from gan_cli.config import validate

    with pytest.raises(UserError, match="model.r1_gamma with model=wgan"):
        _built("model=wgan", "model.r1_gamma=1")
    with pytest.raises(UserError, match="model.r1_every=0 is out of range"):
        validate(compose_train("model.r1_every=0"))
    with pytest.raises(UserError, match="model.r1_gamma=-1.0 is out of range"):
        validate(compose_train("model.r1_gamma=-1"))
    from gan_cli.build import build_objective

    class NoKwargs:  # a plugin objective that does not pass the base keys on
        def __init__(self, n_critic=1):
            self.n_critic = n_critic

    import sys
    import types

    mod = types.ModuleType("_r1_plugin")
    mod.NoKwargs = NoKwargs
    sys.modules["_r1_plugin"] = mod
    with pytest.raises(UserError, match="does not pass r1_gamma"):
        build_objective({"_target_": "_r1_plugin.NoKwargs", "name": "x", "r1_gamma": 1.0})


# ----------------------------------------------------------------------------- spectral norm


def _info(kind, shape):
    return type("Info", (), {"kind": kind, "shape": shape, "name": "x"})()


def _top_singular_values(D):
    """sigma_max of each wrapped weight as used in the forward (W / sigma estimate), reshaped (out, -1)."""
    from torch.nn.utils import parametrize

    out = []
    for m in D.modules():
        if parametrize.is_parametrized(m, "weight"):
            out.append(float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)))
    return out


@pytest.mark.parametrize("net, info, d_norm", [
    ("mlp", _info("toy2d", (2,)), "batch"),  # an MLP has no normalisation: d_norm is moot
    ("dcgan", _info("image", (1, 28, 28)), "none"),
    ("dcgan", _info("image", (3, 32, 32)), "none"),
])
def test_spectral_norm_makes_each_d_layer_unit_norm(net, info, d_norm):
    from hydra.utils import get_method

    torch.manual_seed(0)
    G, D = get_method(f"gan_cli.nets.{net}.build")(info, 8, d_norm, spectral_norm=True)
    n_layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in D.modules())
    D.train()
    x = torch.randn(4, *info.shape)
    D(x)
    first = _top_singular_values(D)
    for _ in range(30):  # power iterations, one per training forward
        D(x)
    sig = _top_singular_values(D)
    assert len(sig) == n_layers >= 2
    np.testing.assert_allclose(sig, 1.0, atol=2e-2)  # 1.011 for the 64 x 16 first conv of 28 px (close top singular values)
    # power iteration under-estimates sigma, so W / sigma_est is >= 1 and falls towards 1
    assert min(sig) >= 1 - 1e-5 and all(b <= a + 1e-6 for a, b in zip(first, sig))
    assert not _top_singular_values(G)  # G is left alone
    _, D0 = get_method(f"gan_cli.nets.{net}.build")(info, 8, d_norm)
    assert not _top_singular_values(D0) and max(
        float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in D0.modules() if isinstance(m, (nn.Linear, nn.Conv2d))) != pytest.approx(1.0, abs=2e-2)


def test_spectral_norm_from_the_command_line_and_its_refusals(tmp_path):
    from gan_cli.build import build_data, build_nets

    cfg = compose_train("net=mlp", "net.spectral_norm=true")
    _, D = build_nets(cfg, build_data(cfg.data).info)
    assert len(_top_singular_values(D)) == 4
    cfg = compose_train("net.spectral_norm=true")  # net=auto on ring8: the mlp
    assert len(_top_singular_values(build_nets(cfg, build_data(cfg.data).info)[1])) == 4
    cfg = compose_train("data=digits", "net=dcgan", "net.spectral_norm=true")  # nsgan: d_norm=batch
    with pytest.raises(UserError, match="net.spectral_norm=true with model.d_norm=batch"):
        build_nets(cfg, build_data(cfg.data).info)
    cfg = compose_train("data=digits", "net.spectral_norm=true", "model.d_norm=none")
    assert len(_top_singular_values(build_nets(cfg, build_data(cfg.data).info)[1])) == 3


# ----------------------------------------------------------------------------- EMA of G


def _tiny_g():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_ema_update_math_and_buffers():
    from gan_cli.training.ema import EMA

    G = _tiny_g()
    ema = EMA(G, 0.9, rampup=False)
    before = [p.detach().clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
    G.train()
    G(torch.randn(8, 2))  # moves G's BN running statistics
    ema.update(G, step=0)
    for b, pe, p in zip(before, ema.model.parameters(), G.parameters()):
        torch.testing.assert_close(pe, 0.9 * b + 0.1 * p.detach(), rtol=1e-6, atol=1e-7)
    for be, bg in zip(ema.model.buffers(), G.buffers()):  # running mean / var / count copied, not averaged
        assert torch.equal(be, bg)
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    ramp = EMA(G, 0.999)
    assert [ramp.beta_at(t) for t in (0, 5, 90)] == [pytest.approx(0.1), pytest.approx(0.4), pytest.approx(0.91)]
    assert ramp.beta_at(10**6) == 0.999


COMBO = ["model=hinge", "model.r1_gamma=1.0", "model.r1_every=3", "model.instance_noise=0.1",
         "model.instance_noise_steps=20", "net.spectral_norm=true", "ema.beta=0.9",
         "steps=12", "log_every=4", "image_every=0", "estimate_batch=64", "keep_ckpts=10", "ckpt_every=0",
         "net.hidden=32", "net.depth=2", "metrics=none"]


def _last_state(run_dir):
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(run_dir)[-1])


def test_resume_restores_ema_lazy_r1_and_noise_schedule_bit_identically(tmp_path, one_torch_thread):
    import os
    import signal

    from gan_cli.training.loop import Interrupted, Trainer
    from gan_cli.cli.train import train

    full, part = tmp_path / "full", tmp_path / "part"
    train(compose_train(*COMBO, tmp_path=full))
    tr = Trainer(compose_train(*COMBO, tmp_path=part), part)

    def progress(step, host):
        if step == 5:  # off every cadence, and between two lazy R1 steps (calls 3 and 6)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        tr.run(progress)
    mid = _last_state(part)
    assert mid["step"] == 5 and mid["objective"] == {"d_calls": 5} and "generator_ema" in mid
    train(compose_train(*COMBO, f"resume={part}"), overrides=[f"resume={part}"])
    a, b = _last_state(full), _last_state(part)
    assert a["step"] == b["step"] == 12 and a["objective"] == b["objective"] == {"d_calls": 12}
    for net in ("generator", "generator_ema", "discriminator"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    assert any(not torch.equal(a["generator"][k], a["generator_ema"][k]) for k in a["generator"])
    assert any("parametrizations.weight.original" in k for k in a["discriminator"])  # spectral norm on D


def test_evaluation_and_gan_eval_sample_from_the_ema_generator(tmp_path, one_torch_thread):
    from hydra import compose, initialize_config_module

    from gan_cli.build import build_data, build_nets, load_config, load_generator
    from gan_cli.runs.checkpoint import list_checkpoints
    from gan_cli.cli.evaluate import evaluate
    from gan_cli.metrics.evaluator import generator_sampler
    from gan_cli.cli.train import train

    run = tmp_path / "run"
    res = train(compose_train("ema.beta=0.8", "steps=8", "log_every=4", "image_every=0", "estimate_batch=64",
                              "metrics=toy", "metrics.num_samples=200", "metrics.names=[w1]", "net.hidden=32",
                              tmp_path=run))
    state = _last_state(run)
    G, cfg, _, latent, _ = load_generator(list_checkpoints(run)[-1], "cpu")
    assert G.weights_source == "ema"
    ema_G, _ = build_nets(load_config(state["config"]), build_data(cfg.data).info)
    ema_G.load_state_dict(state["generator_ema"])
    trained_G, _ = build_nets(load_config(state["config"]), build_data(cfg.data).info)
    trained_G.load_state_dict(state["generator"])
    draw = lambda g: generator_sampler(g, latent, "cpu", 0)(50)  # noqa: E731
    assert torch.equal(draw(G), draw(ema_G)) and not torch.allclose(draw(G), draw(trained_G))
    # gan-eval scores the same samples as the run's final evaluation: the EMA generator's
    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        ecfg = compose("eval", overrides=[f"ckpt={run}", "metrics.num_samples=200", "metrics.names=[w1]",
                                          "tensorboard=false", f"out={tmp_path / 'ev'}"])
    report = evaluate(ecfg)
    assert report["weights"] == "ema"
    assert report["metrics"]["w1_200"] == res["metrics"]["w1_200"]


# ----------------------------------------------------------------------------- instance noise


def test_instance_noise_on_both_inputs_annealed_linearly_and_in_g_loss():
    torch.manual_seed(2)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = _Quadratic()
    obj = _built("model=nsgan", "model.instance_noise=0.5", "model.instance_noise_steps=4")
    plain = _built("model=nsgan")
    for t, sigma in enumerate([0.5, 0.375, 0.25, 0.125, 0.0, 0.0]):
        assert obj.noise_std() == pytest.approx(sigma)
        g = torch.Generator().manual_seed(t)
        ref = torch.Generator().manual_seed(t)
        e_real = torch.randn(real.shape, generator=ref, dtype=torch.float64)
        e_fake = torch.randn(fake.shape, generator=ref, dtype=torch.float64)
        want = plain.discriminator_loss(D, real + sigma * e_real, fake + sigma * e_fake) if sigma else \
            plain.discriminator_loss(D, real, fake)
        gl = torch.Generator().manual_seed(100 + t)
        e_g = torch.randn(fake.shape, generator=torch.Generator().manual_seed(100 + t), dtype=torch.float64)
        torch.testing.assert_close(obj.generator_loss(D, fake, gl), plain.generator_loss(D, fake + sigma * e_g))
        torch.testing.assert_close(obj.discriminator_loss(D, real, fake, g), want)
    const = _built("model=nsgan", "model.instance_noise=0.2")
    for _ in range(3):
        const.discriminator_loss(D, real, fake)
    assert const.noise_std() == 0.2
    # off: no draw from the train stream at all (trajectories of runs without noise are unchanged)
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    plain.discriminator_loss(D, real, fake, g), plain.generator_loss(D, fake, g)
    assert torch.equal(g.get_state(), state)


# ----------------------------------------------------------------------------- PacGAN packing


def test_pack_builds_d_for_m_concatenated_samples_and_trains(tmp_path):
    from gan_cli.build import build_data, build_nets
    from gan_cli.training.loop import Trainer
    from gan_cli.nets.pack import Packed

    cfg = compose_train("net=mlp", "model.pack=4", "data.batch_size=32", "net.hidden=16")
    G, D = build_nets(cfg, build_data(cfg.data).info)
    assert isinstance(D, Packed) and D.inner.net[0].in_features == 4 * 2  # m * d features
    seen = []
    D.inner.net[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = torch.arange(24.0).reshape(12, 2)
    assert D(x).shape == (3,)
    torch.testing.assert_close(seen[0][1], torch.arange(8.0, 16.0))  # tuple 1 = samples 4..7, concatenated
    assert G(torch.randn(5, G.latent_dim)).shape == (5, 2)  # G is not packed
    cfg = compose_train("data=digits", "net=dcgan", "model.pack=2", "net.channels=8")
    _, D = build_nets(cfg, build_data(cfg.data).info)
    assert D.inner.net[0].in_channels == 2 and D(torch.randn(6, 1, 8, 8)).shape == (3,)
    with pytest.raises(UserError, match="data.batch_size=30 must be a multiple of 4"):
        build_nets(compose_train("model.pack=4", "data.batch_size=30"), build_data(cfg.data).info)
    with pytest.raises(UserError, match="model.pack=2: net=theta cannot build"):
        c = compose_train("data=lines", "net=theta", "model.pack=2")
        build_nets(c, build_data(c.data).info)
    tr = Trainer(compose_train("model.pack=2", "net.hidden=16", "estimate_batch=64", tmp_path=tmp_path), tmp_path)
    tr.train_step(want_norms=False)
    assert torch.isfinite(tr.estimate())


# ----------------------------------------------------------------------------- unrolled GAN


def test_unrolled_generator_gradient_matches_finite_differences():
    """G's loss after K differentiable D steps: autograd through the unroll equals central differences of
    the same function of G's parameters (float64, tiny nets), and differs from the K = 0 gradient."""
    torch.manual_seed(3)
    G = nn.Linear(2, 2).double()
    D = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0)).double()
    z, real = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64) + 1
    obj = _built("model=nsgan", "model.unroll_steps=3", "model.unroll_lr=0.5")
    assert obj.unroll_steps == 3 and obj.unroll_lr == 0.5
    obj.discriminator_loss(D, real, G(z).detach())  # the D step whose real batch the unroll uses
    D.requires_grad_(False)  # as in the loop's G step
    d_before = [p.clone() for p in D.parameters()]

    def loss(w=None, b=None):
        if w is None:
            return obj.generator_loss(D, G(z))
        return obj.generator_loss(D, z @ w.T + b)

    G.zero_grad()
    loss().backward()
    auto = torch.cat([G.weight.grad.flatten(), G.bias.grad])
    assert all(torch.equal(a, p) for a, p in zip(d_before, D.parameters()))  # D itself untouched
    theta = torch.cat([G.weight.detach().flatten(), G.bias.detach()])
    h, num = 1e-6, []
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = h
        f = [loss(t[:4].reshape(2, 2), t[4:]).item() for t in (theta + e, theta - e)]
        num.append((f[0] - f[1]) / (2 * h))
    np.testing.assert_allclose(auto.numpy(), np.array(num), rtol=1e-6, atol=1e-9)
    plain = _built("model=nsgan")
    G.zero_grad()
    plain.generator_loss(D, G(z)).backward()
    assert not torch.allclose(torch.cat([G.weight.grad.flatten(), G.bias.grad]), auto, rtol=1e-3)


def test_unroll_lr_defaults_to_ds_learning_rate_and_trains(tmp_path):
    from gan_cli.training.loop import Trainer

    assert _built("model=wgan_gp", "model.unroll_steps=2").unroll_lr == 1e-4
    tr = Trainer(compose_train("model.unroll_steps=2", "net.hidden=16", "estimate_batch=64", tmp_path=tmp_path), tmp_path)
    before = [p.clone() for p in tr.G.parameters()]
    out = tr.train_step(want_norms=True)
    assert torch.isfinite(out["grad_norm/g"]) and any(not torch.equal(a, p) for a, p in zip(before, tr.G.parameters()))
