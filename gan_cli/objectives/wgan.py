"""Wasserstein objective (WGAN, WGAN-GP) and the WGAN-GP gradient penalty.

Papers: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (Algorithm 1; weight
clipping is done by the loop), and Gulrajani et al. 2017, "Improved Training of
Wasserstein GANs" (Algorithm 1, the penalty).  Reference implementations matched:
igul222/improved_wgan_training ``gan_toy.py`` / ``gan_mnist.py`` (``disc_cost =
mean(disc_fake) - mean(disc_real)``, ``gen_cost = -mean(disc_fake)``, penalty
``mean((slopes - 1)**2)`` on per-sample interpolates).  martinarjovsky/WassersteinGAN
``main.py`` uses the opposite sign for its critic (its ``Loss_D`` is minus our
estimate).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Objective


class Wasserstein(Objective):
    """Critic f maximises E_real f - E_fake f; G maximises E_fake f.

    ``estimate`` is the dual estimate E_real f - E_fake f, which approximates
    W1(real, model) when f is (close to) 1-Lipschitz and optimal.
    """

    estimate_tag = "estimate/w"

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return -fake_out.mean()

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return real_out.mean() - fake_out.mean()


def gradient_penalty(
    D: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Gulrajani et al. 2017 penalty: mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample, drawn
    with ``generator`` on the data's device.  real and fake are detached (the penalty
    regularises D only); the graph is kept (create_graph=True) so the result can be
    back-propagated into D's parameters.  The norm is over all non-batch dimensions.
    """
    real, fake = real.detach(), fake.detach()
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = D(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grad.flatten(1), ord=2, dim=1)
    return ((norms - 1) ** 2).mean()
