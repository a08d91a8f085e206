"""One writer per run folder: an OS lock (``fcntl.flock``) on ``<run>/.lock``.

The kernel drops a flock when its process dies, however it dies, so a lock left behind by a
killed run is never stale.  The lock file records the holder's pid and host for the error line.
Within one process the lock is re-entrant (gan-train takes it before Hydra writes its record of a
resume into the folder, and again around the training)."""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from gan_cli.config import UserError

LOCK_NAME = ".lock"
_held: dict[str, list] = {}  # realpath -> [fd, depth]


class RunLock:
    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.key = None

    def __enter__(self) -> "RunLock":
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the run folder {self.run_dir} ({e.strerror}): choose a folder you can "
                            f"write to (out_dir=...).") from None
        self.key = os.path.realpath(self.run_dir)
        if self.key in _held:
            _held[self.key][1] += 1
            return self
        path = Path(self.key) / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"cannot write in the run folder {self.run_dir} ({e.strerror}): choose a folder you can "
                            f"write to (out_dir=...).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            try:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                who = f" ({holder})" if holder else ""
                raise UserError(f"{self.run_dir} is in use by another gan-train{who}; wait for it to finish or "
                                f"stop it.") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        _held[self.key] = [fd, 1]
        return self

    def __exit__(self, *exc) -> bool:
        entry = _held.get(self.key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self.key]
                os.close(entry[0])  # releases the flock
        return False
