"""experiment=fdiv's saddle fits against the exact minimisers of D_f(P || Q) (slow: one preset run per divergence,
60-90 CPU-s each on a slow 2-core machine; make test's --dist worksteal shares them out between the test processes)."""
from __future__ import annotations

import pytest
from conftest import train_job

from gan_cli.lab import fdiv

C, S = (-2.0, 2.0), 0.5  # the shipped mog1d target

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# the divergences whose saddle fit meets the tolerance from the preset's start on every seed measured (the manual's
# theory lab 3, docs/labs/lab3.md); tv does not (its fit lands in the right basin but wide).  Checked here: one
# mode-covering row (kl) and one mode seeker (rkl), the two behaviours the lab is about.  hellinger and neyman (the
# other two rows this test held, 90 and 73 s on a slow CI machine) and pearson, js and gan met it on 3/3 seeds in the
# lab's sweep and are left out to keep make test within 12 minutes; gan-train -m experiment=fdiv runs all eight.
SADDLE_FITS = ("kl", "rkl")


@pytest.mark.slow
@pytest.mark.parametrize("name", SADDLE_FITS)
def test_fdiv_saddle_fit_reaches_the_exact_minimiser(tmp_path, name):
    """experiment=fdiv (saddle generator), seed 0, the preset's steps: the learned (mu, sigma) is within 0.15 in mu
    (|mu| for a mirror pair) and 5 % in sigma of the exact minimiser of D_f(P || Q), computed by quadrature and
    Nelder-Mead (checked against scipy quad and a brute-force grid in tests/test_lab_theory.py)."""
    j = train_job(tmp_path, name, "experiment=fdiv", f"model.divergence={name}", "metrics=none", "log_every=500")
    ex = fdiv.exact_minimiser(name, C, S)
    mu, sg = j.results["final"]["gen/mu"], j.results["final"]["gen/sigma"]
    assert fdiv.within_tolerance(mu, sg, ex), (name, (mu, sg), (ex["mu"], ex["sigma"]))
    assert fdiv.nearest_minimum(mu, sg, ex)[0] == "global"
