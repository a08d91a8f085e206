"""Image data sets: the ``_target_`` factories of ``conf/data/`` (mnist, fashion_mnist, cifar10, digits,
image_folder) and their schemas.

Where the bytes come from is :mod:`gan_cli.data.download` (IDX files, CIFAR-10's archive, the bundled
digits) and :mod:`gan_cli.data.folder` (the folder walk and decoding); where the images live is
:mod:`gan_cli.data.placement` (the on-device tensor or a DataLoader stream, :mod:`gan_cli.data.stream`).
The MNIST-family and CIFAR tensors come straight from the data set's ``.data`` array.  When
``data.image_size`` / ``data.channels`` differ from the stored images, those are resized (bilinear,
antialiased) / converted (ITU-R 601-2 luma, or channel repeat).  ``image_folder`` has no held-out split:
``test`` returns the same images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import torch

from ..config import DataConfig, UserError, component_schema
from .base import DataInfo
from .download import load_cifar10, load_digits, load_mnist_family
from .folder import FolderImages, decode_files, folder_files, folder_labels
from .placement import ImageSource, StoredImages, check_loader_options, choose_loader, fit_images, log
from .stream import LoadError, StreamSource

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
    info = DataInfo(name=name, kind="image", shape=shape, n_modes=n_classes, n_classes=n_classes)
    mode, workers = choose_loader(name, split, images.shape[0], shape, device, **stream)
    if mode == "stream":
        fit_images(images[:1], int(image_size), int(channels))  # an unsupported conversion: its line, now
        return StreamSource(info, StoredImages(images.contiguous(), labels, image_size, channels), labels,
                            torch.device(device), workers, stream.get("start_method", "auto"))
    images = fit_images(images, int(image_size), int(channels))
    log.info("%s/%s: %d images %s in %.2f s", name, split, len(images), tuple(images.shape[1:]),
             time.perf_counter() - t0)
    return ImageSource(info, images.contiguous(), labels, torch.device(device))


def _stream_opts(loader, memory_budget_gb, num_workers, start_method) -> dict:
    return {"loader": loader, "memory_budget_gb": memory_budget_gb, "num_workers": num_workers,
            "start_method": start_method}


#: data.labels of an image folder
LABELS = ("none", "folders")


# ------------------------------------------------------------------------------- the data factories
# Each is the ``_target_`` of a YAML in conf/data/ (built by gan_cli.build.build_data).  The last four
# arguments of each pick the on-device tensor or the DataLoader stream (choose_loader).

def mnist(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
          image_size: int = 28, channels: int = 1, limit: int = 0, system_root: Optional[str] = None,
          loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
          start_method: str = "auto"):
    """``data=mnist``: torchvision's MNIST (downloaded into ``root`` on first use)."""
    opts = SimpleNamespace(root=root, download=download, system_root=system_root)
    return _source("mnist", lambda train: load_mnist_family("mnist", opts, train), device, split, image_size,
                   channels, limit, 10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def fashion_mnist(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
                  image_size: int = 28, channels: int = 1, limit: int = 0,
                  system_root: Optional[str] = "/usr/share/datasets/fashion-mnist", loader: str = "auto",
                  memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
                  start_method: str = "auto"):
    """``data=fashion_mnist``: Debian's dataset-fashion-mnist files when present, else torchvision's download."""
    opts = SimpleNamespace(root=root, download=download, system_root=system_root)
    return _source("fashion_mnist", lambda train: load_mnist_family("fashion_mnist", opts, train), device, split,
                   image_size, channels, limit, 10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def cifar10(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
            image_size: int = 32, channels: int = 3, limit: int = 0, system_root: Optional[str] = None,
            loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
            start_method: str = "auto"):
    """``data=cifar10``: torchvision's CIFAR-10 (downloaded into ``root`` on first use)."""
    opts = SimpleNamespace(root=root, download=download)
    return _source("cifar10", lambda train: load_cifar10(opts, train), device, split, image_size, channels, limit,
                   10, _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def digits(device="cpu", split: str = "train", root: str = "~/.cache/gan_cli/data", download: bool = True,
           image_size: int = 8, channels: int = 1, limit: int = 0, system_root: Optional[str] = None,
           loader: str = "auto", memory_budget_gb: Optional[float] = None, num_workers: Optional[int] = None,
           start_method: str = "auto"):
    """``data=digits``: scikit-learn's bundled 8x8 digits (first 1,500 train, last 297 test)."""
    return _source("digits", load_digits, device, split, image_size, channels, limit, 10,
                   _stream_opts(loader, memory_budget_gb, num_workers, start_method))


def image_folder(device="cpu", split: str = "train", path: Optional[str] = None, root: str = "~/.cache/gan_cli/data",
                 download: bool = True, image_size: int = 32, channels: int = 3, limit: int = 0,
                 system_root: Optional[str] = None, loader: str = "auto", memory_budget_gb: Optional[float] = None,
                 num_workers: Optional[int] = None, start_method: str = "auto", labels: str = "none"):
    """``data=image_folder``: every image under ``path`` (no held-out split: ``test`` is the same images).
    ``labels=folders``: each image's class is its sub-folder of ``path`` (torchvision ``ImageFolder``'s order,
    :func:`~gan_cli.data.folder.folder_labels`); ``none``: unlabelled.

    Its size is known from the file count (no image is decoded to choose between tensor and stream)."""
    _split(split)
    if labels not in LABELS:
        raise UserError(f"data.labels={labels} is not a labelling: use none (unlabelled) or folders (the class of an "
                        f"image is its sub-folder of data.path, as torchvision's ImageFolder).")
    stream = _stream_opts(loader, memory_budget_gb, num_workers, start_method)
    check_loader_options(**stream)  # before the folder is walked
    files = folder_files(SimpleNamespace(path=path, channels=channels, limit=limit))
    classes, names = None, None
    if labels == "folders":
        files, classes, names = folder_labels(str(path), files, int(limit))
    size, channels = int(image_size), int(channels)
    shape = (channels, size, size)
    n = len(names) if names is not None else None
    info = DataInfo(name="image_folder", kind="image", shape=shape, n_modes=n, n_classes=n, class_names=names)
    mode, workers = choose_loader("image_folder", split, len(files), shape, device, **stream)
    if mode == "stream":
        return StreamSource(info, FolderImages(files, classes, size, channels), classes, torch.device(device),
                            workers, start_method)
    t0 = time.perf_counter()
    images = decode_files(files, size, channels)
    if isinstance(images, LoadError):
        raise UserError(images.message)
    log.info("image_folder/%s: %d images %s in %.2f s", split, len(images), shape, time.perf_counter() - t0)
    return ImageSource(info, images, classes, torch.device(device))


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
    labels: str = "none"  # none: unlabelled | folders: an image's class is its sub-folder of path (ImageFolder order)
