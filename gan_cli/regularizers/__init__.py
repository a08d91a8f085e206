"""Regularisers composed from the ``reg=`` list (one file each; :mod:`.base` says how they hook into the step):
R1 (:mod:`.r1`), the WGAN-GP gradient penalty (:mod:`.gp`), instance noise (:mod:`.instance_noise`), the
unrolled GAN (:mod:`.unrolled`).  :func:`gan_cli.build.build_regularizers` builds them; nothing here lists them
by name."""
from __future__ import annotations

from .base import DStep, GStep, Regularizer, eager, input_grad, inner_grad_scale
from .gp import GradientPenalty, gradient_penalty, input_grad_norms, interpolates
from .instance_noise import InstanceNoise
from .r1 import R1, box_points, r1_penalty
from .unrolled import Unrolled

__all__ = ["Regularizer", "DStep", "GStep", "R1", "GradientPenalty", "InstanceNoise", "Unrolled", "gradient_penalty",
           "interpolates", "input_grad_norms", "r1_penalty", "box_points", "eager", "input_grad", "inner_grad_scale"]
