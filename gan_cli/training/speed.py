"""The GPU speed path: mixed precision, channels_last, fused optimisers, TF32, torch.compile, CUDA graphs.

``speed.*`` in the train config (:class:`gan_cli.config.SpeedConfig`) resolves, for the run's device and
data, to a :class:`SpeedPlan`; :class:`SpeedPath` applies it and gives the loop its few hooks:

* ``path.G`` / ``path.D``: the modules the hot loop calls (``torch.compile`` wrappers, or the nets
  themselves).  ``Trainer.G`` / ``Trainer.D`` stay the plain modules: checkpoints, EMA, evaluation and
  pictures never see a compiled wrapper (its state dict would prefix every key with ``_orig_mod.``).
* ``with path.autocast(opt):`` around a step's forward passes: autocast to bf16/fp16; under fp16 the
  scale of ``opt``'s GradScaler for input gradients taken inside (gradient penalty, R1; see
  :func:`gan_cli.regularizers.base.input_grad`); with CUDA graphs, the start of a new graph step.
* ``path.backward(loss, opt)`` and ``path.step(opt)``: plain ``backward()`` / ``step()``, or, under fp16,
  the GradScaler's scaled backward, unscale (so logged grad norms are true ones), step and update.
* ``path.optimizer(params, ocfg)``: the optimiser ``model.opt_g`` / ``opt_d`` names, with ``fused=True`` /
  ``foreach=True`` where the plan asks for it (:func:`build_optimizer`).

Facts this module relies on (shared/REFERENCES.md, "GPU and multi-process"):

* bf16 has float32's exponent range, so it needs no GradScaler; fp16 does, and a penalty on input
  gradients must scale the inner backward and unscale its result (PyTorch AMP examples,
  "Gradient penalty").
* ``torch.compile`` (aot_autograd) cannot double-backward; the objectives take input gradients through
  the uncompiled module (``D._orig_mod``, :func:`gan_cli.regularizers.base.eager`).  GAN / NS-GAN / f-GAN /
  hinge need no double backward.
* CUDA graphs (``mode="reduce-overhead"``) need fixed shapes: batches are ``data.batch_size`` rows drawn
  on the device and z is drawn on the device, so the hot loop's shapes are fixed; inductor silently
  falls back to no graphs for a graph that mutates its inputs (batch-norm running statistics).
* fused Adam is opt-in in torch (foreach is its CUDA default).

Host syncs: none of the hooks reads a tensor on the host; the GradScaler's found-inf check stays on the
device (its ``step`` skips on the device for fused optimisers, and reads one flag per step otherwise).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from gan_cli.config import UserError
from gan_cli.regularizers.base import inner_grad_scale

log = logging.getLogger(__name__)

_AMP = {"auto", "bf16", "fp16", "off"}
_SWITCH = {"auto", "on", "off"}
_OPTIM = {"auto", "fused", "foreach", "off"}
_BOOL_WORDS = {"true": "on", "false": "off", "yes": "on", "no": "off", "1": "on", "0": "off"}


def _word(value: Any) -> str:
    """A switch's value as a lower-case word: YAML/Hydra may hand ``on``/``true`` over as a bool or a string."""
    if isinstance(value, bool):
        return "on" if value else "off"
    w = str(value).strip().lower()
    return _BOOL_WORDS.get(w, w)


@dataclass(frozen=True)
class SpeedPlan:
    """What ``speed.*`` resolved to on this device (``describe()`` is the line the run logs)."""

    amp: Optional[torch.dtype]  # None, torch.bfloat16 or torch.float16
    channels_last: bool
    optim: str  # "fused" | "foreach" | "default"
    tf32: Optional[bool]  # None: leave torch's settings alone
    compile: bool
    compile_mode: Optional[str]
    compile_backend: str
    device_type: str

    def describe(self) -> str:
        amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16+GradScaler"}[self.amp]
        tf32 = {None: "torch default", True: "on", False: "off"}[self.tf32]
        comp = f"on ({self.compile_backend}, mode={self.compile_mode or 'default'})" if self.compile else "off"
        return (f"speed on {self.device_type}: amp={amp} channels_last={'on' if self.channels_last else 'off'} "
                f"optimizer={self.optim} tf32={tf32} compile={comp}")


