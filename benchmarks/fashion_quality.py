"""Image quality on Fashion-MNIST at a fixed CPU budget per run, against the floor (the test split scored against
the training split): the table of the image-GAN docs.  The ``fashion`` table of ``benchmarks/budget_table.py``
(its docstring says how a run's budget, steps and results are kept):

    .venv/bin/python benchmarks/fashion_quality.py [--rows dcgan_ns,...] [--seeds 2] [--budget 600] [--n-jobs 1]
                                                   [--out quality_runs/fashion_mnist] [--num-samples 10000]
    .venv/bin/python benchmarks/fashion_quality.py --summarize      # the table from what --out holds
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from budget_table import main  # noqa: E402

if __name__ == "__main__":
    main(table_name="fashion")
