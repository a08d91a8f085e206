"""DCGAN-style convolutional generator / discriminator (Radford et al. 2016, "Unsupervised Representation
Learning with Deep Convolutional GANs"; layout as in the PyTorch DCGAN example, pytorch/examples
``dcgan/main.py``: transposed convs with batch norm + ReLU and a tanh output in G, strided convs with
LeakyReLU(0.2) in D, weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)).

The first layer of G maps ``z`` to a ``base x base`` map (a fully connected layer, written as a
transposed conv with kernel ``base`` on a 1x1 input) and each further block doubles the size with
``ConvTranspose2d(4, stride 2, padding 1)``:

* 28x28 (MNIST):   7 -> 14 -> 28
* 8x8 (digits):    2 -> 4 -> 8
* 2^k, 16..128:    4 -> 8 -> ... -> 2^k   (32x32 CIFAR: 4 -> 8 -> 16 -> 32)

D mirrors G: ``Conv2d(4, stride 2, padding 1)`` blocks down to ``base x base``, then a ``base x base``
conv to one value.  ``d_norm``: ``batch`` (BatchNorm2d, not on the first layer, as DCGAN), ``layer``
(GroupNorm(1, C): normalises each sample over (C, H, W) with a per-channel affine, the layer norm of
the WGAN-GP reference code ``igul222/improved_wgan_training``), ``none`` (WGAN-GP's critic: the
per-sample gradient penalty is invalid with batch norm).  Widths scale with ``channels`` (net.channels); D's
alone with ``d_channels`` (net.d_channels, default: as G's), e.g. the weak discriminators of PacGAN's Table 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from ..config import NetConfig, UserError, component_schema
import gan_cli.nets.cbn as cbn
from .spectral import check_norm, spectral_normalise

#: image size -> (base map size, number of doubling blocks)
SIZES = {8: (2, 2), 16: (4, 2), 28: (7, 2), 32: (4, 3), 64: (4, 4), 128: (4, 5)}


def dcgan_plan(shape: Tuple[int, ...]) -> Tuple[int, int]:
    """``(base, n_up)`` for an image shape ``(C, H, W)``; UserError when the size is not supported."""
    c, h, w = shape
    if h != w or h not in SIZES:
        sizes = ", ".join(f"{s}x{s}" for s in SIZES)
        raise UserError(f"net=dcgan supports square images of {sizes}, not {h}x{w}: set data.image_size to one "
                        f"of {', '.join(str(s) for s in SIZES)} (or use net=mlp).")
    return SIZES[h]


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":
        return nn.GroupNorm(1, ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"d_norm must be 'batch', 'layer' or 'none', not {kind!r}")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv / linear weights ~ N(0, 0.02), batch-norm scale ~ N(1, 0.02) (each class's in a
    conditional batch norm), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, cbn.ConditionalBatchNorm2d):  # every class's scale as DCGAN's batch-norm scale
            nn.init.normal_(m.gamma.weight, 1.0, 0.02)


class DCGANGenerator(nn.Module):
    """``n_classes`` > 0: class-conditional batch norm (:mod:`.cbn`, ``cond=projection``)."""

    def __init__(self, latent_dim: int, shape: Tuple[int, ...], channels: int = 64, n_classes: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = tuple(shape)
        base, n_up = dcgan_plan(self.shape)
        ch = channels * 2 ** (n_up - 1)
        k = int(n_classes)
        layers = [nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False), cbn.norm2d(ch, k), nn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), cbn.norm2d(ch // 2, k), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, self.shape[0], 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.conditional = bool(k)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        z = z.view(z.shape[0], self.latent_dim, 1, 1)
        return cbn.run(self.net, z, c) if self.conditional else self.net(z)


class DCGANDiscriminator(nn.Module):
    def __init__(self, shape: Tuple[int, ...], channels: int = 64, d_norm: str = "batch"):
        super().__init__()
        self.shape = tuple(shape)
        base, n_down = dcgan_plan(self.shape)
        _norm(d_norm, 1)  # validate the name early
        ch = channels
        layers = [nn.Conv2d(self.shape[0], ch, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, inplace=True)]  # no norm
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=d_norm == "none"), _norm(d_norm, ch * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, base, 1, 0, bias=True))
        self.net = nn.Sequential(*layers)
        self.trunk_dim = ch * base * base  # the flattened last map: what a projection / class head reads
        self._map = (ch, base, base)
        dcgan_init(self)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, trunk_dim)``: the last map before the output layer, flattened."""
        return self.net[:-1](x).flatten(1)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The output layer on :meth:`trunk` (a ``base x base`` conv of the map: a linear map of it), ``(N,)``."""
        return self.net[-1](h.view(h.shape[0], *self._map)).view(h.shape[0])

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(x).view(x.shape[0])


def build(info, latent_dim: int, d_norm: str = "batch", channels: int = 64, spectral_norm: bool = False,
          n_classes: int = 0, d_channels: Optional[int] = None):
    """``net=dcgan``: (G, D) for square image data of a size in :data:`SIZES`; ``spectral_norm``: D's convs
    spectrally normalised (:mod:`.spectral`; needs ``d_norm=none``); ``n_classes``: G's batch norms
    class-conditional (``cond=projection``); ``d_channels``: D's base width (default ``channels``)."""
    shape = tuple(int(s) for s in info.shape)
    if info.kind != "image" or len(shape) != 3:
        raise UserError(f"net=dcgan needs image data, but data={info.name} is {info.kind} with shape {shape}: "
                        f"use net=mlp (or net=auto).")
    dcgan_plan(shape)  # UserError naming the supported sizes
    d_channels = channels if d_channels is None else d_channels
    if int(channels) < 1 or int(d_channels) < 1:
        raise UserError(f"net.channels={channels} and net.d_channels={d_channels} must be >= 1.")
    if spectral_norm:
        check_norm(d_norm, "DCGAN-style")
    D = DCGANDiscriminator(shape, int(d_channels), d_norm)
    return (DCGANGenerator(latent_dim, shape, int(channels), int(n_classes)),
            spectral_normalise(D) if spectral_norm else D)


@component_schema("net", "dcgan")
@dataclass
class DCGANNetConfig(NetConfig):
    channels: int = 64  # base width
    d_channels: Optional[int] = None  # D's base width (null: as channels)
    spectral_norm: bool = False  # spectral normalisation of D's convs (needs model.d_norm=none)
