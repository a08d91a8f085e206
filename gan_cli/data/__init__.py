"""Data sets: one convention for toy distributions and images.

Each YAML in ``conf/data/`` names a factory with ``_target_`` (:mod:`gan_cli.data.toy`: ``ring``,
``grid``, ``mixture1d``, ``lines``; :mod:`gan_cli.data.images`: ``mnist``, ``fashion_mnist``,
``cifar10``, ``digits``, ``image_folder``: stored sets from :mod:`.download`, folders from :mod:`.folder`);
:func:`gan_cli.build.build_data` calls it.  A factory
returns a :class:`DataSource` whose ``sample(n, generator)`` gives a float32 tensor
``(n, *info.shape)`` on the device.  Image sources are an :class:`ImageSource` (the whole split as one
uint8 tensor ``images`` (N, C, H, W) on the device) or, for data beyond ``data.memory_budget_gb``, a
:class:`StreamSource` (a DataLoader with worker processes, :mod:`gan_cli.data.stream`); both have
``labels`` and ``shard(rank, num_replicas)``.
"""
from __future__ import annotations

from .base import DataInfo, DataSource
from .images import ImageSource
from .stream import StreamSource

__all__ = ["DataInfo", "DataSource", "ImageSource", "StreamSource"]
