"""Typed configuration schemas.

Hydra composes the YAML files under ``conf/`` on top of these dataclasses, so a wrong type
or an unknown key is rejected at compose time with Hydra's own message.

Every config group (``model``, ``net``, ``data``) builds its component from the YAML's
``_target_`` (the one build layer, :mod:`gan_cli.build`, calls ``hydra.utils.instantiate``).
The run-level fields every component of a group has (an objective's optimisers and critic
schedule, a data set's batch size ...) are in the group's base schema below; a component's own
parameters are in its own schema, a dataclass beside its code registered with
:func:`component_schema`, which its YAML names first in its defaults list::

    # conf/model/wgan_gp.yaml
    defaults:
      - /schema/model/wgan_gp@_here_   # the schema: types and keys checked at compose time
      - _self_
    _target_: gan_cli.objectives.wgan.WGANGP

A user's own component (``hydra.searchpath``) can use a group's base schema
(``/schema/model/base@_here_``) and add nothing, or no schema at all; its keys are then checked
against the target's signature when it is built.  Range checks that a type cannot express
(``lr > 0`` ...) live in :func:`validate` and run before anything is built or written.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


def first_line(e: BaseException, limit: Optional[int] = 300) -> str:
    """An exception's first line (its type's name when it has no text), cut at ``limit`` characters (None: whole)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]


class OnNonFinite(str, Enum):
    stop = "stop"
    skip = "skip"


# ----------------------------------------------------------------------------- group base schemas


@dataclass
class OptimConfig:
    name: str = "adam"  # any torch.optim class, case-insensitive (adam, rmsprop, sgd, adamw ...)
    lr: float = 2e-4  # learning rate
    beta1: float = 0.5  # Adam-family only
    beta2: float = 0.999  # Adam-family only
    # the fraction of lr left at the last step (1: a constant lr; 0.01: down to lr / 100), reached along
    # decay_shape: exp, lr * decay^fraction; linear, lr * (1 - (1 - decay) * fraction) (decay=0: Mimicry's and
    # SNGAN's linear decay to 0), with fraction = step / (steps - 1)
    decay: float = 1.0
    decay_shape: str = "exp"  # exp | linear (see decay)


@dataclass
class ObjectiveConfig:
    """``model=``: what every objective has. Its ``_target_`` is built with the fields its
    constructor accepts; the loop reads the optimiser settings and ``d_norm`` (the nets')."""

    _target_: str = MISSING
    name: str = MISSING  # a label (titles, HParams, folder names)
    n_critic: int = 1  # D (critic) steps per G step
    # WGAN reference code: 100 critic steps for the first 25 G steps and every 500th
    warmup_critic_steps: int = 0
    warmup_g_steps: int = 0
    warmup_every: int = 0
    d_norm: str = "batch"  # the discriminator's normalisation: batch | layer | none
    pack: int = 1  # PacGAN: D judges m-tuples of samples concatenated (1: off); D built for them by build_nets
    opt_g: OptimConfig = field(default_factory=OptimConfig)
    opt_d: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class NetConfig:
    """``net=``: a builder ``(info, latent_dim, d_norm, **params) -> (G, D)``."""

    _target_: str = MISSING
    name: str = MISSING
    latent_dim: int = 0  # 0: the data set's default latent size


@dataclass
class DataConfig:
    """``data=``: a factory ``(device, split, **params) -> DataSource``."""

    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = 64
    latent_dim: int = 2  # the default latent size for this data
    default_net: str = "gan_cli.nets.mlp.build"  # the net builder net=auto uses
    # where the class labels come from: "data" (the data set's own: classes, mixture components), or "none"
    # (unlabelled; an image folder: none | folders); read before the data loads (cond= needs labels)
    labels: str = "data"


@dataclass
class RegConfig:
    """``reg.<name>``: one regulariser of the ``reg=[...]`` list (gan_cli.regularizers), built from its ``_target_``."""

    _target_: str = MISSING


@dataclass
class AugmentConfig:
    """``augment=``: the augment pipe the path into D applies to real and fake alike (gan_cli.augment);
    ``_target_: null`` (``augment=none``): no pipe."""

    _target_: Optional[str] = None
    name: str = MISSING


