"""Class-conditional GANs: the ``cond=`` group (``none`` by default; ``concat``, ``projection``, ``acgan``).

A conditioning (:class:`gan_cli.cond.base.Conditioning`) is one file here and one YAML in ``conf/cond/``.  It
builds the conditional G and D around the net's builder (:meth:`~gan_cli.cond.base.Conditioning.build_nets`),
draws the classes G is asked for during training (``cond.sample``: uniform, or by the data's label
frequencies), and may add class terms to D's and G's losses (ACGAN's class head).  The labels come from the data
(the step contract: every batch is ``(x, c)``); the number of classes from ``DataInfo.n_classes``.
"""
from .base import Conditioning

__all__ = ["Conditioning"]
