"""gan-eval sweep=<multirun folder>: the sweep summary (every job listed, failed and missing ones too)."""
import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, assert_figure, run_cli

from gan_cli.config import UserError
from gan_cli.cli.sweep import collect, summarize

# Subprocesses run single-threaded: on a shared 2-core machine two OpenMP threads per process
# made small matmuls ~100x slower (measured), and the jobs here are tiny anyway.
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _run(exe, args, cwd, timeout=300):
    return subprocess.run([str(BIN / exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A real 3-job sweep: two learning rates that train, one that is out of range (a failed job).  gan-train's
    main() runs in this process (conftest.run_cli); Hydra's basic launcher runs the jobs in it anyway."""
    root = tmp_path_factory.mktemp("sweep")
    r = run_cli("gan-train", ["-m", "model=gan", "data=ring8", "model.opt_d.lr=2e-4,1e-3,-1", "steps=4",
                              "log_every=2", "image_every=0", "ckpt_every=0", "progress=false", "device=cpu",
                              "metrics=toy", "metrics.num_samples=200", "hydra.sweep.dir=sw"], root)
    assert r.returncode != 0  # Hydra re-raises the failed job's error after running all jobs
    assert "model.opt_d.lr=-1.0 is out of range" in r.stderr
    return root / "sw"


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_summary_lists_every_job_including_the_failed_one(sweep_dir):
    out = summarize(sweep_dir, quiet=True)
    rows = _rows(sweep_dir / "sweep_summary.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2"]
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    assert [r["model.opt_d.lr"] for r in rows] == ["0.0002", "0.001", "-1"]  # the swept key is a column
    assert "out of range" in rows[2]["error"] and rows[2]["w1_200"] == ""
    for r in rows[:2]:  # final scalars and suite metrics of the completed jobs
        assert float(r["w1_200"]) > 0 and r["modes_200"] != "" and r["estimate/jsd"] != "" and r["loss/d"] != ""
    data = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert data["swept"] == ["model.opt_d.lr"] and len(data["jobs"]) == 3
    assert data["common_overrides"]["model"] == "gan"
    assert_figure(sweep_dir / "sweep_summary.png")
    assert list((sweep_dir / "tb_summary").glob("events.out.tfevents.*"))
    assert out["plot"] == {"x": "model.opt_d.lr", "y": "modes_200"}


def test_sort_by_keeps_failed_jobs_last(sweep_dir):
    asc = summarize(sweep_dir, sort_by="w1_200", quiet=True, tensorboard=False)["rows"]
    desc = summarize(sweep_dir, sort_by="-w1_200", quiet=True, tensorboard=False)["rows"]
    w1 = [r["w1_200"] for r in asc[:2]]
    assert w1 == sorted(w1) and [r["w1_200"] for r in desc[:2]] == sorted(w1, reverse=True)
    assert asc[-1]["status"] == desc[-1]["status"] == "failed"
    assert _rows(sweep_dir / "sweep_summary.csv")[-1]["status"] == "failed"  # the CSV is written sorted


def test_bad_choices_are_one_line_user_errors(sweep_dir, tmp_path):
    with pytest.raises(UserError, match="sort_by=nope: no such column"):
        summarize(sweep_dir, sort_by="nope", quiet=True, tensorboard=False)
    with pytest.raises(UserError, match="plot_x=seed is not a swept parameter"):
        summarize(sweep_dir, plot_x="seed", quiet=True, tensorboard=False)
    with pytest.raises(UserError, match="plot_y=fid"):
        summarize(sweep_dir, plot_y="fid", quiet=True, tensorboard=False)
    with pytest.raises(UserError, match="no such folder"):
        collect(tmp_path / "absent")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no jobs"):
        collect(tmp_path / "empty")


def test_a_job_the_sweeper_planned_but_never_ran_is_listed_as_missing(sweep_dir, tmp_path):
    copy = tmp_path / "sw"
    shutil.copytree(sweep_dir, copy)
    shutil.rmtree(next(copy.glob("1_*")))
    jobs = collect(copy)
    assert [(j.num, j.status) for j in jobs] == [(0, "completed"), (1, "missing"), (2, "failed")]
    assert jobs[1].overrides["model.opt_d.lr"] == "0.001"
    # a stale "completed" without results.json is a failure, not a silent drop
    (next(copy.glob("0_*")) / "results.json").unlink()
    assert collect(copy)[0].status == "failed"


def test_single_run_folder_is_a_sweep_of_one(sweep_dir):
    job = next(sweep_dir.glob("0_*"))
    jobs = collect(job)
    assert len(jobs) == 1 and jobs[0].ok and jobs[0].checkpoint.exists()


def test_registered_lab_report_runs_for_a_shared_experiment(sweep_dir, tmp_path, monkeypatch):
    import gan_cli.lab as lab

    copy = tmp_path / "sw"
    shutil.copytree(sweep_dir, copy)
    for cfg in copy.glob("*/.hydra/config.yaml"):  # as a preset would have set it
        cfg.write_text(cfg.read_text().replace("experiment: null", "experiment: demo_lab"))
    calls = []

    def demo(jobs, out_dir, writer):
        calls.append((len(jobs), sum(j.ok for j in jobs), Path(out_dir), writer is not None))
        (Path(out_dir) / "demo.csv").write_text("x\n1\n")
        return {"title": "demo", "rows": [{"x": 1}], "files": [str(Path(out_dir) / "demo.csv")]}

    monkeypatch.setitem(lab.REPORTS, "demo_lab", demo)
    out = summarize(copy, quiet=True)
    assert calls == [(3, 2, copy, True)]
    assert str(copy / "demo.csv") in out["files"]
    # jobs from different experiments: no report
    cfg = next(copy.glob("0_*/.hydra/config.yaml"))
    cfg.write_text(cfg.read_text().replace("experiment: demo_lab", "experiment: other"))
    summarize(copy, quiet=True, tensorboard=False)
    assert len(calls) == 1


def test_gan_eval_sweep_cli(sweep_dir, tmp_path):
    r = _run("gan-eval", [f"sweep={sweep_dir}", "sort_by=-modes_200", "plot_y=w1_200"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2/3 jobs completed" in r.stdout and "failed" in r.stdout and "sweep_summary.csv" in r.stdout
    r = run_cli("gan-eval", [f"sweep={tmp_path / 'nothing'}"], tmp_path)  # the console script's main(), here
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gan-eval: error: sweep=") and "no such folder" in lines[0]


def test_sweep_and_ckpt_together_is_a_user_error(sweep_dir):
    from hydra import compose, initialize_config_module

    from gan_cli.cli.evaluate import evaluate

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
        cfg = compose("eval", overrides=[f"sweep={sweep_dir}", f"ckpt={sweep_dir}"])
    with pytest.raises(UserError, match="leave out ckpt= and folder="):
        evaluate(cfg)