@dataclass
class CondConfig:
    """``cond=``: class conditioning (gan_cli.cond); ``_target_: null`` (``cond=none``): unconditional."""

    _target_: Optional[str] = None
    name: str = MISSING
    sample: str = "uniform"  # the classes G is asked for in training: uniform | data (the labels' frequencies)


@dataclass
class LoggerConfig:
    """``logger.<name>``: one tracker of the ``logger=[...]`` list (gan_cli.loggers), built from its ``_target_``."""

    _target_: str = MISSING
    # during training, the tracker runs in a process of its own (gan_cli.loggers.background): its start-up and
    # writes overlap the training instead of adding to it
    background: bool = False


@dataclass
class GuardConfig:
    on_nonfinite: OnNonFinite = OnNonFinite.stop


@dataclass
class MetricsConfig:
    suite: str = "auto"  # auto | toy | images | inception | none: picks the features and default metrics
    names: list = field(default_factory=list)  # registered metric names to run (empty: the suite's)
    imports: list = field(default_factory=list)  # modules to import first (they call register_metric)
    num_samples: int = 0  # 0: the data kind's default (gan_cli.metrics.registry.DEFAULT_SAMPLES)
    feature_batch: int = 500
    inception_weights: Optional[str] = None
    # Inception preprocessing (gan_cli.metrics.preprocess): pytorch_fid | torch_fidelity | clean; the domain
    # classifier (suite images) ignores it.  Non-default modes end the metric names in _tf / _clean.
    preprocess: str = "pytorch_fid"
    cache_dir: str = "~/.cache/gan_cli"
    k: int = 5  # k-NN size for precision/recall/density/coverage (prdc convention, strict <)
    critic_w: bool = False  # also estimate W1 with a freshly trained WGAN-GP critic
    real_seed: int = 0  # which real samples the real-side features use


@dataclass
class EMAConfig:
    """``ema.*``: an exponential moving average of G's weights for evaluation and pictures (gan_cli.training.ema)."""

    beta: float = 0.0  # 0: off; e.g. 0.999 (G_ema <- beta G_ema + (1 - beta) G after every G step)
    rampup: bool = True  # beta_t = min(beta, (1 + t) / (10 + t)) at G step t


@dataclass
class SpeedConfig:
    """``speed.*``: the GPU speed path (:mod:`gan_cli.training.speed`).  None of it changes what is trained, only the
    arithmetic; each switch is ``auto`` by default, and ``auto`` is a no-op on the CPU.

    * ``amp``: autocast of the forward passes. ``bf16`` (float32's range: no GradScaler), ``fp16`` (with one
      GradScaler per optimiser; gradient penalties scale and unscale their inner gradient; CUDA only),
      ``off``.  ``auto``: bf16 on a CUDA device with bf16 support, for image data; off for the toy data
      (tiny launch-bound MLPs gain nothing; the theory labs compare estimates with closed forms) and on the CPU.
    * ``channels_last``: NHWC memory layout of the conv nets (tensor cores read it without transposes).
      ``auto``: on on CUDA when the nets have 2-D convolutions.  Exact: only the layout changes.
    * ``optimizer``: ``fused`` (one kernel for every parameter; falls back to ``foreach`` for optimisers
      without a fused kernel), ``foreach``, ``off`` (torch's default).  ``auto``: fused on CUDA.
    * ``tf32``: TF32 matmuls and convolutions on Ampere+ GPUs (10-bit mantissa products, float32 sums).
      ``auto``: on on CUDA for image data; torch's defaults otherwise.  Process-wide, as torch's flag is.
    * ``compile``: ``torch.compile`` of G and D for the training steps (not evaluation, pictures or the
      estimate batch, which keep the eager nets).  Off by default: compiling costs tens of seconds per run
      and per resume (minutes on the CPU) and recompiles for each new shape, which outweighs the gain in
      the short runs this project mostly runs; turn it on for long image runs (``make bench-gpu`` measures it).
      Gradient penalties and R1 go through the uncompiled D (``D._orig_mod``).
    * ``cuda_graphs``: compile with ``mode=reduce-overhead`` (CUDA graphs; needs ``compile`` and CUDA;
      the hot loop's shapes are fixed: batches of ``data.batch_size``, z drawn on the device).
    """

    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: str = "auto"  # auto | on | off
    optimizer: str = "auto"  # auto | fused | foreach | off
    tf32: str = "auto"  # auto | on | off
    compile: bool = False
    compile_mode: Optional[str] = None  # torch.compile mode: null (default) | max-autotune-no-cudagraphs ...
    compile_backend: str = "inductor"  # inductor | aot_eager (no C++ compiler needed; tests) ...
    cuda_graphs: bool = False


