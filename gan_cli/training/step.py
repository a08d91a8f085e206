"""One step of D and one of G, through the one path into D.

:class:`DPath` forms D's input in one place and calls D: augment pipe (:mod:`gan_cli.augment`) -> the
regularisers' input transforms (instance noise) -> packing (PacGAN: m consecutive samples concatenated along
the first feature axis, ``model.pack``) -> ``D(x, c)``.  D's loss, G's loss, R1 / the gradient penalty and the
unrolled critic all call it, so an augmentation or a new input transform reaches every one of them
(stylegan2-ada-pytorch ``training/loss.py``'s ``run_D`` with its ``augment_pipe``).  ``clean=True`` skips the
augment pipe and the transforms (the held-out divergence estimate measures the data, not the augmented data).
A D with a class head (``cond=acgan``) returns ``(N, 1 + K)``: the path returns column 0, the adversarial output
every objective reads, and keeps the K class logits as ``path.aux`` for the conditioning's class terms.

:func:`discriminator_loss` and :func:`generator_loss` compose the objective's pure losses
(:mod:`gan_cli.objectives`) with the regularisers (:mod:`gan_cli.regularizers`).  G's step reads the last D
step's real batch (no new draw, as stylegan2-ada's phases share one real batch): relativistic losses need
D(real) there (``objective.g_needs_real``), the unrolled critic trains on it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from gan_cli.regularizers.base import DStep, GStep, eager


def pack(x: Tensor, c: Optional[Tensor], m: int):
    """PacGAN (Lin et al. 2018): a batch of N samples as N / m m-tuples of consecutive samples, concatenated along
    the first feature axis (flat data: ``m * d`` features; images: ``m * C`` channels); the labels as ``(N / m,
    m)``.  ``m = 1``: unchanged."""
    if m == 1:
        return x, c
    n = x.shape[0]
    if n % m:
        raise ValueError(f"PacGAN: a batch of {n} samples cannot be packed into {m}-tuples")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:]), (c.reshape(n // m, m) if c is not None else None)


class DPath:
    """The one path into D (see the module docstring).  ``D`` may be a ``torch.compile`` wrapper; ``eager=True``
    calls the uncompiled module (double backward), ``params`` calls it functionally with those tensors
    (``torch.func.functional_call``: the unrolled critic)."""

    def __init__(self, D: nn.Module, augment=None, transforms=(), pack: int = 1,
                 generator: Optional[torch.Generator] = None):
        self.D = D
        self.augment = augment
        self.transforms = list(transforms)
        self.pack = int(pack)
        self.generator = generator  # the train stream: the transforms' draws (instance noise)
        self.aux: Optional[Tensor] = None  # the last call's class logits (a D with a class head), else None

    def inputs(self, x: Tensor, c: Optional[Tensor], clean: bool = False):
        if not clean:
            if self.augment is not None:
                x = self.augment(x)
            for t in self.transforms:
                x = t.transform(x, self.generator)
        return pack(x, c, self.pack)

    def __call__(self, x: Tensor, c: Optional[Tensor] = None, *, eager: bool = False, clean: bool = False,
                 params: Optional[dict] = None) -> Tensor:
        x, c = self.inputs(x, c, clean)
        if params is not None:
            from torch.func import functional_call

            out = functional_call(_eager(self.D), params, (x, c))
        else:
            out = (_eager(self.D) if eager else self.D)(x, c)
        if out.dim() == 2:  # (N, 1 + K): the adversarial output, then class logits
            self.aux = out[:, 1:]
            return out[:, 0]
        self.aux = None
        return out


_eager = eager


def discriminator_loss(objective, regularizers: dict, path: DPath, real: Tensor, c_real: Optional[Tensor],
                       fake: Tensor, c_fake: Optional[Tensor], cond=None):
    """D's whole loss on one batch: the objective's ``d_loss`` plus every regulariser's term and the conditioning's
    class term (``cond``: a :class:`gan_cli.cond.Conditioning`, or None).  Returns ``(loss,
    real_out)`` (D's outputs on the real batch, for an adaptive augment pipe).  One forward of the real batch
    serves the loss and R1 at the real samples (batch-norm statistics move once); it takes input gradients
    through the uncompiled D when a regulariser wants them."""
    regs = list(regularizers.values())
    grad = any(r.wants_real_grad() for r in regs)
    real_in = real.detach().requires_grad_(True) if grad else real
    real_out = path(real_in, c_real, eager=grad)
    real_aux = path.aux
    fake_out = path(fake, c_fake)
    loss = objective.d_loss(real_out, fake_out)
    if cond is not None:
        term = cond.d_term(real_aux, c_real, path.aux, c_fake)
        if term is not None:
            loss = loss + term
    step = DStep(path, objective, real, c_real, fake, c_fake, real_in, real_out, fake_out, path.generator)
    for r in regs:
        term = r.d_term(step)
        if term is not None:
            loss = loss + term
    for r in regs:
        r.d_step_done()
    return loss, real_out


def generator_loss(objective, regularizers: dict, path: DPath, fake: Tensor, c_fake: Optional[Tensor],
                   real: Tensor, c_real: Optional[Tensor], cond=None) -> Tensor:
    """G's loss: the objective's ``g_loss`` on the critic's outputs for ``fake`` (and for the real batch when the
    objective reads it); the critic is the path into D, or what a regulariser puts in its place (the unrolled
    look-ahead)."""
    critic = path
    step = GStep(path, objective, real, c_real, fake, c_fake, path.generator)
    for r in regularizers.values():
        critic = r.g_critic(step) or critic
    path.aux = None
    fake_out = critic(fake, c_fake)
    term = cond.g_term(path.aux, c_fake) if cond is not None else None
    loss = objective.g_loss(fake_out, critic(real, c_real)) if objective.g_needs_real else objective.g_loss(fake_out)
    return loss if term is None else loss + term
