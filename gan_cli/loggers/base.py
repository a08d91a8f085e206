"""The one logging seam (design principle 9): a :class:`Logger` per tracker, a :class:`Loggers` fan-out per run.

Tags are stable across trackers: ``loss/d``, ``estimate/w``, ``metrics/fid10k_clf``, ``augment/p``, ``eval/...``.
A logger is cheap to construct (the build layer makes them from ``logger=[...]``); :meth:`Logger.start` opens
it for a run folder -- a tracker that cannot start (bad address, package missing) raises a one-line
:class:`~gan_cli.config.UserError` there, before training.  During a run a tracker that fails (store locked,
disk full, network gone) never stops training: :class:`Loggers` prints one warning line, drops that tracker
and goes on with the others.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Optional


class Logger:
    """A tracker.  Every method is a no-op here; a subclass implements what its tracker records."""

    name: str = ""

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        """Open for ``run_dir``; ``step`` > 0 with ``resume``: a resumed run continues at ``step`` (what was logged
        after it by a killed process is dropped where the tracker can)."""

    def log_scalars(self, values: dict, step: int) -> None:
        """``{tag: float}`` at ``step``."""

    def log_image(self, tag: str, image, step: int) -> None:
        """A ``(C, H, W)`` float tensor in [0, 1] (an image grid)."""

    def log_figure(self, tag: str, figure, step: int) -> None:
        """A matplotlib figure (left open: the caller closes it)."""

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text (tables)."""

    def log_config(self, config: dict) -> None:
        """The run's resolved config, as plain data."""

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        """The run's hyperparameters (one flat dict, the same keys for every run of a sweep) with its final values."""

    def log_artifact(self, path: Path) -> None:
        """A file of the run (a figure, results.json)."""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Loggers(Logger):
    """Every call goes to each tracker; a tracker that raises is dropped with one warning line (see the module)."""

    def __init__(self, loggers: Iterable[Logger] = ()):
        self.loggers = list(loggers)

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        for lg in self.loggers:  # a tracker that cannot start stops the run here (its own one-line error)
            lg.start(run_dir, step, resume)

    def _each(self, method: str, *args: Any) -> None:
        for lg in list(self.loggers):
            try:
                getattr(lg, method)(*args)
            except Exception as e:  # never stop training for a tracker
                self.loggers.remove(lg)
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                print(f"gan_cli: warning: logger {lg.name or type(lg).__name__} failed ({type(e).__name__}: {first}); "
                      f"it is off for the rest of this run, the other trackers go on.", file=sys.stderr)

    def log_scalars(self, values: dict, step: int) -> None:
        self._each("log_scalars", values, step)

    def log_image(self, tag: str, image, step: int) -> None:
        self._each("log_image", tag, image, step)

    def log_figure(self, tag: str, figure, step: int) -> None:
        self._each("log_figure", tag, figure, step)

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        self._each("log_text", tag, text, step)

    def log_config(self, config: dict) -> None:
        self._each("log_config", config)

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        self._each("log_hparams", hparams, metrics)

    def log_artifact(self, path: Path) -> None:
        self._each("log_artifact", path)

    def flush(self) -> None:
        self._each("flush")

    def close(self) -> None:
        self._each("close")

    def __len__(self) -> int:
        return len(self.loggers)

    def of_type(self, cls) -> Optional[Logger]:
        return next((lg for lg in self.loggers if isinstance(lg, cls)), None)