@dataclass
class DistConfig:
    """``dist.*``: data-parallel training on several processes (gan_cli.training.dist; README, *Several processes*)."""

    nproc: int = 1  # processes started inside the one Hydra job (rank 0 is the job); torchrun: leave at 1
    backend: str = "auto"  # auto: nccl on CUDA (one GPU per rank), gloo on the CPU
    sync_bn: bool = False  # SyncBatchNorm in G and D (CUDA); false: per-rank batch statistics
    timeout_s: int = 300  # collective timeout: a rank that hangs fails the run after this long


@dataclass
class TrainConfig:
    model: Any = MISSING  # an ObjectiveConfig (or a component schema extending it)
    net: Any = MISSING
    data: Any = MISSING
    reg: Any = field(default_factory=dict)  # name -> a RegConfig: the regularisers, reg=[r1,instance_noise]
    augment: Any = field(default_factory=lambda: {"_target_": None, "name": "none"})  # an AugmentConfig
    cond: Any = field(default_factory=lambda: {"_target_": None, "name": "none", "sample": "uniform"})  # a CondConfig
    logger: Any = field(default_factory=dict)  # name -> a LoggerConfig: the trackers, logger=[tensorboard]
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    seed: int = 0  # every random stream of the run derives from it (gan_cli.seeds)
    steps: int = 3000  # generator steps
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = True  # cuDNN's deterministic kernels on CUDA (false: its autotuner)
    log_every: int = 50  # scalars to the trackers and scalars.jsonl every N generator steps
    image_every: int = 500  # sample pictures every N steps (0: none)
    ckpt_every: int = 1000  # a checkpoint every N steps (0: only the final one)
    keep_ckpts: int = 3  # the newest N periodic checkpoints are kept
    # keep checkpoints/best.pt: the step with the best value of this metric (its registry direction),
    # e.g. ckpt_best=fid; never rotated away
    ckpt_best: Optional[str] = None
    eval_every: int = 0  # 0: only at the end (when a metric suite is set)
    estimate_batch: int = 1024  # held-out batch for the divergence estimate
    num_image_samples: int = 64  # samples in the picture (a conditional run: one row per class)
    resume: Optional[str] = None  # a run folder: continue it from its newest good checkpoint
    out_dir: Optional[str] = None  # default: Hydra's run folder
    progress: bool = True  # the progress bar
    experiment: Optional[str] = None  # set by conf/experiment presets
    # hparams_search presets: the result key an Optuna study optimises (rkl_2.5k, fid10k_clf ...); the task
    # function returns it and its registry direction must be the study's (gan_cli.cli.search)
    optimized_metric: Optional[str] = None
    train_generator: bool = True  # false: G frozen, only D/critic trains (theory lab)


@dataclass
class TruncationConfig:
    kind: str = "none"  # none | resample (BigGAN) | interpolate (StyleGAN) | both (a sweep over both kinds)
    psi: float = 1.0
    sweep: list = field(default_factory=list)  # psi values: a table and a precision-recall plot


@dataclass
class ExportConfig:
    dir: Optional[str] = None  # export=<dir>: write the generator's samples there as PNG files
    n: int = 50000
    split: str = "train"  # data=<name> export=<dir> without ckpt=: that split of the real data set
    # a class-conditional generator: only this class (export.class=K); null: every class equally often, with
    # labels.csv (file,class) beside the PNG files
    # (written export.class=K on gan-eval's command line: "class" cannot name a field)
    cls: Optional[int] = None


