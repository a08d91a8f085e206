"""Data sets: one convention for toy distributions and images.

``build_data(data_cfg, device)`` returns a :class:`DataSource` whose ``sample(n, generator)`` gives a
float32 tensor ``(n, *info.shape)`` on ``device``; ``load_images(data_cfg, split)`` gives an image data
set's whole split as a CPU uint8 tensor ``(N, C, H, W)`` (for metrics).  Toy sets: ``ring8``, ``grid25``,
``mog1d``, ``lines`` (:mod:`gan_cli.data.toy`); image sets: ``mnist``, ``fashion_mnist``, ``cifar10``,
``digits``, ``image_folder`` (:mod:`gan_cli.data.images`).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from ..config import UserError
from .base import DataInfo, DataSource
from .images import IMAGE_NAMES, N_CLASSES, load_image_split
from .toy import TOY_KINDS, TOY_NAMES, build_toy

__all__ = ["DataInfo", "DataSource", "ImageSource", "build_data", "load_images", "data_kind", "TOY_NAMES",
           "IMAGE_NAMES"]


class ImageSource(DataSource):
    """Index draws (with replacement) from one uint8 tensor ``images`` kept on the device."""

    def __init__(self, info: DataInfo, images: torch.Tensor, labels: Optional[torch.Tensor], device: torch.device):
        self.info = info
        self.device = device
        self.images = images.to(device)  # uint8 (N, C, H, W)
        self.labels = labels  # CPU LongTensor or None

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        idx = torch.randint(0, self.images.shape[0], (n,), generator=generator, device=self._rng_device(generator))
        x = self.images[idx.to(self.device)].float()
        return x.div_(127.5).sub_(1.0)  # 0 -> -1, 255 -> 1


def data_kind(name: str) -> str:
    """``toy2d`` / ``toy1d`` / ``image`` for a known data set name (UserError otherwise)."""
    if name in TOY_KINDS:
        return TOY_KINDS[name]
    if name in IMAGE_NAMES:
        return "image"
    raise UserError(f"data={name} is unknown: use one of {', '.join(TOY_NAMES + IMAGE_NAMES)}.")


def _check_kind(data_cfg, name: str) -> str:
    kind = data_kind(name)
    try:
        given = data_cfg.kind
    except Exception:  # missing in a partial config: the name decides
        given = None
    given = getattr(given, "value", given)
    if given not in (None, "???") and str(given) != kind:
        raise UserError(f"data.kind={given} does not match data={name}, which is {kind}: drop the data.kind override.")
    return kind


def build_data(data_cfg, device: Union[str, torch.device] = "cpu") -> DataSource:
    """The :class:`DataSource` for ``data_cfg`` (a DataConfig or an equivalent DictConfig) on ``device``.

    Image sets are loaded once (train split, first ``data.limit`` images when set) and moved to the
    device; toy sets hold only their mixture centres.
    """
    device = torch.device(device)
    name = str(data_cfg.name)
    kind = _check_kind(data_cfg, name)
    if kind != "image":
        return build_toy(data_cfg, device)
    images, labels = load_image_split(data_cfg, "train")
    if images.shape[0] == 0:
        raise UserError(f"data={name} has no training images (data.limit={getattr(data_cfg, 'limit', 0)}).")
    info = DataInfo(name=name, kind="image", shape=tuple(images.shape[1:]), n_modes=N_CLASSES.get(name))
    return ImageSource(info, images, labels, device)


def load_images(data_cfg, split: str = "train") -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """An image data set's ``split`` (``"train"`` or ``"test"``) as ``(uint8 (N, C, H, W), labels or None)``
    on the CPU, with the same processing as :func:`build_data` (size, channels, ``data.limit`` on train)."""
    name = str(data_cfg.name)
    if _check_kind(data_cfg, name) != "image":
        raise UserError(f"data={name} is a toy distribution, not an image data set: image metrics need "
                        f"data=mnist, fashion_mnist, cifar10, digits or image_folder.")
    return load_image_split(data_cfg, split)
