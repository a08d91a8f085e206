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

import csv
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gan_cli import checkpoint as ck
from gan_cli.config import UserError

SUMMARY = "sweep_summary"
TB_DIR = "tb_summary"
# columns left out of the printed table (kept in CSV/JSON)
_QUIET = ("grad_norm/", "lr/", "guard/", "loss/", "steps_per_s")
# default y for the plot: the first column starting with one of these
_PLOT_Y_PREFERENCE = ("fid", "modes", "w1", "estimate/")


@dataclass
class Job:
    """One job folder of a sweep (or a planned job without a folder: ``status == 'missing'``)."""

    dir: Optional[Path]
    num: Optional[int]
    overrides: dict[str, str]
    config: dict = field(default_factory=dict)  # the job's .hydra/config.yaml, plain
    status: str = "missing"  # completed | failed | diverged | interrupted | running | missing
    error: Optional[str] = None
    results: Optional[dict] = None  # results.json

    @property
    def ok(self) -> bool:
        return self.status == "completed" and self.results is not None

    @property
    def experiment(self) -> Optional[str]:
        return self.config.get("experiment")

    @property
    def scalars(self) -> dict[str, float]:
        """Final scalars and metrics of a completed job ({} otherwise)."""
        if not self.ok:
            return {}
        out = {k: v for k, v in (self.results.get("metrics") or {}).items() if _is_number(v)}
        out.update({k: v for k, v in (self.results.get("final") or {}).items() if _is_number(v)})
        if _is_number(self.results.get("steps_per_s")):
            out["steps_per_s"] = self.results["steps_per_s"]
        return out

    @property
    def checkpoint(self) -> Optional[Path]:
        """The final checkpoint of a completed job (results.json's, else the newest in the folder)."""
        if self.results and self.results.get("checkpoint") and Path(self.results["checkpoint"]).exists():
            return Path(self.results["checkpoint"])
        if self.dir is not None:
            ckpts = ck.list_checkpoints(self.dir)
            return ckpts[-1] if ckpts else None
        return None

    def label(self, keys) -> str:
        return ",".join(f"{k}={self.overrides.get(k, '')}" for k in keys)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _split_override(o: str) -> tuple[str, str]:
    key, _, value = o.partition("=")
    return key.lstrip("+~"), value


def _job_num(folder: Path) -> Optional[int]:
    head = folder.name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def load_job(folder: Path) -> Job:
    """Read one job folder; never raises for a broken job (it is reported as failed)."""
    from omegaconf import OmegaConf

    hydra_dir = folder / ".hydra"
    try:
        config = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"), resolve=False)
    except Exception:  # unreadable record: the job is still listed
        config = {}
    try:
        overrides = dict(_split_override(o) for o in (OmegaConf.load(hydra_dir / "overrides.yaml") or []))
    except Exception:
        overrides = {}
    status = _read_json(folder / "status.json")
    results = _read_json(folder / "results.json")
    if status is None:
        state, error = "failed", "no status.json (the job never started training)"
    else:
        state, error = str(status.get("state", "failed")), status.get("error")
    if state == "completed" and results is None:
        state, error = "failed", "status is completed but results.json is missing or unreadable"
    return Job(dir=folder, num=_job_num(folder), overrides=overrides, config=config or {}, status=state,
               error=error, results=results if state == "completed" else None)


def find_jobs(folder: Path) -> list[Job]:
    """All job folders under ``folder`` (each has ``.hydra/config.yaml``); ``folder`` itself if it is a run."""
    if (folder / ".hydra" / "config.yaml").is_file():
        return [load_job(folder)]
    found = []
    for root, dirs, _files in os.walk(folder):
        root_p = Path(root)
        if (root_p / ".hydra" / "config.yaml").is_file():
            found.append(root_p)
            dirs[:] = []  # a job's own subfolders hold no jobs
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("tb", "checkpoints", TB_DIR))
    jobs = [load_job(p) for p in found]
    jobs.sort(key=lambda j: (j.num is None, j.num if j.num is not None else 0, str(j.dir)))
    return jobs


def planned_jobs(folder: Path) -> Optional[list[list[str]]]:
    """The override lists Hydra's basic sweeper launched for this sweep (None if unknown)."""
    mr = folder / "multirun.yaml"
    if not mr.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(mr)
        sweeper = OmegaConf.select(cfg, "hydra.sweeper", default=None)
        if sweeper is None or "BasicSweeper" not in str(sweeper.get("_target_", "")):
            return None
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        params += list(OmegaConf.select(cfg, "hydra.overrides.task", default=[]) or [])
        parsed = OverridesParser.create().parse_overrides(params)
        return [list(o) for batch in BasicSweeper.split_arguments(parsed, None) for o in batch]
    except Exception:  # best effort: an unusual multirun.yaml only loses the "missing" rows
        return None


