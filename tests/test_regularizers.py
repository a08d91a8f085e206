"""Regularisers composed from ``reg=[...]`` on the one path into D: R1 (lazy, at real or box points), the WGAN-GP
penalty a preset carries, instance noise, the unrolled critic; their counters in the checkpoint; refusals.

Expected values are written out by hand (numpy or explicit autograd on tiny nets), never by calling the code
under test for the expected side.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Quadratic, compose_train
from scipy import stats
from torch import nn

from gan_cli.config import UserError
from gan_cli.training.step import DPath, discriminator_loss, generator_loss


class _Critic(nn.Module):
    """A small MLP critic that accepts (and ignores) the labels."""

    def __init__(self, width=4, dtype=torch.float64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1), nn.Flatten(0)).to(dtype)

    def forward(self, x, c=None):
        return self.net(x)


def _r1_by_hand(D, real, gamma):
    g = 2 * D.a.detach() * real + D.b.detach()
    return gamma / 2 * float((g**2).sum(1).mean())


class Step:
    """One run's objective and regularisers (built from the composed config), and D's / G's loss through a path."""

    def __init__(self, *overrides):
        from gan_cli.build import build_objective, build_regularizers

        cfg = compose_train(*overrides)
        self.objective = build_objective(cfg.model)
        self.regs = build_regularizers(cfg.reg, self.objective)

    def path(self, D, generator=None):
        return DPath(D, None, [r for r in self.regs.values() if r.has_transform], 1, generator)

    def d(self, D, real, fake, generator=None):
        return discriminator_loss(self.objective, self.regs, self.path(D, generator), real, None, fake, None)[0]

    def g(self, D, fake, real, generator=None):
        return generator_loss(self.objective, self.regs, self.path(D, generator), fake, None, real, None)


# ----------------------------------------------------------------------------- R1


def test_r1_term_is_half_gamma_times_mean_squared_input_gradient():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    D = Quadratic()
    for model in ("nsgan", "hinge", "fgan", "wgan_gp"):
        plain, obj = Step(f"model={model}"), Step(f"model={model}", "reg=[r1]", "reg.r1.gamma=3.0")
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        whole = obj.d(D, real, fake, g1)
        base = plain.d(D, real, fake, g2)  # with the preset's own regulariser (WGAN-GP's GP)
        np.testing.assert_allclose((whole - base).item(), _r1_by_hand(D, real, 3.0), rtol=1e-12, err_msg=model)


def test_r1_matches_stylegan2_ada_reference_term():
    """stylegan2-ada-pytorch training/loss.py (Dr1): r1_grads = grad(real_logits.sum(), real_img); r1_penalty =
    r1_grads.square().sum([1,2,3]); loss_Dr1 = r1_penalty * (r1_gamma / 2), averaged over the batch -- written out
    here on images with a conv critic."""
    from gan_cli.regularizers.r1 import r1_penalty

    torch.manual_seed(4)
    D = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 6 * 6, 1), nn.Flatten(0)).double()
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    gamma = 0.7
    ref_grads = torch.autograd.grad(D(x).sum(), x, create_graph=True)[0]
    ref = (ref_grads.square().sum([1, 2, 3]) * (gamma / 2)).mean()
    torch.testing.assert_close(gamma / 2 * r1_penalty(D(x), x), ref, rtol=1e-12, atol=0)


