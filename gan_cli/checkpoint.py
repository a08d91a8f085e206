"""Checkpoints: atomic save, safe load, rotation, and finding the newest good one.

A checkpoint is a plain dict of tensors, numbers, strings and lists (the resolved
config included, as plain data), so it loads with ``torch.load(weights_only=True)``:
a checkpoint from the internet cannot run code.  Writes go to a temporary file in
the same folder, are flushed and fsynced, then renamed over the target, so a run
killed mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from gan_cli.config import UserError

FORMAT = "gan_cli.checkpoint"
VERSION = 1
CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def ckpt_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:08d}.pt"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename.

    On any error the temp file is removed and the old ``path`` (if any) is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically write ``state`` (plus format tag and version) to ``path``."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    try:
        atomic_write_bytes(path, lambda f: torch.save(payload, f))
    except OSError as e:
        prev = list_checkpoints(Path(path).parent.parent)
        kept = f"the previous checkpoint {prev[-1]} is kept" if prev else "no earlier checkpoint exists"
        raise UserError(f"could not write checkpoint {path}: {e.strerror or e}; {kept}. Free disk space and resume.") from e


def load_checkpoint(path: Path | str) -> dict:
    """Load a checkpoint safely; any problem is one clear line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e) and "Unsupported operand" not in str(e):
            why = "it holds objects other than plain data (refusing to run code from it)"
        elif (isinstance(e, (zipfile.BadZipFile, EOFError, pickle.UnpicklingError))  # random bytes: bad pickle opcode
              or (isinstance(e, OSError) and e.errno == errno.EINVAL)  # most cut-short zips: the reader's seek fails
              or "zip archive" in str(e) or "central directory" in str(e)):
            why = "it is truncated or not a PyTorch file"
        else:
            why = f"it cannot be read ({first[:160]})"
        raise UserError(f"checkpoint {path} is unusable: {why}.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a gan_cli checkpoint (no '{FORMAT}' tag).")
    if obj.get("version") != VERSION:
        raise UserError(
            f"checkpoint {path} has format version {obj.get('version')}, this gan_cli reads version {VERSION}."
        )
    return obj


def list_checkpoints(run_dir: Path | str) -> list[Path]:
    """Periodic checkpoints of a run, oldest first."""
    d = Path(run_dir) / CKPT_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_good_checkpoint(run_dir: Path | str) -> tuple[Path, dict]:
    """The newest checkpoint of ``run_dir`` that loads; corrupt newer ones are skipped with a warning."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"resume={run_dir}: no such folder. Pass the run folder printed at the end of a gan-train run.")
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise UserError(f"resume={run_dir}: the folder holds no checkpoint ({CKPT_DIR}/step_*.pt); start a new run instead.")
    problems = []
    for p in reversed(ckpts):
        try:
            obj = load_checkpoint(p)
        except UserError as e:
            problems.append(str(e))
            continue
        for skipped in problems:  # say which newer checkpoints are skipped, and why
            print(f"gan-train: warning: {skipped} Using the older {p.name}.", file=sys.stderr)
        return p, obj
    raise UserError(f"resume={run_dir}: no checkpoint there can be loaded; newest problem: {problems[0]}")


def rotate_checkpoints(run_dir: Path | str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` periodic checkpoints; returns the deleted paths."""
    ckpts = list_checkpoints(run_dir)
    doomed = ckpts[: max(0, len(ckpts) - keep)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
