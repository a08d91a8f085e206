"""Trackers: ``logger=[tensorboard]`` (the default).  One :class:`~.base.Logger` interface -- scalars, images,
figures, text, the config, HParams, artifacts, close -- used by the loop, gan-eval, the sweep summary and the
lab; :class:`~.base.Loggers` fans a call out to every tracker of a run.  A new tracker is one file here and one
YAML in ``conf/logger/``."""
from __future__ import annotations

from .base import Logger, Loggers

__all__ = ["Logger", "Loggers"]
