"""Training throughput, side by side in one process (ratios, not absolute promises).

    .venv/bin/python benchmarks/bench_train.py [--steps N] [--device cpu|cuda]

Rows:
  * the default run (nsgan, ring8, mlp) and the WGAN-GP / WGAN variants on ring8;
  * Fashion-MNIST (DCGAN nets) with the data kept on the device as one uint8 tensor vs the
    same batches drawn through a torch DataLoader (what the loop avoids);
  * logging every step (a host sync per step) vs every 50 steps.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose_train  # noqa: E402

from gan_cli.training.loop import build_trainer  # noqa: E402


def steps_per_s(overrides, steps, device, loader=False, log_every=None):
    with tempfile.TemporaryDirectory() as d:
        cfg = compose_train(*overrides, f"device={device}", "metrics=none", tmp_path=d)
        tr = build_trainer(cfg, d)
        if loader:  # replace the on-device index draw by a DataLoader over a CPU TensorDataset
            from gan_cli.data.base import Batch

            ds = torch.utils.data.TensorDataset(tr.data.images.cpu(), tr.data.labels.cpu())
            it = iter(torch.utils.data.DataLoader(ds, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True))

            def sample(n, generator=None):
                nonlocal it
                try:
                    x, c = next(it)
                except StopIteration:
                    it = iter(torch.utils.data.DataLoader(ds, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True))
                    x, c = next(it)
                return Batch(x.to(tr.device).float().div_(127.5).sub_(1.0), c.to(tr.device))

            tr.data.sample = sample
        for _ in range(3):
            tr.train_step(False)
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            tr.train_step(False)
            if log_every and (i + 1) % log_every == 0:
                tr.acc["loss/d"].item()  # the host sync a log point costs
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {a.device}")
    rows = [
        ("default: nsgan ring8 (mlp 128x3, batch 256)", [], {}),
        ("wgan_gp ring8 (5 critic steps + GP)", ["model=wgan_gp"], {}),
        ("wgan ring8 (5 critic steps, clipping)", ["model=wgan", "model.warmup_critic_steps=0"], {}),
        ("fashion_mnist dcgan nsgan, on-device tensor", ["data=fashion_mnist"], {}),
        ("fashion_mnist dcgan nsgan, DataLoader", ["data=fashion_mnist"], {"loader": True}),
        ("default, host sync every step", [], {"log_every": 1}),
        ("default, host sync every 50 steps", [], {"log_every": 50}),
    ]
    fashion = Path("/usr/share/datasets/fashion-mnist").is_dir()
    if not fashion:  # offline without Debian's files the download would fail
        print("fashion_mnist rows skipped: no /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)")
        rows = [r for r in rows if "fashion" not in r[0]]
    res = {}
    for name, ov, kw in rows:
        n = a.steps if "fashion" not in name else max(20, a.steps // 4)
        res[name] = steps_per_s(ov, n, a.device, **kw)
        print(f"{name:50s} {res[name]:9.1f} steps/s")
    print()
    if fashion:
        tensor, loader = res["fashion_mnist dcgan nsgan, on-device tensor"], res["fashion_mnist dcgan nsgan, DataLoader"]
        print(f"on-device tensor / DataLoader (fashion_mnist): {tensor / loader:.2f}x")
    print(f"sync every 50 / sync every step (default):     "
          f"{res['default, host sync every 50 steps'] / res['default, host sync every step']:.2f}x")
    print(f"default / wgan_gp:                              {res[rows[0][0]] / res[rows[1][0]]:.2f}x")


if __name__ == "__main__":
    main()
