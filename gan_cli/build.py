"""Config -> objects: the one place that instantiates components.

Every config group names its component with ``_target_`` (see :mod:`gan_cli.config`), and
:func:`instantiate_component` builds it with ``hydra.utils.instantiate``, passing the config keys
the target's signature accepts.  A key the target does not accept is either a run-level field of
the group's base schema (read by the loop: ``model.opt_g``, ``data.batch_size`` ...) or a mistake,
reported in one line.  Entry points (gan-train, gan-eval) and the lab build through here.

:func:`build_run` is the one call that turns a train config into a run's parts (:class:`RunParts`: data,
nets, objective, regularisers, augment pipe, evaluator, loggers); the Trainer is handed them.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from gan_cli import seeds
from gan_cli.config import GROUP_BASES, UserError, upgrade_saved

# ----------------------------------------------------------------------------- generic


def _plain(node: Any) -> dict:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if dataclasses.is_dataclass(node):
        return dataclasses.asdict(node)
    return dict(node)


def _target(group: str, target: Any):
    if not target or target == "???":
        raise UserError(f"{group} has no _target_: its YAML must name what it builds (e.g. "
                        f"_target_: my_package.module.Class).")
    try:
        return get_method(str(target))
    except Exception as e:  # ImportError / AttributeError, wrapped by Hydra
        cause = e.__cause__ or e
        raise UserError(f"{group}._target_={target} cannot be imported ({type(cause).__name__}: "
                        f"{str(cause).splitlines()[0][:160]}); check the name and that its package is on "
                        f"PYTHONPATH.") from None


def _parameters(fn) -> tuple[set, bool]:
    """(names a callable accepts, whether it takes any keyword).  A class whose ``__init__`` passes
    ``**kwargs`` up to its base accepts the base's parameters too (walked along the MRO)."""
    names: set = set()
    chain = [c.__init__ for c in fn.__mro__ if "__init__" in vars(c)] if inspect.isclass(fn) else [fn]
    for f in chain:
        params = inspect.signature(f).parameters
        names |= {n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                                 inspect.Parameter.VAR_POSITIONAL) and n != "self"}
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return names, False
    return names, not inspect.isclass(fn) or chain[-1] is not object.__init__


def instantiate_component(node: Any, group: str, _key: Optional[str] = None, **extra: Any) -> Any:
    """Build ``node`` (a config with ``_target_``) of config group ``group`` with ``extra`` arguments.

    Keys the target does not accept are dropped when they belong to the group's base schema
    (run-level settings), and are a one-line UserError otherwise.  ``_key``: how the node is spelled on the
    command line in those lines (``reg.r1``; default: the group)."""
    plain = _plain(node)
    target = plain.pop("_target_", None)
    key_name = _key or group
    fn = _target(key_name, target)
    params, var_kw = _parameters(fn)
    base = {f.name for f in dataclasses.fields(GROUP_BASES[group])} if group in GROUP_BASES else set()
    kwargs = {}
    for key in extra:  # run-time values replace the config's (e.g. a resolved latent_dim)
        plain.pop(key, None)
    for key, value in plain.items():
        if key in params or (var_kw and key not in base):
            kwargs[key] = value
        elif key not in base:
            raise UserError(f"{key_name}.{key} is not a parameter of {target} (it takes {', '.join(sorted(params))}): "
                            f"remove it or fix the spelling.")
    # The config's keys go through Hydra (a partial); run-time objects (device, DataInfo) are
    # passed at the call, so OmegaConf never has to hold them.
    extra = {k: v for k, v in extra.items() if k in params or var_kw}
    try:
        inspect.signature(fn).bind(**kwargs, **extra)
    except TypeError as e:
        raise UserError(f"{key_name}: {target} cannot be called with these keys ({e}); check the {key_name}.* keys.") from None
    partial = instantiate({"_target_": target, "_partial_": True}, **kwargs, _convert_="all")
    return partial(**extra)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for but CUDA is not available here; use device=cpu or device=auto.")
    return dev


