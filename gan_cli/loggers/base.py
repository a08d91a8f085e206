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

from ..config import UserError, first_line


class Logger:
    """A tracker.  Every method is a no-op here; a subclass implements what its tracker records."""

    name: str = ""
    #: set for a sweep's own record (gan-eval sweep=): the sweep folder, in place of the one a job finds itself in
    sweep_dir: Optional[Path] = None
    #: run in a process of its own during training (``logger.<name>.background``; :mod:`.background`)
    background: bool = False

    def prepare(self, run_dir: Path) -> None:
        """Before a start in another process (:mod:`.background`): the checks that need no tracker (one line each,
        before training) and what the start reads from this process's Hydra job (the launch folder, the sweep)."""
        self.sweep_dir = self.sweep_dir or sweep_of(Path(run_dir))

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

    def close(self, status: str = "completed") -> None:
        """The run ends: ``completed``, ``interrupted`` (a signal; it can be resumed) or ``failed``."""

    def hint(self, run_dir: Path) -> Optional[str]:
        """One line for the end-of-run summary: how to look at what this tracker recorded of ``run_dir`` (a command
        that can be pasted as printed), or None."""
        return None


# ----------------------------------------------------------------------------- what trackers share

#: a tracker's record of its run inside the run folder (its run id, its store): a resumed run continues it
STATE_DIR = "trackers"


def read_state(run_dir: Path, name: str) -> dict:
    from ..files import read_json

    return read_json(Path(run_dir) / STATE_DIR / f"{name}.json") or {}


def write_state(run_dir: Path, name: str, state: dict) -> None:
    from ..files import write_json

    (Path(run_dir) / STATE_DIR).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / STATE_DIR / f"{name}.json", state)


def launch_dir() -> Path:
    """The folder gan-train / gan-eval was started in (Hydra's runtime.cwd; the current folder outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.cwd)
    except Exception:  # not inside a Hydra job
        return Path.cwd()


def sweep_of(run_dir: Path) -> Optional[Path]:
    """The sweep folder of a job of a multirun or an Optuna study (Hydra's ``hydra.sweep.dir``), or None for a
    single run.  Outside a Hydra job (a resumed job is a single run): the folder above when it holds Hydra's
    ``multirun.yaml``."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return (Path(hc.runtime.cwd) / hc.sweep.dir).resolve()
        return None
    except Exception:  # not inside a Hydra job
        parent = Path(run_dir).resolve().parent
        return parent if (parent / "multirun.yaml").is_file() else None


def figure_rgb(figure):
    """A matplotlib figure's pixels, ``(H, W, 3)`` uint8, drawn once however many trackers ask (kept on the figure):
    the canvas TensorBoard's ``add_figure`` draws, at the figure's own size and dpi."""
    rgb = getattr(figure, "_gan_cli_rgb", None)
    if rgb is None:
        import numpy as np

        figure.canvas.draw()
        w, h = figure.canvas.get_width_height()
        rgb = figure._gan_cli_rgb = np.frombuffer(figure.canvas.buffer_rgba(), dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()
    return rgb


def figure_png(figure) -> bytes:
    """A matplotlib figure as PNG bytes (of :func:`figure_rgb`'s pixels: one drawing for every tracker), kept on the
    figure."""
    png = getattr(figure, "_gan_cli_png", None)
    if png is None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(figure_rgb(figure)).save(buf, format="png")
        png = figure._gan_cli_png = buf.getvalue()
    return png


def flat_params(config: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys (``model.opt_g.lr``); lists as their text."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v
    return out


def require(package: str, extra: str, logger: str):
    """Import ``package`` for ``logger=[<logger>]``, or one line naming the extra to install."""
    import importlib

    from ..config import UserError

    try:
        return importlib.import_module(package)
    except ImportError:
        raise UserError(f"logger={logger} needs the {package} package: pip install 'gan_cli[{extra}]' "
                        f"(or leave {logger} out of logger=[...]).") from None


class TrackerStartError(UserError):
    """A tracker started in a process of its own (:mod:`.background`) could not start: the run stops in one line, as
    for a tracker started in-process."""


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
            except TrackerStartError:  # a background tracker that could not start: the run stops, one line
                self.loggers.remove(lg)
                lg.abandon()
                raise
            except Exception as e:  # never stop training for a tracker
                self.loggers.remove(lg)
                if hasattr(lg, "abandon"):  # a background tracker's process
                    lg.abandon()
                first = first_line(e, 200)
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
        self._begin("flush")
        self._each("flush")

    def close(self, status: str = "completed") -> None:
        self._begin("close", status)
        self._each("close", status)

    def _begin(self, method: str, *args: Any) -> None:
        """Background trackers (:mod:`.background`) all get a flush / close before any is waited for."""
        for lg in self.loggers:
            if hasattr(lg, "begin"):
                lg.begin(method, *args)

    def __len__(self) -> int:
        return len(self.loggers)

    def of_type(self, cls) -> Optional[Logger]:
        return next((lg for lg in self.loggers if isinstance(lg, cls)), None)
