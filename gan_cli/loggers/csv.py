"""CSV (``logger=[csv]``, also beside others: ``logger=[tensorboard,csv]``): ``metrics.csv`` in the run folder, one
row per logging call -- ``step``, ``time`` (wall-clock seconds since the epoch), then every scalar, one column per
tag in the order the tags first appear (the format of Lightning's ``CSVLogger``: a wide table that pandas reads
with ``pd.read_csv``).  A tag that appears later (the metrics of an evaluation, ``final/*``) adds a column: the
file is rewritten atomically with the wider header, earlier rows left empty there.  A resumed run keeps the rows up
to its checkpoint's step and drops the ones a killed process wrote after it.  Images, figures and text are not
written (the other trackers keep them).  Each row goes to the OS when it is logged (a killed process loses none)
and to the disk (fsync) at each checkpoint and at the end: ``scalars.jsonl`` is the run's own record, synced at
every log step.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import LoggerConfig, component_schema
from ..files import atomic_write_text
from .base import Logger


class CSVLogger(Logger):
    name = "csv"

    def __init__(self, filename: str = "metrics.csv"):
        self.filename = str(filename)
        self.path: Optional[Path] = None
        self.columns: list = ["step", "time"]
        self.rows: list = []

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        self.path = Path(run_dir) / self.filename
        self.columns, self.rows = ["step", "time"], []
        if self.path.is_file():  # a resumed run (or gan-eval adding to a run): keep what came before `step`
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or self.columns)
                self.rows = [r for r in reader if not resume or _step(r) <= step]
            self._rewrite()

    def log_scalars(self, values: dict, step: int) -> None:
        row = {"step": str(int(step)), "time": f"{time.time():.3f}"}
        row.update({k: _fmt(v) for k, v in values.items()})
        new = [k for k in values if k not in self.columns]
        self.rows.append(row)
        if new:  # a wider header: the whole file again, atomically
            self.columns += new
            self._rewrite()
        else:  # to the OS at once (a killed process loses nothing); to the disk at each checkpoint and at the end
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(self._line(row))

    def flush(self) -> None:
        if self.path is not None and self.path.is_file():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self, status: str = "completed") -> None:
        self.flush()

    def hint(self, run_dir: Path):
        import shlex

        return f"CSV: {shlex.quote(str(Path(run_dir) / self.filename))}"

    def _line(self, row: dict) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([row.get(c, "") for c in self.columns])
        return buf.getvalue()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(self.columns)
        text = buf.getvalue() + "".join(self._line(r) for r in self.rows)
        atomic_write_text(self.path, text)


def _fmt(v) -> str:
    v = float(v)
    return repr(v) if math.isfinite(v) else str(v)


def _step(row: dict) -> int:
    try:
        return int(row.get("step") or 0)
    except ValueError:
        return 0


@component_schema("logger", "csv")
@dataclass
class CSVConfig(LoggerConfig):
    filename: str = "metrics.csv"  # in the run folder
