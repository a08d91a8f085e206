"""Weights & Biases (``logger=[wandb]``, beside others: ``logger=[tensorboard,wandb]``; ``pip install
'gan_cli[wandb]'``).

* **Offline by default** (``logger.wandb.mode=offline``): no account and no network; the run is written under
  ``<run folder>/wandb/offline-run-*`` and uploaded later with ``wandb sync <that folder>`` (the end-of-run
  summary prints the command).  ``logger.wandb.mode=online`` logs live (after ``wandb login``).
* **Project** ``logger.wandb.project`` (default: the data set's name), ``entity`` optional; the run is named
  after its folder; a job of a multirun or an Optuna study is put in the group named after its sweep folder.
* **Content**, as the other trackers: the resolved config (nested, shown as dotted keys), every scalar at its
  step, the sample grids and figures as images, text tables and ``results.json`` / ``metrics.jsonl`` as run
  files.
* **Resume**: the run id is kept in ``<run folder>/trackers/wandb.json``; a resumed run continues the same run id
  (``resume="allow"``) and logs from the step after the last one its earlier processes' run files hold (read
  back from them, so a killed process's last steps count too): no step is logged twice.  The run's exit code at the end: 0 completed, 1 failed or interrupted.

A W&B that cannot start (package missing, online without a login, a bad mode) stops the run before training in
one line; a failure during the run never stops training (:class:`gan_cli.loggers.Loggers`).
"""
from __future__ import annotations

import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import LoggerConfig, UserError, component_schema, first_line
from .base import Logger, figure_png, read_state, require, sweep_of, write_state

MODES = ("offline", "online", "disabled")


class WandbLogger(Logger):
    name = "wandb"

    def __init__(self, project: Optional[str] = None, entity: Optional[str] = None, mode: str = "offline",
                 group: Optional[str] = None, tags: Optional[list] = None):
        if str(mode) not in MODES:
            raise UserError(f"logger.wandb.mode={mode}: use offline (the default: no account, `wandb sync` later), "
                            f"online or disabled.")
        self.project, self.entity, self.mode = project, entity, str(mode)
        self.group, self.tags = group, list(tags or [])
        self.run = None
        self.run_dir: Optional[Path] = None
        self.state: dict = {}
        self.logged_upto = -1

    def prepare(self, run_dir: Path) -> None:
        """The package installed, before training; the sweep folder resolved for the group."""
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            require("wandb", "wandb", "wandb")  # the one line naming the extra
        super().prepare(run_dir)

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        wandb = require("wandb", "wandb", "wandb")
        self.run_dir = Path(run_dir)
        self.state = read_state(self.run_dir, self.name)
        run_id = self.state.get("id") or uuid.uuid4().hex[:8]
        sweep = self.sweep_dir or sweep_of(self.run_dir)
        group = self.group or (f"{sweep.parent.name}/{sweep.name}" if sweep is not None else None)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_machine_info=True)
        try:
            self.run = wandb.init(project=str(self.project or "gan_cli"), entity=self.entity, id=run_id,
                                  resume="allow" if self.state.get("id") else None, dir=str(self.run_dir),
                                  mode=self.mode, name=self.run_dir.name, group=group, tags=self.tags or None,
                                  settings=settings, reinit="finish_previous")
        except Exception as e:  # online without a login, a bad entity ...: before training, one line
            raise UserError(f"logger=wandb cannot start ({type(e).__name__}: {first_line(e)}); run `wandb login`, use "
                            f"logger.wandb.mode=offline, or leave wandb out of logger=[...].") from None
        if resume:  # what the earlier processes of this run wrote, read from their run files
            self.logged_upto = last_step(self.state.get("dirs", []))
        self.state = {"id": run_id, "project": self.run.project, "mode": self.mode, "dirs": self.state.get("dirs", [])}
        here = str(Path(self.run.dir).parent.resolve())  # the offline-run-* folder of this process
        if here not in self.state["dirs"]:
            self.state["dirs"].append(here)
        write_state(self.run_dir, self.name, self.state)

    def log_scalars(self, values: dict, step: int) -> None:
        if step <= self.logged_upto:
            return  # logged by the process this run resumes
        self.run.log({k: float(v) for k, v in values.items()}, step=int(step))

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_image(self, tag: str, image, step: int) -> None:
        import wandb

        if step <= self.logged_upto:
            return
        arr = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        self.run.log({tag: wandb.Image(arr[:, :, 0] if arr.shape[2] == 1 else arr)}, step=int(step))

    def log_figure(self, tag: str, figure, step: int) -> None:
        import wandb
        from PIL import Image

        if step <= self.logged_upto:
            return
        self.run.log({tag: wandb.Image(Image.open(io.BytesIO(figure_png(figure))).convert("RGB"))}, step=int(step))

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        path = Path(self.run.dir) / "text" / f"{tag.replace('/', '_')}_{int(step):08d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def log_artifact(self, path: Path) -> None:
        shutil.copy2(path, Path(self.run.dir) / Path(path).name)  # a run file: uploaded with the run

    def close(self, status: str = "completed") -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "completed" else 1)
            self.run = None

    def hint(self, run_dir: Path):
        import shlex

        state = read_state(run_dir, self.name)
        if not state.get("dirs"):
            return None
        if state.get("mode") == "offline":
            return "W&B (offline): wandb sync " + " ".join(shlex.quote(d) for d in state["dirs"])
        return f"W&B: project {state.get('project')}, run {state.get('id')}"


# ----------------------------------------------------------------------------- W&B's run files, read back


def read_records(path: Path) -> list:
    """The records of a W&B run file (``run-<id>.wandb``) as wandb's protobuf ``Record`` messages.  The file is a
    7-byte header (``:W&B``, magic 0xBEE1, version 0) and LevelDB-log blocks of 32 KiB, each record a 7-byte header
    (CRC-32C, length, type FULL / FIRST / MIDDLE / LAST) and its bytes; a record cut short by a killed process
    ends the list."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B" or struct.unpack("<HB", data[4:7]) != (0xBEE1, 0):
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, partial = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        if pos + 7 + length > len(data):
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(partial)
            out.append(rec)
    return out


def last_step(dirs) -> int:
    """The last step of the history records in the run files of ``dirs`` (offline-run-* folders), or -1."""
    last = -1
    for d in dirs:
        for f in Path(d).glob("run-*.wandb"):
            for rec in read_records(f):
                if rec.WhichOneof("record_type") == "history":
                    steps = [i.value_json for i in rec.history.item if i.key == "_step"]
                    last = max(last, int(steps[0]) if steps else int(rec.history.step.num))
    return last


@component_schema("logger", "wandb")
@dataclass
class WandbConfig(LoggerConfig):
    project: Optional[str] = None  # null: gan_cli (the YAML sets the data set's name)
    entity: Optional[str] = None  # a W&B team or user (online)
    mode: str = "offline"  # offline (no account; `wandb sync` later) | online | disabled
    group: Optional[str] = None  # null: a sweep's jobs are grouped by their sweep folder
    tags: Optional[list] = None
