"""Write small IDX files (the MNIST file format) so tests can run torchvision's MNIST loader offline.

IDX: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, each dimension as a
big-endian int32, then the data in C order (http://yann.lecun.com/exdb/mnist/ describes it).
"""
from __future__ import annotations

import gzip
import os
import struct
from typing import Dict, Tuple

import numpy as np

IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(">" + "i" * a.ndim, *a.shape) + a.tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, gz: bool = False) -> str:
    """Write ``array`` (uint8) as an IDX file at ``path`` (gzipped when ``gz``; ``.gz`` is appended)."""
    path = str(path) + (".gz" if gz else "")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    data = idx_bytes(array)
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return path


def fake_mnist(n_train: int = 12, n_test: int = 6, size: int = 28, seed: int = 0) -> Dict[Tuple[str, str], np.ndarray]:
    """Random uint8 images (with a few exact 0 and 255 pixels) and labels 0..9 for both splits."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = 0, 255
        out[(split, "images")] = images
        out[(split, "labels")] = (np.arange(n) % 10).astype(np.uint8)
    return out


def write_mnist_raw(raw_dir: str | os.PathLike, arrays: Dict[Tuple[str, str], np.ndarray], gz: bool = False) -> None:
    """Write the four MNIST IDX files (as torchvision names them) into ``raw_dir``."""
    for key, name in IDX_NAMES.items():
        write_idx(os.path.join(str(raw_dir), name), arrays[key], gz=gz)
