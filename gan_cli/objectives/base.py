"""The objective interface shared by every GAN family.

An objective is a small object that owns its whole loss (design principle 1; the style of
NVlabs ``edm/training/loss.py``, whose loss objects draw their own noise and add their own
terms): given D and a batch it returns the discriminator's loss *with its regulariser*
(:meth:`Objective.discriminator_loss`), the generator's loss, the divergence estimate, and what
happens after D's optimiser step (:meth:`Objective.after_d_step`, e.g. weight clipping).  It also
says how many critic steps come before each generator step.  The training loop owns
``backward()`` and the optimisers and knows no objective by name.

The pure parts -- :meth:`d_loss`, :meth:`g_loss`, :meth:`estimate` on raw D outputs -- are what
the closed-form tests check.

R1 (``r1_gamma``, Mescheder et al. 2018, "Which training methods for GANs do actually converge?"):
gamma/2 E_real ||grad_x D(x)||^2 added to D's loss by :meth:`Objective.discriminator_loss` for every
objective (composed with the subclass's own :meth:`~Objective.regularizer`).  Lazy (``r1_every = k``,
StyleGAN2): on every k-th D loss only, multiplied by k.  stylegan2-ada also scales Adam's lr and betas
by k/(k+1) because its R1 is a separate optimiser step (k + 1 steps per k batches); here the lazy term
joins the ordinary D step, there is no extra step, so no scaling is done.  ``r1_points="box"`` takes the same
zero-centred penalty at points drawn uniformly from the box spanned by the batch's real and fake samples
(per feature, min to max) instead of at the real samples: R1 smooths D most where the data is densest,
the box version smooths it the same everywhere between and around the two distributions (f-GAN's tv row
needs that, see :mod:`gan_cli.objectives.fgan`).  It costs one more forward pass of D, whose batch-norm
statistics (if it has any) then see the box points too.

Instance noise (``instance_noise`` = std, ``instance_noise_steps`` = D steps to anneal it linearly to 0):
N(0, std^2) added to every input of D, real and fake, in D's loss and in G's (Sønderby et al. 2017,
"Amortised MAP inference"; Arjovsky & Bottou 2017), so the two distributions overlap early on.

Unrolled GAN (``unroll_steps = K``, Metz et al. 2017): G's loss is taken against D after K differentiable
D updates (:meth:`Objective.unrolled`); D's own step is the ordinary one.

Speed path (:mod:`gan_cli.training.speed`): D may arrive as a ``torch.compile`` wrapper, which cannot take a double
backward (aot_autograd); every input-gradient term (R1 here, the WGAN-GP penalty) and the unrolled steps go
through :func:`eager` (the wrapper's ``_orig_mod``: same parameters and buffers) and :func:`input_grad`,
which under fp16 autocast scales the inner backward by the GradScaler's scale and unscales its result.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional

import torch
from torch import Tensor, nn

from ..config import UserError


class Objective:
    """Base class: ``d_loss`` is minimised by D, ``g_loss`` by G.

    All output arguments are raw D outputs of shape ``(N,)`` (logits or critic values; no
    sigmoid applied).  Every method returns a scalar tensor that keeps the graph.

    Constructor arguments are the run-level fields of ``model=`` (``gan_cli.config.ObjectiveConfig``)
    that concern the objective; a subclass adds its own (``gp_weight``, ``clip``, ``divergence``).
    """

    estimate_tag: str = ""

    def __init__(self, n_critic: int = 1, warmup_critic_steps: int = 0, warmup_g_steps: int = 0,
                 warmup_every: int = 0, r1_gamma: float = 0.0, r1_every: int = 1, r1_points: str = "real",
                 instance_noise: float = 0.0, instance_noise_steps: int = 0, unroll_steps: int = 0,
                 unroll_lr: float = 0.0):
        self.n_critic = int(n_critic)
        self.warmup_critic_steps = int(warmup_critic_steps)
        self.warmup_g_steps = int(warmup_g_steps)
        self.warmup_every = int(warmup_every)
        self.r1_gamma = float(r1_gamma)
        self.r1_every = int(r1_every)
        if self.r1_every < 1:
            raise UserError(f"model.r1_every={r1_every} must be >= 1 (1: R1 on every D step).")
        if r1_points not in R1_POINTS:
            raise UserError(f"model.r1_points={r1_points} is unknown: use real (R1 at the real samples) or box (at points "
                            f"uniform over the box the batch's real and fake samples span).")
        self.r1_points = str(r1_points)
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        if self.instance_noise < 0 or self.instance_noise_steps < 0:
            raise UserError(f"model.instance_noise={instance_noise} and model.instance_noise_steps={instance_noise_steps} "
                            f"must be >= 0.")
        self.unroll_steps = int(unroll_steps)
        self.unroll_lr = float(unroll_lr)  # 0: build_objective sets model.opt_d.lr
        if self.unroll_steps < 0 or self.unroll_lr < 0:
            raise UserError(f"model.unroll_steps={unroll_steps} and model.unroll_lr={unroll_lr} must be >= 0.")
        self._last_real: Optional[Tensor] = None  # the last D step's real batch (the unrolled D steps use it)
        self.d_calls = 0  # discriminator_loss calls so far: which ones carry the lazy R1 term (checkpointed)

    # -- pure losses on D outputs --------------------------------------------
    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def estimate(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """The divergence estimate at the current D (what the loop logs under ``estimate_tag``)."""
        raise NotImplementedError

    # -- what the loop calls ---------------------------------------------------
    def critic_steps(self, step: int) -> int:
        """D steps before generator step ``step`` (0-based): ``n_critic``, or ``warmup_critic_steps`` for
        the first ``warmup_g_steps`` steps and every ``warmup_every``-th (the WGAN reference schedule)."""
        if self.warmup_critic_steps and (step < self.warmup_g_steps
                                         or (self.warmup_every and step % self.warmup_every == 0)):
            return self.warmup_critic_steps
        return self.n_critic

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor,
                           generator: Optional[torch.Generator] = None) -> Tensor:
        """D's whole loss on one batch: :meth:`d_loss` plus the subclass's :meth:`regularizer` plus, when
        ``r1_gamma > 0``, the (lazy) R1 penalty of :meth:`r1_penalty` -- composed here, for every objective."""
        r1_now = self.r1_gamma > 0 and self.d_calls % self.r1_every == 0
        if self.unroll_steps:
            self._last_real = real.detach()
        sigma = self.noise_std()
        self.d_calls += 1
        if sigma > 0:  # instance noise on both of D's inputs (real first, then fake, from ``generator``)
            real, fake = _noisy(real, sigma, generator), _noisy(fake, sigma, generator)
        r1_real = r1_now and self.r1_points == "real"
        real_in = real.detach().requires_grad_(True) if r1_real else real
        # one forward of the real batch serves the loss and R1 (BN stats move once); R1 double-backwards: eager D
        real_out = (eager(D) if r1_real else D)(real_in)
        loss = self.d_loss(real_out, D(fake))
        reg = self.regularizer(D, real, fake, generator)
        if reg is not None:
            loss = loss + reg
        if r1_now:
            if r1_real:
                penalty = r1_penalty(real_out, real_in)
            else:  # box: uniform points between and around the two batches
                points = box_points(real, fake, generator).requires_grad_(True)
                penalty = r1_penalty(eager(D)(points), points)
            # lazy regularisation (Karras et al. 2020): every r1_every-th call, the term times r1_every
            loss = loss + self.r1_every * self.r1_gamma / 2 * penalty
        return loss

    def regularizer(self, D: nn.Module, real: Tensor, fake: Tensor,
                    generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        """An extra term of D's loss (gradient penalty, R1 ...); None: no regulariser."""
        return None

    def generator_loss(self, D: nn.Module, fake: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        sigma = self.noise_std()
        fake_in = _noisy(fake, sigma, generator) if sigma > 0 else fake
        if self.unroll_steps and self._last_real is not None:
            return self.g_loss(self.unrolled(D, self._last_real, fake_in))
        return self.g_loss(D(fake_in))

    def unrolled(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """Unrolled GAN (Metz et al. 2017): D's output on ``fake`` after ``unroll_steps`` differentiable SGD
        steps (lr ``unroll_lr``) on :meth:`d_loss` from D's current weights, through ``torch.func.functional_call``;
        ``fake`` keeps its graph in every step, so G's gradient includes how D would react to it.  D itself is
        not changed (its buffers are copied).  Metz et al. unroll D's own optimiser (Adam) on fresh batches;
        here plain SGD on :meth:`d_loss` alone (no regulariser, no clipping) on the last D step's real batch."""
        from torch.func import functional_call

        D = eager(D)  # differentiable steps through D's gradients: a double backward
        params = {n: p.detach().requires_grad_(True) for n, p in D.named_parameters()}
        buffers = {n: b.clone() for n, b in D.named_buffers()}
        for _ in range(self.unroll_steps):
            state = {**params, **buffers}
            loss = self.d_loss(functional_call(D, state, (real,)), functional_call(D, state, (fake,)))
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {n: p - self.unroll_lr * g for (n, p), g in zip(params.items(), grads)}
        return functional_call(D, {**params, **buffers}, (fake,))

    def noise_std(self) -> float:
        """Instance noise std now (Sønderby et al. 2017; Arjovsky & Bottou 2017): ``instance_noise``, annealed
        linearly to 0 over ``instance_noise_steps`` D steps (0: constant)."""
        if self.instance_noise <= 0:
            return 0.0
        if not self.instance_noise_steps:
            return self.instance_noise
        return self.instance_noise * max(0.0, 1.0 - self.d_calls / self.instance_noise_steps)

    def after_d_step(self, D: nn.Module) -> None:
        """Called after each optimiser step of D (weight clipping ...)."""

    # -- what a checkpoint keeps -------------------------------------------------
    def state_dict(self) -> dict:
        """The objective's own training state (the lazy-R1 call counter), for bit-identical resume."""
        return {"d_calls": self.d_calls}

    def load_state_dict(self, state: dict) -> None:
        self.d_calls = int(state.get("d_calls", 0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(estimate_tag={self.estimate_tag!r}, n_critic={self.n_critic})"


def _noisy(x: Tensor, sigma: float, generator: Optional[torch.Generator]) -> Tensor:
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


#: where R1's zero-centred penalty is taken (``model.r1_points``)
R1_POINTS = ("real", "box")


def box_points(real: Tensor, fake: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """As many points as ``real`` has, uniform over the box ``[min, max]`` (per feature, over both batches) that
    the real and fake samples span; drawn from ``generator``."""
    both = torch.cat([real.detach(), fake.detach()])
    lo, hi = both.amin(dim=0), both.amax(dim=0)
    u = torch.rand(real.shape, generator=generator, device=real.device, dtype=real.dtype)
    return lo + (hi - lo) * u


def r1_penalty(real_out: Tensor, real_in: Tensor) -> Tensor:
    """Mescheder et al. 2018 R1 without its factor: E_real ||grad_x D(x)||^2, the squared norm over all
    non-batch dimensions, averaged over the batch.  ``real_out = D(real_in)`` with ``real_in`` requiring
    grad; the graph is kept (create_graph=True) so the penalty back-propagates into D's parameters.

    With batch norm in D (train mode) a sample's output depends on the whole batch, so this is the
    gradient of the batch's summed output, as in the reference implementations that allow BN."""
    return wide(input_grad(real_out, real_in)).flatten(1).pow(2).sum(1).mean()


# ----------------------------------------------------------------------------- input gradients (speed path)

#: the GradScaler's scale (a device tensor) while an fp16 step's forward passes run; None otherwise
_INNER_SCALE: ContextVar[Optional[Tensor]] = ContextVar("gan_cli_inner_grad_scale", default=None)


@contextmanager
def inner_grad_scale(scale: Optional[Tensor]):
    """Within the block, :func:`input_grad` scales its inner backward by ``scale`` (set by
    :meth:`gan_cli.training.speed.SpeedPath.autocast` under fp16; None: no scaling)."""
    token = _INNER_SCALE.set(scale)
    try:
        yield
    finally:
        _INNER_SCALE.reset(token)


def input_grad(out: Tensor, x: Tensor, create_graph: bool = True) -> Tensor:
    """d(out.sum())/dx, with the graph kept (``create_graph``) so a penalty on it trains D.

    Under fp16 autocast with a GradScaler (:func:`inner_grad_scale`), small fp16 gradients would underflow
    in the inner backward: the output is multiplied by the scale S first and the gradient divided by S
    after (the PyTorch AMP examples' "Gradient penalty" recipe, there for parameter gradients), so the
    result is the true gradient.  S is a device tensor: no host sync."""
    scale = _INNER_SCALE.get()
    total = out.sum() if scale is None else wide(out).sum() * scale
    (grad,) = torch.autograd.grad(total, x, create_graph=create_graph)
    return grad if scale is None else grad / scale


def wide(t: Tensor) -> Tensor:
    """``t`` in float32 when autocast made it fp16/bf16 (norms and sums of squares in full precision); else as is
    (float64 stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def eager(D: nn.Module) -> nn.Module:
    """D without its ``torch.compile`` wrapper (``D._orig_mod``; D itself when not compiled), for terms
    that need a double backward: aot_autograd "does not currently support double backward"."""
    return getattr(D, "_orig_mod", D)
