"""File I/O every part of gan_cli shares: atomic writes, safe opens, JSON records, write probes.

* Writes go to a temporary file beside the target, are flushed and fsynced, then renamed over it
  (:func:`atomic_write_bytes`): a process killed mid-write leaves the previous file intact and never a
  half-written one under the final name (checkpoints, feature caches, classifier weights, figures,
  JSON records, downloaded IDX files).
* Reads of files a user may point at (a checkpoint, a cache file, an image) open regular files only
  (:func:`open_regular`): a FIFO or a device is never opened, so nothing blocks or streams forever.
* :func:`probe_writable` writes (and removes) a small file in a folder before long work starts, so a
  read-only or full disk is one line up front, not a traceback at the end.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional


class NotARegularFile(OSError):
    """``path`` is missing or is not a regular file; ``reason`` says which, e.g. "is not a regular file (a FIFO)"."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path} {reason}")
        self.path, self.reason = Path(path), reason


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def file_problem(path: Path | str) -> str | None:
    """What keeps ``path`` from being read as a regular file, without opening it; ``None`` if nothing.

    E.g. "does not exist", "is not a regular file (a FIFO)", "is a symlink to a device (/dev/zero)".
    A symlink to a regular file is fine.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symlink to a missing file ({os.readlink(path)})"
        return "does not exist"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = _kind(st.st_mode)
    if os.path.islink(path):
        target = os.path.realpath(path)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            return f"is a symlink to a device ({target}), not a regular file"
        return f"is a symlink to {kind} ({target}), not a regular file"
    return f"is not a regular file ({kind})"


def open_regular(path: Path | str):
    """Open ``path`` for binary reading only if it is a regular file (symlinks to one are fine).

    Raises :class:`NotARegularFile` (an ``OSError``) otherwise.  The type is checked before opening, so a
    FIFO or a device is never opened; should the path be swapped for one in between, the open does not
    block (``O_NONBLOCK``) and the type is checked again on the open file.
    """
    why = file_problem(path)
    if why:
        raise NotARegularFile(path, why)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise NotARegularFile(path, "does not exist") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, f"is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def atomic_write_bytes(path: Path | str, write: Callable, check: Optional[Callable[[Path], None]] = None) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename over ``path``.

    ``check(tmp_path)``, when given, runs on the complete temp file before the rename and may raise to refuse
    it (e.g. "not a complete IDX file").  On any error the temp file is removed and the old ``path`` (if
    any) is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
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


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path | str) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def append_line(path: Path | str, line: str) -> None:
    """Append one line (with its newline) and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def probe_writable(folder: Path | str, prefix: str = ".gan_cli-probe-", size: int = 65536) -> Optional[OSError]:
    """Write ``size`` bytes into a temporary file in the existing ``folder`` and remove it: None when that works,
    else the OSError (read-only, full disk, permissions ...)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=prefix) as f:
            f.write(b"\0" * size)  # a little space too: a full disk fails here, not after the work
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return e
    return None
