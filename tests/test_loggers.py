"""The logging seam: one Logger interface, a fan-out that never stops training for a tracker, TensorBoard."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import compose_train

from gan_cli.loggers import Logger


def test_a_failing_tracker_is_dropped_with_one_warning_and_the_others_go_on(capsys):
    from gan_cli.loggers import Logger, Loggers

    class Broken(Logger):
        name = "broken"

        def log_scalars(self, values, step):
            raise OSError(28, "No space left on device")

    class Keeps(Logger):
        name = "keeps"

        def __init__(self):
            self.seen = []

        def log_scalars(self, values, step):
            self.seen.append((step, dict(values)))

    keeps = Keeps()
    fan = Loggers([Broken(), keeps])
    fan.log_scalars({"loss/d": 1.0}, 1)
    fan.log_scalars({"loss/d": 0.5}, 2)
    assert keeps.seen == [(1, {"loss/d": 1.0}), (2, {"loss/d": 0.5})] and len(fan) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "logger broken failed" in err[0] and "No space left on device" in err[0]


def test_resumed_event_files_sort_after_the_earlier_ones(tmp_path, monkeypatch):
    """TensorBoard reads event files in name order; a resumed writer opened in the same second as the run's first
    file, with a per-process counter that sorts before it ("10" < "9"), read first and purged nothing: the resumed
    run's curve then kept the killed run's steps after the checkpoint.  Tensorboard's counter is set to 9 here so
    the resumed file gets 10."""
    import tensorboard.summary.writer.event_file_writer as efw
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan_cli.loggers.tensorboard import TensorBoardLogger

    monkeypatch.setattr(efw, "_global_uid", efw.AtomicCounter(9))
    first = TensorBoardLogger()
    first.start(tmp_path)
    for step in range(1, 6):  # a run killed at step 5, its checkpoint at step 3
        first.log_scalars({"loss/d": float(step)}, step)
    first.close()
    resumed = TensorBoardLogger()
    resumed.start(tmp_path, step=3, resume=True)
    for step in range(4, 7):
        resumed.log_scalars({"loss/d": 10.0 + step}, step)
    resumed.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss/d")] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 14.0), (5, 15.0),
                                                                    (6, 16.0)]


def test_loggers_compose_as_a_list_and_a_missing_one_is_one_line():
    from gan_cli.build import build_loggers
    from gan_cli.cli.precheck import first_error
    from gan_cli.loggers.tensorboard import TensorBoardLogger

    fan = build_loggers(compose_train().logger)
    assert [type(lg) for lg in fan.loggers] == [TensorBoardLogger] and fan.loggers[0].subdir == "tb"
    assert build_loggers(compose_train("logger=[]").logger).loggers == []
    from gan_cli.loggers.csv import CSVLogger
    from gan_cli.loggers.mlflow import MLflowLogger
    from gan_cli.loggers.wandb import WandbLogger

    fan = build_loggers(compose_train("data=digits", "logger=[tensorboard,csv,mlflow,wandb]").logger)
    assert [type(lg) for lg in fan.loggers] == [TensorBoardLogger, CSVLogger, MLflowLogger, WandbLogger]
    assert fan.loggers[2].experiment == "digits" and fan.loggers[3].project == "digits"  # the data set's name
    assert fan.loggers[3].mode == "offline" and fan.loggers[2].tracking_uri is None
    line = first_error(["logger=[tensorboard,nope]"])
    assert line.startswith("logger=nope: there is no such logger option; choose one of: csv, mlflow, tensorboard, wandb")


@pytest.mark.parametrize("group,value", [("experiment", "nope"), ("hparams_search", "nope"), ("augment", "nope"),
                                         ("model", "wgan_pg"), ("reg", "[r1,nope]"), ("data", "mnsit")])
def test_a_missing_option_is_one_line_naming_the_group_and_its_choices(group, value):
    from pathlib import Path

    from gan_cli.cli.precheck import first_error

    line = first_error([f"{group}={value}", "steps=3"])
    bad = value.strip("[]").split(",")[-1]
    options = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / group).glob("*.yaml"))
    assert line == (f"{group}={bad}: there is no such {group} option; choose one of: {', '.join(options)} "
                    f"(conf/{group}/ and hydra.searchpath).")
    assert first_error([f"{group}=" + ("[]" if group == "reg" else options[0])]) is None



class Lingers(Logger):
    """A tracker whose close writes a file, then leaves its process alive for a minute, as W&B's teardown of its
    service keeps the interpreter for seconds after ``finish``."""

    name = "lingers"

    def __init__(self, path):
        self.path = str(path)

    def close(self, status="completed"):
        import atexit
        import time

        Path(self.path).write_text(f"{status} {os.nice(0)}")
        atexit.register(time.sleep, 60)


def test_a_background_tracker_runs_below_training_and_close_waits_for_its_writes_not_its_exit(tmp_path):
    """The child runs at a lower priority than the run (nice +10: where every core is busy, training goes first);
    close returns once the tracker has closed -- its last write is on disk -- while the child's interpreter is still
    tearing down (here: a minute), which the run does not wait for."""
    from gan_cli.loggers.background import BackgroundLogger

    bg = BackgroundLogger(Lingers(tmp_path / "closed.txt"))
    bg.start(tmp_path)
    proc = bg.proc
    try:
        bg.flush()  # the child has started and answered
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        bg.close("completed")
        status, nice = (tmp_path / "closed.txt").read_text().split()
        assert status == "completed" and int(nice) == os.getpriority(os.PRIO_PROCESS, proc.pid)
        assert proc.poll() is None  # still in its atexit sleep: close did not wait for it
    finally:
        proc.kill()
        proc.wait()
