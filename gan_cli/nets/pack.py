"""PacGAN packing (Lin et al. 2018, "PacGAN: the power of two samples in GANs"): ``model.pack=m``.

D judges m samples at once: a batch of N samples (real, or G's from N latents) is read as N / m
m-tuples of consecutive samples, concatenated along the first feature axis (flat data: ``m * d``
features, as the PacGAN code's 2-D experiments; images: ``m * C`` channels, as its image experiments),
so D gives N / m outputs.  :func:`gan_cli.build.build_nets` builds D for the packed shape and wraps it in
:class:`Packed`; the objective and the loop see an ordinary D.  ``data.batch_size`` (and
``estimate_batch``) count samples and must be multiples of m.
"""
from __future__ import annotations

import torch
from torch import nn


class Packed(nn.Module):
    def __init__(self, inner: nn.Module, m: int):
        super().__init__()
        self.inner = inner
        self.m = int(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n % self.m:
            raise ValueError(f"PacGAN: a batch of {n} samples cannot be packed into {self.m}-tuples")
        return self.inner(x.reshape(n // self.m, self.m * x.shape[1], *x.shape[2:]))
