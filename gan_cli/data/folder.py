"""Image folders: the walk that finds the files (``data=image_folder``, ``gan-eval folder=``) and their decoding.

:func:`list_images` walks a folder once (recursive, sorted by relative path, hidden entries skipped; symlink
loops and kernel pseudo-filesystems cannot repeat or hang it; only regular files are listed);
:func:`read_image` decodes one file (EXIF-rotated, alpha composited on white, converted to 1 or 3
channels, resized (shorter side, bicubic) and centre-cropped); :class:`FolderImages` decodes a batch at a
time in DataLoader workers.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import UserError
from ..files import open_regular
from .base import short_error
from .stream import LoadError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")


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
    with open_regular(path) as f, Image.open(f) as im:
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
            return LoadError(f"cannot read image file {f} ({short_error(e)}): remove or replace it.")
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class FolderImages(Dataset):
    """Image files (and their int64 labels, or None) decoded a batch at a time by :func:`decode_files` (in the
    DataLoader workers): ``__getitems__(idx)`` is ``(images, labels[idx])``; an unreadable file comes back as a
    :class:`~gan_cli.data.stream.LoadError`."""

    def __init__(self, files, labels: Optional[torch.Tensor], size: int, channels: int):
        self.files, self.labels, self.size, self.channels = list(files), labels, int(size), int(channels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitems__(self, idx):
        images = decode_files([self.files[i] for i in idx], self.size, self.channels)
        if isinstance(images, LoadError):
            return images
        return images, (self.labels[torch.as_tensor(idx, dtype=torch.long)] if self.labels is not None else None)

    def __getitem__(self, i: int):
        out = self.__getitems__([i])
        return out if isinstance(out, LoadError) else (out[0][0], out[1][0] if out[1] is not None else None)


def folder_labels(folder: str, files: list, limit: int = 0) -> Tuple[list, torch.Tensor, Tuple[str, ...]]:
    """``data.labels=folders``: each image's class is the sub-folder of ``folder`` it lies in, the classes in
    sorted order (torchvision's ``ImageFolder``: ``find_classes`` sorts the sub-folder names; index i is the
    i-th name).  Returns ``(the files that lie in a class folder, their int64 labels, the class names)``.

    Images directly in ``folder`` belong to no class: left out, with one warning line.  A class folder
    without any image is refused in one line, as torchvision refuses it (unless ``data.limit`` stopped the
    walk before it).  Hidden sub-folders are no class (the walk skips them; torchvision would count them)."""
    root = os.path.abspath(folder)
    try:
        with os.scandir(root) as it:
            classes = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as e:
        raise UserError(f"data.path={folder} cannot be read ({e.strerror or e}).") from None
    if not classes:
        raise UserError(f"data.labels=folders reads each image's class from its sub-folder of data.path={folder}, "
                        f"which has none: put the images of class k under data.path/<k>/, or set data.labels=none.")
    index = {name: i for i, name in enumerate(classes)}
    kept, labels, loose = [], [], 0
    for f in files:
        rel = os.path.relpath(f, root)
        top = rel.split(os.sep)[0]
        if top in index and top != rel:
            kept.append(f)
            labels.append(index[top])
        else:
            loose += 1
    if loose:
        log.warning("data.labels=folders: %d images lie directly in data.path=%s, in no class folder: left out",
                    loose, folder)
    found = set(labels)
    empty = [c for c in classes if index[c] not in found]
    if empty and not limit:
        raise UserError(f"data.labels=folders: the class folder(s) {', '.join(empty)} of data.path={folder} hold no "
                        f"images: add images or remove the folder(s) (torchvision's ImageFolder refuses them too).")
    if not kept:
        raise UserError(f"data.labels=folders: no image of data.path={folder} lies in a class folder.")
    return kept, torch.tensor(labels, dtype=torch.long), tuple(classes)
