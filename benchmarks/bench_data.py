"""Real-batch throughput of the two data paths, side by side in one process (ratios, not promises).

    .venv/bin/python benchmarks/bench_data.py [--device cpu|cuda] [--batch 128] [--batches 60] [--workers 0,2,4]
                                              [--repeat 3] [--threads N]

Every row times ``source.sample(batch, generator)`` -- what the training loop calls -- for ``--batches``
batches after a warm-up batch (which starts the workers; its time is the ``start s`` column), the
median of ``--repeat`` such spans, and reports images/s and the ratio to the on-device tensor path of
the same images:

  * an image folder of PNG files (written into a temporary folder): decoded by PIL in the workers;
  * Fashion-MNIST (Debian's files, else 60,000 random 28x28 images) at 28x28, and upscaled to 64x64
    (the stream fits each batch in the workers; the tensor path holds the upscaled set on the device).

The tensor path is an index draw from one uint8 tensor on the device; the stream path is a DataLoader
(``data.loader=stream``) with N worker processes, pinned memory on CUDA.  On a GPU the tensor path does
no host work at all, so its ratio there says how much the stream costs when the data would have fit.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from idx import fake_mnist, write_mnist_raw  # noqa: E402

from gan_cli.build import build_data  # noqa: E402

FASHION_SYSTEM = "/usr/share/datasets/fashion-mnist"


def images_per_s(src, batch: int, batches: int, device: torch.device, repeat: int):
    """(median images/s over ``repeat`` timed spans of ``batches`` batches, seconds of the first batch)."""
    g = torch.Generator(device).manual_seed(0)
    t0 = time.perf_counter()
    src.sample(batch, g)  # warm-up: starts the workers
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter() - t0
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(batches):
            x, _ = src.sample(batch, g)
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert x.shape[0] == batch
        rates.append(batch * batches / (time.perf_counter() - t0))
    return float(np.median(rates)), start


def write_folder(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for i in range(n):  # smooth-ish images (PNG compresses them like photos, not like noise)
        img = np.roll(base, i, axis=1) // 2 + np.uint8(i % 128)
        Image.fromarray(img, "RGB").save(folder / f"{i:05d}.png")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--workers", default="0,2,4", help="comma-separated worker counts for the stream rows")
    ap.add_argument("--folder-images", type=int, default=2000)
    ap.add_argument("--folder-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="timed spans per row (the median is reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the main process (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    workers = [int(w) for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "pngs"
        write_folder(folder, args.folder_images, args.folder_size)
        if Path(FASHION_SYSTEM).is_dir():
            fm = {"_target_": "gan_cli.data.images.fashion_mnist", "name": "fashion_mnist", "root": str(tmp / "d"),
                  "download": False, "system_root": FASHION_SYSTEM}
            fm_name = "fashion_mnist (Debian files)"
        else:
            write_mnist_raw(tmp / "d" / "FashionMNIST" / "raw", fake_mnist(60000, 10))
            fm = {"_target_": "gan_cli.data.images.fashion_mnist", "name": "fashion_mnist", "root": str(tmp / "d"),
                  "download": False, "system_root": None}
            fm_name = "fashion_mnist (random 28x28)"
        sets = [
            (f"image folder: {args.folder_images} PNG {args.folder_size}x{args.folder_size} RGB",
             {"_target_": "gan_cli.data.images.image_folder", "name": "image_folder", "path": str(folder),
              "image_size": args.folder_size, "channels": 3}),
            (f"{fm_name} 28x28", {**fm, "image_size": 28, "channels": 1}),
            (f"{fm_name} upscaled to 64x64", {**fm, "image_size": 64, "channels": 1}),
        ]
        print(f"device {device}, batch {args.batch}, {args.batches} timed batches per row, torch threads "
              f"{torch.get_num_threads()}, {os.cpu_count()} CPUs")
        print(f"{'data':<46} {'path':<18} {'images/s':>10} {'ratio':>7} {'start s':>8}")
        for name, cfg in sets:
            tensor = build_data({**cfg, "loader": "tensor"}, device)
            base, start = images_per_s(tensor, args.batch, args.batches, device, args.repeat)
            print(f"{name:<46} {'tensor':<18} {base:>10.0f} {1.0:>7.2f} {start:>8.2f}", flush=True)
            del tensor
            for w in workers:
                src = build_data({**cfg, "loader": "stream", "num_workers": w}, device)
                rate, start = images_per_s(src, args.batch, args.batches, device, args.repeat)
                src.close()
                label = f"stream {w} worker" + ("s" if w != 1 else "")
                print(f"{'':<46} {label:<18} {rate:>10.0f} {rate / base:>7.2f} {start:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
