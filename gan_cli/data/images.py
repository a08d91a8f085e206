"""Image data sets: one uint8 tensor ``(N, C, H, W)`` on the device, or a DataLoader stream.

Where the images live is chosen per split by :func:`choose_loader` (``data.loader=auto``: the on-device
tensor when ``N x C x H x W`` bytes fit ``data.memory_budget_gb``, else a stream through a torch
``DataLoader`` with ``data.num_workers`` workers, :mod:`gan_cli.data.stream`), and logged in one line
(gan-train prints it)::

    data: fashion_mnist/train: 60000 images x 1x28x28 = 47 MB uint8 fits the 2 GB budget (data.memory_budget_gb): on-device tensor (cpu)

The stream path keeps the stored arrays (MNIST family, CIFAR-10, digits: small in their stored size) in
host memory and fits them to ``image_size`` / ``channels`` a batch at a time in the workers, or decodes
image files in the workers; an image folder's size is its file count x the target shape (nothing is
decoded to learn it).

* ``mnist``, ``fashion_mnist`` -- torchvision's ``MNIST`` / ``FashionMNIST`` classes reading the
  uncompressed IDX files under ``<data.root>/<ClassName>/raw/`` (``download=False``).  Those files are
  put there, in this order of preference, from gzipped (or plain) IDX files already in that folder,
  from ``data.system_root`` (Debian's ``dataset-fashion-mnist`` package installs
  ``/usr/share/datasets/fashion-mnist/*.gz``), or by torchvision's downloader (``data.download``).
* ``cifar10`` -- torchvision's ``CIFAR10`` (``<data.root>/cifar-10-batches-py``, md5-checked by
  torchvision), from ``<data.root>/cifar-10-python.tar.gz`` when present, else downloaded.
* ``digits`` -- scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255); a fixed split:
  the first 1,500 images are ``train``, the last 297 ``test``.
* ``image_folder`` -- every image under ``data.path`` (recursive, sorted by relative path, hidden files
  skipped), EXIF-rotated, alpha composited on white, converted to ``data.channels`` (1: ``L``,
  3: ``RGB``), resized (shorter side, bicubic) and centre-cropped to ``data.image_size``.  There is
  no held-out split: ``test`` returns the same images.

The MNIST-family and CIFAR tensors come straight from the data set's ``.data`` array (no per-item
loop).  When ``data.image_size`` / ``data.channels`` differ from the stored images, those are resized
(bilinear, antialiased) / converted (ITU-R 601-2 luma, or channel repeat).

Files are never left half-written: decompressed IDX files go through a temporary file and
``os.replace``; downloads run in a temporary folder under ``data.root`` and are moved into place only
once complete.  Every failure is a one-line :class:`~gan_cli.config.UserError`.
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
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Optional, Tuple
from urllib.error import URLError

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import DataConfig, UserError, component_schema
from .base import DataInfo, DataSource
from .stream import START_METHODS, LoadError, StreamSource, shard_indices, start_method_name

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")

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


def _short(err: BaseException) -> str:
    """The last non-empty line of an exception's text (torchvision's messages span lines)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _not_writable(folder: str, err: Optional[BaseException] = None) -> UserError:
    why = f" ({err.strerror or _short(err)})" if isinstance(err, OSError) else ""
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


