"""The data convention shared by every data set: :class:`DataInfo`, :class:`Batch` and :class:`DataSource`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch


class Batch(NamedTuple):
    """One draw of a data source: ``x`` float32 ``(n, *info.shape)`` and ``c`` the int64 class labels ``(n,)``
    (the mixture component of a toy sample, the class of a labelled image), or None for unlabelled data.
    Both on the source's device.  Unpacks as ``x, c = source.sample(n, generator)``."""

    x: torch.Tensor
    c: Optional[torch.Tensor]


@dataclass
class DataInfo:
    """What the rest of gan_cli may know about a data set.

    ``kind``: ``"toy2d"``, ``"toy1d"`` or ``"image"``.  ``shape``: one sample's shape, e.g. ``(2,)``,
    ``(1,)`` or ``(C, H, W)``.  ``n_modes``: mixture components (toy), classes (labelled images) or
    ``None`` (unlabelled images).  ``centers``: the mixture means, a float32 CPU tensor ``(M, d)``, or
    ``None`` (``lines`` and images).  ``std``: the per-coordinate std of every component, or ``None``.
    ``n_classes``: how many values the labels ``c`` of a :class:`Batch` take (``0 .. n_classes - 1``), or
    ``None`` when the data is unlabelled; ``class_names``: their names where the data set has them (the
    sub-folders of an image folder read with ``data.labels=folders``).
    """

    name: str
    kind: str
    shape: Tuple[int, ...]
    n_modes: Optional[int] = None
    centers: Optional[torch.Tensor] = None
    std: Optional[float] = None
    n_classes: Optional[int] = None
    class_names: Optional[Tuple[str, ...]] = None


class DataSource:
    """A distribution to draw training batches from.

    ``sample(n, generator)`` returns a :class:`Batch` ``(x, c)`` on ``self.device``: ``x`` float32
    ``(n, *info.shape)``, ``c`` the labels or None.  Toy data is drawn fresh from the distribution (``c``:
    the component each sample came from), images are index draws (with replacement) from one uint8 tensor
    kept on the device, mapped to ``[-1, 1]`` (``c``: those images' labels).  All randomness comes from
    ``generator`` (the global RNG of ``self.device`` when it is ``None``), so equal generator states give
    equal batches; the labels come with the draw and take nothing from the generator.  A generator on
    another device than the data works: the draws happen on the generator's device.
    """

    info: DataInfo
    device: torch.device

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Batch:  # pragma: no cover
        raise NotImplementedError

    def shard(self, rank: int, num_replicas: int) -> "DataSource":
        """Multi-process training: this rank's part of the data (``DistributedSampler``'s argument names).
        Image sources draw only from images ``rank, rank + num_replicas, ...``; toy data is drawn fresh from
        the distribution, so there is nothing to split (each rank's own generator makes its draws differ)."""
        return self

    def _rng_device(self, generator: Optional[torch.Generator]) -> torch.device:
        return generator.device if generator is not None else self.device

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name}, shape={self.info.shape}, device={self.device})"


def short_error(err: BaseException) -> str:
    """The last non-empty line of an exception's text (torchvision's messages span lines), at most 160 characters."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
