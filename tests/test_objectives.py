"""Closed-form and reference checks for gan_cli.objectives.

Expected values are written out with numpy from the papers' formulas
(Goodfellow et al. 2014; Nowozin et al. 2016, Tables 1-2; Arjovsky et al. 2017;
Gulrajani et al. 2017), never by calling the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gan_cli.config import UserError
from gan_cli.objectives import DIVERGENCES, FGAN, GAN, NSGAN, WGAN, Wasserstein
from gan_cli.regularizers import GradientPenalty, gradient_penalty

ROWS = ["kl", "rkl", "pearson", "hellinger", "js", "gan", "tv", "neyman"]
REAL = np.array([0.5, -1.0, 2.0, 0.25])
FAKE = np.array([-0.3, 1.5, 0.0])


def t64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def close(a, b, rtol=1e-10, atol=1e-12):
    a, b = (x.detach() if isinstance(x, torch.Tensor) else x for x in (a, b))
    np.testing.assert_allclose(float(a), float(b), rtol=rtol, atol=atol)


# --- the paper's Table 2 in numpy: (g_f(v), f*(t), upper end of dom f*, closed?) ---------------
NP_TABLE = {
    "kl": (lambda v: v, lambda t: np.exp(t - 1), np.inf, False),
    "rkl": (lambda v: -np.exp(-v), lambda t: -1 - np.log(-t), 0.0, False),
    "pearson": (lambda v: v, lambda t: t**2 / 4 + t, np.inf, False),
    "hellinger": (lambda v: 1 - np.exp(-v), lambda t: t / (1 - t), 1.0, False),
    "js": (lambda v: np.log(2) - np.log1p(np.exp(-v)), lambda t: -np.log(2 - np.exp(t)), np.log(2), False),
    "gan": (lambda v: -np.log1p(np.exp(-v)), lambda t: -np.log(1 - np.exp(t)), 0.0, False),
    "tv": (lambda v: 0.5 * np.tanh(v), lambda t: t, 0.5, True),
    "neyman": (lambda v: 1 - np.exp(-v), lambda t: 2 - 2 * np.sqrt(1 - t), 1.0, False),
}
# f'(1) from Nowozin et al. Table 2.
THRESHOLD = {"kl": 1.0, "rkl": -1.0, "pearson": 0.0, "hellinger": 0.0, "js": 0.0,
             "gan": -math.log(2), "tv": 0.0, "neyman": 0.0}


# ----------------------------------------------------------------------------- built from the YAMLs
def _built(*overrides):
    from gan_cli.build import build_objective
    from conftest import compose_train

    return build_objective(compose_train(*overrides).model)


def test_objectives_built_from_their_yaml():
    assert type(_built("model=gan")) is GAN
    assert type(_built("model=nsgan")) is NSGAN
    w = _built("model=wgan")
    assert type(w) is WGAN and w.clip == 0.01 and w.n_critic == 5
    assert (w.warmup_critic_steps, w.warmup_g_steps, w.warmup_every) == (100, 25, 500)
    gp = _built("model=wgan_gp")
    assert type(gp) is Wasserstein and gp.n_critic == 5  # and the penalty as its regulariser:
    from gan_cli.build import build_regularizers
    from conftest import compose_train

    regs = build_regularizers(compose_train("model=wgan_gp").reg, gp)
    assert list(regs) == ["gp"] and type(regs["gp"]) is GradientPenalty and regs["gp"].weight == 10.0
    obj = _built("model=fgan", "model.divergence=js")
    assert isinstance(obj, FGAN) and obj.div.name == "js" and obj.estimate_tag == "estimate/fdiv_js"
    assert _built("model=gan").estimate_tag == "estimate/jsd"
    assert _built("model=wgan_gp").estimate_tag == "estimate/w"
    with pytest.raises(UserError, match="model.divergence"):
        _built("model=fgan", "model.divergence=jeffreys")


def test_fgan_config_names_only_table_rows():
    from conftest import compose_train

    assert compose_train("model=fgan").model.divergence in DIVERGENCES
    assert sorted(DIVERGENCES) == sorted(ROWS)


# ------------------------------------------------------------------- hand-computed loss values
def _np_log_d(v):  # log sigmoid(v) written from D = 1 / (1 + e^-v)
    return np.log(1.0 / (1.0 + np.exp(-v)))


def _np_log_1md(v):  # log(1 - sigmoid(v))
    return np.log(1.0 - 1.0 / (1.0 + np.exp(-v)))


def test_gan_and_nsgan_values():
    V = _np_log_d(REAL).mean() + _np_log_1md(FAKE).mean()
    for obj in (GAN(), NSGAN()):
        close(obj.d_loss(t64(REAL), t64(FAKE)), -V)
        close(obj.estimate(t64(REAL), t64(FAKE)), (V + np.log(4)) / 2)
    close(GAN().g_loss(t64(FAKE)), _np_log_1md(FAKE).mean())
    close(NSGAN().g_loss(t64(FAKE)), -_np_log_d(FAKE).mean())


def test_gan_values_at_known_points():
    zeros = torch.zeros(5, dtype=torch.float64)
    # D = 1/2 everywhere: V = -log 4, JSD estimate 0.
    close(GAN().d_loss(zeros, zeros), 1.3862943611198906)
    close(GAN().estimate(zeros, zeros), 0.0, atol=1e-15)
    close(GAN().g_loss(zeros), -0.6931471805599453)
    close(NSGAN().g_loss(zeros), 0.6931471805599453)
    # Perfect separation: the estimate approaches its maximum log 2, finite in float32.
    big = torch.full((5,), 60.0)
    est = GAN().estimate(big, -big)
    assert torch.isfinite(est) and abs(float(est) - math.log(2)) < 1e-6
    assert torch.isfinite(GAN().d_loss(-big, big)) and torch.isfinite(NSGAN().g_loss(-big))


@pytest.mark.parametrize("row", ROWS)
def test_fgan_values(row):
    g, fstar, _, _ = NP_TABLE[row]
    F_ = g(REAL).mean() - fstar(g(FAKE)).mean()  # composed, not the simplified form
    obj = FGAN(row)
    close(obj.estimate(t64(REAL), t64(FAKE)), F_, rtol=1e-9)
    close(obj.d_loss(t64(REAL), t64(FAKE)), -F_, rtol=1e-9)
    close(obj.g_loss(t64(FAKE)), -g(FAKE).mean(), rtol=1e-9)


def test_fgan_kl_by_hand():
    # kl: g_f(v) = v (no sigmoid!), f*(t) = exp(t - 1).
    real, fake = t64([0.0, 2.0]), t64([1.0, 1.0])
    close(FGAN("kl").estimate(real, fake), 1.0 - 1.0)
    close(FGAN("kl").g_loss(fake), -1.0)
    # rkl at v = 0: g = -1, f*(-1) = -1 -> F = -1 - (-1) = 0; g_loss = 1.
    z = t64([0.0])
    close(FGAN("rkl").estimate(z, z), 0.0)
    close(FGAN("rkl").g_loss(z), 1.0)


def test_fgan_gan_row_is_the_gan_value_function():
    # The "gan" row's F is Goodfellow's V = 2 * JSD-estimate - log 4.
    F_ = FGAN("gan").estimate(t64(REAL), t64(FAKE))
    close(F_, 2 * GAN().estimate(t64(REAL), t64(FAKE)) - np.log(4))
    # ... and its practical G loss is the non-saturating loss.
    close(FGAN("gan").g_loss(t64(FAKE)), NSGAN().g_loss(t64(FAKE)))


def test_wasserstein_values():
    real, fake = t64([1.0, 2.0, 3.0]), t64([0.5, 1.5])
    w = Wasserstein()
    close(w.d_loss(real, fake), 1.0 - 2.0)
    close(w.g_loss(fake), -1.0)
    close(w.estimate(real, fake), 2.0 - 1.0)


# ------------------------------------------------------------------------------- table checks
@pytest.mark.parametrize("row", ROWS)
def test_f_is_a_proper_generator(row):
    d = DIVERGENCES[row]
    # f(1) = 0, except Nowozin's GAN generator, whose D_f = 2 JSD - log 4 is offset by f(1) = -log 4
    close(d.f(t64(1.0)), -np.log(4) if row == "gan" else 0.0, atol=1e-15)
    u = t64(np.linspace(0.05, 6.0, 400))
    fu = d.f(u).numpy()
    assert np.all(fu[:-2] - 2 * fu[1:-1] + fu[2:] >= -1e-12), "f must be convex"
    # f' is the derivative of f (central differences; tv away from its kink).
    u = t64([0.2, 0.7, 1.3, 4.0])
    h = 1e-6
    fd = (d.f(u + h) - d.f(u - h)) / (2 * h)
    np.testing.assert_allclose(d.f_prime(u).numpy(), fd.numpy(), rtol=1e-6, atol=1e-8)
    close(d.threshold, THRESHOLD[row], atol=1e-15)


# sample points t strictly inside dom f*
T_POINTS = {
    "kl": [-3.0, -1.0, 0.0, 1.0, 2.0],
    "rkl": [-5.0, -1.0, -0.3],
    "pearson": [-1.5, -0.5, 0.0, 1.0, 3.0],  # > -2 so the maximiser u = 1 + t/2 is > 0
    "hellinger": [-3.0, -0.5, 0.0, 0.5, 0.9],
    "js": [-3.0, -0.5, 0.0, 0.4, 0.65],
    "gan": [-4.0, -1.0, -0.3, -0.05],
    "tv": [-0.5, -0.3, 0.0, 0.2, 0.5],
    "neyman": [-3.0, -0.5, 0.0, 0.5, 0.9],
}
U_GRID = np.union1d(np.logspace(-10, 10, 400_001), [1.0])


def _numerical_conjugate(d, t, u=U_GRID):
    fu = d.f(t64(u)).numpy()
    return np.max(u[None, :] * np.asarray(t)[:, None] - fu[None, :], axis=1)


@pytest.mark.parametrize("row", ROWS)
def test_conjugate_is_the_convex_conjugate_of_f(row):
    d = DIVERGENCES[row]
    t = np.array(T_POINTS[row])
    np.testing.assert_allclose(d.conjugate(t64(t)).numpy(), _numerical_conjugate(d, t),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d.conjugate(t64(t)).numpy(), NP_TABLE[row][1](t), rtol=1e-10)
    upper = NP_TABLE[row][2]
    if np.isfinite(upper):  # just beyond dom f* the supremum is unbounded
        beyond = np.array([upper + 0.1])
        small = _numerical_conjugate(d, beyond, np.logspace(-10, 4, 10_001))
        large = _numerical_conjugate(d, beyond, np.logspace(-10, 8, 10_001))
        assert large[0] > 1e5 and large[0] > 100 * abs(small[0])


@pytest.mark.parametrize("row", ROWS)
def test_activation_maps_R_into_dom_fstar(row):
    d = DIVERGENCES[row]
    _, fstar, upper, closed = NP_TABLE[row]
    v = t64(np.linspace(-30, 30, 6001))
    t = d.activation(v).numpy()
    assert np.all(np.isfinite(t))
    assert np.all(t <= upper) if closed else np.all(t < upper)
    if row == "tv":
        assert np.all(t >= -0.5)
    assert np.all(np.diff(t) >= 0), "g_f must be non-decreasing"
    # the simplified f*(g_f(v)) agrees with the composition (moderate v, no overflow)
    v = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(d.conj_activation(t64(v)).numpy(), fstar(NP_TABLE[row][0](v)),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.conjugate(d.activation(t64(v))).numpy(), fstar(NP_TABLE[row][0](v)),
                               rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------- tightness of the bound
# P = N(0, 1) (data), Q = N(1, 1.2^2) (model).  sigma_Q = 1.5 would make Neyman chi^2
# infinite (int q^2/p diverges unless sigma_P^2 > sigma_Q^2 / 2), so 1.2 keeps all rows finite.
MU_P, S_P, MU_Q, S_Q = 0.0, 1.0, 1.0, 1.2
X = np.linspace(-25, 25, 400_001)


def _logpdf(x, mu, s):
    return -0.5 * ((x - mu) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))


LOG_P, LOG_Q = _logpdf(X, MU_P, S_P), _logpdf(X, MU_Q, S_Q)
P, Q = np.exp(LOG_P), np.exp(LOG_Q)
U = np.exp(LOG_P - LOG_Q)  # p/q


def _integrate(y):
    return np.trapezoid(y, X)


def _kl_gauss(m0, s0, m1, s1):
    return np.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5


def _reference_divergence(row):
    """D_f(P||Q) by closed form or by a quadrature that does not use f."""
    M = (P + Q) / 2
    two_jsd = _integrate(P * np.log(P / M)) + _integrate(Q * np.log(Q / M))
    if row == "kl":
        return _kl_gauss(MU_P, S_P, MU_Q, S_Q)
    if row == "rkl":
        return _kl_gauss(MU_Q, S_Q, MU_P, S_P)
    if row == "pearson":
        return _integrate(P**2 / Q) - 1
    if row == "neyman":
        return _integrate(Q**2 / P) - 1
    if row == "hellinger":  # int (sqrt p - sqrt q)^2 = 2 - 2 * Bhattacharyya coefficient
        var = S_P**2 + S_Q**2
        bc = np.sqrt(2 * S_P * S_Q / var) * np.exp(-((MU_P - MU_Q) ** 2) / (4 * var))
        return 2 - 2 * bc
    if row == "js":
        return two_jsd
    if row == "gan":
        return two_jsd - np.log(4)
    if row == "tv":
        return 0.5 * _integrate(np.abs(P - Q))
    raise KeyError(row)


# The optimal logit v* = g_f^{-1}(f'(p/q)), solved by hand per row (finite everywhere).
V_STAR = {
    "kl": lambda u: np.log(u) + 1,
    "rkl": lambda u: np.log(u),
    "pearson": lambda u: 2 * (u - 1),
    "hellinger": lambda u: 0.5 * np.log(u),
    "js": lambda u: np.log(u),
    "gan": lambda u: np.log(u),
    "neyman": lambda u: 2 * np.log(u),
    # tv: T* = sign(p - q)/2 sits on the edge of dom f*, so v* = +-inf; approach it.
    "tv": lambda u: 40.0 * np.sign(np.log(u)),
}


def _bound(obj, v):
    """F = E_P[g_f(v)] - E_Q[f*(g_f(v))] by quadrature, through the objective's own terms."""
    return _integrate(P * obj.real_term(t64(v)).numpy()) - _integrate(Q * obj.fake_term(t64(v)).numpy())


