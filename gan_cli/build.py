"""Config -> objects: the one place that instantiates components.

Every config group names its component with ``_target_`` (see :mod:`gan_cli.config`), and
:func:`instantiate_component` builds it with ``hydra.utils.instantiate``, passing the config keys
the target's signature accepts.  A key the target does not accept is either a run-level field of
the group's base schema (read by the loop: ``model.opt_g``, ``data.batch_size`` ...) or a mistake,
reported in one line.  Entry points (gan-train, gan-eval) and the lab build through here.
"""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from gan_cli.config import GROUP_BASES, UserError

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


def instantiate_component(node: Any, group: str, **extra: Any) -> Any:
    """Build ``node`` (a config with ``_target_``) of config group ``group`` with ``extra`` arguments.

    Keys the target does not accept are dropped when they belong to the group's base schema
    (run-level settings), and are a one-line UserError otherwise."""
    plain = _plain(node)
    target = plain.pop("_target_", None)
    fn = _target(group, target)
    params, var_kw = _parameters(fn)
    base = {f.name for f in dataclasses.fields(GROUP_BASES[group])} if group in GROUP_BASES else set()
    kwargs = {}
    for key in extra:  # run-time values replace the config's (e.g. a resolved latent_dim)
        plain.pop(key, None)
    for key, value in plain.items():
        if key in params or (var_kw and key not in base):
            kwargs[key] = value
        elif key not in base:
            raise UserError(f"{group}.{key} is not a parameter of {target} (it takes {', '.join(sorted(params))}): "
                            f"remove it or fix the spelling.")
    # The config's keys go through Hydra (a partial); run-time objects (device, DataInfo) are
    # passed at the call, so OmegaConf never has to hold them.
    extra = {k: v for k, v in extra.items() if k in params or var_kw}
    try:
        inspect.signature(fn).bind(**kwargs, **extra)
    except TypeError as e:
        raise UserError(f"{group}: {target} cannot be called with these keys ({e}); check the {group}.* keys.") from None
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
    obj = instantiate_component(model_cfg, "model")
    plain = _plain(model_cfg)
    if int(plain.get("unroll_steps") or 0) and not float(plain.get("unroll_lr") or 0.0) and hasattr(obj, "unroll_lr"):
        obj.unroll_lr = float(plain["opt_d"]["lr"])  # the unrolled D steps use D's learning rate
    for key in ("r1_gamma", "instance_noise", "unroll_steps", "r1_points"):  # base-schema options the base Objective implements
        value = plain.get(key) if key == "r1_points" else float(plain.get(key) or 0.0)
        if value not in (0.0, None, "real") and getattr(obj, key, None) != value:  # a base key its constructor did not take
            raise UserError(f"model.{key}={value}: {type(obj).__name__} does not pass {key} on to "
                            f"gan_cli.objectives.base.Objective (its __init__ must take **kwargs and call super().__init__).")
    return obj


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


def build_nets(cfg: Any, info, device: Any = "cpu"):
    """``(G, D)`` of ``net=`` for data ``info``; ``G.latent_dim`` is set."""
    z = latent_dim(cfg)
    if z < 1:
        raise UserError(f"net.latent_dim={z} must be >= 1.")
    extra = {"info": info, "latent_dim": z, "d_norm": str(cfg.model.d_norm), "default_net": str(cfg.data.default_net)}
    G, D = instantiate_component(cfg.net, "net", **extra)
    G.latent_dim = z
    m = int(_plain(cfg.model).get("pack") or 1)
    if m > 1:  # PacGAN: D built for m samples concatenated (gan_cli.nets.pack)
        from gan_cli.nets.pack import Packed

        for key, n in (("data.batch_size", int(cfg.data.batch_size)), ("estimate_batch", int(cfg.get("estimate_batch", m)))):
            if n % m:
                raise UserError(f"model.pack={m} reads batches as {m}-tuples: {key}={n} must be a multiple of {m}.")
        packed = dataclasses.replace(info, shape=(m * int(info.shape[0]), *(int(s) for s in info.shape[1:])))
        try:
            _, D = instantiate_component(cfg.net, "net", **{**extra, "info": packed})
        except UserError as e:
            raise UserError(f"model.pack={m}: net={cfg.net.name} cannot build a discriminator for {m} packed samples "
                            f"({e}); use net=mlp or net=dcgan.") from None
        D = Packed(D, m)
    return G.to(device), D.to(device)


