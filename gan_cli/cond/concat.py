"""``cond=concat`` (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"): a learned embedding of the
class joined to G's latent and to D's input -- as constant maps beside the image's channels for a convolutional
D (the usual conditional DCGAN), appended to the flattened input for an MLP.  Works with every net that reads a
latent and an input (mlp, dcgan, resnet, a plugin's); ``cond.embed_dim=0`` (the default) makes the embedding as
wide as the one-hot code of the paper (``n_classes`` numbers).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..config import CondConfig, component_schema
from .base import Conditioning, EmbedD, EmbedG, parametric, refuse


class Concat(Conditioning):
    name = "concat"

    def __init__(self, sample: str = "uniform", embed_dim: int = 0):
        super().__init__(sample)
        self.embed_dim = int(embed_dim)

    @property
    def width(self) -> int:
        return self.embed_dim or self.n_classes

    def build_nets(self, make, info, latent_dim: int, net: str):
        G0, D0 = make()
        if parametric(G0):
            raise refuse(self.name, net, "this generator is one parametric family with nothing to condition",
                         "use net=mlp")
        e = self.width
        G, _ = make(latent_dim=latent_dim + e)
        flat = bool(getattr(D0, "flat_input", False)) or len(info.shape) != 3
        shape = (math.prod(info.shape) + e,) if flat else (int(info.shape[0]) + e, *info.shape[1:])
        _, D = make(info=dataclasses.replace(info, shape=tuple(int(s) for s in shape)))
        return EmbedG(G, latent_dim, self.n_classes, e), EmbedD(D, self.n_classes, e, flat)


@component_schema("cond", "concat")
@dataclass
class ConcatCondConfig(CondConfig):
    embed_dim: int = 0  # the class embedding's width (0: n_classes, as wide as a one-hot code)
