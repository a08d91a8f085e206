"""Inception preprocessing modes: how an image becomes the FID Inception network's 299x299 input.

The cause of most "my FID differs from tool X" reports is not the network (all tools use the
TF inception-2015-12-05 weights) but the resize and the scaling in front of it.  Each mode here is
one function ``images -> network input``, held by :class:`~gan_cli.metrics.inception.InceptionExtractor`
(``metrics.preprocess=<mode>``); no other code branches on the mode.

Every function takes what every gan_cli extractor takes -- float images in [-1, 1], (N, 1 or 3, H, W)
(uint8 data arrive as ``u / 127.5 - 1``, :func:`gan_cli.metrics.features.to_unit_range`) -- and
returns float32 (N, 3, 299, 299) in the network's input range.  Grey images are repeated to RGB
first (what PIL's ``convert("RGB")`` does in every library).

==================  ==============================================================================
``pytorch_fid``     pytorch-fid 0.3.0 ``InceptionV3(resize_input=True, normalize_input=True)``:
                    bilinear resize, no antialias, ``align_corners=False``, then ``2x - 1``
                    (= ``u / 127.5 - 1``).  clean-fid's ``legacy_pytorch`` is the same.  gan_cli's
                    behaviour before the modes existed; metric names unchanged (``fid10k_inception``).
``torch_fidelity``  torch-fidelity 0.4.0 ``FeatureExtractorInceptionV3``: uint8 input (float images are
                    quantised ``round((x + 1) * 127.5)``, as ``gan-eval export`` writes them), the
                    TF1 bilinear resize (``interpolate_bilinear_2d_like_tensorflow1x``, half-pixel
                    centres off, ``align_corners=False``), then ``(x - 128) / 128``.  This is the
                    original TTUR / TF FID and clean-fid's ``legacy_tensorflow``.  Names end ``_tf``.
``clean``           clean-fid 0.1.35 ``mode="clean"``: PIL bicubic with antialias on float32 pixel
                    values in [0, 255] (``make_resizer("PIL", False, "bicubic", (299, 299))``), clipped
                    to [0, 255] and not re-quantised, then ``(x - 128) / 128``.  Computed in torch with
                    ``interpolate(mode="bicubic", antialias=True)``, which is PIL's filter (a = -0.5,
                    support scaled when downsampling).  Float images are not quantised (clean-fid's
                    own generator path).  Names end ``_clean``.
==================  ==============================================================================

The domain-classifier suite (``metrics=images``, names ``_clf``) has its own input convention and
ignores the mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from gan_cli.config import UserError

INPUT_SIZE = 299


@dataclass(frozen=True)
class Preprocessing:
    name: str  # metrics.preprocess=<name>
    fn: Callable[[torch.Tensor], torch.Tensor]  # [-1, 1] images -> (N, 3, 299, 299) network input
    cache_tag: str  # the extractor's cache_id ends with it (features of different modes never mix)
    key_suffix: str  # appended to the extractor tag in metric names: fid10k_inception<suffix>
    matches: str  # which tools give the same numbers (docs, error lines)


#: mode name -> Preprocessing (the one table; register_preprocess adds to it)
PREPROCESS: dict[str, Preprocessing] = {}
DEFAULT = "pytorch_fid"


def register_preprocess(name: str, *, cache_tag: str, key_suffix: str, matches: str):
    """Decorator: ``fn(images) -> network input`` becomes ``metrics.preprocess=<name>``."""

    def deco(fn):
        PREPROCESS[name] = Preprocessing(name, fn, cache_tag, key_suffix, matches)
        return fn

    return deco


def get_preprocess(name) -> Preprocessing:
    """The mode ``name``; one line naming the modes otherwise."""
    name = str(getattr(name, "value", name))
    if name not in PREPROCESS:
        raise UserError(f"metrics.preprocess={name} is unknown: use one of {', '.join(PREPROCESS)} "
                        f"(pytorch-fid, torch-fidelity and clean-fid's Inception preprocessing).")
    return PREPROCESS[name]


def _rgb(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"The Inception extractor needs images shaped (N, 1 or 3, H, W); got {tuple(images.shape)}.")
    x = images.float()
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


@register_preprocess("pytorch_fid", cache_tag="bilinear299", key_suffix="",
                     matches="pytorch-fid, clean-fid mode=legacy_pytorch")
def pytorch_fid(images: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of the [-1, 1] image (no antialias, align_corners=False): pytorch-fid resizes x in
    [0, 1] and then maps 2x - 1; the resize is linear, so the order does not matter."""
    x = _rgb(images)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x


def resize_bilinear_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` on float (N, C, H, W), computed step for step
    as torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x(method="slow")`` (bit-exact on the CPU):
    source coordinate = out * (in / out) in float32, floor and floor+1 (clamped), linear weights."""

    def axis(n_in: int):
        grid = torch.arange(0, size, 1, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = grid.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, grid - lo.float()

    y_lo, y_hi, dy = axis(x.shape[2])
    x_lo, x_hi, dx = axis(x.shape[3])
    top, bottom = x[:, :, y_lo, :], x[:, :, y_hi, :]
    dx = dx.view(1, 1, 1, size)
    row0 = top[:, :, :, x_lo] + (top[:, :, :, x_hi] - top[:, :, :, x_lo]) * dx
    row1 = bottom[:, :, :, x_lo] + (bottom[:, :, :, x_hi] - bottom[:, :, :, x_lo]) * dx
    return row0 + (row1 - row0) * dy.view(1, 1, size, 1)


@register_preprocess("torch_fidelity", cache_tag="tf1bilinear299-uint8", key_suffix="_tf",
                     matches="torch-fidelity, TTUR (TF), clean-fid mode=legacy_tensorflow")
def torch_fidelity(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels, TF1 bilinear resize, (x - 128) / 128."""
    u8 = ((_rgb(images) + 1.0) * 127.5).round_().clamp_(0, 255)  # the uint8 values, as float32
    return (resize_bilinear_tf1(u8) - 128.0) / 128.0


@register_preprocess("clean", cache_tag="pilbicubic299-float", key_suffix="_clean",
                     matches="clean-fid mode=clean")
def clean(images: torch.Tensor) -> torch.Tensor:
    """PIL bicubic (antialias) on float pixels in [0, 255], clip, no quantisation, (x - 128) / 128."""
    x = (_rgb(images) + 1.0) * 127.5
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False, antialias=True)
    return (x.clamp(0.0, 255.0) - 128.0) / 128.0


def metric_tag(mode: str) -> str:
    """The extractor tag in metric names for ``mode``: inception, inception_tf, inception_clean."""
    return "inception" + get_preprocess(mode).key_suffix


__all__ = ["PREPROCESS", "DEFAULT", "Preprocessing", "register_preprocess", "get_preprocess", "metric_tag",
           "resize_bilinear_tf1"]
