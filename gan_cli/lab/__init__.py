"""Theory lab: per-experiment reports that ``gan-eval sweep=<folder>`` runs after the sweep table.

Every preset in ``conf/experiment/`` sets ``experiment: <name>`` in the run config.  When all
completed jobs of a sweep (or the one run) share that name and it is registered here, the
summary calls its report function, which writes a table and a PNG into the sweep folder and
adds the figure to the sweep's loggers (TensorBoard: ``<sweep>/tb_summary``).

How to register an experiment: add one line to ``REPORTS`` below,
``"<experiment name>": "gan_cli.lab.<module>:<function>"`` (a string, imported only when that
experiment is summarised, so one broken module cannot break the others; a callable also works).
The function's contract::

    def report(jobs: list[gan_cli.cli.sweep.Job], out_dir: pathlib.Path, logger, cfg=None) -> dict
        # jobs: every job of the sweep, failed ones included (job.ok tells; job.config is the
        #       job's .hydra/config.yaml as a plain dict, job.results its results.json or None,
        #       job.dir its folder, job.overrides {key: value} of its command-line overrides,
        #       job.checkpoint its final checkpoint)
        # out_dir: where to write <name>.csv / <name>.png (the sweep folder)
        # logger: a gan_cli.loggers.Logger or None (log_text / log_figure the table and figure to it)
        # cfg: optional; the gan-eval config (seed, device, metrics.*, truncation.*) when the
        #      function has a parameter named cfg
        # returns {"title": str, "rows": [{column: value, ...}, ...], "columns": [...] (optional),
        #          "files": [paths written]}; the summary prints "rows" with rich.
        # Raise gan_cli.config.UserError (one line) for bad input.
"""
from __future__ import annotations

import importlib
from typing import Callable

REPORTS: dict[str, str | Callable] = {
    "mode_collapse": "gan_cli.lab.mode_collapse:report",
    "quality": "gan_cli.lab.quality:report",
    "truncation": "gan_cli.lab.truncation:report",
    "disjoint_estimates": "gan_cli.lab.disjoint:report_estimates",
    "disjoint_theta": "gan_cli.lab.disjoint:report_theta",
    "fdiv": "gan_cli.lab.fdiv:report",
    "pacgan_table": "gan_cli.lab.pacgan_table:report",
    "grid25_best": "gan_cli.lab.pacgan_table:report",
}


def get_report(name: str | None) -> Callable | None:
    """The report function registered for experiment ``name`` (None when there is none)."""
    fn = REPORTS.get(name) if name else None
    if isinstance(fn, str):
        module, _, attr = fn.partition(":")
        fn = getattr(importlib.import_module(module), attr)
    return fn
