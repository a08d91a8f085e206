"""A run's line-per-event records: ``scalars.jsonl`` (one line per logging step: every scalar the
loop logs, gradient norms included) and ``metrics.jsonl`` (one line per evaluation: step, wall
time, every value).  Lines are appended and flushed as they happen; on resume the lines written
after the checkpoint's step are dropped (the same as TensorBoard's purge_step)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

from gan_cli.files import append_line, atomic_write_text

SCALARS = "scalars.jsonl"
METRICS = "metrics.jsonl"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf: "nan", "inf", "-inf"
    return v


def append(path: Path, record: dict) -> None:
    """Append one JSON line and flush it to disk."""
    append_line(path, json.dumps({k: _clean(v) for k, v in record.items()}, sort_keys=False) + "\n")


def read(path: Path) -> list[dict]:
    """Every complete line of ``path`` ([] when it does not exist); a torn last line is ignored."""
    return list(_lines(Path(path)))


def _lines(path: Path) -> Iterator[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            yield {k: (float(v) if v in ("nan", "inf", "-inf") else v) for k, v in rec.items()}


def trim(path: Path, max_step: int) -> None:
    """Keep only the lines with ``step <= max_step`` (atomically)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in _lines(path) if int(r.get("step", 0)) <= max_step]
    atomic_write_text(path, "".join(json.dumps({k: _clean(v) for k, v in r.items()}) + "\n" for r in keep))
