# gan_cli — set-up and everyday commands. Everything runs from a local virtual environment.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# test processes (pytest-xdist): one per core; each gets its share of the torch threads. JOBS=0 runs in-process.
# worksteal: each process starts on its half of the tests and an idle one takes work from the other's tail, so a
# file of a few long tests (test_fdiv_fits.py) is shared out instead of ending the run on one core
JOBS ?= auto
XDIST := $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist worksteal)
BENCH_ARGS ?=

.PHONY: install demo test test-fast test-slow bench bench-gpu tensorboard docs docs-serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,launchers,optuna,mlflow,wandb,docs]'
	touch $(STAMP)

install: $(STAMP)

## demo: train the default GAN (non-saturating GAN on the 8-Gaussian ring, 3,000 steps; no network needed)
demo: $(STAMP)
	$(VENV)/bin/gan-train

## test: the whole test suite on the CPU (slow tests included)
test: $(STAMP)
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

## test-fast: skip the tests marked slow
test-fast: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m slow $(PYTEST_ARGS)

## bench: side-by-side speed comparisons (ratios, not tests)
bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_image_gans.py
	$(PY) benchmarks/bench_trackers.py

## bench-gpu: the speed path's one table of ratios (training step, Inception features, PRDC) vs the references;
## BENCH_ARGS=--quick for small sizes (runs on the CPU too); benchmarks/gpu_check.sh adds the GPU tests
bench-gpu: $(STAMP)
	$(PY) benchmarks/bench_gpu.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_dist.py

## tensorboard: single runs (outputs/) and sweeps (multirun/) side by side
tensorboard: $(STAMP)
	mkdir -p outputs multirun
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun

## docs: the manual (docs/ -> site/) with MkDocs; --strict: a broken link, anchor or nav entry fails the build;
## the configuration reference is generated from the schema at each build (docs/hooks/config_reference.py)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

## docs-serve: preview the manual at http://127.0.0.1:8000 (rebuilt on every save)
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) .pytest_cache site