def _atomic_copy(src: str, dest: str, opener: Callable) -> None:
    """Write ``opener(src)``'s bytes to ``dest`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix="." + os.path.basename(dest) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fout, opener(src) as fin:
            shutil.copyfileobj(fin, fout, 1 << 20)
        if not idx_file_ok(tmp):
            raise ValueError("not a complete uint8 IDX file")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
                raise UserError(f"{pretty} file {src} is damaged ({_short(e)}): replace it, or delete it and "
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
            raise UserError(f"{pretty} is not in {where} and downloading it failed ({_short(e)}): run once with "
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


def _load_mnist_family(name: str, data_cfg, train: bool):
    from torchvision import datasets

    root, raw = _prepare_mnist_raw(name, data_cfg)
    cls_name, pretty, _ = _MNIST_FAMILY[name]
    try:
        ds = getattr(datasets, cls_name)(root, train=train, download=False)
    except (RuntimeError, OSError, ValueError) as e:
        raise UserError(f"{pretty}: torchvision cannot read the files in {raw} ({_short(e)}): delete them and run "
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
            raise UserError(f"CIFAR-10 is not in {folder} (missing or damaged) and {what} ({_short(e)}): "
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


def _load_cifar10(data_cfg, train: bool):
    from torchvision import datasets

    root = _root(data_cfg)
    try:
        ds = datasets.CIFAR10(root, train=train, download=False)
    except (RuntimeError, OSError):
        _prepare_cifar(data_cfg)
        try:
            ds = datasets.CIFAR10(root, train=train, download=False)
        except (RuntimeError, OSError, ValueError) as e:
            raise UserError(f"CIFAR-10: torchvision cannot read {os.path.join(root, _CIFAR_DIR)} ({_short(e)}): "
                            f"delete it and run again.") from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return images, labels


# ------------------------------------------------------------------------------------------- digits
def _load_digits(train: bool):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    labels = torch.from_numpy(d.target.astype(np.int64))
    sl = slice(0, DIGITS_TRAIN) if train else slice(DIGITS_TRAIN, None)
    return images[sl].contiguous(), labels[sl].contiguous()


# ------------------------------------------------------------------------------------- image folder
#: more image files than this under data.path is almost surely a wrong folder (a whole disk, a home folder)
MAX_IMAGE_FILES = 2_000_000
#: while scanning, a "scanning <folder>: N images so far" line on stderr each time this many more are found
SCAN_PROGRESS_EVERY = 10_000
#: kernel pseudo-filesystems hold no images and walking them can hang (/proc/<pid>/root leads back to /):
#: refused as data.path, skipped when met during the walk.  These folders, and mount points of these types.
_PSEUDO_DIRS = ("/proc", "/sys", "/dev")
_PSEUDO_FS_TYPES = frozenset(("proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                              "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc",
                              "efivarfs", "selinuxfs", "hugetlbfs", "rpc_pipefs", "nsfs"))


def _pseudo_mounts() -> Tuple[str, ...]:
    """_PSEUDO_DIRS plus the mount points of pseudo-filesystems that /proc/self/mounts lists (Linux)."""
    import re

    points = set(_PSEUDO_DIRS)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] in _PSEUDO_FS_TYPES:  # device, mount point, type, ...
                    # the mount point has spaces, tabs, newlines and backslashes written as octal (\040)
                    points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
    except OSError:  # no /proc (not Linux): the fixed folders only
        pass
    return tuple(sorted(points))


def _pseudo_root(real: str, mounts: Tuple[str, ...]) -> Optional[str]:
    """The pseudo-filesystem folder of ``mounts`` that the resolved path ``real`` lies in, else None."""
    return next((m for m in mounts if real == m or real.startswith(m.rstrip("/") + "/")), None)


def list_images(folder: str, limit: int = 0):
    """Image files under ``folder`` (recursive, hidden entries skipped), sorted by relative path; only the
    first ``limit`` when ``limit > 0`` (the walk stops there).

    Symbolic links are followed, but each real folder is walked once, where the sorted walk first meets
    it: a link to ``.`` would list every image again (and two such links make the walk exponential).
    Kernel pseudo-filesystems met on the way (a link to /proc) are skipped.  Only regular files are
    listed, so a FIFO named ``x.png`` cannot block the loader; such entries are counted in one warning.
    UserError: ``folder`` is in a pseudo-filesystem, or holds more than MAX_IMAGE_FILES images.
    """
    import stat
    import sys

    mounts = _pseudo_mounts()
    real_root = os.path.realpath(folder)
    pseudo = _pseudo_root(real_root, mounts)
    if pseudo:
        really = f" (really {real_root})" if real_root != folder else ""
        raise UserError(f"data.path={folder}{really} is in {pseudo}, a kernel pseudo-filesystem that holds no "
                        f"image files (walking it can hang): point data.path at a folder of images.")

    def listing(path: str):
        """A folder's visible sub-folders and image-named entries, sorted; nothing if it is unreadable.

        Folder names sort with a "/" appended, so a depth-first walk emits the paths in the order of one
        sort of all relative paths (``a.png`` < ``a/b.png`` < ``a_b.png``) and can stop early."""
        items = []
        try:
            with os.scandir(path) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        is_dir = e.is_dir()  # follows symbolic links
                    except OSError:
                        is_dir = False
                    if is_dir:
                        items.append((e.name + "/", e))
                    elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                        items.append((e.name, e))
        except OSError:  # an unreadable sub-folder is left out, as os.walk does
            pass
        items.sort(key=lambda t: t[0])
        return iter(items)

    st = os.stat(folder)
    seen = {(st.st_dev, st.st_ino)}  # (device, inode) of every folder walked so far
    stack = [(listing(folder), real_root)]  # depth-first: (entries left, real path) per open folder
    found = []
    skipped = 0  # entries named like images that are not regular files
    while stack:
        entries, real = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            continue
        key, e = item
        try:
            st = e.stat()  # follows symbolic links
        except OSError:  # a broken link
            st = None
        if key.endswith("/"):
            if st is None or (st.st_dev, st.st_ino) in seen:
                continue
            sub_real = os.path.realpath(e.path) if e.is_symlink() else os.path.join(real, e.name)
            if _pseudo_root(sub_real, mounts):
                continue
            seen.add((st.st_dev, st.st_ino))
            stack.append((listing(e.path), sub_real))
            continue
        if st is None or not stat.S_ISREG(st.st_mode):  # FIFO, socket, device, broken link
            skipped += 1
            continue
        found.append(e.path)
        if 0 < limit <= len(found):
            break
        if len(found) > MAX_IMAGE_FILES:
            raise UserError(f"data.path={folder} holds more than {MAX_IMAGE_FILES:,} image files (the scan stopped "
                            f"there): set data.limit=N to use the first N, or point data.path at a smaller folder.")
        if len(found) % SCAN_PROGRESS_EVERY == 0:
            print(f"scanning {folder}: {len(found):,} images so far", file=sys.stderr, flush=True)
    if skipped:
        log.warning("data.path=%s: skipped %d entries named like images that are not regular files (FIFO, socket, "
                    "device or broken link)", folder, skipped)
    return found


def _open_regular(path: str):
    """``open(path, "rb")`` for a regular file; anything else raises OSError at once (open() of a FIFO
    blocks until some process writes to it, a device can stream forever)."""
    import stat

    # O_NONBLOCK: open() of a FIFO returns at once instead of waiting for a writer (reads of a regular file
    # ignore the flag)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file (a FIFO, socket or device)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: PIL modes with more than 8 bits per sample: convert("L") clips them at 255 (a 16-bit image comes out white)
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _to_8bit(im):
    """A grey image of more than 8 bits per sample (mode I;16*, I, F) as mode ``L``; other images unchanged.

    Integer samples are read as 16-bit (PIL decodes 16-bit PNG and TIFF as I;16*, and PGM with any maxval
    above 255 as I scaled to 0..65535): v -> round(v / 257), so 0 -> 0 and 65535 -> 255.  Float samples
    have no fixed range: 0..1 when the largest value is <= 1, else 0..255 when <= 255, else 0..65535.
    (16-bit RGB/RGBA PNGs need nothing: PIL decodes them as 8-bit RGB/RGBA.)
    """
    from PIL import Image

    if im.mode not in _HIGH_DEPTH_MODES:
        return im
    if im.mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(a.max(initial=0.0))
        a = a * 255.0 if top <= 1.0 else a if top <= 255.0 else a / 257.0
        out = np.rint(np.clip(a, 0.0, 255.0))
    else:
        a = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
        out = (a + 128) // 257  # = round(v / 257): 257 is odd, so there are no ties
    return Image.fromarray(out.astype(np.uint8))


def read_image(path: str, size: int, channels: int) -> np.ndarray:
    """One image file -> ``(size, size, channels)`` uint8: shorter side resized to ``size``, centre crop."""
    from PIL import Image, ImageOps

    mode = {1: "L", 3: "RGB"}[channels]
    with _open_regular(path) as f, Image.open(f) as im:
        if im.format == "JPEG":
            im.draft(mode, (size, size))  # decode at a reduced scale (still >= size): large photos load fast
        im = _to_8bit(ImageOps.exif_transpose(im))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        im = im.convert(mode)
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        im = im.crop((left, top, left + size, top + size))
        arr = np.asarray(im, dtype=np.uint8)
    return arr.reshape(size, size, channels)


def folder_files(data_cfg):
    """The image files of ``data.path`` (checked; at most ``data.limit``), without decoding any."""
    path = getattr(data_cfg, "path", None)
    if not path:
        raise UserError("data=image_folder needs data.path=/path/to/images (a folder of png/jpg/... files, "
                        "searched recursively).")
    folder = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(folder):
        raise UserError(f"data.path={folder} does not exist: point data.path at a folder of images.")
    if not os.path.isdir(folder):
        raise UserError(f"data.path={folder} is a file, not a folder: point data.path at the folder that holds "
                        f"the images.")
    channels = int(data_cfg.channels)
    if channels not in (1, 3):
        raise UserError(f"data.channels={channels} is not supported for image_folder: use 1 (grey) or 3 (RGB).")
    files = list_images(folder, limit=int(getattr(data_cfg, "limit", 0) or 0))  # stops at data.limit files
    if not files:
        exts = "/".join(e[1:] for e in IMAGE_EXTENSIONS)
        raise UserError(f"data.path={folder} holds no images ({exts}) in it or its subfolders: "
                        f"put image files there or point data.path elsewhere.")
    return files


def decode_files(files, size: int, channels: int):
    """uint8 ``(len(files), channels, size, size)`` (:func:`read_image` each), or a :class:`LoadError` that
    names the first file that cannot be read."""
    from PIL import Image

    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            out[i] = read_image(f, size, channels)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
            return LoadError(f"cannot read image file {f} ({_short(e)}): remove or replace it.")
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------- fitting
def fit_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> ``(N, channels, size, size)``: grey<->RGB conversion, bilinear resize."""
    c = images.shape[1]
    if channels != c:
        if channels == 1 and c == 3:  # PIL's "L": ITU-R 601-2 luma
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = torch.cat([(images[i:i + 8192].float() * w).sum(1, keepdim=True).round_().clamp_(0, 255)
                                .to(torch.uint8) for i in range(0, len(images), 8192)])
        elif channels == 3 and c == 1:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:
            raise UserError(f"data.channels={channels} is not supported for these {c}-channel images: use 1 or 3.")
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        chunks = []
        for i in range(0, len(images), 8192):
            x = F.interpolate(images[i:i + 8192].float(), size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
            chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
        images = torch.cat(chunks)
    return images


# ------------------------------------------------------------------------------- tensor or stream
LOADERS = ("auto", "tensor", "stream")
#: data.num_workers=null: torch's CPU thread count (which the joblib launcher caps at cores / jobs), at most this
MAX_AUTO_WORKERS = 8
#: data.memory_budget_gb=null: this fraction of the device's memory (host RAM for device=cpu)
AUTO_BUDGET_FRACTION = 0.25


def fmt_bytes(n: float) -> str:
    """Decimal units (1 GB = 10^9 bytes), three significant digits: ``47 MB``, ``2.4 GB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{int(n)} B"


def device_budget(device) -> Tuple[float, str]:
    """``(bytes, how it was set)``: the default budget, a quarter of the device's memory."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        total, where = float(torch.cuda.get_device_properties(device).total_memory), str(device)
    else:
        try:
            total, where = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "host RAM"
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a fixed budget
            return 2e9, "data.memory_budget_gb=null, no memory size known: 2 GB"
    return total * AUTO_BUDGET_FRACTION, f"data.memory_budget_gb=null: a quarter of {where}'s {fmt_bytes(total)}"


def check_loader_options(loader: str = "auto", memory_budget_gb: Optional[float] = None,
                         num_workers: Optional[int] = None, start_method: str = "auto") -> None:
    """One-line errors for the data.loader / memory_budget_gb / num_workers / start_method values."""
    if loader not in LOADERS:
        raise UserError(f"data.loader={loader} is not a loader: use auto (a DataLoader stream only when the data "
                        f"exceeds data.memory_budget_gb), tensor (always on the device) or stream (always streamed).")
    if memory_budget_gb is not None:
        try:
            budget = float(memory_budget_gb)
        except (TypeError, ValueError):
            budget = float("nan")
        if not (math.isfinite(budget) and budget > 0):
            raise UserError(f"data.memory_budget_gb={memory_budget_gb} must be a number > 0 (in GB, 10^9 bytes), or "
                            f"null for a quarter of the device's memory.")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 0):
        raise UserError(f"data.num_workers={num_workers} must be an integer >= 0 (0: batches made in the main "
                        f"process), or null for min({MAX_AUTO_WORKERS}, torch's thread count).")
    if start_method not in START_METHODS:
        raise UserError(f"data.start_method={start_method} is not a start method: use auto, fork, spawn or "
                        f"forkserver.")