# ----------------------------------------------------------------------------- components


def build_objective(model_cfg: Any):
    """The objective of ``model=`` (an :class:`gan_cli.objectives.Objective`)."""
    return instantiate_component(model_cfg, "model")


def build_regularizers(reg_cfg: Any, objective) -> dict:
    """``{name: Regularizer}`` of ``reg=`` (in the config's order: a model preset's own first, then the list
    given), then the objective's defaults that ``reg=`` does not name.  A regulariser that does not fit the
    objective is one line."""
    regs = {}
    for name, node in (_plain(reg_cfg) if reg_cfg is not None else {}).items():
        reg = instantiate_component(node, "reg", _key=f"reg.{name}")
        reg.name = str(name)
        regs[str(name)] = reg
    for name, reg in objective.default_regularizers().items():
        if name not in regs:
            reg.name = name
            regs[name] = reg
    for name, reg in regs.items():
        why = reg.refuses(objective)
        if why:
            raise UserError(why + ".")
    return regs


def build_augment(augment_cfg: Any, info, device: Any = "cpu"):
    """The augment pipe of ``augment=`` (an :class:`gan_cli.augment.AugmentPipe` on ``device``), or None for
    ``augment=none``; a pipe that does not apply to the data's kind is one line."""
    node = _plain(augment_cfg) if augment_cfg is not None else {}
    if not node.get("_target_"):
        return None
    name = node.get("name", "?")
    pipe = instantiate_component(node, "augment", _key="augment")
    if info.kind not in getattr(pipe, "kinds", ("image",)):
        raise UserError(f"augment={name} augments {' / '.join(pipe.kinds)} data, and data={info.name} is {info.kind} "
                        f"data: use augment=none (or an augmentation made for {info.kind} data).")
    return pipe.to(device)


def build_cond(cond_cfg: Any, info, labels=None):
    """The :class:`gan_cli.cond.Conditioning` of ``cond=``, bound to the data (its class count; ``labels``: the
    training labels, for ``cond.sample=data``), or None for ``cond=none``.  Unlabelled data is one line."""
    node = _plain(cond_cfg) if cond_cfg is not None else {}
    if not node.get("_target_"):
        return None
    return instantiate_component(node, "cond", _key="cond").bind(info, labels)


def build_loggers(logger_cfg: Any):
    """The trackers of ``logger=[...]`` as one :class:`gan_cli.loggers.Loggers` (not started)."""
    from gan_cli.loggers import Loggers

    out = []
    for name, node in (_plain(logger_cfg) if logger_cfg is not None else {}).items():
        lg = instantiate_component(node, "logger", _key=f"logger.{name}")
        lg.name = str(name)
        lg.background = bool(node.get("background", False))
        out.append(lg)
    return Loggers(out)


def build_data(data_cfg: Any, device: Any = "cpu", split: str = "train"):
    """The :class:`gan_cli.data.DataSource` of ``data=`` on ``device`` (``split``: train or test)."""
    source = instantiate_component(data_cfg, "data", device=torch.device(device), split=split)
    name = _plain(data_cfg).get("name")
    if name and name != "???":
        source.info.name = str(name)
    return source


def latent_dim(cfg: Any) -> int:
    return int(cfg.net.latent_dim or cfg.data.latent_dim)


def net_label(cfg: Any) -> str:
    """The net's name, with ``auto`` resolved to the data set's default (``mlp``, ``dcgan`` ...)."""
    name = str(cfg.net.name)
    if name != "auto":
        return name
    from gan_cli.nets.auto import resolved_name

    return resolved_name(str(cfg.data.default_net))


