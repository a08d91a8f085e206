"""``gan-eval sweep=<multirun folder>``: one table for all jobs of a sweep.

Reads each job's Hydra record (``.hydra/config.yaml``, ``.hydra/overrides.yaml``), its
``status.json`` and ``results.json`` (the on-disk run format in docs / INTERFACES), and writes

- ``sweep_summary.csv`` / ``sweep_summary.json``: one row per job: number, status, the swept
  overrides, the final scalars (``loss/*``, ``estimate/*`` ...) and the metric suite's values,
  sorted by ``sort_by=<column>`` (``sort_by=-<column>`` for descending); failed jobs last,
  listed with their error, never dropped;
- ``sweep_summary.png``: ``plot_y`` against the swept parameter ``plot_x`` (seeds are averaged:
  points per job, a line through the means with one-std bars, one line per value of the other
  swept parameters), also in TensorBoard under ``<sweep>/tb_summary``.

Jobs that the sweeper planned but that have no folder (the sweep was stopped) are listed as
``missing`` (basic sweeper only: the plan is rebuilt from ``multirun.yaml``).  When all jobs
share an ``experiment`` name registered in :data:`gan_cli.lab.REPORTS`, that report runs next
(its table and PNG go into the sweep folder, its figure into ``tb_summary``).  A single run
folder works too (a sweep of one job).
"""
from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path
from typing import Optional


from gan_cli.files import write_json
from gan_cli.config import UserError
from gan_cli.runs.results import TB_DIR, Job, _is_number, _json_safe, collect, fmt, markdown_table, print_rows, write_csv
from gan_cli.cli.search import best_job, read_study

SUMMARY = "sweep_summary"
# columns left out of the printed table (kept in CSV/JSON)
_QUIET = ("grad_norm/", "lr/", "guard/", "loss/", "steps_per_s")
# default y for the plot: the first column starting with one of these
_PLOT_Y_PREFERENCE = ("fid", "modes", "w1", "estimate/")


# ----------------------------------------------------------------------------- the table


def swept_keys(jobs: list[Job]) -> tuple[list[str], dict[str, str]]:
    """(override keys whose value differs between jobs, {key: value} shared by all)."""
    keys: list[str] = []
    for j in jobs:
        keys += [k for k in j.overrides if k not in keys]
    swept = [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]
    common = {k: jobs[0].overrides.get(k) for k in keys if k not in swept}
    return swept, common


def scalar_columns(jobs: list[Job]) -> list[str]:
    """Metric columns first (sorted), then final scalars (sorted), steps_per_s last."""
    metrics, final = set(), set()
    for j in jobs:
        if j.ok:
            metrics |= {k for k, v in (j.results.get("metrics") or {}).items() if _is_number(v)}
            final |= {k for k, v in (j.results.get("final") or {}).items() if _is_number(v)}
    cols = sorted(metrics) + sorted(final - metrics)
    return cols + (["steps_per_s"] if any(j.ok for j in jobs) else [])


def build_rows(jobs: list[Job], swept: list[str], cols: list[str]) -> list[dict]:
    rows = []
    for j in jobs:
        s = j.scalars
        row = {"job": j.num, "status": j.status, **{k: j.overrides.get(k) for k in swept}}
        row.update({c: s.get(c) for c in cols})
        row["error"] = j.error or ""
        row["dir"] = str(j.dir) if j.dir else ""
        rows.append(row)
    return rows


def sort_rows(rows: list[dict], sort_by: Optional[str], columns: list[str]) -> list[dict]:
    """Sort by a column (``-col`` descending); failed jobs and missing values always last."""
    if not sort_by:
        return rows
    desc = sort_by.startswith("-")
    col = sort_by.lstrip("-")
    if col not in columns:
        raise UserError(f"sort_by={sort_by}: no such column; choose one of: {', '.join(columns)}.")

    def bad(r):
        v = r.get(col)
        return r["status"] != "completed" or v is None or (isinstance(v, float) and math.isnan(v))

    good = [r for r in rows if not bad(r)]
    good.sort(key=lambda r: _sort_value(r[col]), reverse=desc)
    return good + [r for r in rows if bad(r)]