def choose_loader(name: str, split: str, n: int, shape: Tuple[int, ...], device, loader: str = "auto",
                  memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
                  start_method: str = "auto") -> Tuple[str, int]:
    """``("tensor" | "stream", worker count)`` for ``n`` images of ``shape`` as uint8 on ``device``, and one
    log line that says why (gan-train prints it)."""
    check_loader_options(loader, memory_budget_gb, num_workers, start_method)
    nbytes = n * math.prod(shape)
    if memory_budget_gb is None:
        budget, how = device_budget(device)
    else:
        budget, how = float(memory_budget_gb) * 1e9, "data.memory_budget_gb"
    fits = nbytes <= budget
    mode = ("tensor" if fits else "stream") if loader == "auto" else loader
    workers = int(num_workers) if num_workers is not None else min(MAX_AUTO_WORKERS, max(1, torch.get_num_threads()))
    if mode == "tensor":
        what = f"on-device tensor ({torch.device(device)})"
    elif workers:
        what = f"streaming through a DataLoader with {workers} workers ({start_method_name(start_method)})"
    else:
        what = "streaming through a DataLoader in the main process (data.num_workers=0)"
    forced = "" if loader == "auto" else f" (data.loader={loader})"
    log.info("data: %s/%s: %d images x %s = %s uint8 %s the %s budget (%s): %s%s", name, split, n,
             "x".join(str(int(s)) for s in shape), fmt_bytes(nbytes), "fits" if fits else "exceeds",
             fmt_bytes(budget), how, what, forced)
    return mode, workers


