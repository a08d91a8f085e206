"""Data sets: one convention for toy distributions and images.

Each YAML in ``conf/data/`` names a factory with ``_target_`` (:mod:`gan_cli.data.toy`: ``ring``,
``grid``, ``mixture1d``, ``lines``; :mod:`gan_cli.data.images`: ``mnist``, ``fashion_mnist``,
``cifar10``, ``digits``, ``image_folder``); :func:`gan_cli.build.build_data` calls it.  A factory
returns a :class:`DataSource` whose ``sample(n, generator)`` gives a float32 tensor
``(n, *info.shape)`` on the device; image sources also hold the whole split as one uint8 tensor
``images`` (N, C, H, W) and their ``labels``.
"""
from __future__ import annotations

from .base import DataInfo, DataSource
from .images import ImageSource

__all__ = ["DataInfo", "DataSource", "ImageSource"]
