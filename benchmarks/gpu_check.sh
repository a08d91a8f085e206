#!/usr/bin/env bash
# What a GPU machine runs (one script, outputs under $OUT): the GPU-marked tests,
# then `make bench-gpu`'s table and the image-GAN rows of benchmarks/bench_image_gans.py.  Usage: OUT=/some/folder benchmarks/gpu_check.sh  [extra bench_gpu.py args]
# Sizes: the full table (50k features, 50k x 50k PRDC with prdc on the CPU) takes minutes; pass e.g.
# `--feature-n 10000 --prdc-n 20000` to fit a shorter device slot (the header and rows say the sizes).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} | tee "$OUT/env.txt"
# the GPU-marked tests (pyproject marker `gpu`; skipped without CUDA), JUnit XML for the details
"$PY" -m pytest -q -m gpu tests/ -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" 2>&1 | tee "$OUT/gpu_tests.txt"
tests_rc=${PIPESTATUS[0]}
"$PY" benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench_gpu.txt"
bench_rc=${PIPESTATUS[0]}
# the image-GAN rows at SNGAN's widths on the GPU (ResNet step vs a bare loop, DiffAugment vs the authors')
"$PY" benchmarks/bench_image_gans.py --steps 50 2>&1 | tee "$OUT/bench_image_gans.txt"
bench_rc=$(( bench_rc || ${PIPESTATUS[0]} ))
echo "gpu tests exit $tests_rc, bench exit $bench_rc" | tee -a "$OUT/env.txt"
exit $(( tests_rc != 0 || bench_rc != 0 ))
