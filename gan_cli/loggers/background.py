"""A tracker in a process of its own (``logger.<name>.background=true``: MLflow's and W&B's default).

Starting MLflow or W&B costs seconds of imports and store set-up, and writing to them takes the training
process's time; a short run would pay it all in its wall time.  :class:`BackgroundLogger` runs the tracker in a
child process -- a fresh interpreter (``python -c``, not multiprocessing's spawn, which would re-run the caller's
main script) that inherits nothing of the parent's threads or CUDA state -- and hands it every call as a pickled
message on its stdin (written by a thread: a slow tracker never blocks a training step); the child answers on its
own pipe.  The child imports and writes on another core while the parent trains.

* **Start**: what can be checked at once is checked in the parent, before training, in one line
  (:meth:`Logger.prepare`: the package installed, the tracking URI's form and folder); the tracker's own start
  (opening the store, ``wandb.init``) runs in the child.  When it fails there, the run stops in one line at the next
  call into the tracker after the child says so, and at the latest at the first checkpoint, which waits for the
  start (:class:`TrackerStartError`; nothing is checkpointed before).
* **Calls** go in order; figures travel as their PNG bytes.  A call that fails in the child turns the tracker off
  with one warning line, as any tracker failure (:class:`gan_cli.loggers.Loggers`); the others go on.
* **flush** (before each checkpoint) waits until the child has written everything sent so far: the store holds
  every step up to the checkpoint, as a resume expects.  **close** waits for the child to close the tracker (its
  last writes done), not for the child's interpreter to exit (W&B's teardown of its service: seconds).
* The child ignores SIGINT / SIGTERM (the parent stops the run and closes the tracker with status ``interrupted``)
  and exits when the parent is gone (its stdin closes).  What the tracker libraries print goes to stderr.
"""
from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from ..config import first_line
from .base import Logger, Loggers, TrackerStartError, figure_png

#: how long flush / close wait for the child (a store on a slow network)
WAIT_S = 300.0


class _Png:
    """A rendered figure: :func:`gan_cli.loggers.base.figure_png` returns its bytes."""

    def __init__(self, png: bytes):
        self._gan_cli_png = png


