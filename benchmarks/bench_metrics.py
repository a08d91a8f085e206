"""Side-by-side speed of gan_cli's metric math against the reference packages (not a test).

    .venv/bin/python benchmarks/bench_metrics.py [--quick]

1. FID trace term: gan_cli ``stats_to_fid`` (symmetric eigh) vs pytorch-fid 0.3.0
   ``calculate_frechet_distance`` (scipy sqrtm) on the same 2048-d statistics; median of repeats.
2. PRDC: gan_cli ``prdc`` (tiled torch cdist, float64) vs prdc 0.2 ``compute_prdc`` (sklearn,
   full N x N float32 matrices) on 10k x 10k features of width 128 (the domain classifier's
   feature width; Inception's 2048 costs ~16x more in both), same numbers checked.
3. Peak memory (extra peak RSS, VmHWM, of a fresh subprocess over its RSS before the call) of our
   prdc at 10k and 20k (bounded by the tiles) and of compute_prdc at 10k (3 N x N matrices).
4. Exact W1 of the 2,500-sample toy protocol (the 8-Gaussian ring against a generator's samples): gan_cli
   ``w1_exact`` (POT's network simplex) vs the optimal assignment (scipy ``linear_sum_assignment``), on an
   untrained generator's samples (all near one spot: the assignment solver's worst case) and on a trained one's.
Ratios are what to read: absolute times depend on the machine and on its load (printed).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def features(rng, n, d, shift=0.0):
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + 0.3 + shift, 0.0).astype(np.float32)


def bench_fid(d: int, n: int, repeats: int) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    from gan_cli.metrics.fid import features_to_stats, stats_to_fid

    rng = np.random.default_rng(0)
    m1, s1 = features_to_stats(features(rng, n, d))
    m2, s2 = features_to_stats(features(rng, n, d, shift=0.02))

    def ref():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(calculate_frechet_distance(m1, s1, m2, s2))

    t_ours, f_ours = timed(lambda: stats_to_fid(m1, s1, m2, s2), repeats)
    t_ref, f_ref = timed(ref, repeats)
    print(f"FID {d}-d stats from {n} samples, median of {repeats}:")
    print(f"  gan_cli stats_to_fid            {t_ours:8.2f} s   FID {f_ours:.9g}")
    print(f"  pytorch-fid frechet_distance    {t_ref:8.2f} s   FID {f_ref:.9g}")
    print(f"  speed-up {t_ref / t_ours:.2f}x, relative difference {abs(f_ours - f_ref) / abs(f_ref):.1e}")


def bench_prdc(n: int, d: int, k: int) -> None:
    from prdc import compute_prdc

    from gan_cli.metrics.prdc import prdc

    rng = np.random.default_rng(1)
    real = rng.standard_normal((n, d)).astype(np.float32)
    fake = (rng.standard_normal((n, d)) * 1.05 + 0.02).astype(np.float32)

    def ref():
        with contextlib.redirect_stdout(io.StringIO()):
            return {key: float(v) for key, v in compute_prdc(real, fake, k).items()}

    t_ours, ours = timed(lambda: prdc(real, fake, k=k), 1)
    t_ref, theirs = timed(ref, 1)
    # precision/recall/coverage are shares of n points; density * k * n counts (real ball, fake) pairs
    diff = {key: round(abs(ours[key] - theirs[key]) * n * (k if key == "density" else 1)) for key in ours}
    print(f"PRDC {n} x {n} x {d}-d, k={k}:")
    print(f"  gan_cli prdc (float64 tiles)    {t_ours:8.2f} s   {fmt(ours)}")
    print(f"  prdc.compute_prdc (float32)     {t_ref:8.2f} s   {fmt(theirs)}")
    print(f"  speed-up {t_ref / t_ours:.2f}x; decisions that differ: precision {diff['precision']}, recall "
          f"{diff['recall']}, coverage {diff['coverage']} of {n} points, density {diff['density']} ball-pairs"
          "  (prdc compares float32-rounded distances; see gan_cli/metrics/prdc.py)")


def bench_w1(n: int) -> None:
    import scipy.optimize
    import scipy.spatial.distance

    from gan_cli.metrics.toy import w1_exact

    rng = np.random.default_rng(3)
    angle = rng.integers(0, 8, n) * np.pi / 4
    real = np.c_[2 * np.cos(angle), 2 * np.sin(angle)] + 0.02 * rng.standard_normal((n, 2))
    w1_exact(real[:10], real[:10])  # POT's imports out of the timing

    def assignment(fake):
        cost = scipy.spatial.distance.cdist(real, fake)
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        return float(cost[rows, cols].mean())

    print(f"exact W1, {n} ring samples against a generator's {n}:")
    for name, fake in (("untrained G (all near 0)", 0.01 * rng.standard_normal((n, 2))),
                       ("trained G (on the modes)", real[rng.permutation(n)] + 0.05 * rng.standard_normal((n, 2)))):
        t_ours, ours = timed(lambda: w1_exact(real, fake), 1)
        t_ref, ref = timed(lambda: assignment(fake), 1)
        print(f"  {name}: gan_cli w1_exact {t_ours:6.2f} s, scipy assignment {t_ref:6.2f} s, speed-up "
              f"{t_ref / t_ours:5.1f}x, W1 {ours:.6f} (relative difference {abs(ours - ref) / ref:.1e})")


def fmt(d: dict) -> str:
    return " ".join(f"{key[:4]} {v:.4f}" for key, v in d.items())


def mem_child(which: str, n: int, d: int, k: int) -> None:
    """Runs in a fresh process: extra peak RSS (MiB) of one PRDC call over the state before it."""
    rng = np.random.default_rng(2)
    real = rng.standard_normal((n, d)).astype(np.float32)
    fake = rng.standard_normal((n, d)).astype(np.float32)
    if which == "ours":
        from gan_cli.metrics.prdc import prdc

        fn = lambda: prdc(real, fake, k=k)  # noqa: E731
    else:
        from prdc import compute_prdc

        def fn():
            with contextlib.redirect_stdout(io.StringIO()):
                return compute_prdc(real, fake, k)
    before = _reset_peak_kib()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    print(json.dumps({"extra_peak_mib": (_peak_kib() - before) / 1024, "seconds": seconds}))


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_kib() -> int:
    """Baseline for the peak: reset the kernel's high-water mark (Linux clear_refs) and return the
    current RSS; else the peak so far.  (ru_maxrss is no use here: Linux carries it over execve
    from the parent, which has just run the 10k comparisons.)"""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:
        return _peak_kib()


def _peak_kib() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_memory(sizes: list[tuple[str, int]], d: int, k: int) -> None:
    print(f"PRDC peak memory above the loaded features ({d}-d, k={k}), fresh process each:")
    for which, n in sizes:
        out = subprocess.run([sys.executable, __file__, "--_mem", which, str(n), str(d), str(k)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        name = "gan_cli prdc" if which == "ours" else "prdc.compute_prdc"
        nn_mib = 3 * n * n * 4 / 2**20
        print(f"  {name:18s} {n:6d} x {n:<6d} {r['extra_peak_mib']:8.0f} MiB  ({r['seconds']:.1f} s; "
              f"three float32 N x N matrices would be {nn_mib:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--_mem", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._mem:
        which, n, d, k = args._mem
        mem_child(which, int(n), int(d), int(k))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.quick:
        bench_fid(d=512, n=2000, repeats=3)
        bench_prdc(n=3000, d=64, k=5)
        bench_memory([("ours", 5000), ("ours", 10000), ("ref", 5000)], d=64, k=5)
        bench_w1(n=1000)
    else:
        bench_fid(d=2048, n=5000, repeats=3)
        bench_prdc(n=10000, d=128, k=5)
        bench_memory([("ours", 10000), ("ours", 20000), ("ref", 10000)], d=128, k=5)
        bench_w1(n=2500)


if __name__ == "__main__":
    main()