@pytest.mark.parametrize("row", ROWS)
def test_variational_bound_is_tight_at_the_optimal_critic(row):
    d, obj = DIVERGENCES[row], FGAN(row)
    ref = _reference_divergence(row)
    assert np.isfinite(ref) and ref > -np.log(4)
    # D_f = E_Q f(p/q) with the table's f matches the independent reference.
    close(_integrate(Q * d.f(t64(U)).numpy()), ref, rtol=1e-7, atol=1e-9)
    # T* = f'(p/q): the bound through f* is tight.
    t_star = d.f_prime(t64(U))
    tight = _integrate(P * t_star.numpy()) - _integrate(Q * d.conjugate(t_star).numpy())
    close(tight, ref, rtol=1e-7, atol=1e-9)
    # The hand-inverted logit is finite, g_f maps it to T*, and the loss path is tight too.
    v_star = V_STAR[row](U)
    assert np.all(np.isfinite(v_star))
    if row != "tv":
        np.testing.assert_allclose(d.activation(t64(v_star)).numpy(), t_star.numpy(), rtol=1e-9, atol=1e-12)
    close(_bound(obj, v_star), ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("row", ROWS)
def test_variational_bound_is_strictly_below_for_a_suboptimal_critic(row):
    ref = _reference_divergence(row)
    v = 0.5 * np.log(U) + 0.3  # not g_f^{-1}(f'(p/q)) for any row
    F_ = _bound(FGAN(row), v)
    assert np.isfinite(F_) and F_ < ref - 1e-3


# --------------------------------------------------------------------------- gradient penalty
class Linear(nn.Module):
    """D(x) = <w, flatten(x)> + b, so grad_x D = w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.lin = nn.Linear(len(w), 1, dtype=torch.float64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w], dtype=torch.float64))
            self.lin.bias.fill_(0.7)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


class Quadratic(nn.Module):
    """D(x) = a ||x||^2 / 2, so grad_x D = a x; records its inputs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.8, dtype=torch.float64))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return 0.5 * self.a * (x.flatten(1) ** 2).sum(1)


