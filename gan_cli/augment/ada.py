"""ADA, adaptive discriminator augmentation (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training
Generative Adversarial Networks with Limited Data"): ``augment=ada``.

The pipeline is the paper's ``bgc`` (stylegan2-ada-pytorch ``training/augment.py``, ``augpipe_specs['bgc']``),
every transform applied to each image independently with probability ``p`` (times its multiplier, 1 for all),
with stylegan2-ada's distributions:

* blit: x-flip; rotation by a multiple of 90 degrees; integer translation, uniform up to 1/8 of the size;
* geometric: isotropic scaling 2^N(0, 0.2^2); rotation uniform in the full circle, before and after the
  anisotropic scaling, each with probability 1 - sqrt(1 - p) (so that one of the two happens with p); anisotropic
  scaling 2^N(0, 0.2^2) on x and its inverse on y; fractional translation N(0, 0.125^2) of the size;
* colour: brightness + N(0, 0.2^2); contrast x 2^N(0, 0.5^2); luma flip (a Householder reflection about the
  luma axis); hue rotation about the luma axis, uniform in the full circle; saturation 2^N(0, 1) off the luma
  axis (hue and saturation on RGB images only).

How each stays differentiable: the blit and geometric transforms of an image are multiplied into one inverse
3x3 affine matrix and applied in one ``torch.nn.functional.grid_sample`` (bilinear, reflection padding), which
is linear in the image (and has a double backward, so R1 can be taken through it); the colour transforms into
one 4x4 matrix applied as ``C[:3, :3] @ rgb + C[:3, 3]`` (grey images: its mean row), linear too.  Unlike
stylegan2-ada, the geometric resampling runs at the image's own resolution: stylegan2-ada resamples at twice
the size between sym6 wavelet filters to limit aliasing (and adds image-space filtering, noise and cutout in
its larger pipelines, which ``bgc`` does not use).

The heuristic (stylegan2-ada ``training_loop.py``): the pipe sees D's outputs on every real batch
(:meth:`ADA.observe`); every ``augment.interval`` = 4 D steps, r_t = E[sign D(real)] over those batches and
``p += sign(r_t - target) * (images seen) / (augment.ada_kimg * 1000)``, clamped to [0, 1]: p can go from 0 to 1
within ``ada_kimg`` (500) thousand real images.  ``augment.p=0.3`` fixes p (no adaptation).  p, r_t and the
partial sums of the interval are buffers (in the checkpoint), as is the pipe's random stream; ``augment/p`` and
``augment/rt`` are logged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import AugmentConfig, UserError, component_schema
from .base import AugmentPipe


class ADA(AugmentPipe):
    kinds = ("image",)
    adaptive = True  # sees D's outputs on the real batches (several processes: every rank's, gathered)

    def __init__(self, p: Optional[float] = None, target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0,
                 xint_max: float = 0.125, scale_std: float = 0.2, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness_std: float = 0.2, contrast_std: float = 0.5, saturation_std: float = 1.0):
        super().__init__()
        if p is not None and not 0.0 <= float(p) <= 1.0:
            raise UserError(f"augment.p={p} must be in [0, 1] (or null: adjusted from D's outputs).")
        if not 0.0 < float(target) < 1.0 or int(interval) < 1 or not float(ada_kimg) > 0:
            raise UserError(f"augment.target={target} must be in (0, 1), augment.interval={interval} >= 1 and "
                            f"augment.ada_kimg={ada_kimg} > 0.")
        self.adaptive = p is None
        self.target, self.interval, self.ada_kimg = float(target), int(interval), float(ada_kimg)
        self.xint_max, self.scale_std, self.aniso_std, self.xfrac_std = xint_max, scale_std, aniso_std, xfrac_std
        self.brightness_std, self.contrast_std, self.saturation_std = brightness_std, contrast_std, saturation_std
        self.register_buffer("p", torch.tensor(0.0 if p is None else float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # the last interval's E[sign D(real)]
        self.register_buffer("sign_sum", torch.tensor(0.0))  # this interval's partial sums
        self.register_buffer("seen", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0))

    # -- the heuristic --------------------------------------------------------------------------
    @torch.no_grad()
    def observe(self, real_out: Tensor) -> None:
        if not self.adaptive:
            return
        self.sign_sum += torch.sign(real_out.float()).sum()
        self.seen += real_out.numel()
        self.steps += 1
        due = (self.steps % self.interval == 0).float()  # on the device: no host sync
        rt = self.sign_sum / self.seen.clamp(min=1)
        step = torch.sign(rt - self.target) * self.seen / (self.ada_kimg * 1000)
        self.p.copy_(torch.lerp(self.p, (self.p + step).clamp(0.0, 1.0), due))
        self.rt.copy_(torch.lerp(self.rt, rt, due))
        self.sign_sum.mul_(1 - due)
        self.seen.mul_(1 - due)

    def log_scalars(self) -> dict:
        return {"augment/p": self.p.clone(), "augment/rt": self.rt.clone()}

    # -- the pipeline ---------------------------------------------------------------------------
    def _u(self, n: int, x: Tensor) -> Tensor:
        return torch.rand(n, generator=self.generator, device=x.device, dtype=torch.float32)

    def _n(self, n: int, x: Tensor) -> Tensor:
        return torch.randn(n, generator=self.generator, device=x.device, dtype=torch.float32)

    def _chance(self, n: int, x: Tensor, prob) -> Tensor:
        """Per image: True with probability ``prob`` (a tensor or float)."""
        return self._u(n, x) < prob

    def forward(self, x: Tensor) -> Tensor:
        n, ch, h, w = x.shape
        x = self.geometric(x, n, h, w)
        return self.colour(x, n, ch, h, w)

    def geometric(self, x: Tensor, n: int, h: int, w: int) -> Tensor:
        p, one, zero = self.p, torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
        G = torch.eye(3, device=x.device).expand(n, 3, 3)
        # x-flip
        i = torch.floor(self._u(n, x) * 2)
        i = torch.where(self._chance(n, x, p), i, zero)
        G = G @ _scale_inv(1 - 2 * i, one)
        # rotations by multiples of 90 degrees
        i = torch.floor(self._u(n, x) * 4)
        i = torch.where(self._chance(n, x, p), i, zero)
        G = G @ _rotate_inv(-math.pi / 2 * i)
        # integer translation (in pixels: the grid is in units of half the size, see below)
        t = (torch.stack([self._u(n, x), self._u(n, x)], 1) * 2 - 1) * self.xint_max
        t = torch.where(self._chance(n, x, p)[:, None], t, torch.zeros_like(t))
        G = G @ _translate_inv(torch.round(t[:, 0] * w) / w * 2, torch.round(t[:, 1] * h) / h * 2)
        # isotropic scaling
        s = torch.exp2(self._n(n, x) * self.scale_std)
        s = torch.where(self._chance(n, x, p), s, one)
        G = G @ _scale_inv(s, s)
        # rotation before and after the anisotropic scaling: P(either) = p
        p_rot = 1 - torch.sqrt((1 - p).clamp(0, 1))
        theta = (self._u(n, x) * 2 - 1) * math.pi
        theta = torch.where(self._chance(n, x, p_rot), theta, zero)
        G = G @ _rotate_inv(-theta)
        s = torch.exp2(self._n(n, x) * self.aniso_std)
        s = torch.where(self._chance(n, x, p), s, one)
        G = G @ _scale_inv(s, 1 / s)
        theta = (self._u(n, x) * 2 - 1) * math.pi
        theta = torch.where(self._chance(n, x, p_rot), theta, zero)
        G = G @ _rotate_inv(-theta)
        # fractional translation
        t = torch.stack([self._n(n, x), self._n(n, x)], 1) * self.xfrac_std
        t = torch.where(self._chance(n, x, p)[:, None], t, torch.zeros_like(t))
        G = G @ _translate_inv(t[:, 0] * 2, t[:, 1] * 2)
        # G maps output to input coordinates in affine_grid's normalised [-1, 1] frame (a translation by t of
        # the size is 2t there); pixel aspect is kept by scaling x and y by the same factor (square images)
        grid = F.affine_grid(G[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def colour(self, x: Tensor, n: int, ch: int, h: int, w: int) -> Tensor:
        p, one, zero = self.p, torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
        C = torch.eye(4, device=x.device).expand(n, 4, 4)
        b = self._n(n, x) * self.brightness_std
        b = torch.where(self._chance(n, x, p), b, zero)
        C = _translate3(b) @ C
        c = torch.exp2(self._n(n, x) * self.contrast_std)
        c = torch.where(self._chance(n, x, p), c, one)
        C = _scale3(c) @ C
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=x.device) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v)
        i = torch.floor(self._u(n, x) * 2)
        i = torch.where(self._chance(n, x, p), i, zero)
        C = (torch.eye(4, device=x.device) - 2 * vv * i[:, None, None]) @ C  # Householder reflection
        if ch > 1:
            theta = (self._u(n, x) * 2 - 1) * math.pi
            theta = torch.where(self._chance(n, x, p), theta, zero)
            C = _rotate3(v, theta) @ C
            s = torch.exp2(self._n(n, x) * self.saturation_std)
            s = torch.where(self._chance(n, x, p), s, one)
            C = (vv + (torch.eye(4, device=x.device) - vv) * s[:, None, None]) @ C
        C = C.to(x.dtype)
        flat = x.reshape(n, ch, h * w)
        if ch == 3:
            flat = C[:, :3, :3] @ flat + C[:, :3, 3:]
        elif ch == 1:
            m = C[:, :3, :].mean(dim=1, keepdim=True)  # grey: the mean of the three rows
            flat = flat * m[:, :, :3].sum(dim=2, keepdim=True) + m[:, :, 3:]
        else:
            raise UserError(f"augment=ada: images must have 1 or 3 channels, not {ch}.")
        return flat.reshape(n, ch, h, w)


# ----------------------------------------------------------------------------- matrices (batched, inverse maps)


def _mat(rows, n: int, device) -> Tensor:
    out = torch.zeros(n, len(rows), len(rows), device=device)
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            out[:, r, c] = v
    return out


def _scale_inv(sx: Tensor, sy: Tensor) -> Tensor:
    """stylegan2-ada's scale2d_inv(sx, sy) = scale2d(1 / sx, 1 / sy)."""
    return _mat([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]], sx.shape[0], sx.device)