def test_fgan_tv_defaults_to_r1_0_003_at_box_points_and_an_explicit_r1_wins():
    """Without reg=[r1], f-GAN's tv row trains with its own R1 (0.003 at box points: its step-shaped optimal critic
    saturates tanh; R1 at the real samples biased the fit, gan_cli/objectives/fgan.py); no other row has one; a
    reg.r1 given, gamma 0 included, is used as given."""
    from gan_cli.regularizers import R1, box_points

    torch.manual_seed(0)
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    D = Quadratic()
    tv, tv_off = Step("model=fgan", "model.divergence=tv"), Step("model=fgan", "model.divergence=tv", "reg=[r1]",
                                                                  "reg.r1.gamma=0")
    r1 = tv.regs["r1"]
    assert isinstance(r1, R1) and (r1.gamma, r1.points, tv_off.regs["r1"].gamma) == (0.003, "box", 0.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    extra = (tv.d(D, real, fake, g1) - tv_off.d(D, real, fake)).item()
    np.testing.assert_allclose(extra, _r1_by_hand(D, box_points(real, fake, g2), 0.003), rtol=1e-12)
    for name in ("kl", "rkl", "pearson", "hellinger", "js", "gan", "neyman"):
        assert Step("model=fgan", f"model.divergence={name}").regs == {}, name
    assert Step("model=fgan", "model.divergence=tv", "reg=[r1]", "reg.r1.points=real").regs["r1"].points == "real"
    assert Step("model=nsgan").regs == {}


def test_box_points_are_uniform_over_the_box_of_real_and_fake_and_any_model_can_use_them():
    """reg.r1.points=box: the zero-centred penalty at points uniform over [min, max] per feature of the real and
    fake batch together (as many as real samples), from the train stream; with nsgan the term is
    gamma/2 E||grad D||^2 at those points (by hand); an unknown value is one line."""
    from gan_cli.regularizers import box_points

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
    D = Quadratic()
    obj, plain = Step("reg=[r1]", "reg.r1.gamma=0.4", "reg.r1.points=box"), Step()
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    extra = (obj.d(D, r, f, g1) - plain.d(D, r, f)).item()
    np.testing.assert_allclose(extra, _r1_by_hand(D, box_points(r, f, g2), 0.4), rtol=1e-12)
    with pytest.raises(UserError, match="reg.r1.points=fake is unknown: use real"):
        Step("reg=[r1]", "reg.r1.points=fake")


def test_r1_backpropagates_into_d_and_not_into_the_data():
    real = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    D = Quadratic()
    loss_r1 = Step("reg=[r1]", "reg.r1.gamma=2.0").d(D, real, real) - Step().d(D, real, real)
    loss_r1.backward()
    # R1 = (2 a x + b)^2 summed (gamma/2 = 1): d/da_j = 2 (2 a_j x_j + b_j) 2 x_j, d/db_j = 2 (2 a_j x_j + b_j)
    g = 2 * D.a.detach() * real[0] + D.b.detach()
    np.testing.assert_allclose(D.a.grad.numpy(), (4 * g * real[0]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(D.b.grad.numpy(), (2 * g).numpy(), rtol=1e-12)
    assert not real.requires_grad


def test_lazy_r1_only_every_kth_d_step_times_k_and_the_counter_is_checkpointed():
    torch.manual_seed(1)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = Quadratic()
    plain = Step("model=hinge").d(D, real, fake).item()
    obj = Step("model=hinge", "reg=[r1]", "reg.r1.gamma=0.5", "reg.r1.every=4")
    extra = [obj.d(D, real, fake).item() - plain for _ in range(9)]
    r1 = _r1_by_hand(D, real, 0.5)
    np.testing.assert_allclose(extra, [4 * r1, 0, 0, 0, 4 * r1, 0, 0, 0, 4 * r1], atol=1e-12)
    assert obj.regs["r1"].state_dict() == {"d_steps": 9}
    again = Step("model=hinge", "reg=[r1]", "reg.r1.gamma=0.5", "reg.r1.every=4")
    again.regs["r1"].load_state_dict({"d_steps": 7})
    assert [again.d(D, real, fake).item() - plain > 0 for _ in range(2)] == [False, True]


def test_refusals_are_one_line():
    from gan_cli.config import validate

    for reg in ("r1", "gp"):
        with pytest.raises(UserError, match=f"reg.{reg} with model=wgan: the weight-clipped critic") as e:
            Step("model=wgan", f"reg=[{reg}]")
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="reg.r1.every=0 is out of range"):
        validate(compose_train("reg=[r1]", "reg.r1.every=0"))
    with pytest.raises(UserError, match="reg.r1.gamma=-1.0 is out of range"):
        validate(compose_train("reg=[r1]", "reg.r1.gamma=-1"))
    with pytest.raises(UserError, match="reg.unrolled.steps=0 is out of range"):
        validate(compose_train("reg=[unrolled]", "reg.unrolled.steps=0"))


@pytest.mark.parametrize("old,new", [
    ("model.r1_gamma=10", "reg=[r1] reg.r1.gamma=10"), ("model.r1_every=16", "reg=[r1] reg.r1.every=16"),
    ("model.gp_weight=0.1", "reg.gp.weight=0.1"), ("model.instance_noise=0.2", "reg=[instance_noise] reg.instance_noise.std=0.2"),
    ("model.unroll_steps=5", "reg=[unrolled] reg.unrolled.steps=5"),
])
def test_a_moved_key_names_its_new_spelling_in_one_line(old, new):
    from gan_cli.cli.precheck import first_error

    line = first_error([old, "steps=10"])
    assert line is not None and "\n" not in line and line.startswith(f"{old} has moved: write {new}")


# ----------------------------------------------------------------------------- instance noise


def test_instance_noise_on_both_inputs_annealed_linearly_and_in_g_loss():
    torch.manual_seed(2)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = Quadratic()
    obj = Step("reg=[instance_noise]", "reg.instance_noise.std=0.5", "reg.instance_noise.steps=4")
    noise = obj.regs["instance_noise"]
    plain = Step()
    for t, sigma in enumerate([0.5, 0.375, 0.25, 0.125, 0.0, 0.0]):
        assert noise.std_now() == pytest.approx(sigma)
        g = torch.Generator().manual_seed(t)
        ref = torch.Generator().manual_seed(t)
        e_real = torch.randn(real.shape, generator=ref, dtype=torch.float64)
        e_fake = torch.randn(fake.shape, generator=ref, dtype=torch.float64)
        want = plain.d(D, real + sigma * e_real, fake + sigma * e_fake) if sigma else plain.d(D, real, fake)
        gl = torch.Generator().manual_seed(100 + t)
        e_g = torch.randn(fake.shape, generator=torch.Generator().manual_seed(100 + t), dtype=torch.float64)
        torch.testing.assert_close(obj.g(D, fake, real, gl), plain.g(D, fake + sigma * e_g, real))
        torch.testing.assert_close(obj.d(D, real, fake, g), want)
    const = Step("reg=[instance_noise]", "reg.instance_noise.std=0.2")
    for _ in range(3):
        const.d(D, real, fake)
    assert const.regs["instance_noise"].std_now() == 0.2
    # off: no draw from the train stream at all (trajectories of runs without noise are unchanged)
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    plain.d(D, real, fake, g), plain.g(D, fake, real, g)
    assert torch.equal(g.get_state(), state)


def test_penalties_see_d_through_the_noise_on_the_path():
    """The gradient penalty's interpolates go through the path into D as D's loss does: with instance noise its
    critic is D(x + noise), the noise drawn after the interpolation's eps from the same stream."""
    from gan_cli.regularizers import interpolates

    torch.manual_seed(6)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    D = Quadratic()
    noisy = Step("model=wgan_gp", "reg=[instance_noise]", "reg.instance_noise.std=0.3")
    loss = noisy.d(D, real, fake, torch.Generator().manual_seed(11))
    ref = torch.Generator().manual_seed(11)
    e_real = torch.randn(real.shape, generator=ref, dtype=torch.float64)
    e_fake = torch.randn(fake.shape, generator=ref, dtype=torch.float64)
    x_hat = interpolates(real, fake, ref)
    e_hat = torch.randn(real.shape, generator=ref, dtype=torch.float64)
    grad = 2 * D.a.detach() * (x_hat + 0.3 * e_hat) + D.b.detach()  # grad_x D(x + 0.3 e) at the interpolates
    want = (D(fake + 0.3 * e_fake).mean() - D(real + 0.3 * e_real).mean()).item() \
        + 10.0 * float(((grad.norm(dim=1) - 1) ** 2).mean())
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)


# ----------------------------------------------------------------------------- unrolled GAN


def test_unrolled_generator_gradient_matches_finite_differences():
    """G's loss after K differentiable D steps: autograd through the unroll equals central differences of
    the same function of G's parameters (float64, tiny nets), and differs from the K = 0 gradient."""
    torch.manual_seed(3)
    G = nn.Linear(2, 2).double()
    D = _Critic()
    z, real = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64) + 1
    obj = Step("reg=[unrolled]", "reg.unrolled.steps=3", "reg.unrolled.lr=0.5")
    assert (obj.regs["unrolled"].steps, obj.regs["unrolled"].lr) == (3, 0.5)
    D.requires_grad_(False)  # as in the loop's G step
    d_before = [p.clone() for p in D.parameters()]

    def loss(w=None, b=None):
        return obj.g(D, G(z) if w is None else z @ w.T + b, real)

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
    G.zero_grad()
    Step().g(D, G(z), real).backward()
    assert not torch.allclose(torch.cat([G.weight.grad.flatten(), G.bias.grad]), auto, rtol=1e-3)


