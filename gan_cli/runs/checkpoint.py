"""Checkpoints: atomic save, safe load, rotation, and finding the newest good one.

A checkpoint is a plain dict of tensors, numbers, strings and lists (the resolved
config included, as plain data), so it loads with ``torch.load(weights_only=True)``:
a checkpoint from the internet cannot run code.  Writes go to a temporary file in
the same folder, are flushed and fsynced, then renamed over the target, so a run
killed mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch

from gan_cli.config import UserError
from gan_cli.files import NotARegularFile, atomic_write_bytes, open_regular

FORMAT = "gan_cli.checkpoint"
VERSION = 1
CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


BEST = "best.pt"


def best_path(run_dir: Path) -> Path:
    """``checkpoints/best.pt``: kept beside the rotating ones (its name never matches ``step_*.pt``)."""
    return Path(run_dir) / CKPT_DIR / BEST


def ckpt_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:08d}.pt"


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
    try:
        with open_regular(path) as f:  # never opens a FIFO or a device (a FIFO would block torch.load)
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except NotARegularFile as e:
        raise UserError(f"checkpoint {path} {e.reason}.") from None
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


def newest_loadable_checkpoint(run_dir: Path | str, who: str = "gan-train",
                               option: str = "resume") -> tuple[Path, dict]:
    """``(path, state)`` of the newest checkpoint of ``run_dir`` that loads.

    Newer checkpoints that cannot be loaded (cut short, a FIFO, a symlink to a device, deleted
    between listing and loading because a running training rotated it away ...) are skipped, with
    one warning line each on stderr, ``"<who>: warning: checkpoint <file> <reason>. Using the older
    <file>."``.  When a listed file vanished, the folder is listed again, so a training that keeps
    writing and rotating checkpoints does not make this fail.  Problems with the folder itself, or
    no loadable checkpoint at all, are one :class:`UserError` line starting ``"<option>=<run_dir>:"``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{option}={run_dir}: no such folder. Pass the run folder printed at the end of a gan-train run.")
    problems: dict[Path, str] = {}  # skipped checkpoint -> why, in the order tried (newest first)
    for _ in range(5):  # re-list only while files vanish under us
        todo = [p for p in reversed(list_checkpoints(run_dir)) if p not in problems]
        for p in todo:
            try:
                state = load_checkpoint(p)
            except UserError as e:
                problems[p] = str(e)
                continue
            for bad, why in problems.items():  # say which newer checkpoints are skipped, and why
                older = "the older " if _step_of(p) < _step_of(bad) else ""
                print(f"{who}: warning: {why} Using {older}{p}.", file=sys.stderr)
            return p, state
        if not todo or all(os.path.lexists(p) for p in todo):
            break
    instead = "start a new run" if option == "resume" else f"pass another {option}="
    if not problems:
        raise UserError(f"{option}={run_dir}: the folder holds no checkpoint ({CKPT_DIR}/step_*.pt); {instead} instead.")
    newest = next(iter(problems.values())).rstrip(".")
    which = (f"none of the {len(problems)} checkpoints in {CKPT_DIR}/ can be loaded (newest: {newest})"
             if len(problems) > 1 else f"its only checkpoint cannot be loaded ({newest})")
    raise UserError(f"{option}={run_dir}: {which}; restore a good checkpoint there or {instead}.")


def _step_of(path: Path) -> int:
    m = _NAME.match(Path(path).name)
    return int(m.group(1)) if m else -1


def latest_good_checkpoint(run_dir: Path | str) -> tuple[Path, dict]:
    """gan-train resume=: the newest checkpoint of ``run_dir`` that loads (:func:`newest_loadable_checkpoint`)."""
    return newest_loadable_checkpoint(run_dir, who="gan-train", option="resume")


def rotate_checkpoints(run_dir: Path | str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` periodic checkpoints; returns the deleted paths."""
    ckpts = list_checkpoints(run_dir)
    doomed = ckpts[: max(0, len(ckpts) - keep)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
