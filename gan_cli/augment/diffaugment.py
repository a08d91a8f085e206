"""DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
``augment=diffaugment``, policy ``augment.policy=color,translation,cutout`` (the default).

Reference implementation matched: mit-han-lab/data-efficient-gans ``DiffAugment_pytorch.py``, transform for
transform (``tests/test_augment.py`` checks each against the reference's formulas on the same draws), on images in
[-1, 1]:

* ``color``: brightness ``x + U(-0.5, 0.5)``; saturation ``(x - mean over channels) * U(0, 2) + mean``; contrast
  ``(x - mean over pixels and channels) * U(0.5, 1.5) + mean`` -- one draw per image each;
* ``translation``: a shift of up to 1/8 of the size (``int(size * 0.125 + 0.5)`` pixels, uniform integers in
  ``[-s, s]`` per image and axis), zero padding;
* ``cutout``: one square of half the size (``int(size * 0.5 + 0.5)``), its centre uniform over the image, set to 0.

Every step is differentiable in the image (index gathers and masks), so G's gradient flows through the
augmentation of its samples and R1 / the gradient penalty are taken with respect to the clean input.  The one
path into D applies it to real and fake in D's step and to the fakes in G's step.  The draws come from the
pipe's own generator (the run's ``augment`` stream), on the images' device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import AugmentConfig, UserError, component_schema
from .base import AugmentPipe

POLICIES = ("color", "translation", "cutout")


class DiffAugment(AugmentPipe):
    kinds = ("image",)

    def __init__(self, policy: str = "color,translation,cutout", translation: float = 0.125, cutout: float = 0.5):
        super().__init__()
        self.policy = [p.strip() for p in str(policy).split(",") if p.strip()]
        unknown = [p for p in self.policy if p not in POLICIES]
        if unknown or not self.policy:
            raise UserError(f"augment.policy={policy}: use a comma-separated list of {', '.join(POLICIES)} "
                            f"(e.g. augment.policy=color,translation,cutout).")
        if not 0 < float(translation) < 1 or not 0 < float(cutout) <= 1:
            raise UserError(f"augment.translation={translation} must be in (0, 1) and augment.cutout={cutout} in (0, 1].")
        self.translation_ratio, self.cutout_ratio = float(translation), float(cutout)

    def _rand(self, *shape, x: Tensor) -> Tensor:
        return torch.rand(shape, generator=self.generator, device=x.device, dtype=x.dtype)

    def _randint(self, lo: int, hi: int, *shape, x: Tensor) -> Tensor:
        return torch.randint(lo, hi, shape, generator=self.generator, device=x.device)

    def forward(self, x: Tensor) -> Tensor:
        for p in self.policy:
            if p == "color":
                x = self.brightness(x)
                x = self.saturation(x)
                x = self.contrast(x)
            elif p == "translation":
                x = self.translate(x)
            else:
                x = self.cut(x)
        return x.contiguous()

    def brightness(self, x: Tensor) -> Tensor:
        return x + (self._rand(x.size(0), 1, 1, 1, x=x) - 0.5)

    def saturation(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * (self._rand(x.size(0), 1, 1, 1, x=x) * 2) + mean

    def contrast(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - mean) * (self._rand(x.size(0), 1, 1, 1, x=x) + 0.5) + mean

    def translate(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        sx, sy = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
        tx = self._randint(-sx, sx + 1, n, 1, 1, x=x)
        ty = self._randint(-sy, sy + 1, n, 1, 1, x=x)
        gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                    torch.arange(w, device=x.device), indexing="ij")
        gx = torch.clamp(gx + tx + 1, 0, h + 1)  # the 1-pixel zero border of the padded image holds every index
        gy = torch.clamp(gy + ty + 1, 0, w + 1)  # that falls outside
        padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
        return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2).contiguous()

    def cut(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        ox = self._randint(0, h + (1 - ch % 2), n, 1, 1, x=x)
        oy = self._randint(0, w + (1 - cw % 2), n, 1, 1, x=x)
        gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                    torch.arange(cw, device=x.device), indexing="ij")
        gx = torch.clamp(gx + ox - ch // 2, min=0, max=h - 1)
        gy = torch.clamp(gy + oy - cw // 2, min=0, max=w - 1)
        mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
        mask[gb, gx, gy] = 0
        return x * mask.unsqueeze(1)


@component_schema("augment", "diffaugment")
@dataclass
class DiffAugmentConfig(AugmentConfig):
    policy: str = "color,translation,cutout"  # comma-separated: color, translation, cutout (applied in that order)
    translation: float = 0.125  # the largest shift, a fraction of the size
    cutout: float = 0.5  # the side of the cut-out square, a fraction of the size
