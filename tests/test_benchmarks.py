"""The `make bench` scripts run: each at its smallest size, as a process (what they print is a ratio table; their
figures are measured by `make bench`, not here).  A refactoring that breaks one fails here, not in a user's hands
(bench_data.py and bench_train.py both once read a data source's draw as one tensor after it became a Batch)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_file_module, process_env

ROOT = Path(__file__).resolve().parents[1]

#: script -> (its smallest arguments, a line its table always prints).  Not here: bench_data.py runs in
#: tests/test_docs_commands.py (the manual shows it); bench_metrics.py's smallest size (--quick) takes a minute;
#: bench_trackers.py times whole gan-train commands only (no gan_cli API of its own to break), a minute at its
#: smallest; bench_gpu.py has its own test (tests/test_speed.py)
SMALL = {
    "bench_train.py": (["--steps", "2"], "default / wgan_gp:"),
    "bench_image_gans.py": (["--steps", "1", "--g-channels", "8", "--d-channels", "8", "--threads", "1"],
                            "DiffAugment's share of a ResNet step"),
    # one row: the digits row times the same code on other data (each row starts six processes: 1 + 1 + 2 + 2)
    "bench_dist.py": (["--steps", "2", "--nproc", "2", "--rows", "ring8"], "procs / 1 proc (1 thread): same global batch"),
}


def test_every_make_bench_script_is_covered():
    make = (ROOT / "Makefile").read_text()
    bench = make[make.index("\nbench:"):].split("\n\n", 1)[0]
    scripts = {Path(w).name for w in bench.split() if w.startswith("benchmarks/")}
    assert scripts - {"bench_metrics.py", "bench_data.py", "bench_trackers.py"} <= set(SMALL), scripts


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL))
def test_the_benchmark_runs_at_its_smallest_size(script, tmp_path):
    args, expect = SMALL[script]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=tmp_path, env=process_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{script}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert expect in r.stdout, r.stdout[-2000:]


def test_bench_metrics_w1_section_prints_both_solvers_agreeing(capsys):
    """bench_metrics.py's W1 section (its --quick run takes a minute): both cases timed, the same W1 from both."""
    import re

    load_file_module(ROOT / "benchmarks" / "bench_metrics.py").bench_w1(n=150)
    out = capsys.readouterr().out
    diffs = re.findall(r"relative difference ([0-9.e+-]+)\)", out)
    assert "untrained G" in out and "trained G" in out and len(diffs) == 2, out
    assert all(float(d) < 1e-9 for d in diffs), out


@pytest.mark.slow
def test_the_budget_table_runs_records_skips_what_is_done_and_summarizes(tmp_path, digits_cache):
    """benchmarks/budget_table.py (the docs' stacked, conditional and quality tables) at its smallest: the floor and
    one row of stacked digits, one seed, a 3 CPU-second budget.  Each run is recorded with its steps and CPU time, the
    row's rate is calibrated, the table holds both rows, and a second call trains nothing again."""
    import json
    import math
    import shutil

    home = tmp_path / "home"  # the domain classifier from the shared cache, not the user's ~/.cache
    shutil.copytree(digits_cache, home / ".cache" / "gan_cli")
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "budget_table.py"), "stacked_digits", "--rows", "floor,dcgan",
           "--seeds", "1", "--budget", "3", "--calib-steps", "8", "--num-samples", "300", "--out", str(out)]
    r = subprocess.run(cmd, cwd=tmp_path, env=process_env(HOME=str(home)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    runs = {ln["row"]: ln for ln in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(runs) == {"floor", "dcgan"}
    assert runs["dcgan"]["steps"] >= 10 and runs["dcgan"]["train_cpu_s"] > 0
    for row in runs.values():
        assert 1 <= row["modes"] <= 300 and 0 <= row["kl"] <= math.log(1000)
    assert json.loads((out / "calibration.json").read_text())["dcgan"]["cpu_s_per_step"] > 0
    table = (out / "table.md").read_text()
    assert "| floor: real stacked samples (train draw) | 0 |" in table and "| DCGAN (experiment=stacked_dcgan) | 0 |" in table
    assert table in r.stdout
    done = out / "dcgan" / "seed0" / "results.json"
    before = done.stat().st_mtime_ns
    r = subprocess.run(cmd, cwd=tmp_path, env=process_env(HOME=str(home)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and done.stat().st_mtime_ns == before, r.stderr[-2000:]
    assert table in r.stdout
