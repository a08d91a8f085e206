"""``cond=projection`` (Miyato & Koyama 2018, "cGANs with Projection Discriminator"; SNGAN's conditional
ResNets): class-conditional batch norm in G (:mod:`gan_cli.nets.cbn`: a per-class scale and shift after each
batch norm) and the projection discriminator, ``D(x, c) = head(h) + <embed(c), h>`` on D's pooled trunk features
``h`` (spectrally normalised with D).  Needs a G with batch norm and a D with a trunk / head split: net=dcgan,
net=resnet.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import CondConfig, component_schema
import gan_cli.nets.cbn as cbn
from .base import Conditioning, ProjectionD, refuse


class Projection(Conditioning):
    name = "projection"

    def build_nets(self, make, info, latent_dim: int, net: str):
        G, D = make(n_classes=self.n_classes)
        if not cbn.is_conditional(G):
            raise refuse(self.name, net, "its generator has no batch norm to make class-conditional",
                         "use cond=concat, or net=dcgan / net=resnet")
        if not hasattr(D, "trunk"):
            raise refuse(self.name, net, "its discriminator has no trunk / head split to project onto",
                         "use cond=concat, or net=dcgan / net=resnet")
        return G, ProjectionD(D, self.n_classes)


@component_schema("cond", "projection")
@dataclass
class ProjectionCondConfig(CondConfig):
    pass