def _rotate_inv(theta: Tensor) -> Tensor:
    """stylegan2-ada's rotate2d_inv(theta) = rotate2d(-theta)."""
    c, s = torch.cos(-theta), torch.sin(-theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta.shape[0], theta.device)


def _translate_inv(tx: Tensor, ty: Tensor) -> Tensor:
    """stylegan2-ada's translate2d_inv(tx, ty) = translate2d(-tx, -ty)."""
    return _mat([[1, 0, -tx], [0, 1, -ty], [0, 0, 1]], tx.shape[0], tx.device)


def _translate3(b: Tensor) -> Tensor:
    return _mat([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], b.shape[0], b.device)


def _scale3(c: Tensor) -> Tensor:
    return _mat([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]], c.shape[0], c.device)


def _rotate3(v: Tensor, theta: Tensor) -> Tensor:
    """Rotation by theta about the unit axis v[:3] (Rodrigues), homogeneous 4x4."""
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _mat([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                 [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                 [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                 [0, 0, 0, 1]], theta.shape[0], theta.device)


@component_schema("augment", "ada")
@dataclass
class ADAConfig(AugmentConfig):
    p: Optional[float] = None  # null: adjusted (the heuristic); a value in [0, 1]: fixed
    target: float = 0.6  # the r_t = E[sign D(real)] the heuristic steers to
    interval: int = 4  # D steps between adjustments
    ada_kimg: float = 500.0  # thousands of real images for p to go from 0 to 1
