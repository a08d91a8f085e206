"""The trackers beside TensorBoard: CSV, MLflow (read back with MlflowClient from its SQLite store) and Weights &
Biases (read back from its offline run files with wandb's own record protobufs): content, resume (one run, no step
logged twice), a 2-job multirun grouped, a store that fails during a run, and trackers that cannot start."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose_train, interrupted_and_resumed, run_cli

TINY = ["steps=20", "log_every=5", "image_every=10", "ckpt_every=0", "progress=false", "device=cpu", "net.hidden=16",
        "estimate_batch=64"]


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1, r.stderr[-3000:]
    return lines[0]


# ----------------------------------------------------------------------------- CSV


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_has_a_row_per_log_step_and_a_column_per_tag(tmp_path):
    r = run_cli("gan-train", [*TINY, "logger=[csv]", "metrics=toy", "metrics.num_samples=100", "eval_every=10",
                              f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _csv(tmp_path / "run" / "metrics.csv")
    assert list(rows[0])[:4] == ["step", "time", "loss/d", "loss/g"] and "metrics/w1_100" in rows[0]
    steps = [int(row["step"]) for row in rows]
    assert steps == [5, 10, 10, 15, 20, 20, 20]  # log steps; the evaluations (10, 20) and the final values (20)
    logged = [json.loads(line) for line in (tmp_path / "run" / "scalars.jsonl").read_text().splitlines()]
    by_step = {int(row["step"]): row for row in rows if row["loss/d"]}
    assert [float(by_step[x["step"]]["loss/d"]) for x in logged] == [x["loss/d"] for x in logged]
    assert not (tmp_path / "run" / "tb").exists()  # only the trackers asked for
    assert f"CSV: {tmp_path / 'run' / 'metrics.csv'}" in r.stdout and "TensorBoard:" not in r.stdout


def test_csv_of_a_resumed_run_equals_the_straight_runs(tmp_path):
    args = ["steps=10", "log_every=2", "ckpt_every=0", "image_every=0", "metrics=none", "progress=false", "device=cpu",
            "net.hidden=16", "logger=[csv]"]
    interrupted_and_resumed(args, tmp_path, at_step=5)
    full, part = (_csv(tmp_path / d / "metrics.csv") for d in ("full", "part"))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    # one row per log step, then the final values (final/*) at the last step
    assert [r["step"] for r in part] == ["2", "4", "6", "8", "10", "10"] and drop(part) == drop(full)


# ----------------------------------------------------------------------------- MLflow


def _client(run_dir: Path):
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "trackers" / "mlflow.json").read_text())
    return MlflowClient(tracking_uri=state["tracking_uri"]), state


def test_mlflow_records_params_metrics_artifacts_and_the_run_folder(tmp_path):
    run = tmp_path / "run"
    r = run_cli("gan-train", [*TINY, "logger=[tensorboard,mlflow]", "metrics=toy", "metrics.num_samples=100",
                              f"out_dir={run}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    client, state = _client(run)
    assert state["tracking_uri"] == f"sqlite:///{(tmp_path / 'outputs' / 'mlflow.db').resolve()}"  # the default
    got = client.get_run(state["run_id"])
    assert client.get_experiment(got.info.experiment_id).name == "ring8" and got.info.status == "FINISHED"
    params = got.data.params
    assert params["steps"] == "20" and params["model.name"] == "nsgan" and params["model.opt_g.lr"] == "0.0002"
    assert got.data.tags["gan_cli.run_dir"] == str(run.resolve()) and "gan_cli.sweep" not in got.data.tags
    hist = client.get_metric_history(state["run_id"], "loss/d")
    logged = [json.loads(line) for line in (run / "scalars.jsonl").read_text().splitlines()]
    assert [(m.step, m.value) for m in hist] == [(x["step"], pytest.approx(x["loss/d"])) for x in logged]
    assert "metrics/w1_100" in got.data.metrics and "final/loss/d" in got.data.metrics
    files = {a.path for a in client.list_artifacts(state["run_id"])}
    assert {"config.yaml", "results.json", "metrics.jsonl", "figures"} <= files
    figs = [a.path for a in client.list_artifacts(state["run_id"], "figures")]
    assert figs == ["figures/samples_00000010.png", "figures/samples_00000020.png"]
    assert (tmp_path / "outputs" / "mlruns" / "ring8").is_dir() and not (tmp_path / "mlruns").exists()  # beside the store
    assert f"MLflow: mlflow ui --backend-store-uri {state['tracking_uri']}" in r.stdout
    # gan-eval on the run adds its values to the same MLflow run and leaves its status alone
    r = run_cli("gan-eval", [f"ckpt={run}", "metrics=toy", "metrics.num_samples=100", "seed=1"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    again = client.get_run(state["run_id"])
    assert "eval/w1_100" in again.data.metrics and again.info.status == "FINISHED"
    assert len(client.search_runs([got.info.experiment_id])) == 1


def test_mlflow_image_grids_are_artifacts(tmp_path):
    run = tmp_path / "run"
    r = run_cli("gan-train", ["data=digits", "net.channels=8", "steps=4", "log_every=2", "image_every=2",
                              "metrics=none", "progress=false", "device=cpu", "logger=[mlflow]", f"out_dir={run}"],
                tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    client, state = _client(run)
    assert client.get_experiment(client.get_run(state["run_id"]).info.experiment_id).name == "digits"
    assert [a.path for a in client.list_artifacts(state["run_id"], "images")] == [
        "images/samples_00000002.png", "images/samples_00000004.png"]


def test_a_resumed_run_continues_its_mlflow_run_and_logs_no_step_twice(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["steps=10", "log_every=1", "ckpt_every=4", "image_every=0", "metrics=none", "progress=false",
            "device=cpu", "net.hidden=16", "logger=[mlflow]", f"logger.mlflow.tracking_uri={uri}"]
    interrupted_and_resumed(args, tmp_path, at_step=6)  # the checkpoint of step 6; steps 7.. again after resume
    client, state = _client(tmp_path / "part")
    full_client, full_state = _client(tmp_path / "full")
    exp = client.get_run(state["run_id"]).info.experiment_id
    assert len(client.search_runs([exp])) == 2  # the straight run and the interrupted one: no third
    hist = client.get_metric_history(state["run_id"], "loss/d")
    straight = full_client.get_metric_history(full_state["run_id"], "loss/d")
    assert [m.step for m in hist] == list(range(1, 11))  # each step once
    assert [m.value for m in hist] == [m.value for m in straight]  # the resumed run continues exactly
    assert client.get_run(state["run_id"]).info.status == "FINISHED"


def test_a_multirun_gives_one_mlflow_run_per_job_tagged_with_its_sweep(tmp_path):
    r = run_cli("gan-train", ["-m", "model=gan,nsgan", "steps=4", "log_every=2", "image_every=0", "ckpt_every=0",
                              "metrics=none", "net.hidden=16", "estimate_batch=64", "progress=false", "device=cpu",
                              "logger=[mlflow]"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = sorted(p.parent.parent for p in tmp_path.glob("multirun/*/*/*/trackers/mlflow.json"))
    assert len(jobs) == 2
    client, state = _client(jobs[0])
    runs = client.search_runs([client.get_run(state["run_id"]).info.experiment_id])
    assert len(runs) == 2 and {x.data.tags["gan_cli.sweep"] for x in runs} == {str(jobs[0].parent.resolve())}
    assert {x.data.params["model.name"] for x in runs} == {"gan", "nsgan"}
    # gan-eval sweep=: the sweep's own record in the same store, one more run tagged with the sweep
    sweep = jobs[0].parent
    r = run_cli("gan-eval", [f"sweep={sweep}"], tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = client.search_runs([client.get_run(state["run_id"]).info.experiment_id])
    summary = [x for x in runs if x.data.tags["gan_cli.run_dir"] == str(sweep.resolve())]
    assert len(runs) == 3 and len(summary) == 1 and summary[0].data.tags["gan_cli.sweep"] == str(sweep.resolve())
    assert {"sweep_summary.csv", "sweep_summary.json"} <= {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert f"MLflow: mlflow ui --backend-store-uri {state['tracking_uri']}" in r.stdout


def test_a_locked_mlflow_store_during_the_run_is_one_warning_and_the_run_completes(tmp_path, capfd):
    """A second process takes SQLite's exclusive lock on the store after the run has started: the next write
    waits out SQLite's timeout and fails; training goes on with TensorBoard, and the checkpoint is written."""
    from gan_cli.runs.checkpoint import list_checkpoints
    from gan_cli.training.loop import build_trainer

    db = tmp_path / "store.db"
    run = tmp_path / "run"
    cfg = compose_train("steps=12", "log_every=4", "ckpt_every=0", "image_every=0", "metrics=none", "device=cpu",
                        "net.hidden=16", "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri=sqlite:///{db}",
                        tmp_path=run)
    tr = build_trainer(cfg, run)
    holder = []

    def progress(step, host):
        if step == 2 and not holder:
            # MLflow starts in a process of its own (logger.mlflow.background): lock once it has opened the store
            deadline = time.monotonic() + 120
            while not (run / "trackers" / "mlflow.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            holder.append(subprocess.Popen(
                [sys.executable, "-c", "import sqlite3, sys, time\n"
                 f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\n"
                 "print('locked', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True))
            assert holder[0].stdout.readline().strip() == "locked"

    try:
        result = tr.run(progress)
    finally:
        for p in holder:
            p.kill()
            p.wait()
    assert result["step"] == 12 and list_checkpoints(run)[-1].name == "step_00000012.pt"
    err = [ln for ln in capfd.readouterr().err.splitlines() if "warning" in ln]
    assert len(err) == 1 and "logger mlflow failed" in err[0] and "locked" in err[0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/d")] == [4, 8, 12]  # TensorBoard kept every point


def test_trackers_that_cannot_start_are_one_line_before_training(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("")
    for arg, needle in ((f"logger.mlflow.tracking_uri=sqlite:///{afile}/x.db", "cannot write the store's folder"),
                        ("logger.mlflow.tracking_uri=nonsense", "is not an MLflow URI")):
        run = tmp_path / f"run{len(needle)}"
        line = _one_error_line(run_cli("gan-train", [*TINY, "metrics=none", "logger=[mlflow]", arg, f"out_dir={run}"],
                                       tmp_path))
        assert needle in line
        assert not list(run.glob("checkpoints/*.pt"))
    line = _one_error_line(run_cli("gan-train", [*TINY, "metrics=none", "logger=[wandb]", "logger.wandb.mode=nope",
                                                 f"out_dir={tmp_path / 'w'}"], tmp_path))
    assert "logger.wandb.mode=nope: use offline" in line
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
    line = _one_error_line(run_cli("gan-train", [*TINY, "metrics=none", "logger=[tensorboard,wandb]",
                                                 f"out_dir={tmp_path / 'x'}"], tmp_path))
    assert "logger=wandb needs the wandb package: pip install 'gan_cli[wandb]'" in line


# ----------------------------------------------------------------------------- Weights & Biases


def wandb_records(path: Path) -> list:
    """A W&B run file's records, as wandb's protobuf messages (gan_cli.loggers.wandb.read_records)."""
    from gan_cli.loggers.wandb import read_records

    return read_records(path)


def _history(run_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for rec in wandb_records(f):
            if rec.WhichOneof("record_type") == "history":
                row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
                rows.append(row)
    return rows


def test_wandb_offline_run_holds_the_config_and_every_scalar_at_its_step(tmp_path):
    run = tmp_path / "run"
    r = run_cli("gan-train", [*TINY, "logger=[wandb]", "metrics=none", f"out_dir={run}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.loads((run / "trackers" / "wandb.json").read_text())
    files = list(run.glob(f"wandb/offline-run-*-{state['id']}/run-{state['id']}.wandb"))
    assert len(files) == 1 and state["project"] == "ring8"
    records = wandb_records(files[0])
    runs = [rec.run for rec in records if rec.WhichOneof("record_type") == "run"]
    assert runs and runs[0].run_id == state["id"] and runs[0].project == "ring8" and runs[0].display_name == run.name
    config = {}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        items = rec.config.update if kind == "config" else rec.run.config.update if kind == "run" else []
        config.update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items})
    assert config["steps"] == 20 and config["model"]["name"] == "nsgan"
    hist = [h for h in _history(run) if "loss/d" in h]
    logged = [json.loads(line) for line in (run / "scalars.jsonl").read_text().splitlines()]
    assert [h["_step"] for h in hist] == [x["step"] for x in logged]
    assert [h["loss/d"] for h in hist] == pytest.approx([x["loss/d"] for x in logged])
    assert (files[0].parent / "files" / "results.json").is_file()
    assert f"W&B (offline): wandb sync {files[0].parent}" in r.stdout


def test_a_resumed_run_continues_its_wandb_run_id_and_logs_no_step_twice(tmp_path):
    args = ["steps=10", "log_every=1", "ckpt_every=4", "image_every=0", "metrics=none", "progress=false",
            "device=cpu", "net.hidden=16", "logger=[wandb]"]
    interrupted_and_resumed(args, tmp_path, at_step=6)
    part = tmp_path / "part"
    state = json.loads((part / "trackers" / "wandb.json").read_text())
    dirs = sorted(part.glob("wandb/offline-run-*"))
    assert len(dirs) == 2 and all(f"-{state['id']}" in d.name for d in dirs) and len(state["dirs"]) == 2
    steps = [h["_step"] for h in _history(part) if "loss/d" in h]
    assert steps == list(range(1, 11))  # steps 7.. logged by the first process are not logged again
    straight = [h["loss/d"] for h in _history(tmp_path / "full") if "loss/d" in h]
    assert [h["loss/d"] for h in _history(part) if "loss/d" in h] == straight


def test_a_multirun_puts_its_wandb_runs_in_one_group(tmp_path):
    r = run_cli("gan-train", ["-m", "seed=0,1", "steps=2", "log_every=1", "image_every=0", "ckpt_every=0",
                              "metrics=none", "net.hidden=16", "estimate_batch=64", "progress=false", "device=cpu",
                              "logger=[wandb]"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    groups = set()
    for f in tmp_path.glob("multirun/*/*/*/wandb/offline-run-*/run-*.wandb"):
        groups |= {rec.run.run_group for rec in wandb_records(f) if rec.WhichOneof("record_type") == "run"}
    sweep = next(tmp_path.glob("multirun/*/*"))
    assert groups == {f"{sweep.parent.name}/{sweep.name}"}


def test_every_tracker_at_once(tmp_path):
    r = run_cli("gan-train", [*TINY, "logger=[tensorboard,csv,mlflow,wandb]", "metrics=none",
                              f"out_dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for line in ("TensorBoard: ", "CSV: ", "MLflow: ", "W&B (offline): "):
        assert sum(ln.startswith(line) for ln in r.stdout.splitlines()) == 1, line


def test_a_tracker_that_fails_to_start_in_its_own_process_stops_the_run_in_one_line(tmp_path):
    """MLflow starts in a process of its own (logger.mlflow.background): a store that passes the parent's checks but
    cannot be opened (the SQLite file is not a database) stops the run in one line as soon as the child says so,
    before any checkpoint; the child process is gone.  A store path that is a folder is refused before training."""
    folder = tmp_path / "folder.db"
    folder.mkdir()
    r = run_cli("gan-train", [*TINY, "metrics=none", "logger=[mlflow]", f"logger.mlflow.tracking_uri=sqlite:///{folder}",
                              f"out_dir={tmp_path / 'run0'}"], tmp_path)
    assert r.returncode == 2 and f"{folder} is a folder; point it at a file" in _one_error_line(r)
    assert not (tmp_path / "run0" / "tb").exists()  # refused before training
    junk = tmp_path / "store.db"
    junk.write_bytes(bytes(range(256)) * 20)
    run = tmp_path / "run"
    r = run_cli("gan-train", [*TINY, "metrics=none", "logger=[tensorboard,mlflow]",
                              f"logger.mlflow.tracking_uri=sqlite:///{junk}", f"out_dir={run}"], tmp_path)
    line = _one_error_line(r)
    assert r.returncode == 2 and "logger=mlflow cannot open the store" in line and "not a database" in line
    assert not list(run.glob("checkpoints/*.pt"))
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
    children = subprocess.run(["pgrep", "-f", "gan_cli.loggers.background import serve", "-P", str(os.getpid())],
                              capture_output=True, text=True).stdout.split()
    assert children == []


def test_mlflow_and_wandb_train_in_processes_of_their_own():
    from gan_cli.build import build_loggers
    from gan_cli.loggers.background import in_background

    cfg = compose_train("logger=[tensorboard,csv,mlflow,wandb]")
    wrapped = in_background(build_loggers(cfg.logger))
    kinds = {lg.name: type(lg).__name__ for lg in wrapped.loggers}
    assert kinds == {"tensorboard": "TensorBoardLogger", "csv": "CSVLogger", "mlflow": "BackgroundLogger",
                     "wandb": "BackgroundLogger"}
    off = in_background(build_loggers(compose_train("logger=[mlflow]", "logger.mlflow.background=false").logger))
    assert type(off.loggers[0]).__name__ == "MLflowLogger"
