"""One writer per run folder: an OS lock on ``<run_dir>/.lock``.

``with RunLock(run_dir): ...`` holds an exclusive ``fcntl.flock`` on ``<run_dir>/.lock`` for the
lifetime of the block (or of the process, if it never leaves it).  The lock belongs to the open
file, not to the file's contents, so it can never go stale: when the holder exits or is killed
(SIGKILL included) the kernel releases it, and the file left behind does not block anyone.  The
file only says who holds it (``{"pid": ..., "host": ..., "since": ...}``) so that a refused
process can name the holder.  Acquiring never waits: when another live process holds the lock it
raises :class:`gan_cli.config.UserError` with one line naming that process.

Notes: the lock file is kept, never deleted (deleting it would let two processes lock two
different files of the same name); it is opened with ``O_CLOEXEC``, so programs started through
``exec`` do not inherit it, but children made with a bare ``fork`` (e.g. data-loader workers)
share it until they exit.  On NFS, Linux maps ``flock`` to POSIX byte-range locks, which work
across machines when the server supports locking.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from gan_cli.config import UserError

LOCK_NAME = ".lock"


class RunLock:
    """Exclusive, non-blocking lock on a run folder (``<run_dir>/.lock``); see the module docstring.

    ``who`` names the kind of process in the refusal message ("... in use by another gan-train").
    """

    def __init__(self, run_dir: str | os.PathLike, who: str = "gan-train"):
        self.run_dir = Path(run_dir).expanduser()
        self.path = self.run_dir / LOCK_NAME
        self.who = who
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock now or raise :class:`UserError`; creates ``run_dir`` if it does not exist."""
        if self._fd is not None:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the run folder {self.run_dir}: {e.strerror or e}; "
                            f"choose a folder you can write to.") from None
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(self._in_use_message()) from None
            raise UserError(f"cannot lock {self.path}: {e.strerror or e}; "
                            f"the file system may not support locks, choose a local folder.") from None
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as e:
            os.close(fd)  # releases the lock
            raise UserError(f"cannot write the lock file {self.path}: {e.strerror or e}; "
                            f"free disk space or choose another folder.") from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays, emptied); safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no holder to name any more
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor of the open file drops the flock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except PermissionError as e:
            raise UserError(f"cannot lock the run folder {self.run_dir}: it is not writable ({e.strerror}); "
                            f"fix its permissions or choose another folder.") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UserError(f"the lock file {self.path} is a symlink; remove it and run again.") from None
            if e.errno == errno.EROFS:
                raise UserError(f"cannot lock the run folder {self.run_dir}: it is not writable (read-only file "
                                f"system); choose another folder.") from None
            raise UserError(f"cannot open the lock file {self.path}: {e.strerror or e}.") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UserError(f"the lock file {self.path} is not a regular file; remove it and run again.")
        os.set_blocking(fd, True)
        return fd

    def _holder(self) -> dict:
        """What the holder wrote in the lock file; it writes just after locking, so wait a moment for it."""
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
                try:
                    text = os.read(fd, 4096) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
                finally:
                    os.close(fd)
                info = json.loads(text or b"null")
                if isinstance(info, dict) and "pid" in info:
                    return info
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        return {}

    def _in_use_message(self) -> str:
        info = self._holder()
        pid, host = info.get("pid", "unknown"), info.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        if pid == os.getpid() and not where:
            return f"{self.run_dir} is already locked by this process (pid {pid}); one run per folder."
        return (f"{self.run_dir} is in use by another {self.who} (pid {pid}{where}); "
                f"wait for it to finish or stop it.")
