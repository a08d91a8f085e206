"""Stopping a run gracefully: SIGINT / SIGTERM (what Slurm sends before the time limit) set a flag the loop reads
after each step; inside an interruptible phase (an evaluation, a picture) the phase ends at once.  Either way the
loop writes the checkpoint of the current step and raises :class:`Interrupted`.  A second signal exits at once."""
from __future__ import annotations

import signal
from contextlib import contextmanager


class Diverged(Exception):
    """A loss or weight became NaN/inf (the divergence guard)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class Stop(BaseException):
    """Raised by the signal handler inside an interruptible phase (evaluation, pictures)."""


@contextmanager
def graceful_signals(state: dict):
    """SIGINT/SIGTERM set ``state["signal"]``; the loop checks it after each step.  Inside an
    interruptible phase (``state["interruptible"]``: an evaluation, a picture) the handler also
    raises :class:`Stop` so the phase ends now.  A second signal exits at once (no traceback)."""

    def handler(signum, frame):
        if state.get("signal"):
            raise SystemExit(128 + signum)
        state["signal"] = signum
        if state.get("interruptible"):
            raise Stop()

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread (e.g. some launchers)
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def interruptible(state: dict):
    if state.get("collective"):  # several processes: a phase full of collectives ends with the step, on every rank
        yield
        return
    state["interruptible"] = True
    try:
        if state.get("signal"):
            raise Stop()
        yield
    finally:
        state["interruptible"] = False