def build_nets(cfg: Any, info, device: Any = "cpu", cond=None):
    """``(G, D)`` of ``net=`` for data ``info``, made class-conditional by ``cond`` (a bound
    :class:`gan_cli.cond.Conditioning`, or None); ``G.latent_dim`` and ``G.n_classes`` (0: unconditional) are set."""
    z = latent_dim(cfg)
    if z < 1:
        raise UserError(f"net.latent_dim={z} must be >= 1.")
    extra = {"info": info, "latent_dim": z, "d_norm": str(cfg.model.d_norm), "default_net": str(cfg.data.default_net)}
    m = int(_plain(cfg.model).get("pack") or 1)
    if cond is not None:
        if m > 1:
            raise UserError(f"model.pack={m} with cond={cond.name}: PacGAN's D judges tuples of samples of mixed "
                            f"classes; use model.pack=1 with a conditional GAN (or cond=none).")
        G, D = cond.build_nets(lambda **change: instantiate_component(cfg.net, "net", **{**extra, **change}), info, z,
                               net_label(cfg))
        G.latent_dim, G.n_classes = z, cond.n_classes
        return G.to(device), D.to(device)
    G, D = instantiate_component(cfg.net, "net", **extra)
    G.latent_dim, G.n_classes = z, 0
    if m > 1:  # PacGAN: D built for m samples concatenated (the path into D packs them: gan_cli.training.step)
        for key, n in (("data.batch_size", int(cfg.data.batch_size)), ("estimate_batch", int(cfg.get("estimate_batch", m)))):
            if n % m:
                raise UserError(f"model.pack={m} reads batches as {m}-tuples: {key}={n} must be a multiple of {m}.")
        packed = dataclasses.replace(info, shape=(m * int(info.shape[0]), *(int(s) for s in info.shape[1:])))
        try:
            _, D = instantiate_component(cfg.net, "net", **{**extra, "info": packed})
        except UserError as e:
            raise UserError(f"model.pack={m}: net={cfg.net.name} cannot build a discriminator for {m} packed samples "
                            f"({e}); use net=mlp or net=dcgan.") from None
    return G.to(device), D.to(device)


def build_evaluator(metrics_cfg: Any, data_cfg: Any, source, device, n=None, n_classes: int = 0):
    from gan_cli.metrics.evaluator import Evaluator

    return Evaluator(metrics_cfg, data_cfg, source, device, n, test_split=lambda: build_data(data_cfg, "cpu", "test"),
                     n_classes=n_classes)


@dataclass
class RunParts:
    """What a run trains and reports with, built once from its config (:func:`build_run`)."""

    device: torch.device
    data: Any  # a DataSource (this rank's shard)
    G: torch.nn.Module
    D: torch.nn.Module  # built for model.pack samples concatenated
    latent_dim: int
    pack: int
    objective: Any
    regularizers: dict  # name -> Regularizer
    augment: Any  # an AugmentPipe, or None
    cond: Any  # a bound Conditioning, or None (unconditional)
    evaluator: Any
    loggers: Any  # a Loggers fan-out (not started)


def build_run(cfg: Any, device: Any, rank: int = 0, world: int = 1) -> RunParts:
    """Every part of a run of train config ``cfg`` on ``device`` (for rank ``rank`` of ``world`` processes: the
    data shard).  The initial weights come from the run's ``init`` seed."""
    device = torch.device(device)
    torch.manual_seed(seeds.seed_for(cfg.seed, "init"))  # initial weights
    data = build_data(cfg.data, device)
    if world > 1:  # several processes: rank r draws from images r, r + N, ... (toy data: nothing to split)
        data = data.shard(rank, world)
    cond = build_cond(cfg.get("cond"), data.info, getattr(data, "labels", None))
    G, D = build_nets(cfg, data.info, device, cond)
    objective = build_objective(cfg.model)
    return RunParts(device=device, data=data, G=G, D=D, latent_dim=latent_dim(cfg), cond=cond,
                    pack=int(_plain(cfg.model).get("pack") or 1), objective=objective,
                    regularizers=build_regularizers(cfg.get("reg"), objective),
                    augment=build_augment(cfg.get("augment"), data.info, device),
                    evaluator=build_evaluator(cfg.metrics, cfg.data, data, device,
                                              n_classes=cond.n_classes if cond is not None else 0),
                    loggers=build_loggers(cfg.get("logger")))


# ----------------------------------------------------------------------------- saved runs