def test_unroll_lr_defaults_to_ds_learning_rate_and_trains(tmp_path):
    from gan_cli.training.loop import build_trainer

    assert Step("model=wgan_gp", "reg=[unrolled]", "reg.unrolled.steps=2").regs["unrolled"].lr == 1e-4
    tr = build_trainer(compose_train("reg=[unrolled]", "reg.unrolled.steps=2", "net.hidden=16", "estimate_batch=64",
                                     tmp_path=tmp_path), tmp_path)
    before = [p.clone() for p in tr.G.parameters()]
    out = tr.train_step(want_norms=True)
    assert torch.isfinite(out["grad_norm/g"]) and any(not torch.equal(a, p) for a, p in zip(before, tr.G.parameters()))


# ----------------------------------------------------------------------------- in a run, and resumed


COMBO = ["model=hinge", "reg=[r1,instance_noise]", "reg.r1.gamma=1.0", "reg.r1.every=3", "reg.instance_noise.std=0.1",
         "reg.instance_noise.steps=20", "net.spectral_norm=true", "ema.beta=0.9",
         "steps=12", "log_every=4", "image_every=0", "estimate_batch=64", "keep_ckpts=10", "ckpt_every=0",
         "net.hidden=32", "net.depth=2", "metrics=none"]


def _last_state(run_dir):
    from gan_cli.runs.checkpoint import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(run_dir)[-1])


