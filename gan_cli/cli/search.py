"""Hyperparameter search (``gan-train -m hparams_search=<preset>``): the value a study optimises.

A preset in ``conf/hparams_search/`` (lightning-hydra-template's convention) selects Hydra's Optuna
sweeper (hydra-optuna-sweeper), its search space and ``optimized_metric``: a key of the run's
results (``rkl_2.5k``, ``fid10k_clf`` ...).  The task function returns that metric as a float
(:func:`objective_value`) and the sweeper tells it to the study.

* The study's direction must be the metric's registry direction (:func:`check_direction`):
  a mismatch is refused in one line before any training.
* A trial that diverges (the divergence guard stops it) or whose metric is not finite (no
  high-quality sample for the reverse KL ...) is reported as the worst value, +inf for a minimised
  metric and -inf for a maximised one (:func:`worst`): the sampler learns that the region is bad and
  the study carries on.  Optuna rejects NaN (it would count as a failed trial, which TPE ignores).
* Any other failure raises; the sweeper marks the trial failed and carries on as long as
  ``hydra.sweeper.max_failure_rate`` allows (the presets set 1.0).

``gan-eval sweep=<folder>`` reads the sweeper's ``optimization_results.yaml`` (:func:`read_study`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from gan_cli.config import UserError

#: registry direction -> Optuna's name
OPTUNA_DIRECTION = {"min": "minimize", "max": "maximize"}
RESULTS_FILE = "optimization_results.yaml"


def metric_direction(metric: str) -> str:
    """``minimize`` or ``maximize`` for an ``optimized_metric`` (its registry entry); one line if unknown."""
    from gan_cli.metrics.registry import direction

    d = direction(str(metric))
    if d is None:
        raise UserError(f"optimized_metric={metric}: no registered metric gives this key, so its direction is unknown; "
                        f"name a metric result such as rkl_2.5k, w1_2.5k, modes_2.5k or fid10k_clf.")
    return OPTUNA_DIRECTION[d]


def _direction_name(value) -> str:
    """The sweeper's ``direction`` (a string, or Optuna's/the sweeper's enum) as ``minimize``/``maximize``."""
    return str(getattr(value, "name", value)).split(".")[-1].lower()


def check_direction(metric: str, sweeper_direction) -> str:
    """The study's direction; one line when ``hydra.sweeper.direction`` disagrees with the registry."""
    want = metric_direction(metric)
    if sweeper_direction is None:
        return want
    if isinstance(sweeper_direction, (list, tuple)) or (hasattr(sweeper_direction, "__len__")
                                                        and not isinstance(sweeper_direction, str)):
        raise UserError(f"hydra.sweeper.direction={list(sweeper_direction)}: gan-train optimises one metric "
                        f"(optimized_metric={metric}); give one direction: hydra.sweeper.direction={want}.")
    have = _direction_name(sweeper_direction)
    if have != want:
        raise UserError(f"hydra.sweeper.direction={have} contradicts optimized_metric={metric}, which the metric "
                        f"registry says to {want}: set hydra.sweeper.direction={want}.")
    return want


def worst(direction: str) -> float:
    """The worst value of a study: +inf when minimising, -inf when maximising."""
    return math.inf if direction == "minimize" else -math.inf


def objective_value(result: dict, metric: str, direction: str) -> tuple[float, Optional[str]]:
    """(value told to the study, a note when it is the worst value).  A metric missing from the results is
    a configuration error of the whole study (one line naming the keys there are)."""
    values = {**(result.get("final") or {}), **(result.get("metrics") or {})}
    if metric not in values:
        have = ", ".join(sorted(k for k, v in values.items() if isinstance(v, (int, float)))) or "none"
        raise UserError(f"optimized_metric={metric} is not among this run's results ({have}); choose one of them "
                        f"(the count in the name follows metrics.num_samples).")
    value = float(values[metric])
    if not math.isfinite(value):
        return worst(direction), f"{metric} is {value}: reported to the study as the worst value ({worst(direction)})"
    return value, None


# ----------------------------------------------------------------------------- reading a study


def read_study(folder: Path, jobs=()) -> Optional[dict]:
    """The study of an Optuna sweep folder, None for other sweeps: ``{"finished", "best_value", "best_params",
    "metric", "direction", "n_trials", "storage", "study_name"}``.  The best trial comes from the sweeper's
    ``optimization_results.yaml`` (written when the study ends); the settings from a trial's Hydra record
    (``<trial>/.hydra/hydra.yaml``: the Optuna sweeper writes no ``multirun.yaml``)."""
    from omegaconf import OmegaConf

    folder = Path(folder)
    res = folder / RESULTS_FILE
    sweeper = metric = None
    for j in jobs:
        if j.dir is None:
            continue
        try:
            sweeper = OmegaConf.select(OmegaConf.load(j.dir / ".hydra" / "hydra.yaml"), "hydra.sweeper", default=None)
        except Exception:  # an unreadable record: the next trial's
            continue
        metric = (j.config or {}).get("optimized_metric")
        break
    is_optuna = res.is_file() or (sweeper is not None and "optuna" in str(sweeper.get("_target_", "")).lower())
    if not is_optuna:
        return None
    out = {"finished": res.is_file(), "best_value": None, "best_params": {}, "metric": metric, "direction": None,
           "n_trials": None, "storage": None, "study_name": None}
    if sweeper is not None:
        out.update(direction=_direction_name(sweeper.get("direction")), n_trials=sweeper.get("n_trials"),
                   storage=sweeper.get("storage"), study_name=sweeper.get("study_name"))
    if res.is_file():
        data = OmegaConf.to_container(OmegaConf.load(res)) or {}
        out["best_value"] = data.get("best_value")
        out["best_params"] = {str(k): v for k, v in (data.get("best_params") or {}).items()}
    return out


def best_job(jobs, best_params: dict):
    """The job whose overrides are the best trial's parameters (None when no job matches)."""
    if not best_params:
        return None

    def same(a, b) -> bool:
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return str(a) == str(b)

    for j in jobs:
        if j.dir is not None and all(k in j.overrides and same(j.overrides[k], v) for k, v in best_params.items()):
            return j
    return None
