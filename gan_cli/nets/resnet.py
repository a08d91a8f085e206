"""The SNGAN ResNets (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks", Appendix B;
built as Mimicry builds them, Lee & Town 2020, ``torch_mimicry/nets/sngan/sngan_32.py`` and
``modules/resblocks.py``, after the official chainer code pfnet-research/sngan_projection): ``net=resnet``.

* G: z -> linear to a ``base x base`` map of ``net.g_channels`` (base 4; 7 for 28 px, 6 for 48 px), then
  up-blocks to the image size -- each BN, ReLU, nearest x2, 3x3 conv, BN, ReLU, 3x3 conv, with a 1x1 conv
  shortcut on the upsampled input -- then BN, ReLU, 3x3 conv to the image channels, tanh.
* D: residual down-blocks of ``net.d_channels``: the first without pre-activation (conv, ReLU, conv, average
  pool; shortcut average pool then 1x1 conv, SNGAN's "optimized" block), then ReLU, conv, ReLU, conv, average
  pool (shortcut 1x1 conv then average pool) until the map is 8 px or less, then two blocks at that size
  without pooling (identity shortcut); ReLU, global sum pool, linear to one value.  Spectral norm on every
  conv and linear of D (``net.spectral_norm``, on by default).  SNGAN's D has no normalisation layer, so
  ``model.d_norm`` does not apply to it (as to the MLP's D): ``net=resnet`` works with every model preset.

Sizes 28, 32, 48, 64 and 128 px, 1 or 3 channels (any count: a packed D reads m x C).  At 32 px this is Mimicry's SNGAN-32 layer for layer
(G 3 up-blocks of 256, D 4 blocks of 128: 4.28 M / 1.05 M parameters with the defaults and z of 128, RGB;
``tests/test_nets.py`` counts them); at the other sizes the same blocks and uniform widths, where Mimicry
changes widths per size.  Initialisation as Mimicry: Xavier-uniform, gain sqrt(2) on the blocks' 3x3 convs,
1 on shortcuts, the first linear and the last layers.  The upsampling is nearest-neighbour, as the chainer
original (Mimicry uses bilinear).  Unconditional unless built with ``n_classes`` (G's batch norms
class-conditional); D exposes :meth:`~ResNetDiscriminator.trunk` and :meth:`~ResNetDiscriminator.head` for the
projection and class heads of :mod:`gan_cli.cond`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NetConfig, UserError, component_schema
import gan_cli.nets.cbn as cbn
from .spectral import spectral_normalise

#: image size -> G's first map size; G doubles it to the image size
BASES = {28: 7, 32: 4, 48: 6, 64: 4, 128: 4}
#: D stops average-pooling once the map is this size or smaller
D_FINAL = 8


def plan(shape: Tuple[int, ...]) -> Tuple[int, int, int]:
    """``(G's base size, G's up-blocks, D's down-blocks)`` for an image shape ``(C, H, W)``."""
    c, h, w = shape
    if h != w or h not in BASES:
        raise UserError(f"net=resnet supports square images of {', '.join(f'{s}x{s}' for s in BASES)} px, not "
                        f"{h}x{w}: set data.image_size to one of {', '.join(str(s) for s in BASES)} (or use net=dcgan).")
    ups = int(round(math.log2(h / BASES[h])))
    downs, size = 0, h
    while size > D_FINAL:
        size //= 2
        downs += 1
    return BASES[h], ups, downs


def _xavier(m: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(m.weight, gain)
    return m


class GBlock(nn.Module):
    def __init__(self, ch_in: int, ch_out: int, n_classes: int = 0):
        super().__init__()
        self.b1, self.b2 = cbn.norm2d(ch_in, n_classes), cbn.norm2d(ch_out, n_classes)
        self.c1 = _xavier(nn.Conv2d(ch_in, ch_out, 3, 1, 1), math.sqrt(2.0))
        self.c2 = _xavier(nn.Conv2d(ch_out, ch_out, 3, 1, 1), math.sqrt(2.0))
        self.c_sc = _xavier(nn.Conv2d(ch_in, ch_out, 1, 1, 0), 1.0)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = F.interpolate(F.relu(cbn.apply(self.b1, x, c)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(cbn.apply(self.b2, self.c1(h), c)))
        return h + self.c_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """Pre-activation residual block; ``first``: SNGAN's optimised first block (no pre-activation)."""

    def __init__(self, ch_in: int, ch_out: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.c1 = _xavier(nn.Conv2d(ch_in, ch_out, 3, 1, 1), math.sqrt(2.0))
        self.c2 = _xavier(nn.Conv2d(ch_out, ch_out, 3, 1, 1), math.sqrt(2.0))
        self.c_sc = _xavier(nn.Conv2d(ch_in, ch_out, 1, 1, 0), 1.0) if (down or ch_in != ch_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:  # shortcut: pool, then 1x1 conv
            return h + self.c_sc(F.avg_pool2d(x, 2))
        sc = x if self.c_sc is None else self.c_sc(x)
        return h + (F.avg_pool2d(sc, 2) if self.down else sc)


class ResNetGenerator(nn.Module):
    """``n_classes`` > 0: class-conditional batch norms (:mod:`.cbn`; SNGAN's projection cGAN)."""

    def __init__(self, latent_dim: int, shape: Tuple[int, ...], channels: int = 256, n_classes: int = 0):
        super().__init__()
        self.latent_dim, self.shape = latent_dim, tuple(shape)
        base, ups, _ = plan(self.shape)
        self.base, self.channels = base, int(channels)
        self.l1 = _xavier(nn.Linear(latent_dim, base * base * self.channels), 1.0)
        self.blocks = nn.Sequential(*[GBlock(self.channels, self.channels, int(n_classes)) for _ in range(ups)])
        self.b_out = cbn.norm2d(self.channels, int(n_classes))
        self.c_out = _xavier(nn.Conv2d(self.channels, self.shape[0], 3, 1, 1), 1.0)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.l1(z).view(z.shape[0], self.channels, self.base, self.base)
        for block in self.blocks:
            h = block(h, c)
        return torch.tanh(self.c_out(F.relu(cbn.apply(self.b_out, h, c))))


class ResNetDiscriminator(nn.Module):
    def __init__(self, shape: Tuple[int, ...], channels: int = 128):
        super().__init__()
        self.shape = tuple(shape)
        _, _, downs = plan(self.shape)
        ch = int(channels)
        blocks = [DBlock(self.shape[0], ch, down=True, first=True)]
        blocks += [DBlock(ch, ch, down=True) for _ in range(downs - 1)]
        blocks += [DBlock(ch, ch, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.l_out = _xavier(nn.Linear(ch, 1), 1.0)
        self.trunk_dim = ch

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, trunk_dim)``: ReLU, then global sum pooling of the last block's map."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.l_out(h).squeeze(1)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.head(self.trunk(x))


def build(info, latent_dim: int, d_norm: str = "none", g_channels: int = 256, d_channels: int = 128,
          spectral_norm: bool = True, n_classes: int = 0):
    """``net=resnet``: the SNGAN ResNet generator and discriminator for square images of a size in :data:`BASES`;
    ``spectral_norm``: every conv and linear of D spectrally normalised (:mod:`.spectral`).  ``d_norm`` is not
    used: the ResNet D has no normalisation layer.  ``n_classes``: G's batch norms class-conditional
    (``cond=projection``)."""
    shape = tuple(int(s) for s in info.shape)
    if info.kind != "image" or len(shape) != 3:
        raise UserError(f"net=resnet needs image data, but data={info.name} is {info.kind} with shape {shape}: "
                        f"use net=mlp (or net=auto).")
    if int(g_channels) < 1 or int(d_channels) < 1:
        raise UserError(f"net.g_channels={g_channels} and net.d_channels={d_channels} must be >= 1.")
    plan(shape)  # the size: one line naming the supported ones
    D = ResNetDiscriminator(shape, int(d_channels))
    return (ResNetGenerator(latent_dim, shape, int(g_channels), int(n_classes)),
            spectral_normalise(D) if spectral_norm else D)


@component_schema("net", "resnet")
@dataclass
class ResNetNetConfig(NetConfig):
    g_channels: int = 256  # G's width (every up-block)
    d_channels: int = 128  # D's width (every block)
    spectral_norm: bool = True  # spectral normalisation of D's convs and linear (SNGAN)
