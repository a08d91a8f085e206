"""Image folders and Inception statistics files for ``gan-eval folder=<dir> ref=<dir | stats.npz>``.

Folder against folder reads every image at its own size, as pytorch-fid (``python -m pytorch_fid A B``),
torch-fidelity (``fidelity --input1 A --input2 B``) and clean-fid (``compute_fid(A, B)``) do:
``PIL.Image.open(f).convert("RGB")`` (grey repeated to RGB, an alpha channel dropped), uint8, then the
extractor's preprocessing mode resizes to 299.  Files are listed as the data loader lists them
(:func:`gan_cli.data.folder.list_images`: sorted by relative path, subfolders included), so that the
shuffles of IS and the subsets of KID draw the same images as torch-fidelity for a flat folder.

Statistics files are pytorch-fid's ``--save-stats`` format: an ``.npz`` with ``mu`` (d,) and ``sigma``
(d, d), written here in float64; gan_cli adds ``preprocess`` (the mode, a string) and ``n``, which the
other tools ignore.  The published CIFAR-10 / ImageNet statistics files read as they are.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from gan_cli.config import UserError


def image_files(folder, option: str = "folder") -> list[str]:
    """The image files of ``folder`` (sorted, recursive); one line when there are none."""
    from gan_cli.data.folder import IMAGE_EXTENSIONS, list_images

    p = Path(str(folder)).expanduser()
    if not p.exists():
        raise UserError(f"{option}={folder} does not exist: point it at a folder of images.")
    if not p.is_dir():
        raise UserError(f"{option}={folder} is not a folder: point it at a folder of images"
                        f"{' or a .npz of statistics (mu, sigma)' if option == 'ref' else ''}.")
    files = list_images(str(p))
    if not files:
        exts = "/".join(e[1:] for e in IMAGE_EXTENSIONS)
        raise UserError(f"{option}={folder} holds no images ({exts}): put image files there.")
    return files


def read_rgb(path: str) -> torch.Tensor:
    """One file -> uint8 (3, H, W) at its own size: ``Image.open(path).convert("RGB")`` (16-bit grey to 8 bits
    first, :func:`gan_cli.data.folder._to_8bit`)."""
    from PIL import Image

    from gan_cli.data.base import short_error
    from gan_cli.data.folder import _to_8bit
    from gan_cli.files import open_regular

    try:
        with open_regular(path) as f, Image.open(f) as im:
            arr = np.array(_to_8bit(im).convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image file {path} ({short_error(e)}): remove or replace it.") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def folder_features(extractor, files: list[str], batch: int = 500, device="cpu") -> dict:
    """``{"pool", "logits"}`` float32 numpy arrays of ``files`` in order, ``batch`` files at a time; files of
    different sizes go through the extractor in separate runs (each is resized to 299 by the extractor)."""
    from gan_cli.metrics.features import extract_features

    parts: dict[str, list] = {}
    for start in range(0, len(files), batch):
        images = [read_rgb(f) for f in files[start:start + batch]]
        i = 0
        while i < len(images):
            j = i + 1
            while j < len(images) and images[j].shape == images[i].shape:
                j += 1
            run = torch.stack(images[i:j])
            out = extract_features(extractor, lambda k, run=run: run, len(run), len(run), device)
            for key, value in out.items():
                parts.setdefault(key, []).append(value)
            i = j
    return {key: np.concatenate(v) for key, v in parts.items()}


# ----------------------------------------------------------------------------- statistics files
def save_stats(path, mu: np.ndarray, sigma: np.ndarray, preprocess: Optional[str], n: int) -> Path:
    """Write pytorch-fid's format (``mu``, ``sigma``, float64) plus ``preprocess`` and ``n``, atomically."""
    from gan_cli.files import atomic_write_bytes

    p = Path(str(path)).expanduser()
    if p.suffix != ".npz":
        raise UserError(f"save_stats={path}: name the file <name>.npz (pytorch-fid's statistics format).")
    if p.is_dir():
        raise UserError(f"save_stats={path} is a folder: name a file, e.g. save_stats={p / 'stats.npz'}.")
    arrays = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64), "n": np.array(int(n))}
    if preprocess:
        arrays["preprocess"] = np.array(str(preprocess))
    try:
        atomic_write_bytes(p, lambda f: np.savez(f, **arrays))
    except OSError as e:
        raise UserError(f"cannot write save_stats={path} ({e.strerror or e}): choose a writable place.") from None
    return p


def load_stats(path, dims: int, preprocess: Optional[str] = None) -> dict:
    """``{"mu" (d,), "sigma" (d, d)}`` float64 from an ``.npz`` (float32 or float64); one line when the file
    lacks them, or their shapes do not fit each other or the extractor's ``dims``.  A file that records
    another preprocessing mode than ``preprocess`` is used, with one warning line."""
    import zipfile

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise UserError(f"ref={path} does not exist: give a folder of images or a .npz of statistics (mu, sigma).")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"mu", "sigma"} <= keys:
                raise UserError(f"ref={path} has no {' and '.join(k for k in ('mu', 'sigma') if k not in keys)} "
                                f"(it holds {', '.join(sorted(keys)) or 'nothing'}): give a statistics file with "
                                f"keys mu and sigma (pytorch-fid --save-stats, gan-eval save_stats=).")
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
            mode = str(z["preprocess"]) if "preprocess" in keys else None
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"ref={path} is not a readable .npz ({type(e).__name__}: {e}): give a statistics file "
                        f"with keys mu and sigma.") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(f"ref={path}: mu {mu.shape} and sigma {sigma.shape} do not match (mu must be (d,) and "
                        f"sigma (d, d)): the file is not FID statistics.")
    if mu.shape[0] != dims:
        raise UserError(f"ref={path} holds statistics of {mu.shape[0]}-d features, the Inception pool3 has {dims}: "
                        f"use statistics of the 2048-d pool3 features.")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UserError(f"ref={path} holds non-finite values (NaN or inf): recompute the statistics.")
    if mode and preprocess and mode != preprocess:
        print(f"gan_cli: warning: ref={path} was made with metrics.preprocess={mode}, this run uses {preprocess}: "
              f"the FID mixes two preprocessings (pass metrics.preprocess={mode}).", file=sys.stderr)
    return {"mu": mu, "sigma": sigma, "preprocess": mode}


def is_stats_file(ref: str) -> bool:
    return str(ref).endswith(".npz") or os.path.isfile(os.path.expanduser(str(ref)))
