#!/usr/bin/env bash
# The CIFAR-10 recipes against their published scores, on a machine with a GPU, CIFAR-10 (downloaded by
# torchvision on first use, or already in data.root) and the FID Inception weights (the torch hub download on
# first use, or metrics.inception_weights=<file>):
#   benchmarks/reproduce_cifar10.sh [out folder, default reproduce_cifar10]  [extra gan-train overrides ...]
# Trains experiment=cifar10_sngan and experiment=cifar10_dcgan (100k G steps each), each scored at the end on
# 50,000 samples with Inception features in the original TF FID's convention (metrics.preprocess=torch_fidelity,
# as Mimicry's TF-Inception scores), then
# prints them beside Mimicry's published values. A stopped run resumes where it stopped: rerun the script.
set -eu
cd "$(dirname "$0")/.."
OUT="${1:-reproduce_cifar10}"
shift || true
GAN_TRAIN="${GAN_TRAIN:-$( [ -x .venv/bin/gan-train ] && echo .venv/bin/gan-train || echo gan-train )}"
mkdir -p "$OUT"
for recipe in cifar10_sngan cifar10_dcgan; do
  run="$OUT/$recipe"
  if [ -f "$run/results.json" ]; then
    echo "$recipe: done ($run/results.json)"
  elif [ -d "$run/checkpoints" ]; then
    "$GAN_TRAIN" "resume=$run" "$@"
  else
    "$GAN_TRAIN" "experiment=$recipe" "out_dir=$run" "$@"
  fi
done
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
published = {"cifar10_sngan": ("SNGAN", 16.77, 7.97, 0.0125), "cifar10_dcgan": ("DCGAN", None, None, None)}
print("| recipe | FID (ours) | FID (Mimicry) | IS (ours) | IS (Mimicry) | KID (ours) | KID (Mimicry) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for recipe, (name, fid, is_, kid) in published.items():
    res = json.loads((Path(sys.argv[1]) / recipe / "results.json").read_text())["final"]
    get = lambda m: next((v for k, v in res.items() if k.startswith(m) and k.endswith("_inception_tf")), float("nan"))
    show = lambda v: "-" if v is None else f"{v:g}"
    print(f"| {recipe} | {get('fid'):.2f} | {show(fid)} | {get('is'):.2f} | {show(is_)} | "
          f"{get('kid'):.4f} | {show(kid)} |")
PYEOF
