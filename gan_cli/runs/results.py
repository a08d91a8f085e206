"""Reading runs and writing tables: the one results reader of the sweep summary and the lab.

A run folder holds ``.hydra/`` (Hydra's record: config, overrides), ``status.json``,
``results.json`` (final), ``scalars.jsonl`` (one line per logging step), ``metrics.jsonl`` (one line
per evaluation), ``tb/`` and ``checkpoints/``.  :func:`collect` finds every job of a sweep (or the
one run) as a :class:`Job`; :func:`write_csv`, :func:`markdown_table` and :func:`print_rows` write
tables.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gan_cli.runs import checkpoint as ck

from gan_cli.files import atomic_write_text, read_json
from gan_cli.runs import records
from gan_cli.config import UserError

TB_DIR = "tb_summary"


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
        for key in ("steps_per_s", "train_s", "cpu_s"):  # speed of the run's (last) training process
            if _is_number(self.results.get(key)):
                out[key] = self.results[key]
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

    def scalar_log(self) -> list[dict]:
        """The run's ``scalars.jsonl``: one dict per logging step (step, time, every logged scalar)."""
        return records.read(self.dir / records.SCALARS) if self.dir is not None else []

    def metric_log(self) -> list[dict]:
        """The run's ``metrics.jsonl``: one dict per evaluation (step, time, every value)."""
        return records.read(self.dir / records.METRICS) if self.dir is not None else []

    def label(self, keys) -> str:
        return ",".join(f"{k}={self.overrides.get(k, '')}" for k in keys)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
    status = read_json(folder / "status.json")
    results = read_json(folder / "results.json")
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


# ----------------------------------------------------------------------------- tables


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
    atomic_write_text(path, buf.getvalue())


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines)


