"""Theory lab 3's exact side: D_f(P || N(mu, sigma^2)) for the shipped 1-D mixture P by quadrature, and its local
minima (the reference the f-GAN runs are held against; :mod:`gan_cli.lab.fdiv` reports them).

The exact minimiser: D_f(P || N(mu, sigma^2)) = E_Q f(p/q) by quadrature on a fine uniform grid,
in log space (:func:`divergence`), minimised over (mu, log sigma) with Nelder-Mead from a grid of
starts (:func:`local_minima`); every distinct local minimum is kept, the global one is the
smallest.  The shipped target 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) is symmetric, so every minimum
with mu != 0 comes with its mirror image -mu: the table writes those as +-mu.  Two divergences are
infinite on part of the parameter space (for equal component widths s): Pearson chi^2 = E_Q (p/q)^2 - 1
needs sigma > s / sqrt(2), Neyman chi^2 = E_P (q/p)^2 - 1 needs sigma < sqrt(2) s; there the
functions return inf (exactly, not a truncated integral).
"""
from __future__ import annotations

import functools
import math
from typing import Iterable, Optional

import numpy as np

DIVERGENCE_ORDER = ("kl", "pearson", "hellinger", "js", "gan", "tv", "rkl", "neyman")
LABELS = {
    "kl": "KL(P‖Q)", "rkl": "KL(Q‖P)", "pearson": "Pearson chi2", "neyman": "Neyman chi2",
    "hellinger": "sq. Hellinger", "js": "2 JSD", "gan": "2 JSD - log 4", "tv": "total variation",
}
LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- exact D_f


def mixture_params(data_cfg) -> tuple[np.ndarray, float]:
    """(centers, std) of the equal-weight 1-D mixture that ``data=mog1d`` samples from."""
    from gan_cli.data.toy import line_centers

    get = data_cfg.get if isinstance(data_cfg, dict) else lambda k, d=None: getattr(data_cfg, k, d)
    centers = line_centers(int(get("n_modes", 2)), float(get("radius", 2.0))).double().numpy().ravel()
    return centers, float(get("std", 0.5))


def log_mixture_pdf(x: np.ndarray, centers: Iterable[float], std: float) -> np.ndarray:
    from scipy.special import logsumexp

    c = np.asarray(list(centers), dtype=np.float64).reshape(-1, 1)
    lz = -0.5 * ((x[None, :] - c) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))
    return logsumexp(lz, axis=0) - math.log(c.shape[0])


def log_normal_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))


def finite_domain(name: str, sigma: float, std: float) -> bool:
    """False where D_f(P || N(mu, sigma^2)) is +inf for a mixture of width-``std`` components."""
    if name == "pearson":  # E_Q (p/q)^2 = int p^2 / q: the tails need 2 / (2 s^2) > 1 / (2 sigma^2)
        return sigma > std / math.sqrt(2.0)
    if name == "neyman":  # int q^2 / p: the tails need 2 / (2 sigma^2) > 1 / (2 s^2)
        return sigma < std * math.sqrt(2.0)
    return True


def divergence(name: str, mu: float, sigma: float, centers: Iterable[float], std: float, n: int = 4001,
               width: float = 14.0) -> float:
    """D_f(P || N(mu, sigma^2)) = E_Q f(p/q) for the f-GAN row ``name`` (gan_cli.objectives.fgan), with
    P the equal-weight mixture of N(c, std^2): a Riemann sum on ``n`` uniform points covering ``width``
    standard deviations around every component, computed in log space (no 0/0, no overflow)."""
    from scipy.special import logsumexp

    centers = np.asarray(list(centers), dtype=np.float64).ravel()
    if not (sigma > 0 and math.isfinite(sigma) and math.isfinite(mu)):
        return math.inf
    if not finite_domain(name, sigma, std):
        return math.inf
    lo = min(centers.min() - width * std, mu - width * sigma)
    hi = max(centers.max() + width * std, mu + width * sigma)
    x = np.linspace(lo, hi, n)
    dx = x[1] - x[0]
    lp, lq = log_mixture_pdf(x, centers, std), log_normal_pdf(x, mu, sigma)
    p, q = np.exp(lp), np.exp(lq)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if name == "kl":  # u log u: int p log(p/q)
            v = np.sum(p * (lp - lq)) * dx
        elif name == "rkl":  # -log u: int q log(q/p)
            v = np.sum(q * (lq - lp)) * dx
        elif name == "pearson":  # (u-1)^2: int p^2/q - 1
            v = math.exp(logsumexp(2 * lp - lq) + math.log(dx)) - 1.0
        elif name == "neyman":  # (1-u)^2/u: int q^2/p - 1
            v = math.exp(logsumexp(2 * lq - lp) + math.log(dx)) - 1.0
        elif name == "hellinger":  # (sqrt u - 1)^2
            v = np.sum((np.exp(lp / 2) - np.exp(lq / 2)) ** 2) * dx
        elif name in ("js", "gan"):  # 2 JSD, and 2 JSD - log 4
            lm = np.logaddexp(lp, lq) - LOG2
            v = np.sum(p * (lp - lm) + q * (lq - lm)) * dx - (2 * LOG2 if name == "gan" else 0.0)
        elif name == "tv":  # |u-1|/2
            v = 0.5 * np.sum(np.abs(p - q)) * dx
        else:
            raise ValueError(f"unknown divergence {name!r}")
    return float(v)


