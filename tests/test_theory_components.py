"""Modern GAN components: hinge loss, spectral norm, EMA of G, PacGAN packing (R1 and the other regularisers:
tests/test_regularizers.py).

Expected values are written out by hand (numpy or explicit autograd on tiny nets), never by calling
the code under test for the expected side.
"""
from __future__ import annotations

import numpy as np
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


def _last_state(run_dir):
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(run_dir)[-1])


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


# ----------------------------------------------------------------------------- PacGAN packing


def test_pack_builds_d_for_m_concatenated_samples_and_the_path_packs(tmp_path):
    from gan_cli.build import build_data, build_nets
    from gan_cli.training.loop import build_trainer
    from gan_cli.training.step import DPath

    cfg = compose_train("net=mlp", "model.pack=4", "data.batch_size=32", "net.hidden=16")
    G, D = build_nets(cfg, build_data(cfg.data).info)
    assert D.net[0].in_features == 4 * 2  # m * d features
    seen = []
    D.net[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = torch.arange(24.0).reshape(12, 2)
    assert DPath(D, pack=4)(x).shape == (3,)
    torch.testing.assert_close(seen[0][1], torch.arange(8.0, 16.0))  # tuple 1 = samples 4..7, concatenated
    assert G(torch.randn(5, G.latent_dim), None).shape == (5, 2)  # G is not packed
    cfg = compose_train("data=digits", "net=dcgan", "model.pack=2", "net.channels=8")
    _, D = build_nets(cfg, build_data(cfg.data).info)
    assert D.net[0].in_channels == 2 and DPath(D, pack=2)(torch.randn(6, 1, 8, 8)).shape == (3,)
    with pytest.raises(UserError, match="data.batch_size=30 must be a multiple of 4"):
        build_nets(compose_train("model.pack=4", "data.batch_size=30"), build_data(cfg.data).info)
    with pytest.raises(UserError, match="model.pack=2: net=theta cannot build"):
        c = compose_train("data=lines", "net=theta", "model.pack=2")
        build_nets(c, build_data(c.data).info)
    tr = build_trainer(compose_train("model.pack=2", "net.hidden=16", "estimate_batch=64", tmp_path=tmp_path), tmp_path)
    assert tr.path.pack == 2
    tr.train_step(want_norms=False)
    assert torch.isfinite(tr.estimate())
