"""The stored image data sets: MNIST-family IDX files, CIFAR-10's archive, scikit-learn's bundled digits.

* ``mnist``, ``fashion_mnist`` -- torchvision's ``MNIST`` / ``FashionMNIST`` classes reading the
  uncompressed IDX files under ``<data.root>/<ClassName>/raw/`` (``download=False``).  Those files are
  put there, in this order of preference, from gzipped (or plain) IDX files already in that folder,
  from ``data.system_root`` (Debian's ``dataset-fashion-mnist`` package installs
  ``/usr/share/datasets/fashion-mnist/*.gz``), or by torchvision's downloader (``data.download``).
* ``cifar10`` -- torchvision's ``CIFAR10`` (``<data.root>/cifar-10-batches-py``, md5-checked by
  torchvision), from ``<data.root>/cifar-10-python.tar.gz`` when present, else downloaded.
* ``digits`` -- scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255); a fixed split:
  the first 1,500 images are ``train``, the last 297 ``test``.

Each loader returns the split as stored, ``(uint8 images (N, C, H, W), int64 labels (N,))`` on the CPU,
straight from the data set's ``.data`` array (no per-item loop).

Files are never left half-written: decompressed IDX files are written atomically
(:func:`gan_cli.files.atomic_write_bytes`, checked to be complete IDX files before the rename); downloads
run in a temporary folder under ``data.root`` and are moved into place only once complete.  Every failure
is a one-line :class:`~gan_cli.config.UserError`.
"""
from __future__ import annotations

import gzip
import http.client
import logging
import math
import os
import shutil
import socket
import struct
import tarfile
import tempfile
import time
import zlib
from typing import Callable, Optional, Tuple
from urllib.error import URLError

import numpy as np
import torch

from ..config import UserError
from ..files import atomic_write_bytes
from .base import short_error

log = logging.getLogger(__name__)

#: name -> (torchvision class name, the data set's usual name, extra hint for the error line)
_MNIST_FAMILY = {
    "mnist": ("MNIST", "MNIST", ""),
    "fashion_mnist": ("FashionMNIST", "Fashion-MNIST",
                      "; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them under "
                      "/usr/share/datasets/fashion-mnist (the default data.system_root)"),
}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS_TRAIN = 1500  # digits: first 1,500 train, last 297 test

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TGZ = "cifar-10-python.tar.gz"

#: what a failed download can raise (URLError and socket timeouts are OSErrors; torchvision raises
#: RuntimeError after trying every mirror; a truncated archive gives EOFError / zlib / tarfile errors)
_DOWNLOAD_ERRORS = (URLError, http.client.HTTPException, OSError, RuntimeError, EOFError, ValueError,
                    zlib.error, tarfile.TarError)
_DOWNLOAD_SOCKET_TIMEOUT = 30.0  # seconds per blocking socket call, so a firewalled host fails fast


# ----------------------------------------------------------------------------------------------- helpers
def _root(data_cfg) -> str:
    return os.path.abspath(os.path.expanduser(str(data_cfg.root)))


def _not_writable(folder: str, err: Optional[BaseException] = None) -> UserError:
    why = f" ({err.strerror or short_error(err)})" if isinstance(err, OSError) else ""
    return UserError(f"data.root={folder} is not writable{why}: set data.root to a folder you can write to "
                     f"(the data set is stored there).")


