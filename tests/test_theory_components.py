"""Modern GAN components: hinge loss, R1 (lazy), spectral norm, EMA of G.

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
