"""MLflow (``logger=[mlflow]``, beside others: ``logger=[tensorboard,mlflow]``; ``pip install 'gan_cli[mlflow]'``).

* **Store**: ``logger.mlflow.tracking_uri``, by default a local SQLite file ``outputs/mlflow.db`` under the folder
  gan-train was started in -- no server; one store for single runs and sweeps alike.  See the runs with
  ``mlflow ui --backend-store-uri sqlite:///<that file>``.  Any MLflow URI works (``http://host:5000``,
  ``databricks``, ``file:///...``); a SQLite store keeps its artifacts in ``mlruns/<experiment>`` beside its file.
* **Experiment**: ``logger.mlflow.experiment``, by default the data set's name; the run is named after its folder.
* **Content** (scalars written every 5 s, at each checkpoint and at the end): params, the resolved config as
  dotted keys (``steps``, ``model.name``, ``model.opt_g.lr`` ...) and ``config.yaml`` as an artifact; metrics,
  every scalar at its step; artifacts, the sample grids
  (``images/samples_<step>.png``), figures, text tables, ``results.json`` and ``metrics.jsonl``; tags:
  ``gan_cli.run_dir`` (the run folder) and, for a job of a multirun or an Optuna study, ``gan_cli.sweep`` (the
  sweep folder) -- a sweep's runs are grouped by that tag (filter ``tags.gan_cli.sweep = '...'``), not by a
  parent run, so that each job stays an ordinary run that can be resumed, compared and deleted on its own.
* **Resume**: the run id and store are kept in ``<run folder>/trackers/mlflow.json``; a resumed run continues
  its own MLflow run (no new run) and logs no step twice: a killed process may have logged steps after its
  checkpoint, and the resumed run -- which recomputes the same values -- leaves those steps as they are and
  logs from the step after the last one the store holds.  gan-eval on a run adds its ``eval/*`` values to the
  same MLflow run.
* The run's status at the end: FINISHED, KILLED (interrupted by a signal: it can be resumed) or FAILED.

A store that cannot be opened (a bad URI, a folder that cannot be written) stops the run before training in one
line; a store that fails during the run (locked, disk full, network gone) never stops training: one warning
line, and the other trackers go on (:class:`gan_cli.loggers.Loggers`).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import LoggerConfig, UserError, component_schema, first_line
from .base import Logger, figure_png, flat_params, launch_dir, read_state, require, sweep_of, write_state

DEFAULT_STORE = "outputs/mlflow.db"
#: MLflow's limits: 100 params and 1000 metrics a batch, param values of 6000 characters
_PARAMS_PER_BATCH, _METRICS_PER_BATCH, _PARAM_CHARS = 100, 1000, 6000
_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
#: the scalars are written at most this often (and at every checkpoint and at the end): one SQLite transaction
#: (an fsync) per write, instead of one per log step
WRITE_EVERY_S = 5.0


def store_uri(tracking_uri: Optional[str]) -> str:
    """The tracking URI: ``tracking_uri``, or ``sqlite:///<launch folder>/outputs/mlflow.db``.  A SQLite file's
    folder is made (and must be writable): one line when it cannot be."""
    uri = str(tracking_uri) if tracking_uri else f"sqlite:///{(launch_dir() / DEFAULT_STORE).resolve()}"
    if "://" not in uri and uri != "databricks":
        raise UserError(f"logger.mlflow.tracking_uri={uri} is not an MLflow URI: use sqlite:///<file>.db, "
                        f"file:///<folder>, http://<host>:<port> or databricks.")
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        from ..files import probe_writable

        if db.is_dir():  # MLflow would retry opening it for about 100 s
            raise UserError(f"logger.mlflow.tracking_uri={uri}: {db} is a folder; point it at a file (it is made "
                            f"when missing), e.g. sqlite:///{db / 'mlflow.db'}.")

        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            err = probe_writable(db.parent)
        except OSError as e:
            err = e
        if err is not None:
            e = err
            raise UserError(f"logger.mlflow.tracking_uri={uri}: cannot write the store's folder {db.parent} "
                            f"({e}); point it at a writable file.") from None
    return uri


def artifact_root(uri: str, experiment: str) -> Optional[str]:
    """Where a new experiment of a SQLite store keeps its artifacts: ``mlruns/<experiment>`` beside the store's
    file (MLflow's own default is ``./mlruns`` under whatever folder the process runs in); None (the server's
    choice) for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment)
    return (Path(uri[len("sqlite:///"):]).parent / "mlruns" / safe).resolve().as_uri()


