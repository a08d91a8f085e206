"""The `make bench` scripts run: each at its smallest size, as a process (what they print is a ratio table; their
figures are measured by `make bench`, not here).  A refactoring that breaks one fails here, not in a user's hands
(bench_data.py and bench_train.py both once read a data source's draw as one tensor after it became a Batch)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import process_env

ROOT = Path(__file__).resolve().parents[1]

#: script -> (its smallest arguments, a line its table always prints).  Not here: bench_data.py runs in
#: tests/test_docs_commands.py (the manual shows it); bench_metrics.py's smallest size (--quick) takes a minute;
#: bench_trackers.py times whole gan-train commands only (no gan_cli API of its own to break), a minute at its
#: smallest; bench_gpu.py has its own test (tests/test_speed.py)
SMALL = {
    "bench_train.py": (["--steps", "2"], "default / wgan_gp:"),
    "bench_image_gans.py": (["--steps", "1", "--g-channels", "8", "--d-channels", "8", "--threads", "1"],
                            "DiffAugment's share of a ResNet step"),
    "bench_dist.py": (["--steps", "2", "--nproc", "2"], "procs / 1 proc (1 thread): same global batch"),
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