def test_resume_restores_ema_lazy_r1_and_noise_schedule_bit_identically(tmp_path, one_torch_thread):
    import os
    import signal

    from gan_cli.cli.train import train
    from gan_cli.training.loop import Interrupted, build_trainer

    full, part = tmp_path / "full", tmp_path / "part"
    train(compose_train(*COMBO, tmp_path=full))
    tr = build_trainer(compose_train(*COMBO, tmp_path=part), part)

    def progress(step, host):
        if step == 5:  # off every cadence, and between two lazy R1 steps (D steps 3 and 6)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        tr.run(progress)
    mid = _last_state(part)
    assert mid["step"] == 5 and mid["regularizers"] == {"r1": {"d_steps": 5}, "instance_noise": {"d_steps": 5}}
    assert "generator_ema" in mid
    train(compose_train(*COMBO, f"resume={part}"), overrides=[f"resume={part}"])
    a, b = _last_state(full), _last_state(part)
    assert a["step"] == b["step"] == 12 and a["regularizers"] == b["regularizers"]
    assert a["regularizers"]["r1"] == {"d_steps": 12}
    for net in ("generator", "generator_ema", "discriminator"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    assert any(not torch.equal(a["generator"][k], a["generator_ema"][k]) for k in a["generator"])
    assert any("parametrizations.weight.original" in k for k in a["discriminator"])  # spectral norm on D


def test_a_checkpoint_of_the_earlier_layout_resumes(tmp_path, one_torch_thread):
    """A run saved before regularisers were a list (model.r1_gamma, the objective's d_calls counter, PacGAN's D
    wrapped as ``inner.``) resumes and ends where the same run of today's layout ends."""
    from gan_cli.cli.train import train
    from gan_cli.runs.checkpoint import list_checkpoints, save_checkpoint

    args = ["model.pack=2", "reg=[r1]", "reg.r1.gamma=0.5", "reg.r1.every=2", "steps=6", "log_every=3", "ckpt_every=3",
            "keep_ckpts=5", "image_every=0", "estimate_batch=64", "net.hidden=16", "metrics=none"]
    today, old = tmp_path / "today", tmp_path / "old"
    train(compose_train(*args, tmp_path=today))
    train(compose_train(*[a for a in args if a != "steps=6"], "steps=3", tmp_path=old))
    state = _last_state(old)
    cfg = state["config"]
    cfg["model"].update(r1_gamma=0.5, r1_every=2, r1_points="real", instance_noise=0.0, instance_noise_steps=0,
                        unroll_steps=0, unroll_lr=0.0)
    for key in ("reg", "augment", "logger"):
        cfg.pop(key)
    state["objective"] = {"d_calls": state.pop("regularizers")["r1"]["d_steps"]}
    state["discriminator"] = {f"inner.{k}": v for k, v in state["discriminator"].items()}
    save_checkpoint(list_checkpoints(old)[-1], state)
    (old / "status.json").write_text('{"state": "interrupted", "step": 3}')
    train(compose_train(f"resume={old}", "steps=6"), overrides=[f"resume={old}", "steps=6"])
    a, b = _last_state(today), _last_state(old)
    for net in ("generator", "discriminator"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