def _ensure_dir(folder: str, root: str) -> None:
    """Create ``folder`` (under data.root) or raise the one-line 'not writable' error."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise _not_writable(root, e) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _not_writable(root)


def idx_file_ok(path: str) -> bool:
    """True when ``path`` is a complete uint8 IDX file (its size matches the header's dimensions)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                return False
            dims = struct.unpack(">" + "i" * head[3], f.read(4 * head[3]))
    except (OSError, struct.error):
        return False
    return size == 4 + 4 * len(dims) + math.prod(dims)


def _open_rb(path: str):
    return open(path, "rb")


def _require_idx(path) -> None:
    if not idx_file_ok(str(path)):
        raise ValueError("not a complete uint8 IDX file")


def _atomic_copy(src: str, dest: str, opener: Callable) -> None:
    """Write ``opener(src)``'s bytes to ``dest`` atomically, refusing anything but a complete IDX file."""
    def write(fout):
        with opener(src) as fin:
            shutil.copyfileobj(fin, fout, 1 << 20)

    atomic_write_bytes(dest, write, check=_require_idx)


def _with_socket_timeout(fn: Callable[[], None]) -> None:
    old = socket.getdefaulttimeout()
    if old is None:
        socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT)
    try:
        fn()
    finally:
        socket.setdefaulttimeout(old)


def _staging_dir(root: str) -> str:
    _ensure_dir(root, root)
    try:
        return tempfile.mkdtemp(prefix=".gan_cli-download-", dir=root)
    except OSError as e:
        raise _not_writable(root, e) from None


# ------------------------------------------------------------------------------------ MNIST family
def _prepare_mnist_raw(name: str, data_cfg) -> Tuple[str, str]:
    """Make sure ``<root>/<Class>/raw`` holds the four complete IDX files; returns (root, raw folder)."""
    cls_name, pretty, hint = _MNIST_FAMILY[name]
    root = _root(data_cfg)
    raw = os.path.join(root, cls_name, "raw")
    missing = [f for f in IDX_FILES if not idx_file_ok(os.path.join(raw, f))]
    if not missing:
        return root, raw
    files_txt = ", ".join(IDX_FILES)

    # 1) local sources: .gz files copied into raw/, or data.system_root (gzipped or plain IDX)
    sys_root = getattr(data_cfg, "system_root", None)
    sys_root = os.path.expanduser(str(sys_root)) if sys_root else None
    sources = {}
    for f in missing:
        cands = [(os.path.join(raw, f + ".gz"), gzip.open)]
        if sys_root:
            cands += [(os.path.join(sys_root, f + ".gz"), gzip.open), (os.path.join(sys_root, f), _open_rb)]
        found = next(((p, o) for p, o in cands if os.path.isfile(p)), None)
        if found is None:
            break
        sources[f] = found
    if len(sources) == len(missing):
        _ensure_dir(raw, root)
        t0 = time.perf_counter()
        for f, (src, opener) in sources.items():
            try:
                _atomic_copy(src, os.path.join(raw, f), opener)
            except PermissionError as e:
                raise _not_writable(root, e) from None
            except (OSError, EOFError, ValueError, zlib.error) as e:
                raise UserError(f"{pretty} file {src} is damaged ({short_error(e)}): replace it, or delete it and "
                                f"run once with internet access (data.download=true).") from None
        log.info("%s: wrote %d IDX files into %s in %.2f s", pretty, len(sources), raw, time.perf_counter() - t0)
        return root, raw

    # 2) torchvision's downloader, in a staging folder so that raw/ only ever gets complete files
    damaged = [f for f in missing if os.path.exists(os.path.join(raw, f))]
    where = f"{raw} ({', '.join(damaged)} damaged)" if damaged else raw
    if not bool(data_cfg.download):
        raise UserError(f"{pretty} is not in {where} and data.download=false: set data.download=true and run once "
                        f"with internet access, or copy {files_txt} (or their .gz files) into {raw}{hint}.")
    from torchvision import datasets

    stage = _staging_dir(root)
    try:
        try:
            _with_socket_timeout(lambda: getattr(datasets, cls_name)(stage, train=True, download=True))
        except _DOWNLOAD_ERRORS as e:
            raise UserError(f"{pretty} is not in {where} and downloading it failed ({short_error(e)}): run once with "
                            f"internet access, or copy {files_txt} (or their .gz files) into {raw}{hint}.") from None
        _ensure_dir(raw, root)
        for f in IDX_FILES:
            src = os.path.join(stage, cls_name, "raw", f)
            if not idx_file_ok(src):
                raise UserError(f"{pretty}: the download produced no complete {f}: delete {stage} and try again.")
            os.replace(src, os.path.join(raw, f))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root, raw