class StoredImages(Dataset):
    """A stored uint8 CPU tensor ``(N, C, h, w)`` served a batch at a time, fitted to ``(channels, size,
    size)`` by :func:`fit_images` (in the DataLoader workers).  Workers share the tensor (fork: copy on
    write; spawn: torch moves it to shared memory)."""

    def __init__(self, images: torch.Tensor, size: int, channels: int):
        self.images, self.size, self.channels = images, int(size), int(channels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitems__(self, idx) -> torch.Tensor:
        return fit_images(self.images[torch.as_tensor(idx, dtype=torch.long)], self.size, self.channels).contiguous()

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.__getitems__([i])[0]


class FolderImages(Dataset):
    """Image files decoded a batch at a time by :func:`decode_files` (in the DataLoader workers); an
    unreadable file comes back as a :class:`~gan_cli.data.stream.LoadError`."""

    def __init__(self, files, size: int, channels: int):
        self.files, self.size, self.channels = list(files), int(size), int(channels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitems__(self, idx):
        return decode_files([self.files[i] for i in idx], self.size, self.channels)

    def __getitem__(self, i: int):
        out = self.__getitems__([i])
        return out if isinstance(out, LoadError) else out[0]


class ImageSource(DataSource):
    """Index draws (with replacement) from one uint8 tensor ``images`` kept on the device.

    ``labels`` (a CPU LongTensor) and ``info.n_modes`` (the class count) are set for labelled sets.
    ``shard(rank, num_replicas)`` restricts the draws to ``rank, rank + num_replicas, ...``, as
    :meth:`gan_cli.data.stream.StreamSource.shard` does."""

    def __init__(self, info: DataInfo, images: torch.Tensor, labels: Optional[torch.Tensor], device: torch.device):
        self.info = info
        self.device = device
        self.images = images.to(device)  # uint8 (N, C, H, W)
        self.labels = labels  # CPU LongTensor or None
        self.rank, self.num_replicas = 0, 1
        self._shard: Optional[torch.Tensor] = None  # None: the whole set

    def __len__(self) -> int:
        return self.images.shape[0]

    def shard(self, rank: int, num_replicas: int) -> "ImageSource":
        self._shard = shard_indices(len(self), rank, num_replicas).to(self.device) if num_replicas > 1 else None
        self.rank, self.num_replicas = int(rank), int(num_replicas)
        return self

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self._shard is None:
            idx = torch.randint(0, self.images.shape[0], (n,), generator=generator, device=self._rng_device(generator))
        else:
            pos = torch.randint(0, len(self._shard), (n,), generator=generator, device=self._rng_device(generator))
            idx = self._shard[pos.to(self.device)]
        x = self.images[idx.to(self.device)].float()
        return x.div_(127.5).sub_(1.0)  # 0 -> -1, 255 -> 1


def _split(split: str) -> bool:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return split == "train"


def _source(name: str, loader, device, split: str, image_size: int, channels: int, limit: int,
            n_classes: Optional[int], stream: dict):
    """An ImageSource (the fitted images on the device) or a StreamSource (stored images fitted by workers)."""
    train = _split(split)
    t0 = time.perf_counter()
    images, labels = loader(train)  # as stored, on the CPU
    if train and limit > 0:
        images = images[:limit].clone()  # clone: do not keep the full set's storage alive
        labels = labels[:limit].clone() if labels is not None else None
    if images.shape[0] == 0:
        raise UserError(f"data={name} has no {split} images (data.limit={limit}).")
    shape = (int(channels), int(image_size), int(image_size))
    info = DataInfo(name=name, kind="image", shape=shape, n_modes=n_classes)
    mode, workers = choose_loader(name, split, images.shape[0], shape, device, **stream)
    if mode == "stream":
        fit_images(images[:1], int(image_size), int(channels))  # an unsupported conversion: its line, now
        return StreamSource(info, StoredImages(images.contiguous(), image_size, channels), labels,
                            torch.device(device), workers, stream.get("start_method", "auto"))
    images = fit_images(images, int(image_size), int(channels))
    log.info("%s/%s: %d images %s in %.2f s", name, split, len(images), tuple(images.shape[1:]),
             time.perf_counter() - t0)
    return ImageSource(info, images.contiguous(), labels, torch.device(device))


def _stream_opts(loader, memory_budget_gb, num_workers, start_method) -> dict:
    return {"loader": loader, "memory_budget_gb": memory_budget_gb, "num_workers": num_workers,
            "start_method": start_method}


# ------------------------------------------------------------------------------- the data factories
# Each is the ``_target_`` of a YAML in conf/data/ (built by gan_cli.build.build_data).  The last four
# arguments of each pick the on-device tensor or the DataLoader stream (choose_loader).

def mnist(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
          image_size: int = 28, channels: int = 1, limit: int = 0, system_root: Optional[str] = None,
          loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
          start_method: str = "auto"):
    """``data=mnist``: torchvision's MNIST (downloaded into ``root`` on first use)."""
    opts = SimpleNamespace(root=root, download=download, system_root=system_root)
    return _source("mnist", lambda train: _load_mnist_family("mnist", opts, train), device, split, image_size,
                   channels, limit, 10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def fashion_mnist(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
                  image_size: int = 28, channels: int = 1, limit: int = 0,
                  system_root: Optional[str] = "/usr/share/datasets/fashion-mnist", loader: str = "auto",
                  memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
                  start_method: str = "auto"):
    """``data=fashion_mnist``: Debian's dataset-fashion-mnist files when present, else torchvision's download."""
    opts = SimpleNamespace(root=root, download=download, system_root=system_root)
    return _source("fashion_mnist", lambda train: _load_mnist_family("fashion_mnist", opts, train), device, split,
                   image_size, channels, limit, 10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def cifar10(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
            image_size: int = 32, channels: int = 3, limit: int = 0, system_root: Optional[str] = None,
            loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
            start_method: str = "auto"):
    """``data=cifar10``: torchvision's CIFAR-10 (downloaded into ``root`` on first use)."""
    opts = SimpleNamespace(root=root, download=download)
    return _source("cifar10", lambda train: _load_cifar10(opts, train), device, split, image_size, channels, limit,
                   10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def digits(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
           image_size: int = 8, channels: int = 1, limit: int = 0, system_root: Optional[str] = None,
           loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
           start_method: str = "auto"):
    """``data=digits``: scikit-learn's bundled 8x8 digits (first 1,500 train, last 297 test)."""
    return _source("digits", _load_digits, device, split, image_size, channels, limit, 10,
                   _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def image_folder(device="cpu", split: str = "train", path: Optional[str] = None, root: str = "~/.cache/gan_cli/data",
                 download: bool = True, image_size: int = 32, channels: int = 3, limit: int = 0,
                 system_root: Optional[str] = None, loader: str = "auto", memory_budget_gb: Optional[float] = None,
                 num_workers: Optional[int] = None, start_method: str = "auto"):
    """``data=image_folder``: every image under ``path`` (no held-out split: ``test`` is the same images).

    Its size is known from the file count (no image is decoded to choose between tensor and stream)."""
    _split(split)
    stream = _stream_opts(loader, memory_budget_gb, num_workers, start_method)
    check_loader_options(**stream)  # before the folder is walked
    files = folder_files(SimpleNamespace(path=path, channels=channels, limit=limit))
    size, channels = int(image_size), int(channels)
    shape = (channels, size, size)
    info = DataInfo(name="image_folder", kind="image", shape=shape, n_modes=None)
    mode, workers = choose_loader("image_folder", split, len(files), shape, device, **stream)
    if mode == "stream":
        return StreamSource(info, FolderImages(files, size, channels), None, torch.device(device), workers,
                            start_method)
    t0 = time.perf_counter()
    images = decode_files(files, size, channels)
    if isinstance(images, LoadError):
        raise UserError(images.message)
    log.info("image_folder/%s: %d images %s in %.2f s", split, len(images), shape, time.perf_counter() - t0)
    return ImageSource(info, images, None, torch.device(device))


@component_schema("data", "images")
@dataclass
class ImageDataConfig(DataConfig):
    root: str = "~/.cache/gan_cli/data"
    download: bool = True
    image_size: int = 32
    channels: int = 3
    limit: int = 0  # use only the first N training images (0: all)
    system_root: Optional[str] = None  # e.g. Debian's /usr/share/datasets/...
    # where the training images live (gan_cli.data.images.choose_loader, gan_cli.data.stream):
    # auto: one uint8 tensor on the device when N x C x H x W bytes fit memory_budget_gb, else a DataLoader
    # stream; tensor / stream: always that
    loader: str = "auto"
    memory_budget_gb: Optional[float] = None  # GB (10^9 bytes); null: a quarter of the device's memory
    num_workers: Optional[int] = None  # DataLoader worker processes; null: min(8, torch's CPU threads); 0: none
    start_method: str = "auto"  # workers' start method: auto (platform default; spawn in a joblib worker) | fork | spawn | forkserver


@component_schema("data", "image_folder")
@dataclass
class ImageFolderConfig(ImageDataConfig):
    path: Optional[str] = None
