"""Typed configuration schemas.

Hydra composes the YAML files under ``conf/`` on top of these dataclasses, so a
wrong type or an unknown key is rejected at compose time with Hydra's own
message.  Range checks that a type cannot express (``lr > 0`` ...) live in
:func:`validate` and run before anything is built or written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


class Objective(str, Enum):
    gan = "gan"
    nsgan = "nsgan"
    fgan = "fgan"
    wgan = "wgan"
    wgan_gp = "wgan_gp"


class Divergence(str, Enum):
    kl = "kl"
    rkl = "rkl"
    pearson = "pearson"
    hellinger = "hellinger"
    js = "js"
    gan = "gan"
    tv = "tv"
    neyman = "neyman"


class OptimName(str, Enum):
    adam = "adam"
    rmsprop = "rmsprop"


class DNorm(str, Enum):
    batch = "batch"
    layer = "layer"
    none = "none"


class NetName(str, Enum):
    auto = "auto"  # the data set's default_net
    mlp = "mlp"
    dcgan = "dcgan"
    theta = "theta"  # (theta, U[0,1]) generator for the disjoint-support example
    gaussian = "gaussian"  # N(mu, sigma^2) generator with learnable mu, sigma


class OnNonFinite(str, Enum):
    stop = "stop"
    skip = "skip"


@dataclass
class OptimConfig:
    name: OptimName = OptimName.adam
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


@dataclass
class ModelConfig:
    name: Objective = MISSING
    divergence: Divergence = Divergence.kl  # used by fgan only
    n_critic: int = 1
    clip: Optional[float] = None  # weight clipping (WGAN)
    gp_weight: float = 0.0  # gradient penalty weight (WGAN-GP)
    # WGAN reference code: 100 critic steps for the first 25 G steps and every 500th
    warmup_critic_steps: int = 0
    warmup_g_steps: int = 0
    warmup_every: int = 0
    d_norm: DNorm = DNorm.batch
    opt_g: OptimConfig = field(default_factory=OptimConfig)
    opt_d: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class NetConfig:
    name: NetName = NetName.auto
    latent_dim: int = 0  # 0: the data set's default latent size
    hidden: int = 128  # mlp width
    depth: int = 3  # mlp hidden layers
    channels: int = 64  # dcgan base width
    theta0: float = 1.0  # initial theta of the `theta` generator
    mu0: float = 0.0  # initial mean of the `gaussian` generator
    sigma0: float = 1.0  # initial std of the `gaussian` generator


@dataclass
class DataConfig:
    name: str = MISSING
    kind: str = MISSING  # toy2d | toy1d | image
    default_net: str = "mlp"
    batch_size: int = 64
    latent_dim: int = 2
    # toy mixtures
    n_modes: int = 8
    radius: float = 1.0
    std: float = 0.01
    grid: int = 5
    spacing: float = 2.0
    # images
    root: str = "~/.cache/gan_cli/data"
    download: bool = True
    path: Optional[str] = None  # image_folder
    image_size: int = 32
    channels: int = 3
    limit: int = 0  # use only the first N training images (0: all)
    system_root: Optional[str] = None  # e.g. Debian's /usr/share/datasets/...


@dataclass
class GuardConfig:
    on_nonfinite: OnNonFinite = OnNonFinite.stop


@dataclass
class MetricsConfig:
    suite: str = "auto"  # auto | toy | images | inception | none
    num_samples: int = 0  # 0: the suite's default (toy 2,500; images/inception 10,000)
    feature_batch: int = 500
    inception_weights: Optional[str] = None
    cache_dir: str = "~/.cache/gan_cli"
    k: int = 5  # k-NN size for precision/recall/density/coverage (prdc convention, strict <)
    critic_w: bool = False  # also estimate W1 with a freshly trained WGAN-GP critic
    real_seed: int = 0  # which real samples the real-side features use


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    net: NetConfig = MISSING
    data: DataConfig = MISSING
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    seed: int = 0
    steps: int = 2000  # generator steps
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = True
    log_every: int = 50
    image_every: int = 500
    ckpt_every: int = 1000
    keep_ckpts: int = 3
    eval_every: int = 0  # 0: only at the end (when a metric suite is set)
    estimate_batch: int = 1024  # held-out batch for the divergence estimate
    num_image_samples: int = 64
    resume: Optional[str] = None
    out_dir: Optional[str] = None  # default: Hydra's run folder
    progress: bool = True
    experiment: Optional[str] = None  # set by conf/experiment presets
    train_generator: bool = True  # false: G frozen, only D/critic trains (theory lab)


@dataclass
class TruncationConfig:
    kind: str = "none"  # none | resample (BigGAN) | interpolate (StyleGAN) | both (a sweep over both kinds)
    psi: float = 1.0
    sweep: list = field(default_factory=list)  # psi values: a table and a precision-recall plot


@dataclass
class EvalConfig:
    ckpt: Optional[str] = None  # a run folder or a checkpoint file
    folder: Optional[str] = None  # or: a folder of images scored against data=<name>
    data: Optional[DataConfig] = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    truncation: TruncationConfig = field(default_factory=TruncationConfig)
    seed: int = 0
    device: str = "auto"
    out: Optional[str] = None  # where metrics.json goes (default: beside the checkpoint / in the folder)
    tensorboard: bool = True  # also log eval/* scalars to the run's TensorBoard
    # sweep=<multirun folder>: summarise every job (gan_cli.sweep) instead of scoring one checkpoint
    sweep: Optional[str] = None
    sort_by: Optional[str] = None  # a column of the summary; -<column> sorts descending
    plot_x: Optional[str] = None  # a swept parameter (default: the first one that is not seed)
    plot_y: Optional[str] = None  # a metric (default: sort_by, else fid*/modes*/w1*/estimate/*)


_RANGES = [
    # (path, predicate, text)
    ("steps", lambda v: v >= 1, "must be >= 1"),
    ("log_every", lambda v: v >= 1, "must be >= 1"),
    ("image_every", lambda v: v >= 0, "must be >= 0 (0 disables sample pictures)"),
    ("ckpt_every", lambda v: v >= 0, "must be >= 0 (0: only the final checkpoint)"),
    ("keep_ckpts", lambda v: v >= 1, "must be >= 1"),
    ("eval_every", lambda v: v >= 0, "must be >= 0"),
    ("estimate_batch", lambda v: v >= 2, "must be >= 2"),
    ("num_image_samples", lambda v: v >= 1, "must be >= 1"),
    ("model.n_critic", lambda v: v >= 1, "must be >= 1"),
    ("model.gp_weight", lambda v: v >= 0, "must be >= 0"),
    ("model.clip", lambda v: v is None or v > 0, "must be > 0 (or null to disable clipping)"),
    ("model.opt_g.lr", lambda v: v > 0, "must be > 0"),
    ("model.opt_d.lr", lambda v: v > 0, "must be > 0"),
    ("model.opt_g.beta1", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_d.beta1", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_g.beta2", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("model.opt_d.beta2", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("net.hidden", lambda v: v >= 1, "must be >= 1"),
    ("net.depth", lambda v: v >= 1, "must be >= 1"),
    ("net.channels", lambda v: v >= 1, "must be >= 1"),
    ("net.latent_dim", lambda v: v >= 0, "must be >= 0 (0: the data set's default)"),
    ("net.sigma0", lambda v: v > 0, "must be > 0"),
    ("data.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("data.std", lambda v: v > 0, "must be > 0"),
    ("data.n_modes", lambda v: v >= 1, "must be >= 1"),
    ("data.image_size", lambda v: v >= 8, "must be >= 8"),
    ("data.limit", lambda v: v >= 0, "must be >= 0 (0: all images)"),
    ("metrics.num_samples", lambda v: v == 0 or v >= 2, "must be >= 2 (or 0 for the suite's default)"),
    ("metrics.k", lambda v: v >= 1, "must be >= 1"),
    ("metrics.feature_batch", lambda v: v >= 1, "must be >= 1"),
]


def _get(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part) if not isinstance(cfg, dict) else cfg[part]
    return cfg


def validate(cfg: Any) -> None:
    """Reject out-of-range values with one line naming the key and the fix."""
    for path, ok, text in _RANGES:
        try:
            value = _get(cfg, path)
        except (AttributeError, KeyError):
            continue
        if not ok(value):
            raise UserError(f"{path}={value} is out of range: {text}. Fix it on the command line, e.g. {path}=<value>.")
    dev = str(cfg.device)
    if dev not in ("auto", "cpu", "cuda", "mps") and not (dev.startswith("cuda:") and dev[5:].isdigit()):
        raise UserError(f"device={dev} is not a device: use auto, cpu, cuda or cuda:N.")
    if cfg.data.kind not in ("toy2d", "toy1d", "image"):
        raise UserError(f"data.kind={cfg.data.kind} is unknown: use toy2d, toy1d or image.")
    if cfg.data.batch_size < 2 and cfg.model.d_norm == DNorm.batch and cfg.data.kind == "image":
        raise UserError("data.batch_size=1 cannot train a batch-norm discriminator: use data.batch_size>=2 or model.d_norm=none.")


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