def default_starts(centers, std) -> list[tuple[float, float]]:
    """A grid of (mu, sigma) starts: every component mean, the mixture mean and points between,
    times widths from one component's std to twice the mixture's std."""
    c = np.asarray(list(centers), dtype=np.float64)
    m = float(c.mean())
    s_tot = float(math.sqrt(std**2 + c.var()))
    mus = sorted({round(float(v), 6) for v in [*c, m, m - 0.5 * s_tot, m + 0.5 * s_tot, m + 0.1 * s_tot]})
    sigmas = [std, 0.5 * (std + s_tot), s_tot, 2 * s_tot]
    return [(mu, sg) for mu in mus for sg in sigmas]


def local_minima(name: str, centers, std: float, starts: Optional[list] = None, tol: float = 0.02) -> list[dict]:
    """Distinct local minima of D_f(P || N(mu, sigma^2)) over (mu, sigma), best first:
    Nelder-Mead on (mu, log sigma) from every start where the divergence is finite; minima closer
    than ``tol`` (in mu and in sigma) are merged; points stuck on the edge of the finite domain
    (Pearson / Neyman) are dropped."""
    from scipy import optimize

    centers = tuple(float(c) for c in np.asarray(list(centers), dtype=np.float64).ravel())
    starts = starts if starts is not None else default_starts(centers, std)

    def fun(v):
        return divergence(name, float(v[0]), float(math.exp(v[1])), centers, std)

    found = []
    for mu0, sg0 in starts:
        if not math.isfinite(fun((mu0, math.log(sg0)))):
            continue
        r = optimize.minimize(fun, x0=[mu0, math.log(sg0)], method="Nelder-Mead",
                              options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 3000})
        mu, sg = float(r.x[0]), float(math.exp(r.x[1]))
        if not math.isfinite(r.fun):
            continue
        if not (finite_domain(name, sg * 0.99, std) and finite_domain(name, sg * 1.01, std)):
            continue  # pressed against the edge where the divergence becomes infinite: not a minimum
        found.append({"mu": mu, "sigma": sg, "value": float(r.fun)})
    found.sort(key=lambda d: d["value"])
    uniq: list[dict] = []
    for d in found:
        if not any(abs(d["mu"] - u["mu"]) < tol and abs(d["sigma"] - u["sigma"]) < tol for u in uniq):
            uniq.append(d)
    return uniq


@functools.lru_cache(maxsize=64)
def _exact_cached(name: str, centers: tuple, std: float) -> dict:
    minima = local_minima(name, centers, std)
    if not minima:
        return {"divergence": name, "mu": math.nan, "sigma": math.nan, "value": math.nan, "minima": [], "symmetric": False}
    best = minima[0]
    c = np.asarray(centers)
    symmetric_target = bool(np.allclose(np.sort(c), np.sort(2 * c.mean() - c)))
    ties = [m for m in minima if abs(m["value"] - best["value"]) <= 1e-6 * max(1.0, abs(best["value"]))]
    sym = symmetric_target and abs(best["mu"] - c.mean()) > 1e-2
    if sym:  # report the +mu member of the mirror pair (deterministic table)
        best = max(ties, key=lambda m: m["mu"])
    return {"divergence": name, "mu": best["mu"], "sigma": best["sigma"], "value": best["value"],
            "minima": minima, "symmetric": sym}


def exact_minimiser(name: str, centers, std: float) -> dict:
    """The global minimiser of D_f(P || N(mu, sigma^2)): {"mu", "sigma", "value", "minima": every local
    minimum found, "symmetric": True when -mu (mirrored about the mixture mean) is an equal minimum}."""
    return _exact_cached(name, tuple(float(c) for c in np.asarray(list(centers)).ravel()), float(std))


def exact_table(centers, std: float, divergences: Iterable[str] = DIVERGENCE_ORDER) -> list[dict]:
    return [exact_minimiser(d, centers, std) for d in divergences]


def regime(mu: float, sigma: float, centers, std: float, min_mass: float = 0.1) -> str:
    """'covers all modes', 'seeks one mode' or 'covers k of M modes' for a fitted N(mu, sigma^2): a mode
    counts as covered when Q puts at least ``min_mass`` of its mass within 2 std of the mode's centre."""
    from scipy.stats import norm

    c = np.asarray(list(centers), dtype=np.float64)
    if not (math.isfinite(mu) and math.isfinite(sigma)):
        return "n/a"
    mass = norm.cdf((c + 2 * std - mu) / sigma) - norm.cdf((c - 2 * std - mu) / sigma)
    k = int((mass >= min_mass).sum())
    if k == c.size:
        return "covers all modes" if c.size > 1 else "covers the mode"
    if k == 1:
        return "seeks one mode"
    return f"covers {k} of {c.size} modes" if k else "misses every mode"


def nearest_minimum(mu: float, sigma: float, ex: dict) -> tuple[str, Optional[dict]]:
    """Which exact local minimum a learned (mu, sigma) ended next to: ("global" | "local" | "none", minimum)."""
    if not ex["minima"] or not (math.isfinite(mu) and math.isfinite(sigma)):
        return "none", None
    best_val = ex["minima"][0]["value"]
    d = [(abs(mu - m["mu"]) + abs(math.log(sigma / m["sigma"])), m) for m in ex["minima"]]
    dist, m = min(d, key=lambda t: t[0])
    if dist > 0.35:
        return "none", None
    is_global = abs(m["value"] - best_val) <= 1e-6 * max(1.0, abs(best_val))
    return ("global" if is_global else "local"), m
