"""Command-line checks made before Hydra composes or writes anything: one line each, exit 2.

* An option of a config group that does not exist (``experiment=nope``, ``model=wgan_pg``, ``reg=[r1,nope]``,
  ``augment=nope``, in a sweep ``model=gan,nope`` too) names the group and its choices.  Hydra's own message
  spans lines, and an ``optional`` default would have ignored it silently.
* A key that moved (``model.r1_gamma=10``) names its new spelling (:data:`gan_cli.config.MOVED`).
* A class-conditional GAN (``cond=...`` on the command line) on data without labels (``data.labels=none``: an image
  folder read without its sub-folders as classes); one run only: a sweep records each job's failure in its own
  folder (and so does a preset that sets ``cond``: the run's build refuses it, after Hydra made the folder).

The options are looked up where Hydra looks: the package's ``conf/`` and every ``hydra.searchpath`` entry
given on the command line (a plugin's own models and regularisers).
"""
from __future__ import annotations

from typing import Iterable, Optional

from gan_cli.config import UserError, moved_key

CONFIG_MODULE = "pkg://gan_cli.conf"


def _values(override) -> list:
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    value = override.value()
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_argv(argv: Iterable[str]) -> None:
    """Raise a one-line UserError for the first missing group option or moved key among ``argv``'s overrides."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    if not args:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except HydraException:  # a malformed override: Hydra reports it in its own words
        return
    for o in overrides:
        if not o.is_sweep_override():
            line = moved_key(o.key_or_group, o.value())
            if line:
                raise UserError(line)
    repo = _repository([o for o in overrides if o.key_or_group == "hydra.searchpath"])
    for o in overrides:
        group = o.key_or_group
        if o.is_delete() or "." in group or not repo.group_exists(group):
            continue
        for value in _values(o):
            if value is None or str(value) in ("null", "None"):
                continue
            if not repo.config_exists(f"{group}/{value}.yaml"):
                raise UserError(missing_option(group, str(value), repo.get_group_options(group)))
    if any(o.key_or_group == "cond" for o in overrides) and not any(
            o.is_sweep_override() or o.key_or_group in ("resume", "hydra.searchpath") for o in overrides):
        _check_labels(args)


def _check_labels(args: list) -> None:
    """cond= on unlabelled data: composed here (only when cond= is given: about 0.2 s) so the line comes before
    Hydra writes the run folder."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from gan_cli.config import register_configs

    register_configs()
    if GlobalHydra.instance().is_initialized():  # in-process callers (tests) may hold Hydra already
        return
    try:
        with initialize_config_module("gan_cli.conf", version_base="1.3"):
            cfg = compose("train", overrides=[a for a in args if not a.startswith("hydra.")])
    except Exception:  # any composition problem: Hydra reports it in its own words when it runs
        return
    cond, data = cfg.get("cond") or {}, cfg.data
    if cond.get("_target_") and str(data.get("labels", "data")) == "none":
        from gan_cli.cond.base import needs_labels

        raise UserError(needs_labels(str(cond.get("name")), str(data.get("name"))))


def missing_option(group: str, value: str, options: list) -> str:
    return (f"{group}={value}: there is no such {group} option; choose one of: {', '.join(options) or '(none)'} "
            f"(conf/{group}/ and hydra.searchpath).")


def _repository(searchpath_overrides: list):
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.utils import create_config_search_path

    sp = create_config_search_path(CONFIG_MODULE)
    for o in searchpath_overrides:
        for entry in _values(o):
            sp.append("command-line", str(entry))
    return ConfigRepository(config_search_path=sp)


def first_error(argv: Iterable[str]) -> Optional[str]:
    """:func:`check_argv`'s line, or None."""
    try:
        check_argv(argv)
    except UserError as e:
        return str(e)
    return None