@dataclass
class EvalConfig:
    ckpt: Optional[str] = None  # a run folder or a checkpoint file
    folder: Optional[str] = None  # or: a folder of images scored against data=<name>
    data: Any = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    truncation: TruncationConfig = field(default_factory=TruncationConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 0
    device: str = "auto"
    # ref=<folder of images | stats .npz>: score folder= against it (folder vs folder, or FID against mu/sigma)
    ref: Optional[str] = None
    save_stats: Optional[str] = None  # save_stats=<file.npz>: write folder='s Inception mu/sigma (pytorch-fid format)
    out: Optional[str] = None  # where metrics.json goes (default: beside the checkpoint / in the folder)
    tensorboard: bool = True  # also log eval/* scalars to the run's trackers (logger=[...]: TensorBoard, MLflow ...)
    # sweep=<multirun folder>: summarise every job (gan_cli.cli.sweep) instead of scoring one checkpoint
    sweep: Optional[str] = None
    sort_by: Optional[str] = None  # a column of the summary; -<column> sorts descending
    plot_x: Optional[str] = None  # a swept parameter (default: the first one that is not seed)
    plot_y: Optional[str] = None  # a metric (default: sort_by, else fid*/modes*/w1*/estimate/*)


#: group -> its base schema (stored as /schema/<group>/base)
GROUP_BASES = {"model": ObjectiveConfig, "net": NetConfig, "data": DataConfig, "reg": RegConfig, "augment": AugmentConfig,
               "cond": CondConfig, "logger": LoggerConfig}


def component_schema(group: str, name: str):
    """Class decorator: register a component's schema as ``/schema/<group>/<name>`` in Hydra's
    ConfigStore (its YAML names it first in its defaults list)."""

    def register(cls):
        ConfigStore.instance().store(group=f"schema/{group}", name=name, node=cls)
        return cls

    return register


# ----------------------------------------------------------------------------- range checks

_RANGES = [
    # (path, predicate, text); a path a component does not have is skipped
    ("steps", lambda v: v >= 1, "must be >= 1"),
    ("log_every", lambda v: v >= 1, "must be >= 1"),
    ("image_every", lambda v: v >= 0, "must be >= 0 (0 disables sample pictures)"),
    ("ckpt_every", lambda v: v >= 0, "must be >= 0 (0: only the final checkpoint)"),
    ("keep_ckpts", lambda v: v >= 1, "must be >= 1"),
    ("eval_every", lambda v: v >= 0, "must be >= 0"),
    ("estimate_batch", lambda v: v >= 2, "must be >= 2"),
    ("num_image_samples", lambda v: v >= 1, "must be >= 1"),
    ("ema.beta", lambda v: 0 <= v < 1, "must be in [0, 1) (0: no EMA of the generator)"),
    ("model.n_critic", lambda v: v >= 1, "must be >= 1"),
    ("reg.gp.weight", lambda v: v >= 0, "must be >= 0 (0 disables the penalty)"),
    ("reg.r1.gamma", lambda v: v >= 0, "must be >= 0 (0 disables R1)"),
    ("reg.r1.every", lambda v: v >= 1, "must be >= 1 (1: R1 on every D step)"),
    ("reg.instance_noise.std", lambda v: v >= 0, "must be >= 0 (0: no instance noise)"),
    ("reg.instance_noise.steps", lambda v: v >= 0, "must be >= 0 (0: constant noise)"),
    ("reg.unrolled.steps", lambda v: v >= 1, "must be >= 1"),
    ("reg.unrolled.lr", lambda v: v > 0, "must be > 0"),
    ("model.pack", lambda v: v >= 1, "must be >= 1 (1: no packing)"),
    ("model.clip", lambda v: v is None or v > 0, "must be > 0 (or null to disable clipping)"),
    ("model.opt_g.lr", lambda v: v > 0, "must be > 0"),
    ("model.opt_d.lr", lambda v: v > 0, "must be > 0"),
    ("model.opt_g.decay", lambda v: 0 <= v <= 1, "must be in [0, 1] (1: a constant lr)"),
    ("model.opt_d.decay", lambda v: 0 <= v <= 1, "must be in [0, 1] (1: a constant lr)"),
    ("model.opt_g.decay_shape", lambda v: v in ("exp", "linear"), "must be exp or linear"),
    ("model.opt_d.decay_shape", lambda v: v in ("exp", "linear"), "must be exp or linear"),
    ("model.opt_g.beta1", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_d.beta1", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_g.beta2", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_d.beta2", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("net.hidden", lambda v: v >= 1, "must be >= 1"),
    ("net.depth", lambda v: v >= 1, "must be >= 1"),
    ("net.channels", lambda v: v >= 1, "must be >= 1"),
    ("net.d_channels", lambda v: v is None or v >= 1, "must be >= 1 (net=dcgan: null, as net.channels)"),
    ("net.g_channels", lambda v: v >= 1, "must be >= 1"),
    ("net.latent_dim", lambda v: v >= 0, "must be >= 0 (0: the data set's default)"),
    ("net.codes", lambda v: v >= 0, "must be >= 0 (0: no categorical code)"),
    ("net.code_dim", lambda v: v >= 1, "must be >= 1"),
    ("net.fourier", lambda v: v >= 0, "must be >= 0 (0: no Fourier features)"),
    ("net.fourier_scale", lambda v: v > 0, "must be > 0"),
    ("net.fourier_from", lambda v: 0 <= v <= 1, "must be in [0, 1] (a fraction of the run)"),
    ("net.fourier_to", lambda v: 0 <= v <= 1, "must be in [0, 1] (a fraction of the run)"),
    ("net.sigma0", lambda v: v > 0, "must be > 0"),
    ("cond.embed_dim", lambda v: v >= 0, "must be >= 0 (0: n_classes)"),
    ("cond.weight", lambda v: v >= 0, "must be >= 0"),
    ("data.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("data.std", lambda v: v > 0, "must be > 0"),
    ("data.n_modes", lambda v: v >= 1, "must be >= 1"),
    ("data.image_size", lambda v: v is None or v >= 8, "must be >= 8 (data=stacked: or null, the base's size)"),
    ("data.limit", lambda v: v >= 0, "must be >= 0 (0: all images)"),
    ("metrics.num_samples", lambda v: v == 0 or v >= 2, "must be >= 2 (or 0 for the data's default)"),
    ("metrics.k", lambda v: v >= 1, "must be >= 1"),
    ("metrics.feature_batch", lambda v: v >= 1, "must be >= 1"),
    ("dist.nproc", lambda v: v >= 1, "must be >= 1 (1: one process)"),
    ("dist.timeout_s", lambda v: v >= 1, "must be >= 1 (seconds)"),
]

#: keys of earlier versions -> what to write now (one line each, before anything is composed or written)
MOVED = {
    "model.r1_gamma": "reg=[r1] reg.r1.gamma={v}",
    "model.r1_every": "reg=[r1] reg.r1.every={v}",
    "model.r1_points": "reg=[r1] reg.r1.points={v}",
    "model.gp_weight": "reg.gp.weight={v} (model=wgan_gp carries reg.gp; reg=[gp] adds it to another model)",
    "model.instance_noise": "reg=[instance_noise] reg.instance_noise.std={v}",
    "model.instance_noise_steps": "reg=[instance_noise] reg.instance_noise.steps={v}",
    "model.unroll_steps": "reg=[unrolled] reg.unrolled.steps={v}",
    "model.unroll_lr": "reg=[unrolled] reg.unrolled.lr={v}",
}


def moved_key(key: str, value: Any) -> Optional[str]:
    """The one line for a key that moved (``model.r1_gamma=10`` -> ``reg=[r1] reg.r1.gamma=10``), else None."""
    key = key.lstrip("+~")
    if key not in MOVED:
        return None
    return (f"{key}={value} has moved: write {MOVED[key].format(v=value)} (regularisers compose as a list, "
            f"e.g. reg=[r1,instance_noise]).")


_REG_TARGETS = {"r1": "gan_cli.regularizers.r1.R1", "gp": "gan_cli.regularizers.gp.GradientPenalty",
                "instance_noise": "gan_cli.regularizers.instance_noise.InstanceNoise",
                "unrolled": "gan_cli.regularizers.unrolled.Unrolled"}


def upgrade_saved(plain: dict) -> dict:
    """A run config saved by an earlier version (a checkpoint's) in today's keys, so the run resumes and scores:
    ``model.r1_*`` / ``instance_noise*`` / ``unroll_*`` / ``gp_weight`` become ``reg.r1`` / ``reg.instance_noise``
    / ``reg.unrolled`` / ``reg.gp`` where they were on (``model.WGANGP`` is the Wasserstein loss with
    ``reg.gp``), and a config without ``logger`` gets the TensorBoard tracker it had.  Today's configs pass
    unchanged."""
    if not isinstance(plain, dict) or not isinstance(plain.get("model"), dict):
        return plain
    out = dict(plain)
    model = dict(out["model"])
    reg = dict(out.get("reg") or {})
    old = {k: model.pop(k) for k in ("r1_gamma", "r1_every", "r1_points", "instance_noise", "instance_noise_steps",
                                       "unroll_steps", "unroll_lr", "gp_weight") if k in model}
    if str(model.get("_target_", "")).endswith("wgan.WGANGP"):
        model["_target_"] = "gan_cli.objectives.wgan.Wasserstein"
        reg.setdefault("gp", {"_target_": _REG_TARGETS["gp"], "weight": float(old.get("gp_weight", 10.0))})
    if old.get("r1_gamma"):  # > 0 (f-GAN's null: its row's default, which the objective adds itself)
        reg.setdefault("r1", {"_target_": _REG_TARGETS["r1"], "gamma": float(old["r1_gamma"]),
                              "every": int(old.get("r1_every") or 1), "points": str(old.get("r1_points") or "real")})
    if old.get("instance_noise"):
        reg.setdefault("instance_noise", {"_target_": _REG_TARGETS["instance_noise"], "std": float(old["instance_noise"]),
                                          "steps": int(old.get("instance_noise_steps") or 0)})
    if old.get("unroll_steps"):
        lr = float(old.get("unroll_lr") or 0.0) or float((model.get("opt_d") or {}).get("lr", 2e-4))
        reg.setdefault("unrolled", {"_target_": _REG_TARGETS["unrolled"], "steps": int(old["unroll_steps"]), "lr": lr})
    out["model"], out["reg"] = model, reg
    if "logger" not in out:
        out["logger"] = {"tensorboard": {"_target_": "gan_cli.loggers.tensorboard.TensorBoardLogger", "subdir": "tb"}}
    return out


_ABSENT = object()


def _get(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        if cfg is None:
            return _ABSENT
        try:
            cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
        except (AttributeError, KeyError):
            return _ABSENT
        except Exception:  # omegaconf's errors for a key its schema lacks
            return _ABSENT
    return cfg


def validate(cfg: Any) -> None:
    """Reject out-of-range values with one line naming the key and the fix."""
    for path, ok, text in _RANGES:
        value = _get(cfg, path)
        if value is _ABSENT:
            continue
        if not ok(value):
            raise UserError(f"{path}={value} is out of range: {text}. Fix it on the command line, e.g. {path}=<value>.")
    for opt in ("opt_g", "opt_d"):
        o = _get(cfg, f"model.{opt}")
        if o is not _ABSENT and float(o.get("decay", 1.0)) == 0 and str(o.get("decay_shape", "exp")) == "exp":
            raise UserError(f"model.{opt}.decay=0 with decay_shape=exp would make the lr 0 after the first step: "
                            f"add model.{opt}.decay_shape=linear (a linear decay to 0) or use a decay above 0.")
    dev = str(cfg.device)
    if dev not in ("auto", "cpu", "cuda", "mps") and not (dev.startswith("cuda:") and dev[5:].isdigit()):
        raise UserError(f"device={dev} is not a device: use auto, cpu, cuda or cuda:N.")


# ----------------------------------------------------------------------------- registration

#: packages whose modules define component schemas (every module is imported, none is listed)
COMPONENT_PACKAGES = ("gan_cli.objectives", "gan_cli.nets", "gan_cli.data", "gan_cli.regularizers", "gan_cli.augment", "gan_cli.cond",
                      "gan_cli.loggers")
_registered = False


def register_configs() -> None:
    """Store the train/eval schemas, the group base schemas and every built-in component's schema."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    for group, base in GROUP_BASES.items():
        cs.store(group=f"schema/{group}", name="base", node=base)
    for pkg_name in COMPONENT_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg_name}.{mod.name}")
    _registered = True