def collect(folder: str | Path) -> list[Job]:
    """Jobs of a multirun folder, failed and missing ones included; UserError if there are none."""
    path = Path(str(folder)).expanduser()
    if not path.exists():
        raise UserError(f"sweep={folder}: no such folder. Pass the folder a sweep wrote, e.g. multirun/<date>/<time>.")
    if not path.is_dir():
        raise UserError(f"sweep={folder} is a file; pass the sweep's folder (multirun/<date>/<time>).")
    jobs = find_jobs(path)
    if not jobs:
        raise UserError(f"sweep={folder} holds no jobs (no <job>/.hydra/config.yaml below it); "
                        f"pass the folder gan-train -m wrote, e.g. multirun/<date>/<time>.")
    plan = planned_jobs(path)
    if plan:
        have = {j.num for j in jobs}
        for num, ovs in enumerate(plan):
            if num not in have:
                jobs.append(Job(dir=None, num=num, overrides=dict(_split_override(o) for o in ovs),
                                error="planned by the sweeper but no job folder exists (the sweep stopped early?)"))
        jobs.sort(key=lambda j: (j.num is None, j.num if j.num is not None else 0, str(j.dir)))
    return jobs


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


def _json_safe(row: dict) -> dict:
    """NaN/inf are not JSON: they are written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_rows(title: str, rows: list[dict], columns: Optional[list[str]] = None, caption: str | None = None) -> None:
    """A rich table, as wide as it needs (a log or pipe gets whole lines; the CSV has everything)."""
    from rich.console import Console
    from rich.table import Table

    columns = columns or (list(rows[0]) if rows else [])
    t = Table(title=title, caption=caption)
    for c in columns:
        t.add_column(c, justify="left" if c in ("status", "error", "model", "data", "kind") else "right", no_wrap=True)
    for r in rows:
        style = None if r.get("status", "completed") == "completed" else "red"
        t.add_row(*[fmt(r.get(c)) for c in columns], style=style)
    need = 4 + sum(3 + max([len(c)] + [len(fmt(r.get(c))) for r in rows]) for c in columns)
    con = Console()
    Console(width=max(con.width, need)).print(t)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    ck.atomic_write_text(path, buf.getvalue())


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines)


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
    ck.write_json(files[1], {"sweep": str(folder), "swept": swept, "common_overrides": common, "sort_by": sort_by,
                             "columns": columns, "jobs": [_json_safe(r) for r in rows]})
    n_ok = sum(j.ok for j in jobs)
    title = f"sweep {folder}: {n_ok}/{len(jobs)} jobs completed"
    if not quiet:
        shown = [c for c in columns if c not in ("dir", "error") and not c.startswith(_QUIET)]
        common_txt = " ".join(f"{k}={v}" for k, v in common.items())
        print_rows(title, rows, shown, caption=f"common overrides: {common_txt}" if common_txt else None)
        _print_problems(rows)

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(folder / TB_DIR))
    try:
        if writer is not None:
            writer.add_text("sweep/table", markdown_table(rows, [c for c in columns if c != "dir"]), 0)
        if x is not None and y is not None and n_ok:
            from gan_cli import viz

            fig = plot_metric(jobs, x, y, swept, f"{y} vs {x}")
            png = folder / f"{SUMMARY}.png"
            if writer is not None:
                writer.add_figure(f"sweep/{y}_vs_{x}", fig, 0, close=False)
            viz.figure_to_png(fig, png)
            files.append(png)
        report = run_report(jobs, folder, writer, cfg, quiet=quiet)
    finally:
        if writer is not None:
            writer.close()
    if report:
        files += [Path(p) for p in report.get("files", [])]
    if not quiet:
        for f in files:
            print(f"wrote {f}")
        if writer is not None:
            print(f"TensorBoard: tensorboard --logdir {folder / TB_DIR}")
    return {"rows": rows, "columns": columns, "files": [str(f) for f in files], "report": report,
            "plot": {"x": x, "y": y}}


def _print_problems(rows: list[dict]) -> None:
    """One line per failed job (its error), one line for all jobs without a folder."""
    missing = [str(r["job"]) for r in rows if r["status"] == "missing"]
    for r in rows:
        if r["status"] not in ("completed", "missing"):
            print(f"job {r['job']} {r['status']}: {r['error'] or '(no error recorded)'}  [{r['dir']}]")
    if missing:
        print(f"job(s) {', '.join(missing)} missing: planned by the sweeper but no folder (the sweep stopped early or is still running)")


def run_report(jobs: list[Job], folder: Path, writer, cfg=None, quiet: bool = False) -> Optional[dict]:
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
    report = fn(jobs, folder, writer, cfg=cfg) if "cfg" in params else fn(jobs, folder, writer)
    if report and not quiet and report.get("rows"):
        print_rows(report.get("title", name), report["rows"], report.get("columns"), report.get("caption"))
    return report
