"""Reference and closed-form checks for the metric math in gan_cli.metrics.

Each metric is compared with the installed reference package it claims to match
(pytorch-fid 0.3.0, torch-fidelity 0.4.0, prdc 0.2) on the same features, and with
closed forms where one exists (FID of two known Gaussians, IS of confident balanced
predictions, coverage 1 - 2^-k for identical distributions, W1 of a translation).
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.spatial.distance
import scipy.stats
import torch

from gan_cli.config import UserError
from gan_cli.metrics import prdc as prdc_mod
from gan_cli.metrics.critic_w import critic_w1
from gan_cli.metrics.fid import StreamingStats, features_to_stats, stats_to_fid
from gan_cli.metrics.inception_score import inception_score
from gan_cli.metrics.kid import kid
from gan_cli.metrics.prdc import knn_radii, prdc
from gan_cli.metrics.toy import gaussian_fit, mode_metrics, w1_1d, w1_exact


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def ref_fid(mu1, s1, mu2, s2):
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():  # scipy >= 1.16 deprecates sqrtm(disp=...), which pytorch-fid passes
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def correlated_features(rng, n, d, shift=0.0, scale=1.0):
    """Non-negative, correlated, Inception-pool3-like features (ReLU of mixed Gaussians)."""
    mix = rng.standard_normal((d, d)) / math.sqrt(d)
    z = rng.standard_normal((n, d)) @ mix * scale + shift
    return np.maximum(z + 0.3, 0.0)


# ---------------------------------------------------------------- FID


def test_streaming_stats_equal_np_cov_with_mixed_batches_and_large_offset():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 16)) * np.linspace(0.1, 3, 16) + 1e4  # big mean: tests the shift
    st = StreamingStats()
    for i, chunk in enumerate(np.array_split(x, 7)):
        st.update(torch.from_numpy(chunk) if i % 2 else chunk)
    mu, sigma = st.finalize()
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    mu2, sigma2 = features_to_stats(torch.from_numpy(x))
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-10, atol=1e-10)


def test_streaming_stats_accumulates_float32_batches_in_float64():
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(0)) * 1e-3 + 1.0
    mu, sigma = features_to_stats(x)  # float32 input, statistics in float64
    x64 = x.double().numpy()
    np.testing.assert_allclose(sigma, np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("n,d", [(10, 16), (16, 16)])
def test_fid_stats_need_more_samples_than_dimensions(n, d):
    x = np.random.default_rng(0).standard_normal((n, d))
    with pytest.raises(UserError, match=rf"metrics.num_samples >= {d + 1}"):
        features_to_stats(x)
    with pytest.raises(UserError, match="more samples than feature dimensions"):
        StreamingStats().update(x).finalize()
    features_to_stats(np.random.default_rng(0).standard_normal((d + 1, d)))  # d+1 is enough


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_equals_pytorch_fid_on_well_conditioned_covariances(seed):
    rng = np.random.default_rng(seed)
    d = 64
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T / d + 0.5 * np.eye(d), b @ b.T / d + 0.1 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    ours = stats_to_fid(mu1, s1, mu2, s2)
    assert rel(ours, ref_fid(mu1, s1, mu2, s2)) <= 1e-6
    assert rel(stats_to_fid(mu2, s2, mu1, s1), ours) <= 1e-9  # FID is symmetric


def test_fid_equals_pytorch_fid_on_realistic_256d_statistics():
    rng = np.random.default_rng(3)
    m1, s1 = features_to_stats(correlated_features(rng, 1000, 256))
    m2, s2 = features_to_stats(correlated_features(rng, 1000, 256, shift=0.05, scale=1.1))
    ours = stats_to_fid(m1, s1, m2, s2)
    assert ours > 0
    assert rel(ours, ref_fid(m1, s1, m2, s2)) <= 1e-6


@pytest.mark.slow
def test_fid_equals_pytorch_fid_on_2048d_statistics_from_5000_samples():
    rng = np.random.default_rng(4)
    m1, s1 = features_to_stats(correlated_features(rng, 5000, 2048))
    m2, s2 = features_to_stats(correlated_features(rng, 5000, 2048, shift=0.02))
    assert rel(stats_to_fid(m1, s1, m2, s2), ref_fid(m1, s1, m2, s2)) <= 1e-6


def test_fid_closed_form_for_commuting_gaussians():
    # Diagonal covariances commute: FID = ||mu1-mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0.1, 4, 32), rng.uniform(0.1, 4, 32)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    q = np.linalg.qr(rng.standard_normal((32, 32)))[0]  # common rotation keeps them commuting
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = stats_to_fid(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert rel(got, want) <= 1e-10


def test_fid_of_identical_statistics_is_zero_in_float64():
    rng = np.random.default_rng(6)
    mu, sigma = features_to_stats(correlated_features(rng, 600, 256))
    assert abs(stats_to_fid(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_fid_rejects_mismatched_statistics_and_gives_nan_when_not_finite():
    with pytest.raises(UserError, match="same feature extractor"):
        stats_to_fid(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    s = np.eye(3)
    s[0, 0] = np.nan
    assert math.isnan(stats_to_fid(np.zeros(3), s, np.zeros(3), np.eye(3)))


# ---------------------------------------------------------------- Inception Score


@pytest.mark.parametrize("n", [1000, 1003])
def test_inception_score_equals_torch_fidelity(n):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(n, 20, generator=torch.Generator().manual_seed(n)) * 3
    logits[: n // 3, 0] += 5  # unbalanced class usage so that split order matters
    ref = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits)
    assert rel(mean, ref["inception_score_mean"]) <= 1e-10
    assert rel(std, ref["inception_score_std"]) <= 1e-8
    ref_ns = isc_features_to_metric(logits, splits=10, shuffle=False)
    mean_ns, std_ns = inception_score(logits.numpy(), shuffle=False)
    assert rel(mean_ns, ref_ns["inception_score_mean"]) <= 1e-10
    assert rel(std_ns, ref_ns["inception_score_std"]) <= 1e-8
    assert std_ns != pytest.approx(std, rel=1e-6)  # the shuffle really changes the splits


def test_inception_score_closed_forms():
    c = 10
    confident_balanced = 60.0 * torch.nn.functional.one_hot(torch.arange(1000) % c, c).double()
    mean, std = inception_score(confident_balanced, shuffle=False)  # every split holds each class equally
    assert mean == pytest.approx(c, rel=1e-9) and std < 1e-8  # KL = log C for every sample
    assert inception_score(confident_balanced)[0] < c  # shuffled splits are not exactly balanced
    mean, std = inception_score(torch.zeros(500, c))  # p(y|x) = p(y): KL = 0
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- KID


def _tf_kid(f1, f2, **kw):
    from torch_fidelity.metric_kid import kid_features_to_metric

    out = kid_features_to_metric(f1, f2, verbose=False, **kw)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def test_kid_defaults_are_torch_fidelity_defaults():
    import inspect

    from torch_fidelity.defaults import DEFAULTS

    p = inspect.signature(kid).parameters
    assert p["subsets"].default == DEFAULTS["kid_subsets"] == 100
    assert p["subset_size"].default == DEFAULTS["kid_subset_size"] == 1000
    assert p["seed"].default == DEFAULTS["rng_seed"]
    assert p["degree"].default == DEFAULTS["kid_kernel_poly_degree"] == 3
    assert p["coef0"].default == DEFAULTS["kid_kernel_poly_coef0"] and p["gamma"].default is None


def test_kid_equals_torch_fidelity_float64_subset_size_1000():
    rng = np.random.default_rng(7)
    f1 = torch.from_numpy(correlated_features(rng, 1500, 64, shift=0.05))
    f2 = torch.from_numpy(correlated_features(rng, 1200, 64))
    ref_mean, ref_std = _tf_kid(f1, f2, kid_subsets=10)  # subsets of 1000, rng_seed 2020
    mean, std = kid(f1, f2, subsets=10)
    assert rel(mean, ref_mean) <= 1e-9 and rel(std, ref_std) <= 1e-9
    assert mean > 5 * std  # clearly different distributions


@pytest.mark.slow
def test_kid_equals_torch_fidelity_with_all_defaults_2048d():
    """Every default of both (100 subsets of 1000, degree 3, gamma 1/d, coef0 1, rng_seed 2020) on 2,000 vs 2,000
    samples.  The feature width is no default: 256-d features (not Inception's 2048, whose 100 kernel matrices of
    1000^2 x 2048 took 40 s for the two sides) exercise the same code; the test keeps its name (its id)."""
    rng = np.random.default_rng(7)
    f1 = torch.from_numpy(correlated_features(rng, 2000, 256, shift=0.01))
    f2 = torch.from_numpy(correlated_features(rng, 2000, 256))
    ref_mean, ref_std = _tf_kid(f1, f2)  # 100 subsets of 1000, rng_seed 2020
    mean, std = kid(f1, f2)
    assert rel(mean, ref_mean) <= 1e-9 and rel(std, ref_std) <= 1e-9


def test_kid_equals_torch_fidelity_with_float32_features_and_other_seed():
    rng = np.random.default_rng(8)
    f1 = torch.from_numpy(correlated_features(rng, 700, 128, scale=1.2)).float()
    f2 = torch.from_numpy(correlated_features(rng, 600, 128)).float()
    ref_mean, ref_std = _tf_kid(f1, f2, kid_subsets=20, kid_subset_size=500, rng_seed=11)
    mean, std = kid(f1.numpy(), f2, subsets=20, subset_size=500, seed=11)
    # torch-fidelity computes in float32 here, we in float64: equal to float32 rounding.
    assert rel(mean, ref_mean) <= 1e-4 and rel(std, ref_std) <= 1e-3
    other_seed, _ = kid(f1, f2, subsets=20, subset_size=500, seed=12)
    assert rel(other_seed, ref_mean) > 1e-4  # the seed drives the subset draws


def test_kid_near_zero_for_same_distribution_and_rejects_small_sets():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((2000, 32)), rng.standard_normal((2000, 32))
    mean, std = kid(x, y, subsets=20, subset_size=500)
    assert abs(mean) < 3 * std + 1e-4
    assert kid(x, y + 0.3, subsets=20, subset_size=500)[0] > 10 * std
    with pytest.raises(UserError, match="metrics.num_samples"):
        kid(x[:100], y, subset_size=500)


# ---------------------------------------------------------------- PRDC


def _ref_prdc(real, fake, k):
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = compute_prdc(real, fake, k)
    return {key: float(v) for key, v in out.items()}


def _assert_same_prdc(ours, ref):
    for key in ("precision", "recall", "coverage"):
        assert ours[key] == ref[key], key
    assert ours["density"] == pytest.approx(ref["density"], rel=1e-12)


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_equals_prdc_package_2000x2000x64(k):
    rng = np.random.default_rng(10)
    real = rng.standard_normal((2000, 64)).astype(np.float32)
    fake = (rng.standard_normal((2000, 64)) * 1.1 + 0.1).astype(np.float32)
    ours = prdc(real, fake, k=k)
    _assert_same_prdc(ours, _ref_prdc(real, fake, k))
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


def test_prdc_tiling_does_not_change_results():
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((257, 8)) + 0.3
    full = prdc(real, fake, k=4, block_size=4096)
    assert prdc(real, fake, k=4, block_size=37) == full  # unaligned tiles, diagonal tiles cut
    _assert_same_prdc(full, _ref_prdc(real, fake, 4))
    r = knn_radii(torch.from_numpy(real), 4, block_size=41)
    d = np.linalg.norm(real[:, None] - real[None], axis=-1)
    np.testing.assert_allclose(r.numpy(), np.sort(d, axis=1)[:, 4], rtol=1e-12)


def test_prdc_never_builds_an_n_by_n_distance_matrix(monkeypatch):
    shapes = []
    real_cdist = torch.cdist

    def spy(a, b, *args, **kw):
        shapes.append((a.shape[0], b.shape[0]))
        return real_cdist(a, b, *args, **kw)

    monkeypatch.setattr(prdc_mod.torch, "cdist", spy)
    rng = np.random.default_rng(12)
    prdc(rng.standard_normal((1000, 4)), rng.standard_normal((900, 4)), block_size=128)
    assert shapes and max(r * c for r, c in shapes) <= 128 * 128


def test_prdc_takes_self_distance_as_exactly_zero(monkeypatch):
    # The radius is the (k+1)-th smallest distance counting the self-distance as 0; a cdist whose
    # diagonal came out large (rounding in |x|^2 + |y|^2 - 2 x.y) must not shift it to the (k+2)-th.
    real_cdist = torch.cdist

    def noisy_diagonal(a, b, *args, **kw):
        d = real_cdist(a, b, *args, **kw)
        return torch.where(d < 1e-9, torch.full_like(d, 1e3), d)

    x = torch.from_numpy(np.random.default_rng(19).standard_normal((50, 3)))
    want = knn_radii(x, 2)
    monkeypatch.setattr(prdc_mod.torch, "cdist", noisy_diagonal)
    torch.testing.assert_close(knn_radii(x, 2, block_size=16), want)


def test_prdc_strict_vs_non_strict_on_exact_ties_match_prdc_and_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real = np.arange(10, dtype=np.float64)[:, None]  # k=1 radius of every real point: exactly 1
    fake = np.array([[10.0], [11.0], [4.5], [30.0]])  # 10.0 sits exactly on real 9's sphere
    strict = prdc(real, fake, k=1, strict=True)
    loose = prdc(real, fake, k=1, strict=False)
    assert strict["precision"] == 0.25 and loose["precision"] == 0.5
    _assert_same_prdc(strict, _ref_prdc(real, fake, 1))
    assert prdc(real, fake, k=1) == strict  # strict (prdc's `<`) is the default
    p, r = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), neighborhood=1)
    assert (loose["precision"], loose["recall"]) == (p, r)


def test_prdc_non_strict_k3_equals_torch_fidelity_prc():
    from torch_fidelity.metric_prc import prc_features_to_metric

    rng = np.random.default_rng(13)
    real = torch.from_numpy(rng.standard_normal((2000, 64)))
    fake = torch.from_numpy(rng.standard_normal((1800, 64)) * 0.9 + 0.05)
    ref = prc_features_to_metric(fake, real, verbose=False)  # input1 = generated, k=3, `<=`
    ours = prdc(real, fake, k=3, strict=False)
    # torch-fidelity averages in float32: compare to well under one sample (1/2000)
    assert ours["precision"] == pytest.approx(ref["precision"], abs=1e-6)
    assert ours["recall"] == pytest.approx(ref["recall"], abs=1e-6)


def test_prdc_identical_distributions_coverage_is_one_minus_two_to_minus_k():
    rng = np.random.default_rng(14)
    real, fake = rng.standard_normal((3000, 16)), rng.standard_normal((3000, 16))
    out = prdc(real, fake, k=5)
    assert out["coverage"] == pytest.approx(1 - 2**-5, abs=0.015)  # Naeem et al. 2020, Sec. 4
    assert out["density"] == pytest.approx(1.0, abs=0.1)


def test_prdc_needs_more_than_k_samples():
    with pytest.raises(UserError, match="metrics.k"):
        prdc(np.zeros((5, 2)), np.ones((20, 2)), k=5)


@pytest.mark.slow
def test_prdc_readme_example_10k_1000d():
    # prdc README: N(0, I) in 1000-d, 10k vs 10k, k=5 prints precision 0.4772, recall 0.4705,
    # density 1.0555, coverage 0.9735 for one unseeded draw.  Density swings by ~0.1 between draws
    # in 1000-d (hub points), hence its loose tolerance; the exact check is against compute_prdc, in the same
    # float32 1000-d regime on the first 2,000 of each (compute_prdc at 10k took 25 s; exact parity at 10k is
    # the same code on more tiles, as test_prdc_tiling_does_not_change_results checks)
    rng = np.random.default_rng(15)
    real = rng.standard_normal((10000, 1000)).astype(np.float32)
    fake = rng.standard_normal((10000, 1000)).astype(np.float32)
    out = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=5)
    sub_real, sub_fake = real[:2000], fake[:2000]
    _assert_same_prdc(prdc(torch.from_numpy(sub_real), torch.from_numpy(sub_fake), k=5), _ref_prdc(sub_real, sub_fake, 5))
    assert out["precision"] == pytest.approx(0.4772, abs=0.03)
    assert out["recall"] == pytest.approx(0.4705, abs=0.03)
    assert out["density"] == pytest.approx(1.0555, abs=0.2)
    assert out["coverage"] == pytest.approx(0.9735, abs=0.02)


# ---------------------------------------------------------------- toy metrics


def ring(n_modes=8, radius=1.0):
    ang = 2 * np.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def test_mode_metrics_four_of_eight_ring_modes():
    centers, std = ring(), 0.01
    rng = np.random.default_rng(16)
    idx = np.repeat([0, 2, 4, 6], 625)
    samples = centers[idx] + std * rng.standard_normal((2500, 2))
    out = mode_metrics(torch.from_numpy(samples).float(), centers, std)
    assert out["modes"] == 4
    assert out["high_quality"] > 0.98  # 3 std in 2-D keeps ~98.9 %
    assert out["reverse_kl"] == pytest.approx(math.log(2), abs=0.01)  # uniform on 4 of 8 modes


def test_mode_metrics_balanced_collapsed_and_far_off():
    centers, std = ring(), 0.01
    balanced = mode_metrics(np.repeat(centers, 10, axis=0), centers, std)
    assert balanced == {"modes": 8.0, "high_quality": 1.0, "reverse_kl": 0.0}
    collapsed = mode_metrics(np.repeat(centers[:1], 10, axis=0), centers, std)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(math.log(8))
    far = mode_metrics(ring(radius=5.0), centers, std)  # nearest mode 4 units (400 std) away
    assert far["modes"] == 0 and far["high_quality"] == 0 and math.isnan(far["reverse_kl"])
    edge = centers[[0, 0]] + np.array([[2.9 * std, 0.0], [3.1 * std, 0.0]])
    assert mode_metrics(edge, centers, std)["high_quality"] == 0.5


def test_w1_exact_finds_the_optimal_assignment():
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    b = np.array([[10.0, 1.0], [0.0, 1.0]])  # index pairing would cost sqrt(101)
    assert w1_exact(a, b) == pytest.approx(1.0)
    rng = np.random.default_rng(17)
    x = rng.standard_normal((300, 2))
    v = np.array([0.3, -0.4])
    assert w1_exact(x, x[rng.permutation(300)] + v) == pytest.approx(0.5, rel=1e-12)  # translation
    # the reference: scipy's optimal assignment, on spread and on collapsed samples (every generated point at one
    # spot, an untrained generator's picture: there W1 is the mean distance to that spot, a closed form)
    spot = np.array([0.2, -0.1])
    collapsed = np.zeros((300, 2)) + spot
    for y in (rng.standard_normal((300, 2)) * 2 + 1, collapsed):
        cost = scipy.spatial.distance.cdist(x, y)
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        assert w1_exact(x, y) == pytest.approx(cost[rows, cols].mean(), rel=1e-12)
    assert w1_exact(x, collapsed) == pytest.approx(np.linalg.norm(x - spot, axis=1).mean(), rel=1e-12)


def test_w1_exact_refuses_a_plan_short_of_the_optimum(monkeypatch):
    """The network simplex stopped by its iteration cap returns a feasible, not an optimal, plan: an error, never
    a W1 that is too large."""
    from gan_cli.metrics import toy

    monkeypatch.setattr(toy, "W1_MAX_ITER", 10)
    rng = np.random.default_rng(3)
    with pytest.raises(RuntimeError, match="before the optimum"):
        toy.w1_exact(rng.standard_normal((200, 2)), rng.standard_normal((200, 2)))


def test_w1_1d_equals_scipy_and_gaussian_fit():
    rng = np.random.default_rng(18)
    a, b, c = rng.standard_normal(500), rng.standard_normal(500) * 2 + 1, rng.exponential(size=333)
    assert w1_1d(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-12)
    assert w1_1d(a, c) == pytest.approx(scipy.stats.wasserstein_distance(a, c), rel=1e-12)
    assert w1_exact(a, b) == pytest.approx(w1_1d(a, b), rel=1e-9)
    x = torch.from_numpy(rng.normal(3.0, 2.0, size=(20000, 1)))
    mean, std = gaussian_fit(x)
    assert (mean, std) == pytest.approx((float(x.mean()), float(x.std(unbiased=False))), rel=1e-12)
    assert mean == pytest.approx(3.0, abs=0.05) and std == pytest.approx(2.0, abs=0.05)


# ---------------------------------------------------------------- critic W1


def test_critic_w1_of_shifted_gaussians_and_point_masses_is_about_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 1, generator=g), torch.randn(4000, 1, generator=g) + 2
    state = torch.get_rng_state()
    assert critic_w1(a, b) == pytest.approx(2.0, abs=0.15)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert critic_w1(a, b, normalize=False) == pytest.approx(2.2, abs=0.1)  # soft-penalty bias
    assert critic_w1(torch.zeros(200, 1), torch.full((200, 1), 2.0)) == pytest.approx(2.0, abs=0.1)


def test_critic_w1_near_zero_for_the_same_distribution():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    assert abs(critic_w1(a, b, steps=300)) < 0.1
    assert abs(critic_w1(a, a, steps=300)) < 0.1


def test_critic_w1_runs_under_inference_mode():
    with torch.inference_mode():  # how an evaluation loop typically calls metrics
        a, b = torch.zeros(100, 1), torch.full((100, 1), 1.0)
        assert critic_w1(a, b, steps=200) == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_critic_w1_orientation_does_not_depend_on_the_initialisation(seed):
    # A random critic init with the wrong slope sign used to get trapped at slope -1 in 1-D.
    a = torch.zeros(100, 1)
    assert critic_w1(a, torch.ones(100, 1), steps=200, seed=seed) == pytest.approx(1.0, abs=0.1)
    assert critic_w1(a, -torch.ones(100, 1), steps=200, seed=seed) == pytest.approx(1.0, abs=0.1)