def _sort_value(v):
    if _is_number(v):
        return (0, float(v), "")
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


# ----------------------------------------------------------------------------- the plot


def _numeric(values) -> bool:
    try:
        [float(v) for v in values]
        return True
    except (TypeError, ValueError):
        return False


def plot_metric(jobs: list[Job], x: str, y: str, swept: list[str], title: str = ""):
    """``y`` against the swept parameter ``x``: a point per job, mean +- std over the other jobs at
    the same x (seeds), one line per combination of the remaining swept parameters (seed excluded)."""
    import numpy as np

    from gan_cli import viz  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt

    done = [j for j in jobs if j.ok and _is_number(j.scalars.get(y))]
    hue_keys = [k for k in swept if k not in (x, "seed")]
    xs_all = [j.overrides.get(x) for j in jobs if j.overrides.get(x) is not None]
    order = list(dict.fromkeys(xs_all))
    numeric = _numeric(order)
    if numeric:
        order = sorted(order, key=float)
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(order)}
    groups: dict[str, list[Job]] = {}
    for j in done:
        groups.setdefault(j.label(hue_keys) if hue_keys else y, []).append(j)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(order) + 2) if not numeric else 5.5, 3.8), dpi=100)
    n = max(len(groups), 1)
    for gi, (name, gjobs) in enumerate(groups.items()):
        shift = 0.0 if numeric else (gi - (n - 1) / 2) * min(0.6 / n, 0.15)
        by_x: dict[str, list[float]] = {}
        for j in gjobs:
            by_x.setdefault(j.overrides.get(x), []).append(float(j.scalars[y]))
        xv = [v for v in order if v in by_x]
        px = [pos[v] + shift for v in xv]
        means = [float(np.mean(by_x[v])) for v in xv]
        stds = [float(np.std(by_x[v])) for v in xv]
        line = ax.errorbar(px, means, yerr=stds, marker="o", capsize=3, lw=1.2,
                           ls="-" if numeric else "none", label=name if hue_keys else None)
        for v, p in zip(xv, px):
            ax.scatter([p] * len(by_x[v]), by_x[v], s=10, alpha=0.45, color=line[0].get_color())
    if not numeric:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([str(v) for v in order], rotation=30 if len(order) > 3 else 0, ha="right" if len(order) > 3 else "center", fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    failed = sum(1 for j in jobs if not j.ok)
    ax.set_title(title + (f"  ({failed} failed job(s) not shown)" if failed else ""), fontsize=9)
    if hue_keys and len(groups) > 1:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _default_plot_y(cols: list[str]) -> Optional[str]:
    for pre in _PLOT_Y_PREFERENCE:
        for c in cols:
            if c.startswith(pre):
                return c
    return cols[0] if cols else None


# ----------------------------------------------------------------------------- entry point


def summarize(folder: str | Path, sort_by: Optional[str] = None, plot_x: Optional[str] = None,
              plot_y: Optional[str] = None, cfg=None, tensorboard: bool = True, quiet: bool = False) -> dict:
    """Summarise a sweep folder; returns {"rows", "columns", "files", "report"} (see module doc)."""
    folder = Path(str(folder)).expanduser()
    jobs = collect(folder)
    swept, common = swept_keys(jobs)
    cols = scalar_columns(jobs)
    study = read_study(folder, jobs)  # an Optuna sweep: its best trial; sorted by its objective by default
    best = best_job(jobs, study["best_params"]) if study else None
    if study:
        study["best_job"] = best.num if best is not None else None
        if not sort_by and study.get("metric") in cols:
            sort_by = ("-" if study.get("direction") == "maximize" else "") + str(study["metric"])
    columns = ["job", "status", *swept, *cols, "error", "dir"]
    rows = sort_rows(build_rows(jobs, swept, cols), sort_by, columns)

    # plot choices are checked before anything is written
    y = plot_y or (sort_by.lstrip("-") if sort_by and sort_by.lstrip("-") in cols else None) or _default_plot_y(cols)
    if plot_y and plot_y not in cols:
        raise UserError(f"plot_y={plot_y}: no such metric in this sweep; choose one of: {', '.join(cols) or '(no completed job)'}.")
    x = plot_x or next((k for k in swept if k != "seed"), swept[0] if swept else None)
    if plot_x and plot_x not in swept:
        raise UserError(f"plot_x={plot_x} is not a swept parameter here; choose one of: {', '.join(swept) or '(nothing was swept)'}.")

    files = [folder / f"{SUMMARY}.csv", folder / f"{SUMMARY}.json"]
    write_csv(files[0], rows, columns)
    write_json(files[1], {"sweep": str(folder), "swept": swept, "common_overrides": common, "sort_by": sort_by,
                             "columns": columns, "jobs": [_json_safe(r) for r in rows],
                             "preprocess": {str(j.num): m for j, m in _job_modes(jobs)}, "study": study})
    n_ok = sum(j.ok for j in jobs)
    title = f"sweep {folder}: {n_ok}/{len(jobs)} jobs completed"
    if not quiet:
        shown = [c for c in columns if c not in ("dir", "error") and not c.startswith(_QUIET)]
        common_txt = " ".join(f"{k}={v}" for k, v in common.items())
        print_rows(title, rows, shown, caption=f"common overrides: {common_txt}" if common_txt else None)
        _print_problems(rows)
        if study:
            _print_study(study, best)
    mixed = mixed_preprocess(jobs)
    if mixed and not quiet:
        print(f"gan_cli: warning: {mixed}", file=sys.stderr)

    logger = None
    if tensorboard:  # the sweep's own record beside its jobs', in their trackers (TensorBoard: <sweep>/tb_summary)
        logger = sweep_loggers(jobs, folder)
        logger.start(folder)
    try:
        if logger is not None:
            logger.log_text("sweep/table", markdown_table(rows, [c for c in columns if c != "dir"]), 0)
        if x is not None and y is not None and n_ok:
            from gan_cli import viz

            fig = plot_metric(jobs, x, y, swept, f"{y} vs {x}")
            png = folder / f"{SUMMARY}.png"
            if logger is not None:
                logger.log_figure(f"sweep/{y}_vs_{x}", fig, 0)
            viz.figure_to_png(fig, png)
            files.append(png)
        report = run_report(jobs, folder, logger, cfg, quiet=quiet)
        if logger is not None:
            for f in files:
                if Path(f).is_file():
                    logger.log_artifact(Path(f))
    finally:
        if logger is not None:
            logger.close()
    if report:
        files += [Path(p) for p in report.get("files", [])]
    if not quiet:
        for f in files:
            print(f"wrote {f}")
        for lg in logger.loggers if logger is not None else []:
            line = lg.hint(folder)
            if line:
                print(line)
    return {"rows": rows, "columns": columns, "files": [str(f) for f in files], "report": report,
            "plot": {"x": x, "y": y}, "study": study}


def sweep_loggers(jobs, folder: Path):
    """The trackers of the sweep's jobs (their ``logger=[...]``; TensorBoard's in ``<sweep>/tb_summary``), for the
    sweep's own record: its table, plot, report and summary files.  An MLflow or W&B summary run is tagged /
    grouped with the sweep's jobs."""
    from omegaconf import OmegaConf

    from gan_cli.build import build_loggers
    from gan_cli.loggers.base import read_state
    from gan_cli.loggers.tensorboard import TensorBoardLogger

    job = next((j for j in jobs if j.config and j.config.get("logger")), None)
    spec = (OmegaConf.to_container(OmegaConf.create(job.config).logger, resolve=True) if job is not None else
            {"tensorboard": {"_target_": "gan_cli.loggers.tensorboard.TensorBoardLogger"}})
    loggers = build_loggers(spec)
    for lg in loggers.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.subdir = TB_DIR
        lg.sweep_dir = folder  # a summary run is part of its sweep (MLflow tag, W&B group)
        if getattr(lg, "tracking_uri", "") is None and job is not None and job.dir is not None:
            lg.tracking_uri = read_state(job.dir, lg.name).get("tracking_uri")  # the store the jobs wrote to
    return loggers


def _print_study(study: dict, best) -> None:
    """The Optuna study's best trial and its parameters (optimization_results.yaml)."""
    name = f"Optuna study {study.get('study_name') or ''}".rstrip()
    how = f"{study.get('direction') or '?'} {study.get('metric') or '(optimized_metric not recorded)'}"
    if not study["finished"]:
        print(f"{name} ({how}): no optimization_results.yaml yet (the study is running or was stopped); "
              f"the table above is sorted by the objective.")
        return
    where = f"trial {best.num} [{best.dir}]" if best is not None else "best trial (no job folder matches its parameters)"
    print(f"{name} ({how}, {study.get('n_trials')} trials, storage {study.get('storage') or 'in memory'}): "
          f"best value {fmt(study['best_value'])} from {where}")
    for k, v in study["best_params"].items():
        print(f"  {k}={v}")


def _job_modes(jobs: list[Job]) -> list[tuple[Job, str]]:
    """(job, Inception preprocessing mode) of the completed jobs with Inception metrics; runs from before the
    modes existed recorded none and used pytorch_fid."""
    out = []
    for j in jobs:
        if j.ok and (j.results.get("suite") == "inception" or j.results.get("preprocess")):
            out.append((j, str(j.results.get("preprocess") or "pytorch_fid")))
    return out


def mixed_preprocess(jobs: list[Job]) -> Optional[str]:
    """One line when the jobs' FID/KID/IS come from different Inception preprocessing modes, else None."""
    by_mode: dict[str, list[str]] = {}
    for j, mode in _job_modes(jobs):
        by_mode.setdefault(mode, []).append(str(j.num))
    if len(by_mode) < 2:
        return None
    parts = "; ".join(f"{m}: job(s) {', '.join(nums)}" for m, nums in sorted(by_mode.items()))
    return (f"these jobs used different Inception preprocessing ({parts}): their FID/KID/IS are not comparable "
            f"(non-default modes have their own columns, _tf / _clean); rerun with one metrics.preprocess.")


def _print_problems(rows: list[dict]) -> None:
    """One line per failed job (its error), one line for all jobs without a folder."""
    missing = [str(r["job"]) for r in rows if r["status"] == "missing"]
    for r in rows:
        if r["status"] not in ("completed", "missing"):
            print(f"job {r['job']} {r['status']}: {r['error'] or '(no error recorded)'}  [{r['dir']}]")
    if missing:
        print(f"job(s) {', '.join(missing)} missing: planned by the sweeper but no folder (the sweep stopped early or is still running)")


def run_report(jobs: list[Job], folder: Path, logger, cfg=None, quiet: bool = False) -> Optional[dict]:
    """Call the lab report registered for the jobs' shared ``experiment`` name, if any."""
    from gan_cli.lab import get_report

    names = {j.experiment for j in jobs if j.config}
    if len(names) != 1:
        if len(names) > 1 and not quiet:
            print(f"jobs come from different experiments ({', '.join(sorted(map(str, names)))}); no lab report.")
        return None
    name = names.pop()
    fn = get_report(name)
    if fn is None:
        return None
    params = inspect.signature(fn).parameters
    report = fn(jobs, folder, logger, cfg=cfg) if "cfg" in params else fn(jobs, folder, logger)
    if report and not quiet and report.get("rows"):
        print_rows(report.get("title", name), report["rows"], report.get("columns"), report.get("caption"))
    return report