def resolve(cfg: Any, device: torch.device, data_kind: str = "image", has_conv: bool = True,
            guard: str = "stop") -> SpeedPlan:
    """``speed.*`` -> :class:`SpeedPlan` for ``device``; a bad value or combination is one UserError line.

    ``auto`` on CUDA: the precision-neutral switches (channels_last for conv nets, fused optimiser) always;
    the precision-reducing ones (bf16 autocast, TF32 matmuls) for image data only -- the toy data's tiny
    MLPs are launch-bound (autocast only adds cast kernels) and the theory labs compare their estimates
    with closed forms.  ``auto`` on the CPU: everything off (torch's defaults)."""
    cuda = device.type == "cuda"
    amp, cl, opt, tf32 = _word(cfg.amp), _word(cfg.channels_last), _word(cfg.optimizer), _word(cfg.tf32)
    for key, value, allowed in (("amp", amp, _AMP), ("channels_last", cl, _SWITCH), ("optimizer", opt, _OPTIM),
                                ("tf32", tf32, _SWITCH)):
        if value not in allowed:
            raise UserError(f"speed.{key}={value} is not one of {'|'.join(sorted(allowed))}: fix it, e.g. "
                            f"speed.{key}=auto.")
    compile_on = bool(cfg.compile)
    graphs = bool(cfg.cuda_graphs)
    mode = cfg.compile_mode or None
    images = data_kind == "image"

    if amp == "auto":
        dtype = torch.bfloat16 if cuda and images and torch.cuda.is_bf16_supported() else None
    elif amp == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise UserError("speed.amp=bf16: this GPU has no bfloat16 support; use speed.amp=fp16 or speed.amp=off.")
        dtype = torch.bfloat16
    elif amp == "fp16":
        if not cuda:
            raise UserError(f"speed.amp=fp16 needs a CUDA device (device={device}): fp16 with a GradScaler is a GPU "
                            f"mode; use speed.amp=bf16 or speed.amp=off on the CPU.")
        dtype = torch.float16
    else:
        dtype = None
    if dtype is torch.float16 and str(guard) == "skip":
        raise UserError("speed.amp=fp16 with guard.on_nonfinite=skip: the GradScaler already skips steps whose fp16 "
                        "gradients overflow, and the guard would count them as bad; use speed.amp=bf16 or "
                        "guard.on_nonfinite=stop.")

    channels_last = (cuda and has_conv) if cl == "auto" else cl == "on"
    if cl == "on" and not has_conv:
        raise UserError("speed.channels_last=on: the nets have no 2-D convolutions to lay out; use "
                        "speed.channels_last=auto or off.")

    if opt == "auto":
        optim = "fused" if cuda else "default"
    else:
        optim = {"off": "default"}.get(opt, opt)

    if tf32 == "on" and not cuda:
        raise UserError(f"speed.tf32=on needs a CUDA device (device={device}); TF32 is a GPU number format. "
                        f"Use speed.tf32=auto or off.")
    tf32_flag = {"auto": True if cuda and images else None, "on": True, "off": False if cuda else None}[tf32]

    if graphs and not compile_on:
        raise UserError("speed.cuda_graphs=true needs speed.compile=true (CUDA graphs come from torch.compile's "
                        "mode=reduce-overhead).")
    if graphs and not cuda:
        raise UserError(f"speed.cuda_graphs=true needs a CUDA device (device={device}); use speed.cuda_graphs=false.")
    if graphs:
        if mode not in (None, "reduce-overhead"):
            raise UserError(f"speed.cuda_graphs=true uses speed.compile_mode=reduce-overhead, not {mode}: drop "
                            f"speed.compile_mode or speed.cuda_graphs.")
        mode = "reduce-overhead"
    elif mode == "reduce-overhead":
        raise UserError("speed.compile_mode=reduce-overhead is CUDA graphs: set speed.cuda_graphs=true instead.")
    if compile_on:
        _check_compiler(str(cfg.compile_backend), device)
    return SpeedPlan(amp=dtype, channels_last=bool(channels_last), optim=optim, tf32=tf32_flag, compile=compile_on,
                     compile_mode=mode, compile_backend=str(cfg.compile_backend), device_type=device.type)


def compiler_missing(backend: str = "inductor", device: torch.device | str = "cpu") -> Optional[str]:
    """Why ``torch.compile(backend=backend)`` cannot run on ``device`` here, or None when it can: inductor
    on the CPU writes C++ and needs a compiler (``$CXX``, ``g++``, ``c++``, ``clang++``)."""
    import os
    import shutil

    if backend != "inductor" or torch.device(device).type != "cpu":
        return None
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(n and shutil.which(n) for n in names):
        return None
    return "torch.compile's inductor backend needs a C++ compiler on the CPU (none of $CXX, g++, c++, clang++ found)"


def _check_compiler(backend: str, device: torch.device) -> None:
    why = compiler_missing(backend, device)
    if why:
        raise UserError(f"speed.compile=true: {why}; install one (e.g. apt-get install g++) or use "
                        f"speed.compile=false.")


def has_conv(*modules: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for mod in modules for m in mod.modules())