def plain_config(cfg: Any) -> dict:
    """The resolved config as plain data (enums as strings) for checkpoints and logs."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def flat_hparams(cfg, preprocess: Optional[str] = None, regularizers: Optional[dict] = None) -> dict:
    """The run's hyperparameters for the HParams table: the same columns for every model, so a sweep that mixes
    models keeps them all (a key a model lacks gets a neutral value).  ``preprocess``: the Inception
    preprocessing mode the evaluator used ("-" when the run has no Inception metrics).  ``regularizers``: the
    run's built ones (built here from the config when not given): their settings as the run trains with them
    (f-GAN tv's own R1 included)."""
    c = plain_config(cfg)
    m = c["model"]
    if regularizers is None:
        try:
            regularizers = build_regularizers(cfg.get("reg"), build_objective(cfg.model))
        except UserError:  # a saved config this version cannot build: the hparams table still gets a row
            regularizers = {}
    regs = {}
    for reg in regularizers.values():
        regs.update(reg.hparams())
    return {
        "model": m["name"],
        "data": c["data"]["name"],
        "net": net_label(cfg),
        "seed": c["seed"],
        "steps": c["steps"],
        "batch_size": c["data"]["batch_size"],
        "n_critic": m.get("n_critic", 1),
        "lr_g": m["opt_g"]["lr"],
        "lr_d": m["opt_d"]["lr"],
        "opt": m["opt_g"]["name"],
        "reg": "+".join(regularizers) or "-",
        "gp_weight": float(regs.get("gp_weight", 0.0)),
        "clip": float(m.get("clip") or 0.0),
        "divergence": str(m.get("divergence", "-")),
        "g_objective": str(m.get("g_objective", "-")),
        "r1_gamma": float(regs.get("r1_gamma", 0.0)),
        "r1_points": str(regs.get("r1_points", "-")),
        "augment": str((c.get("augment") or {}).get("name") or "none"),
        "cond": str((c.get("cond") or {}).get("name") or "none"),
        "ema_beta": float((c.get("ema") or {}).get("beta") or 0.0),
        "latent_dim": latent_dim(cfg),
        "preprocess": str(preprocess or "-"),
    }


def load_config(plain: dict) -> DictConfig:
    """A run's saved config (from a checkpoint) as a read-only-struct DictConfig.

    Its values were checked when the run was composed; here the run-level keys are re-typed
    against the train schema, and the components are kept as saved (a config saved by an earlier version is
    brought to today's keys first: :func:`gan_cli.config.upgrade_saved`)."""
    from gan_cli.config import TrainConfig

    schema = OmegaConf.structured(TrainConfig)
    try:
        cfg = OmegaConf.merge(schema, upgrade_saved(plain))
    except Exception as e:  # omegaconf.errors.* : config from another version
        raise UserError(f"the saved config does not fit this gan_cli version: {str(e).splitlines()[0]}") from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def load_generator(ckpt_path: Path, device, state: dict | None = None):
    """(G, train config, data source, latent size, step) rebuilt from a checkpoint's own config; G has the
    EMA weights (``generator_ema``, ``ema.beta > 0``) when the checkpoint holds them, and
    ``G.weights_source = "ema" | "trained"`` says which; ``G.n_classes`` > 0 for a class-conditional G."""
    from gan_cli.runs import checkpoint as ck

    state = state if state is not None else ck.load_checkpoint(ckpt_path)
    cfg = load_config(state["config"])
    data = build_data(cfg.data, device)
    cond = build_cond(cfg.get("cond"), data.info)
    G, _ = build_nets(cfg, data.info, device, cond)  # G.n_classes > 0: class-conditional, G(z, c) needs c
    key = "generator_ema" if state.get("generator_ema") is not None else "generator"
    try:
        G.load_state_dict(state[key])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {ckpt_path} does not fit its own config's generator ({str(e).splitlines()[0][:160]}).") from None
    G.eval()
    G.weights_source = "ema" if key == "generator_ema" else "trained"
    return G, cfg, data, latent_dim(cfg), int(state["step"])
