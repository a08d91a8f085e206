"""The conditioning interface and the nets' wrappers it composes.

:class:`Conditioning` is built from ``cond=`` (``_target_``) and bound to the data (:meth:`Conditioning.bind`:
the class count and frequencies).  Its hooks:

* :meth:`~Conditioning.build_nets` -- ``(G, D)`` from ``make(**changes)``, the net's builder called with the run's
  arguments and ``changes`` (a wider latent, a D input with more channels, ``n_classes`` for conditional batch
  norm).  A net that cannot take the conditioning is refused in one line (:func:`refuse`).
* :meth:`~Conditioning.draw` -- the classes of a batch of generated samples in training: uniform over the
  classes (``cond.sample=uniform``) or by the training labels' frequencies (``cond.sample=data``), from the
  run's train stream.
* :meth:`~Conditioning.d_term` / :meth:`~Conditioning.g_term` -- class terms added to D's / G's loss, read from
  the class logits a D with a class head returns beside its adversarial output (D's output ``(N, 1 + K)``:
  column 0 the adversarial output, then K class logits; the one path into D splits them,
  :class:`gan_cli.training.step.DPath`).

Wrappers (each keeps the net it wraps as ``.net``; a wrapped G keeps ``latent_dim``):

* :class:`EmbedG` -- G reads ``[z, embed(c)]`` (Mirza & Osindero 2014's joined input; ACGAN's G).
* :class:`EmbedD` -- D reads its input with ``embed(c)`` joined: as constant feature maps beside the image's
  channels for a convolutional D, appended to the flattened input for a D that reads it flat (the MLP).
* :class:`ProjectionD` -- ``head(h) + <embed(c), h>`` on D's trunk features ``h`` (Miyato & Koyama 2018).
* :class:`ClassHeadD` -- a linear class head on D's trunk features beside its output (Odena et al. 2017).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ..config import UserError

#: cond.sample
SAMPLES = ("uniform", "data")


def needs_labels(cond: str, data: str) -> str:
    """The one line for a conditional GAN on unlabelled data."""
    return (f"cond={cond} needs labelled data, and data={data} has no labels: use a labelled data set (mnist, "
            f"fashion_mnist, cifar10, digits, a toy mixture), data.labels=folders for an image folder with one "
            f"sub-folder per class, or cond=none.")


def refuse(name: str, net: str, why: str, fix: str) -> UserError:
    return UserError(f"cond={name} with net={net}: {why}; {fix}.")


def spectrally_normalised(D: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in D.modules())


class EmbedG(nn.Module):
    """``G(z, c) = net([z, embed(c)], None)``; ``net`` built for a latent of ``latent_dim + embed_dim``."""

    def __init__(self, net: nn.Module, latent_dim: int, n_classes: int, embed_dim: int):
        super().__init__()
        self.net, self.latent_dim = net, int(latent_dim)
        self.embed = nn.Embedding(int(n_classes), int(embed_dim))

    def forward(self, z: Tensor, c: Optional[Tensor] = None) -> Tensor:
        if c is None:
            raise ValueError("a class-conditional generator needs the labels c: call G(z, c)")
        return self.net(torch.cat([z, self.embed(c)], dim=1), None)


class EmbedD(nn.Module):
    """``D(x, c) = net([x, embed(c)])``: the embedding as ``embed_dim`` constant maps beside an image's channels
    (``flat=False``), or appended to the flattened input (``flat=True``)."""

    def __init__(self, net: nn.Module, n_classes: int, embed_dim: int, flat: bool):
        super().__init__()
        self.net, self.flat = net, bool(flat)
        self.embed = nn.Embedding(int(n_classes), int(embed_dim))

    def forward(self, x: Tensor, c: Optional[Tensor] = None) -> Tensor:
        e = self.embed(c)
        if self.flat:
            return self.net(torch.cat([x.reshape(x.shape[0], -1), e], dim=1), None)
        maps = e[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.net(torch.cat([x, maps], dim=1), None)


class ProjectionD(nn.Module):
    """``D(x, c) = head(h) + <embed(c), h>``, ``h = net.trunk(x)`` (the projection discriminator); the embedding
    spectrally normalised when D's layers are (SNGAN's projection cGAN)."""

    def __init__(self, net: nn.Module, n_classes: int):
        super().__init__()
        self.net = net
        self.embed = nn.Embedding(int(n_classes), int(net.trunk_dim))
        nn.init.xavier_uniform_(self.embed.weight)
        if spectrally_normalised(net):
            spectral_norm(self.embed)

    def forward(self, x: Tensor, c: Optional[Tensor] = None) -> Tensor:
        h = self.net.trunk(x)
        return self.net.head(h) + (self.embed(c) * h).sum(dim=1)


class ClassHeadD(nn.Module):
    """``D(x, c) -> (N, 1 + K)``: ``net``'s output, then ``K`` class logits of a linear head on ``net.trunk(x)``
    (one trunk pass for both); ``c`` is not read (ACGAN's D is unconditional, its head predicts c)."""

    def __init__(self, net: nn.Module, n_classes: int):
        super().__init__()
        self.net = net
        self.classes = nn.Linear(int(net.trunk_dim), int(n_classes))
        if spectrally_normalised(net):
            spectral_norm(self.classes)

    def forward(self, x: Tensor, c: Optional[Tensor] = None) -> Tensor:
        h = self.net.trunk(x)
        return torch.cat([self.net.head(h)[:, None], self.classes(h)], dim=1)


class Conditioning:
    """Base class (see the module docstring).  ``name`` is the ``cond=`` option; ``sample``: uniform | data."""

    name: str = ""

    def __init__(self, sample: str = "uniform"):
        if sample not in SAMPLES:
            raise UserError(f"cond.sample={sample} is unknown: use uniform (every class equally often) or data (by "
                            f"the training labels' frequencies).")
        self.sample = sample
        self.n_classes = 0
        self.probs: Optional[Tensor] = None

    def bind(self, info, labels: Optional[Tensor] = None) -> "Conditioning":
        """Take the class count from ``info`` (one line when the data has no labels) and, for ``sample=data``, the
        frequencies of ``labels`` (the training labels; None: uniform, e.g. toy mixtures of equal weights)."""
        if not info.n_classes:
            raise UserError(needs_labels(self.name, info.name))
        self.n_classes = int(info.n_classes)
        if self.sample == "data" and labels is not None:
            counts = torch.bincount(labels.reshape(-1).long().cpu(), minlength=self.n_classes).double()
            self.probs = counts / counts.sum()
        return self

    def build_nets(self, make: Callable[..., tuple], info, latent_dim: int, net: str) -> tuple:  # pragma: no cover
        raise NotImplementedError

    def draw(self, n: int, generator: torch.Generator, device) -> Tensor:
        """The classes of ``n`` generated samples in a training step."""
        dev = generator.device
        if self.probs is None:
            c = torch.randint(self.n_classes, (n,), generator=generator, device=dev)
        else:
            c = torch.multinomial(self.probs.to(dev), n, replacement=True, generator=generator)
        return c.to(device)

    def d_term(self, real_aux: Optional[Tensor], c_real: Tensor, fake_aux: Optional[Tensor],
               c_fake: Tensor) -> Optional[Tensor]:
        """A class term added to D's loss (class logits of a D with a class head), or None."""
        return None

    def g_term(self, fake_aux: Optional[Tensor], c_fake: Tensor) -> Optional[Tensor]:
        """A class term added to G's loss, or None."""
        return None


def parametric(G: nn.Module) -> bool:
    """A generator of one parametric family (``net=theta`` / ``gaussian``: they log their parameters): nothing to
    condition."""
    return hasattr(G, "log_scalars")