def build_optimizer(params, ocfg: Any, options=None) -> torch.optim.Optimizer:
    """Any ``torch.optim`` class by name (case-insensitive); Adam-family optimisers get ``betas``.
    ``options(cls) -> dict``: extra keyword arguments for the class (the speed path's ``fused`` / ``foreach``,
    :func:`optimizer_options`)."""
    name = str(ocfg.name)
    classes = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim)
               if isinstance(getattr(torch.optim, n), type) and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)}
    cls = classes.get(name.lower())
    if cls is None:
        raise UserError(f"optimizer {name} is not in torch.optim: use e.g. adam, rmsprop, sgd, adamw.")
    kwargs = {"lr": ocfg.lr}
    if "betas" in inspect.signature(cls).parameters:
        kwargs["betas"] = (ocfg.beta1, ocfg.beta2)
    if options is not None:
        kwargs.update(options(cls))
    return cls(params, **kwargs)


def optimizer_options(plan: SpeedPlan, cls: type) -> dict:
    """``fused=True`` / ``foreach=True`` for ``cls`` when the plan asks for it and the class takes it; {} else.
    An optimiser without ``fused`` (RMSprop ...) falls back to ``foreach``."""
    params = inspect.signature(cls).parameters
    if plan.optim == "fused" and "fused" in params:
        return {"fused": True}
    if plan.optim in ("fused", "foreach") and "foreach" in params:
        return {"foreach": True}
    return {}


class SpeedPath:
    """The plan applied to one run's nets and optimisers (see the module docstring)."""

    def __init__(self, cfg: Any, device: torch.device, G: nn.Module, D: nn.Module, data_kind: str = "image",
                 guard: str = "stop"):
        self.device = torch.device(device)
        self.plan = resolve(cfg, self.device, data_kind, has_conv(G, D), guard)
        p = self.plan
        if p.tf32 is not None:  # process-wide, as torch's flags are
            torch.set_float32_matmul_precision("high" if p.tf32 else "highest")
            torch.backends.cudnn.allow_tf32 = p.tf32
        if p.channels_last:  # in place: G, D keep their identity (EMA copies, checkpoints)
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        self.G, self.D = G, D
        if p.compile:
            kw = {"backend": p.compile_backend, **({"mode": p.compile_mode} if p.compile_mode else {})}
            self.G, self.D = torch.compile(G, **kw), torch.compile(D, **kw)
        self.scalers: dict[int, torch.amp.GradScaler] = {}
        self._one = torch.ones((), device=self.device)
        log.info(p.describe())

    # -- optimisers ------------------------------------------------------------
    def optimizer_options(self, cls: type) -> dict:
        return optimizer_options(self.plan, cls)

    def optimizer(self, params, ocfg: Any) -> torch.optim.Optimizer:
        """The optimiser ``ocfg`` names (``model.opt_g`` / ``opt_d``), fused / foreach as the plan says."""
        return build_optimizer(params, ocfg, self.optimizer_options)

    def _scaler(self, opt) -> Optional[torch.amp.GradScaler]:
        if self.plan.amp is not torch.float16:
            return None
        if id(opt) not in self.scalers:  # one scaler per optimiser: D's and G's losses have their own scale
            self.scalers[id(opt)] = torch.amp.GradScaler(self.device.type)
        return self.scalers[id(opt)]

    # -- the hot-loop hooks ------------------------------------------------------
    @contextlib.contextmanager
    def autocast(self, opt=None):
        """Forward passes of one step (before ``opt``'s backward); no-op when amp is off and nothing is compiled."""
        if self.plan.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # earlier steps' graph outputs may be reused from here on
        scaler = self._scaler(opt) if opt is not None else None
        scale = scaler.scale(self._one) if scaler is not None else None  # a device tensor: no host sync
        cast = (torch.autocast(self.device.type, dtype=self.plan.amp) if self.plan.amp is not None
                else contextlib.nullcontext())
        with cast, inner_grad_scale(scale):
            yield

    def backward(self, loss: torch.Tensor, opt) -> None:
        scaler = self._scaler(opt)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, opt) -> None:
        scaler = self._scaler(opt)
        if scaler is None:
            opt.step()
            return
        scaler.unscale_(opt)  # the grads are true ones from here on (grad-norm logging reads them)
        scaler.step(opt)
        scaler.update()

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self, opts: dict) -> dict:
        """{name: GradScaler state} for fp16 (the current loss scales); {} otherwise."""
        return {name: self.scalers[id(o)].state_dict() for name, o in opts.items() if id(o) in self.scalers}

    def load_state_dict(self, state: dict, opts: dict) -> None:
        """Restore the scalers (a run resumed without fp16 ignores them) and re-apply the plan's fused/foreach
        choice, which ``Optimizer.load_state_dict`` takes from the saved param groups."""
        for name, o in opts.items():
            flags = self.optimizer_options(type(o))
            for group in o.param_groups:
                for key in ("fused", "foreach"):
                    if key in group:
                        group[key] = flags.get(key)
            scaler = self._scaler(o)
            if scaler is not None and (state or {}).get(name):
                scaler.load_state_dict(state[name])

