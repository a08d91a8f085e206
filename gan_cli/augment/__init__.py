"""Augment pipes: ``augment=<name>`` (``none``, the default, is no pipe).  The one path into D
(:mod:`gan_cli.training.step`) applies the pipe to real and fake alike, in D's loss, G's loss and the penalties.
:mod:`.base` is the interface: an ``nn.Module`` with its own seeded generator and state, in the checkpoint."""
from __future__ import annotations

from .base import AugmentPipe

__all__ = ["AugmentPipe"]
