"""``cond=acgan`` (Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs"): G reads the
class joined to its latent (as ``cond=concat``'s G); D is unconditional with a linear class head on its trunk
features beside its output; a cross-entropy class loss, weighted ``cond.weight``, is added to D's loss on the real
batch and to G's loss on its samples (G is pushed to make samples D classifies as the class asked for).

The variant: by default D's class loss reads the **real batch only** (as StudioGAN trains its AC discriminators);
the paper's D also classifies the generated samples (``cond.fake_in_d=true``), which early in training teaches
D's head the classes of G's unfinished samples and lets G satisfy it with class-typical artefacts -- the known
failure of the original toward easy-to-classify, low-diversity samples (Shu et al. 2017; Gong et al. 2019, TAC-GAN).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..config import CondConfig, component_schema
from .base import ClassHeadD, Conditioning, EmbedG, parametric, refuse


class ACGAN(Conditioning):
    name = "acgan"

    def __init__(self, sample: str = "uniform", embed_dim: int = 0, weight: float = 1.0, fake_in_d: bool = False):
        super().__init__(sample)
        self.embed_dim, self.weight, self.fake_in_d = int(embed_dim), float(weight), bool(fake_in_d)

    def build_nets(self, make, info, latent_dim: int, net: str):
        G0, D = make()
        if parametric(G0):
            raise refuse(self.name, net, "this generator is one parametric family with nothing to condition",
                         "use net=mlp")
        if not hasattr(D, "trunk"):
            raise refuse(self.name, net, "its discriminator has no trunk / head split for a class head",
                         "use cond=concat, or net=mlp / dcgan / resnet")
        e = self.embed_dim or self.n_classes
        G, _ = make(latent_dim=latent_dim + e)
        return EmbedG(G, latent_dim, self.n_classes, e), ClassHeadD(D, self.n_classes)

    def d_term(self, real_aux, c_real, fake_aux, c_fake):
        if real_aux is None:  # a critic that bypasses the class head (none built in)
            return None
        loss = F.cross_entropy(real_aux, c_real)
        if self.fake_in_d:
            loss = loss + F.cross_entropy(fake_aux, c_fake)
        return self.weight * loss

    def g_term(self, fake_aux, c_fake):
        if fake_aux is None:
            return None
        return self.weight * F.cross_entropy(fake_aux, c_fake)


@component_schema("cond", "acgan")
@dataclass
class ACGANCondConfig(CondConfig):
    embed_dim: int = 0  # G's class embedding width (0: n_classes)
    weight: float = 1.0  # the class loss's weight in D's and G's losses
    fake_in_d: bool = False  # D's class loss on generated samples too (the paper's variant)
