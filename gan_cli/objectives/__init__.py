"""GAN objectives, one file per family; each YAML in ``conf/model/`` names its class with ``_target_``.

gan / nsgan: :mod:`.gan` (Goodfellow et al. 2014); fgan: :mod:`.fgan` (Nowozin et al. 2016,
one class over a divergence table); hinge: :mod:`.hinge` (Lim & Ye 2017); wgan / wgan_gp: :mod:`.wgan` (Arjovsky et al. 2017: clipping after
D's step; Gulrajani et al. 2017: the Wasserstein loss with the gradient penalty, a regulariser its YAML
carries, :mod:`gan_cli.regularizers.gp`).  :mod:`gan_cli.build` instantiates them; nothing here lists them by name.
"""
from __future__ import annotations

from .base import Objective
from .fgan import DIVERGENCES, FGAN, FDivergence
from .gan import GAN, NSGAN
from .hinge import Hinge
from .wgan import WGAN, Wasserstein

__all__ = ["Objective", "GAN", "NSGAN", "FGAN", "FDivergence", "DIVERGENCES", "Wasserstein", "WGAN", "Hinge"]
