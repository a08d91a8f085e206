"""TensorBoard (``logger=[tensorboard]``, the default): event files under ``<run folder>/tb`` (``subdir``).

Scalars under their tags, the sample grid as an image, 2-D scatter / 1-D density pictures and lab figures as
figures, the config as text at step 0, and the HParams summary (the run's hyperparameters with its final
values) at the end.  A resumed run drops what a killed process logged after its checkpoint (``purge_step``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import LoggerConfig, component_schema
from .base import Logger, figure_rgb


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self, subdir: str = "tb"):
        self.subdir = str(subdir)
        self.writer = None

    def start(self, run_dir: Path, step: int = 0, resume: bool = False) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(run_dir) / self.subdir
        sort_last(log_dir)
        purge = step + 1 if resume and step else None  # drops events a killed run logged after its checkpoint
        self.writer = SummaryWriter(str(log_dir), purge_step=purge)

    def log_scalars(self, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_image(self, tag: str, image, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def log_figure(self, tag: str, figure, step: int) -> None:
        self.writer.add_image(tag, figure_rgb(figure), step, dataformats="HWC")  # add_figure's pixels, drawn once

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def log_config(self, config: dict) -> None:
        from omegaconf import OmegaConf

        self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(config) + "\n```", 0)

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        from torch.utils.tensorboard.summary import hparams as summaries

        fw = self.writer._get_file_writer()
        for s in summaries(hparams, metrics):
            fw.add_summary(s)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self, status: str = "completed") -> None:
        if self.writer is not None:
            self.writer.close()


    def hint(self, run_dir: Path):
        import shlex

        return f"TensorBoard: tensorboard --logdir {shlex.quote(str(Path(run_dir) / self.subdir))}"


def sort_last(log_dir: Path) -> None:
    """Make sure a new event file in ``log_dir`` sorts after every one there.

    TensorBoard reads a folder's event files in name order, and a name is ``events.out.tfevents.<whole seconds>.
    <host>.<pid>.<counter>``: a file opened in the same second as an earlier one can sort before it (pid or
    counter "10" < "9"), and a resumed run's purge of the steps after its checkpoint then happens before the
    events it should drop are read, which leaves the curves wrong.  When the newest file was opened this second,
    wait for the next one (at most a second; only a resume that fast, as in tests, ever waits)."""
    import time

    stamps = []
    for p in Path(log_dir).glob("events.out.tfevents.*"):
        part = p.name.split(".")[3]
        if part.isdigit():
            stamps.append(int(part))
    if stamps and max(stamps) >= int(time.time()):
        time.sleep(max(0.0, max(stamps) + 1 - time.time()))


@component_schema("logger", "tensorboard")
@dataclass
class TensorBoardConfig(LoggerConfig):
    subdir: str = "tb"  # the event files' folder inside the run folder