def _batch(seed, shape=(6, 1, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def test_gradient_penalty_linear_critic():
    real, fake = _batch(0), _batch(1)
    unit = Linear([0.5, 0.5, 0.5, 0.5])  # ||w|| = 1
    close(gradient_penalty(unit, real, fake, torch.Generator().manual_seed(0)), 0.0, atol=1e-14)
    D = Linear([3.0, 4.0, 0.0, 0.0])  # ||w|| = 5
    gp = gradient_penalty(D, real, fake, torch.Generator().manual_seed(0))
    close(gp, (5.0 - 1.0) ** 2)
    # gradient reaches D's parameters: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    gp.backward()
    np.testing.assert_allclose(D.lin.weight.grad.numpy()[0], [4.8, 6.4, 0.0, 0.0], rtol=1e-12)


def test_gradient_penalty_interpolates_per_sample_and_uses_the_generator():
    real, fake = _batch(2), _batch(3)
    D = Quadratic()
    gp = gradient_penalty(D, real, fake, torch.Generator().manual_seed(5))
    x_hat = D.seen[-1]
    # one eps per sample, in [0, 1], constant across that sample's entries
    ratio = ((x_hat - fake) / (real - fake)).flatten(1)
    eps = ratio[:, 0]
    assert torch.allclose(ratio, eps[:, None].expand_as(ratio), rtol=1e-9, atol=1e-12)
    assert torch.all((eps >= 0) & (eps <= 1)) and eps.std() > 0
    norms = 0.8 * x_hat.flatten(1).norm(dim=1).numpy()
    close(gp, np.mean((norms - 1) ** 2))
    gp.backward()  # d/da mean (a r - 1)^2 = mean 2 (a r - 1) r
    r = norms / 0.8
    close(D.a.grad, np.mean(2 * (0.8 * r - 1) * r), rtol=1e-9)
    # same generator seed -> same penalty; another seed -> another one
    same = gradient_penalty(D, real, fake, torch.Generator().manual_seed(5))
    other = gradient_penalty(D, real, fake, torch.Generator().manual_seed(6))
    close(same, gp, rtol=1e-14)
    assert abs(other.item() - gp.item()) > 1e-6


def test_gradient_penalty_does_not_reach_the_generator():
    theta = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    fake = theta * _batch(4)
    D = Quadratic()  # its input gradient depends on x_hat, so x_hat -> theta would carry gradient
    gp = gradient_penalty(D, _batch(5), fake)
    gp.backward()
    assert theta.grad is None and D.a.grad is not None


# --------------------------------------------------------------------------- gradient directions
def _grad(fn, v):
    v = t64(v).requires_grad_(True)
    fn(v).backward()
    return v.grad.numpy()


def test_minimax_generator_gradient_saturates_nonsaturating_does_not():
    v = np.full(4, -10.0)  # D confidently rejects the fakes
    g_mm = _grad(GAN().g_loss, v)
    g_ns = _grad(NSGAN().g_loss, v)
    sig = 1 / (1 + np.exp(10.0))
    np.testing.assert_allclose(g_mm, -sig / 4, rtol=1e-9)  # ~ -1e-5: vanishes
    np.testing.assert_allclose(g_ns, -(1 - sig) / 4, rtol=1e-9)  # ~ -1/4 per sample
    assert np.all(np.abs(g_mm) < 1e-4 * np.abs(g_ns))
    # both push the fake logit up (gradient descent increases v)
    assert np.all(g_mm < 0) and np.all(g_ns < 0)


ALL_OBJECTIVES = [GAN(), NSGAN(), Wasserstein()] + [FGAN(r) for r in ROWS]


@pytest.mark.parametrize("obj", ALL_OBJECTIVES, ids=repr)
def test_loss_gradient_directions(obj):
    real = np.array([-1.0, -0.2, 0.4, 1.0])
    fake = np.array([-0.8, 0.0, 0.7])
    # D lowers its loss by raising real outputs and lowering fake outputs.
    assert np.all(_grad(lambda r: obj.d_loss(r, t64(fake)), real) < 0)
    assert np.all(_grad(lambda f: obj.d_loss(t64(real), f), fake) > 0)
    # G lowers its loss by raising the fake outputs.
    assert np.all(_grad(obj.g_loss, fake) < 0)
    # d_loss is minus the estimate wherever the estimate is the D objective
    if not isinstance(obj, GAN):
        close(obj.d_loss(t64(real), t64(fake)), -obj.estimate(t64(real), t64(fake)))


# ----------------------------------------------------------------- tv and neyman at extreme outputs
EXTREME = [-1e30, -1e4, -80.0, -30.0, -1.0, 0.0, 1.0, 30.0, 80.0, 1e4, 1e30]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tv_activation_stays_in_dom_fstar_for_any_v(dtype):
    """tv: g_f(v) = tanh(v)/2 lies in dom f* = [-1/2, 1/2] for every v, and f*(g_f(v)) = g_f(v) is finite."""
    d = DIVERGENCES["tv"]
    v = torch.tensor(EXTREME + [-math.inf, math.inf], dtype=dtype)
    t, ft = d.activation(v), d.conj_activation(v)
    assert torch.all(t.abs() <= 0.5) and torch.all(torch.isfinite(ft))
    assert torch.equal(ft, t) and t[0] == -0.5 and t[-1] == 0.5
    obj = FGAN("tv")
    assert torch.isfinite(obj.d_loss(v, v.flip(0))) and torch.isfinite(obj.g_loss(v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_neyman_activation_stays_below_one_and_its_conjugate_finite(dtype):
    """neyman: g_f(v) = 1 - exp(-v) < 1 = sup dom f*; f*(g_f(v)) = 2 - 2 exp(-v/2) is finite wherever
    exp(-v/2) is representable, tends to f*(1) = 2 for large v (rounding may give T = 1.0 there, where
    f* is still 2: no division by 1 - T anywhere), and to -inf as v -> -inf, its exact limit (Neyman chi^2
    is infinite where Q has mass and P has none): never NaN."""
    d = DIVERGENCES["neyman"]
    big = 80.0 if dtype == torch.float32 else 700.0
    v = torch.tensor([x for x in EXTREME if abs(x) <= big] + [-big, big], dtype=dtype)
    t, ft = d.activation(v), d.conj_activation(v)
    assert torch.all(t <= 1) and torch.all(t[v <= 15] < 1) and torch.all(torch.isfinite(t))
    assert torch.all(torch.isfinite(ft)) and torch.all(ft <= 2)
    close(d.conj_activation(torch.tensor(1e30, dtype=dtype)), 2.0)
    vv = torch.tensor([-1e30, -1e4, 1e4, 1e30, -math.inf, math.inf], dtype=dtype)
    assert not torch.isnan(d.activation(vv)).any() and not torch.isnan(d.conj_activation(vv)).any()
    # the simplified f*(g_f(v)) agrees with the table's f*(t) = 2 - 2 sqrt(1 - t) where t is not rounded to 1
    mid = torch.linspace(-30, 15, 91, dtype=torch.float64)
    np.testing.assert_allclose(d.conj_activation(mid).numpy(), (2 - 2 * np.sqrt(1 - (1 - np.exp(-mid.numpy())))),
                               rtol=1e-9)


@pytest.mark.parametrize("row", ROWS)
def test_fgan_saddle_and_practical_generator_losses(row):
    """saddle: G minimises F, whose fake-side part is -E_Q f*(g_f(V)); practical: -E_Q g_f(V)."""
    g, fstar = NP_TABLE[row][0], NP_TABLE[row][1]
    close(FGAN(row, g_objective="saddle").g_loss(t64(FAKE)), -np.mean(fstar(g(FAKE))), rtol=1e-9)
    close(FGAN(row).g_loss(t64(FAKE)), -np.mean(g(FAKE)), rtol=1e-9)
    # the saddle generator and the discriminator play one zero-sum game on the fake side
    obj = FGAN(row, g_objective="saddle")
    close(obj.d_loss(t64(REAL), t64(FAKE)) + obj.g_loss(t64(FAKE)), -np.mean(g(REAL)), rtol=1e-9)