class MLflowLogger(Logger):
    name = "mlflow"

    def __init__(self, tracking_uri: Optional[str] = None, experiment: Optional[str] = None,
                 run_name: Optional[str] = None):
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.client = None
        self.run_id: Optional[str] = None
        self.run_dir: Optional[Path] = None
        self.logged_upto = -1  # a resumed run: steps at or below this are in the store already
        self.owns = False  # this process started or resumed the run (and sets its status at the end)
        self.pending: list = []  # scalars not yet written: a write every WRITE_EVERY_S seconds, not every log step
        self.written = time.monotonic()

    def prepare(self, run_dir: Path) -> None:
        """The package installed and the store's URI resolved and checked (its folder writable), before training."""
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            require("mlflow", "mlflow", "mlflow")  # the one line naming the extra
        super().prepare(run_dir)
        self.tracking_uri = read_state(Path(run_dir), self.name).get("tracking_uri") or store_uri(self.tracking_uri)

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        require("mlflow", "mlflow", "mlflow")
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("alembic", "mlflow"):  # a new store's migrations log at INFO
            logging.getLogger(noisy).setLevel(logging.WARNING)

        self.run_dir = Path(run_dir)
        state = read_state(self.run_dir, self.name)
        uri = state.get("tracking_uri") or store_uri(self.tracking_uri)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            if state.get("run_id"):  # a resumed run, or gan-eval on a run: the same MLflow run
                self.run_id, self.owns = state["run_id"], resume  # gan-eval leaves the run's status alone
                if resume:
                    self.client.update_run(self.run_id, status="RUNNING")
                    self.logged_upto = self._last_step()
                return
            name = str(self.experiment or "gan_cli")
            found = self.client.get_experiment_by_name(name)
            exp_id = found.experiment_id if found is not None else self.client.create_experiment(
                name, artifact_location=artifact_root(uri, name))
            tags = {"gan_cli.run_dir": str(self.run_dir.resolve())}
            sweep = self.sweep_dir or sweep_of(self.run_dir)
            if sweep is not None:
                tags["gan_cli.sweep"] = str(sweep)
            run = self.client.create_run(exp_id, tags=tags, run_name=str(self.run_name or self.run_dir.name))
        except UserError:
            raise
        except Exception as e:  # the store cannot be opened: before training, one line
            raise UserError(f"logger=mlflow cannot open the store {uri} ({type(e).__name__}: {first_line(e)}); fix "
                            f"logger.mlflow.tracking_uri or leave mlflow out of logger=[...].") from None
        self.run_id, self.owns = run.info.run_id, True
        write_state(self.run_dir, self.name, {"tracking_uri": uri, "run_id": self.run_id,
                                              "experiment_id": run.info.experiment_id})

    def _last_step(self) -> int:
        run = self.client.get_run(self.run_id)
        last = -1
        for key in run.data.metrics:
            hist = self.client.get_metric_history(self.run_id, key)
            if hist:
                last = max(last, max(m.step for m in hist))
        return last

    def log_scalars(self, values: dict, step: int) -> None:
        if step <= self.logged_upto:
            return  # in the store already (logged by the process this run resumes)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, float(v), now, int(step)) for k, v in values.items()]
        if time.monotonic() - self.written >= WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the scalars held since the last write, in batches (one transaction each).  The loop flushes
        before every checkpoint, so the store holds every step up to the newest checkpoint, as a resume expects."""
        if self.client is None:
            return
        pending, self.pending = self.pending, []
        for i in range(0, len(pending), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=pending[i:i + _METRICS_PER_BATCH], synchronous=True)
        self.written = time.monotonic()

    def log_config(self, config: dict) -> None:
        from mlflow.entities import Param
        from omegaconf import OmegaConf

        params = [Param(k, str(v)[:_PARAM_CHARS]) for k, v in sorted(flat_params(config).items())]
        for i in range(0, len(params), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + _PARAMS_PER_BATCH], synchronous=True)
        self.client.log_text(self.run_id, OmegaConf.to_yaml(config), "config.yaml")

    def log_image(self, tag: str, image, step: int) -> None:
        arr = (image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        self.client.log_image(self.run_id, arr, f"images/{_file(tag)}_{int(step):08d}.png")

    def log_figure(self, tag: str, figure, step: int) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"{_file(tag)}_{int(step):08d}.png"
            path.write_bytes(figure_png(figure))
            self.client.log_artifact(self.run_id, str(path), "figures")

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        self.client.log_text(self.run_id, text, f"text/{_file(tag)}_{int(step):08d}.md")

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "completed") -> None:
        if self.client is not None and self.run_id is not None:
            self.flush()
            if self.owns:
                self.client.set_terminated(self.run_id, _STATUS.get(status, "FINISHED"))
        self.client = None


    def hint(self, run_dir: Path):
        import shlex

        state = read_state(run_dir, self.name)
        if not state.get("tracking_uri"):
            return None
        return f"MLflow: mlflow ui --backend-store-uri {shlex.quote(state['tracking_uri'])}"


def _file(tag: str) -> str:
    return tag.replace("/", "_")


@component_schema("logger", "mlflow")
@dataclass
class MLflowConfig(LoggerConfig):
    tracking_uri: Optional[str] = None  # null: sqlite:///<launch folder>/outputs/mlflow.db
    experiment: Optional[str] = None  # null: gan_cli (the YAML sets the data set's name)
    run_name: Optional[str] = None  # null: the run folder's name