def build_optimizer(params, ocfg: Any, options=None) -> torch.optim.Optimizer:
    """Any ``torch.optim`` class by name (case-insensitive); Adam-family optimisers get ``betas``.
    ``options(cls) -> dict``: extra keyword arguments for the class (the speed path's ``fused`` / ``foreach``,
    :func:`gan_cli.training.speed.optimizer_options`)."""
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


def build_evaluator(metrics_cfg: Any, data_cfg: Any, source, device, n=None):
    from gan_cli.metrics.evaluator import Evaluator

    return Evaluator(metrics_cfg, data_cfg, source, device, n, test_split=lambda: build_data(data_cfg, "cpu", "test"))


# ----------------------------------------------------------------------------- saved runs


def plain_config(cfg: Any) -> dict:
    """The resolved config as plain data (enums as strings) for checkpoints and logs."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def flat_hparams(cfg, preprocess: Optional[str] = None) -> dict:
    """The run's hyperparameters for TensorBoard's HParams: the same columns for every model, so a
    sweep that mixes models keeps them all (a key a model lacks gets a neutral value).  ``preprocess``:
    the Inception preprocessing mode the evaluator used ("-" when the run has no Inception metrics)."""
    c = plain_config(cfg)
    m = c["model"]
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
        "gp_weight": float(m.get("gp_weight") or 0.0),
        "clip": float(m.get("clip") or 0.0),
        "divergence": str(m.get("divergence", "-")),
        "g_objective": str(m.get("g_objective", "-")),
        "r1_gamma": _resolved(cfg, m, "r1_gamma"),
        "r1_points": _resolved(cfg, m, "r1_points"),
        "ema_beta": float((c.get("ema") or {}).get("beta") or 0.0),
        "latent_dim": latent_dim(cfg),
        "preprocess": str(preprocess or "-"),
    }


def _resolved(cfg, model: dict, key: str):
    """``model.<key>`` as the run trains with it (``r1_gamma``: a float, ``r1_points``: a string): the config's
    value, or, where it is null (f-GAN: the divergence's own), the value the built objective resolved it to."""
    cast = float if key == "r1_gamma" else str
    if model.get(key) is not None:
        return cast(model[key])
    try:
        return cast(getattr(build_objective(cfg.model), key))
    except UserError:  # a saved config this version cannot build: the hparams table still gets a row
        return cast("nan") if cast is float else "-"


def load_config(plain: dict) -> DictConfig:
    """A run's saved config (from a checkpoint) as a read-only-struct DictConfig.

    Its values were checked when the run was composed; here the run-level keys are re-typed
    against the train schema, and the components are kept as saved."""
    from gan_cli.config import TrainConfig

    schema = OmegaConf.structured(TrainConfig)
    try:
        cfg = OmegaConf.merge(schema, plain)
    except Exception as e:  # omegaconf.errors.* : config from another version
        raise UserError(f"the saved config does not fit this gan_cli version: {str(e).splitlines()[0]}") from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def load_generator(ckpt_path: Path, device, state: dict | None = None):
    """(G, train config, data source, latent size, step) rebuilt from a checkpoint's own config; G has the
    EMA weights (``generator_ema``, ``ema.beta > 0``) when the checkpoint holds them, and
    ``G.weights_source = "ema" | "trained"`` says which."""
    from gan_cli.runs import checkpoint as ck

    state = state if state is not None else ck.load_checkpoint(ckpt_path)
    cfg = load_config(state["config"])
    data = build_data(cfg.data, device)
    G, _ = build_nets(cfg, data.info, device)
    key = "generator_ema" if state.get("generator_ema") is not None else "generator"
    try:
        G.load_state_dict(state[key])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {ckpt_path} does not fit its own config's generator ({str(e).splitlines()[0][:160]}).") from None
    G.eval()
    G.weights_source = "ema" if key == "generator_ema" else "trained"
    return G, cfg, data, latent_dim(cfg), int(state["step"])