def serve() -> None:
    """The child (``python -c "from gan_cli.loggers.background import serve; serve()"``): read the parent's
    ``sys.path`` and the tracker, start it, then run the calls in order until ``close`` or the end of stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # background work: where the cores are all busy, training goes first (W&B's service inherits it)
        os.nice(10)
    except OSError:
        pass
    replies = os.fdopen(os.dup(1), "wb")  # the answers' pipe; fd 1 now shows what libraries print, on stderr
    os.dup2(2, 1)
    commands = sys.stdin.buffer

    def reply(kind: str, text: str = "") -> None:
        pickle.dump((kind, text), replies)
        replies.flush()

    sys.path[:] = pickle.load(commands)
    inner = pickle.load(commands)
    ok = True
    while True:
        try:
            kind, method, args = pickle.load(commands)
        except EOFError:  # the parent is gone
            return
        try:
            if kind == "start":
                try:
                    inner.start(*args)
                except Exception as e:
                    ok = False
                    reply("start_failed", first_line(e, 400))
                else:
                    reply("started")
            elif kind == "call" and ok:
                getattr(inner, method)(*args)
            elif kind == "flush":
                if ok:
                    inner.flush()
                reply("flushed")
            elif kind == "close":
                if ok:
                    inner.close(*args)
                reply("closed")
                return
        except Exception as e:  # the tracker failed: tell the parent once, ignore its calls from now on
            ok = False
            reply("failed", f"{type(e).__name__}: {first_line(e, 200)}")
            if kind in ("flush", "close"):
                reply("flushed" if kind == "flush" else "closed")
                if kind == "close":
                    return


class BackgroundLogger(Logger):
    """``inner`` run in a child process (see the module docstring)."""

    def __init__(self, inner: Logger):
        self.inner = inner
        self.name = inner.name
        self.proc: Optional[subprocess.Popen] = None
        self.outbox: "queue.Queue" = queue.Queue()
        self.replies: "queue.Queue" = queue.Queue()
        self._begun: Optional[str] = None  # a flush / close sent, its answer not yet awaited

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        self.inner.prepare(Path(run_dir))  # the checks that need no tracker, and the Hydra context the child lacks
        self.proc = subprocess.Popen([sys.executable, "-c", "from gan_cli.loggers.background import serve; serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        threading.Thread(target=self._write, args=(self.proc,), daemon=True, name=f"gan_cli-{self.name}-in").start()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True, name=f"gan_cli-{self.name}-out").start()
        self.outbox.put(list(sys.path))
        self.outbox.put(self.inner)
        self.outbox.put(("start", None, (Path(run_dir), int(step), bool(resume))))

    def _write(self, proc) -> None:
        try:
            while True:
                msg = self.outbox.get()
                if msg is None:
                    break
                pickle.dump(msg, proc.stdin)
                proc.stdin.flush()
        except (OSError, ValueError):  # the child is gone: the replies say so
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def _read(self, proc) -> None:
        try:
            while True:
                self.replies.put(pickle.load(proc.stdout))
        except (EOFError, OSError, pickle.UnpicklingError):
            self.replies.put(("gone", ""))

    def _handle(self, kind: str, text: str) -> str:
        if kind == "start_failed":
            raise TrackerStartError(text)
        if kind == "failed":
            raise RuntimeError(text)
        if kind == "gone":
            raise RuntimeError(f"its process ended (exit code {self.proc.wait() if self.proc else '?'})")
        return kind

    def _poll(self) -> None:
        while True:
            try:
                kind, text = self.replies.get_nowait()
            except queue.Empty:
                return
            self._handle(kind, text)

    def _wait(self, want: str) -> None:
        """Replies until ``want``, raising on a failure among them; a child that hangs fails the tracker."""
        while True:
            try:
                kind, text = self.replies.get(timeout=WAIT_S)
            except queue.Empty:
                raise RuntimeError(f"its process did not answer in {WAIT_S:.0f} s") from None
            if self._handle(kind, text) == want:
                return

    def _call(self, method: str, *args: Any) -> None:
        self._poll()
        self.outbox.put(("call", method, args))

    def log_scalars(self, values: dict, step: int) -> None:
        self._call("log_scalars", dict(values), int(step))

    def log_image(self, tag: str, image, step: int) -> None:
        self._call("log_image", tag, image.detach().cpu(), int(step))

    def log_figure(self, tag: str, figure, step: int) -> None:
        self._call("log_figure", tag, _Png(figure_png(figure)), int(step))

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        self._call("log_text", tag, text, int(step))

    def log_config(self, config: dict) -> None:
        self._call("log_config", config)

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        self._call("log_hparams", hparams, metrics)

    def log_artifact(self, path: Path) -> None:
        self._call("log_artifact", Path(path))

    def begin(self, method: str, *args: Any) -> None:
        """Send a ``flush`` or ``close`` without waiting (:class:`gan_cli.loggers.Loggers` sends it to every
        background tracker first, then waits for each: their children work side by side)."""
        if self.proc is not None and self._begun is None:
            self.outbox.put((method, None, tuple(args)))
            self._begun = method

    def flush(self) -> None:
        if self.proc is None:
            return
        self.begin("flush")
        self._begun = None
        self._wait("flushed")  # the start's reply comes first: a start that failed stops the run here

    def close(self, status: str = "completed") -> None:
        if self.proc is None:
            return
        closed = False
        try:
            self.begin("close", str(status))
            self._begun = None
            self._wait("closed")
            closed = True
        finally:
            self.outbox.put(None)
            proc, self.proc = self.proc, None
            if closed:
                # the tracker is closed, everything written; what is left is the child's interpreter exit (the
                # libraries' own teardown: W&B stops its service), seconds the run need not wait for
                threading.Thread(target=proc.wait, daemon=True, name=f"gan_cli-{self.name}-exit").start()
            else:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def abandon(self) -> None:
        """Stop the child without closing the tracker (it failed): its stdin closes, it exits."""
        if self.proc is None:
            return
        self.outbox.put(None)
        proc, self.proc = self.proc, None
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # blocked in the tracker (a locked store): it has nothing left to write
            proc.kill()
            proc.wait()

    def hint(self, run_dir: Path):
        return self.inner.hint(run_dir)


def in_background(loggers: Loggers) -> Loggers:
    """The same trackers, those with ``background`` set each in a process of its own (the training loop's)."""
    return Loggers([BackgroundLogger(lg) if lg.background else lg for lg in loggers.loggers])