def load_mnist_family(name: str, data_cfg, train: bool):
    from torchvision import datasets

    root, raw = _prepare_mnist_raw(name, data_cfg)
    cls_name, pretty, _ = _MNIST_FAMILY[name]
    try:
        ds = getattr(datasets, cls_name)(root, train=train, download=False)
    except (RuntimeError, OSError, ValueError) as e:
        raise UserError(f"{pretty}: torchvision cannot read the files in {raw} ({short_error(e)}): delete them and run "
                        f"again.") from None
    images = torch.as_tensor(ds.data, dtype=torch.uint8).unsqueeze(1).contiguous()  # (N, 1, 28, 28)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return images, labels


# -------------------------------------------------------------------------------------------- CIFAR
def _prepare_cifar(data_cfg) -> str:
    """Put a complete ``cifar-10-batches-py`` under data.root (from a local tar.gz or a download)."""
    from torchvision import datasets
    from torchvision.datasets.utils import extract_archive

    root = _root(data_cfg)
    folder = os.path.join(root, _CIFAR_DIR)
    tgz = os.path.join(root, _CIFAR_TGZ)
    how = (f"run once with internet access, or put {_CIFAR_TGZ} (or the {_CIFAR_DIR} folder extracted from it) "
           f"into {root}")
    have_tgz = os.path.isfile(tgz)
    if not have_tgz and not bool(data_cfg.download):
        raise UserError(f"CIFAR-10 is not in {folder} (missing or damaged) and data.download=false: "
                        f"set data.download=true and {how}.")
    stage = _staging_dir(root)
    try:
        try:
            if have_tgz:
                extract_archive(tgz, stage)
            else:
                _with_socket_timeout(lambda: datasets.CIFAR10(stage, train=True, download=True))
        except _DOWNLOAD_ERRORS as e:
            what = f"extracting {tgz} failed" if have_tgz else "downloading it failed"
            raise UserError(f"CIFAR-10 is not in {folder} (missing or damaged) and {what} ({short_error(e)}): "
                            f"{how}.") from None
        try:
            datasets.CIFAR10(stage, train=True, download=False)  # md5 check of every batch file
        except RuntimeError:
            raise UserError(f"CIFAR-10: {tgz if have_tgz else 'the download'} is incomplete or damaged: "
                            f"delete it and {how}.") from None
        if os.path.exists(folder):  # a damaged copy: move it aside (it is deleted with the staging folder)
            os.replace(folder, os.path.join(stage, "old-" + _CIFAR_DIR))
        os.replace(os.path.join(stage, _CIFAR_DIR), folder)
    except PermissionError as e:
        raise _not_writable(root, e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root


def load_cifar10(data_cfg, train: bool):
    from torchvision import datasets

    root = _root(data_cfg)
    try:
        ds = datasets.CIFAR10(root, train=train, download=False)
    except (RuntimeError, OSError):
        _prepare_cifar(data_cfg)
        try:
            ds = datasets.CIFAR10(root, train=train, download=False)
        except (RuntimeError, OSError, ValueError) as e:
            raise UserError(f"CIFAR-10: torchvision cannot read {os.path.join(root, _CIFAR_DIR)} ({short_error(e)}): "
                            f"delete it and run again.") from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return images, labels


# ------------------------------------------------------------------------------------------- digits
def load_digits(train: bool):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    labels = torch.from_numpy(d.target.astype(np.int64))
    sl = slice(0, DIGITS_TRAIN) if train else slice(DIGITS_TRAIN, None)
    return images[sl].contiguous(), labels[sl].contiguous()
