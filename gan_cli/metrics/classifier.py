"""A domain classifier as feature extractor for small grey images (MNIST, Fashion-MNIST, 8x8 digits).

The Inception network was trained on ImageNet photographs; on 28x28 digits its
features and class posteriors say little, so the usual substitute is a classifier
trained on the data set itself: Binkowski et al. 2018 ("Demystifying MMD GANs",
arXiv:1801.01401, Sec. 5) compute FID, KID and the Inception Score on MNIST with a
LeNet trained on MNIST; the "MNIST score" of e.g. Li et al. 2017 (MMD GAN) and the
classifier-based scores in pytorch-gan-metrics follow the same idea. Scores from
such a classifier are comparable only with scores from the *same* classifier, so the
network is trained once, deterministically, and cached under a key that hashes the
data set name, the architecture version, the training settings and a fingerprint of
the training data; its held-out accuracy is stored in the file.

Network (:class:`SmallCNN`): conv3x3/2(32)-BN-ReLU, conv3x3/2(64)-BN-ReLU,
fc(128)-ReLU (the *penultimate* ``pool`` features; like Inception's pool3 they are
post-ReLU), dropout 0.25, fc(num_classes) (the ``logits`` for the IS analogue). Strided
convolutions instead of conv + max-pool cost a quarter of the arithmetic, which keeps
first-use training on two CPU cores near a minute (Fashion-MNIST: 6 epochs, about 82 s
of single-thread CPU time, 91.4% test accuracy; MNIST-like digits are easier). Input:
float images in [-1, 1], (N, C, H, W) with the training images' C, H, W; batch norm
runs in eval mode (running statistics) whenever features are extracted.
Training: Adam (lr 1e-3), batch 128, ``max(epochs, ceil(min_steps / steps_per_epoch))``
epochs, fixed seed, run inside ``torch.random.fork_rng`` so the caller's RNG state is
untouched. Files are written atomically (temp file in the same folder, flush + fsync,
``os.replace``) and read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan_cli.config import UserError
from gan_cli.metrics.cache import atomic_write_bytes, make_key
from gan_cli.metrics.features import to_unit_range

log = logging.getLogger(__name__)

#: bump when SmallCNN or the training procedure changes (invalidates cached classifiers)
ARCH_VERSION = 1
FEATURE_DIMS = 128


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 6
    min_steps: int = 500  # small data sets (8x8 digits) get more epochs
    batch_size: int = 128
    lr: float = 1e-3
    dropout: float = 0.25
    seed: int = 0


class SmallCNN(nn.Module):
    """Two strided conv-BN-ReLU blocks + fc(128) penultimate layer + linear head."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, dropout: float = 0.25):
        super().__init__()
        if height < 4 or width < 4:
            raise UserError(f"The domain classifier needs images of at least 4x4 pixels; got {height}x{width}.")
        self.conv1 = nn.Conv2d(channels, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64 * math.ceil(height / 4) * math.ceil(width / 4), FEATURE_DIMS)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURE_DIMS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.relu(self.fc(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor):
        feats = self.features(x)
        return feats, self.head(self.drop(feats))


class ClassifierExtractor(nn.Module):
    """Feature extractor protocol (:mod:`gan_cli.metrics.features`) over a trained :class:`SmallCNN`.

    ``extractor(images)`` (float in [-1, 1], (N, C, H, W)) -> ``{"pool": (N, 128), "logits": (N, K)}``.
    """

    dims = FEATURE_DIMS

    def __init__(self, net: SmallCNN, meta: dict, loaded_from_cache: bool):
        super().__init__()
        self.net = net.eval()
        self.meta = meta
        self.name = f"clf_{meta['dataset']}"
        self.num_classes = int(meta["num_classes"])
        self.image_shape = tuple(meta["image_shape"])
        self.test_accuracy = float(meta["test_accuracy"])
        self.cache_id = f"clf:{meta['dataset']}:v{ARCH_VERSION}:{meta['key'][:16]}"
        self.loaded_from_cache = loaded_from_cache

    def train(self, mode: bool = True):
        """A frozen feature extractor stays in eval mode (batch-norm running statistics, no dropout)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict:
        if tuple(images.shape[1:]) != self.image_shape:
            raise UserError(f"The {self.name} classifier expects images shaped {self.image_shape}; "
                            f"got {tuple(images.shape[1:])}: use the inception extractor for other data.")
        dev = next(self.net.parameters()).device
        pool, logits = self.net(to_unit_range(images.to(dev)))
        return {"pool": pool, "logits": logits}


def _fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(str((tuple(images.shape), str(images.dtype))).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def accuracy(net: SmallCNN, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on ``images`` (uint8 or [-1, 1] floats)."""
    net.eval()
    dev = next(net.parameters()).device
    correct = 0
    for i in range(0, images.shape[0], batch):
        _, logits = net(to_unit_range(images[i:i + batch].to(dev)))
        correct += int((logits.argmax(1).cpu() == labels[i:i + batch].cpu()).sum())
    return correct / max(1, images.shape[0])


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     settings: TrainSettings = TrainSettings(), device: str | torch.device = "cpu") -> SmallCNN:
    """Train :class:`SmallCNN` on ``images`` (uint8 or [-1, 1], (N, C, H, W)) deterministically (Adam, cross-entropy)."""
    device = torch.device(device)
    x = to_unit_range(images).to(device)
    y = labels.to(device=device, dtype=torch.long)
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / settings.batch_size)
    epochs = max(settings.epochs, math.ceil(settings.min_steps / steps_per_epoch))
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):  # keep the caller's RNG streams untouched
        torch.manual_seed(settings.seed)
        net = SmallCNN(x.shape[1], x.shape[2], x.shape[3], num_classes, settings.dropout).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
        gen = torch.Generator().manual_seed(settings.seed)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            for i in range(0, n, settings.batch_size):
                idx = perm[i:i + settings.batch_size]
                _, logits = net(x[idx])
                loss = F.cross_entropy(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    net.requires_grad_(False)
    return net.eval()


_MEMO: dict = {}
_LOCK = threading.Lock()


def classifier_path(cache_dir: str | os.PathLike, dataset_name: str, key: str) -> Path:
    return Path(os.path.expanduser(str(cache_dir))) / "classifiers" / f"clf_{dataset_name}_{key[:16]}.pt"


def get_classifier(
    dataset_name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: Optional[torch.Tensor],
    test_labels: Optional[torch.Tensor],
    cache_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    settings: TrainSettings = TrainSettings(),
    num_classes: Optional[int] = None,
) -> ClassifierExtractor:
    """The domain classifier for ``dataset_name``: loaded from ``cache_dir/classifiers/`` or trained there.

    ``train_images``/``test_images``: (N, C, H, W) uint8 (as ``gan_cli.data.load_images`` returns) or float
    in [-1, 1]; labels: integer tensors. Without a test split, a fixed 10% of the training split is held
    out for the accuracy. The cache key hashes the data set name, :data:`ARCH_VERSION`, the image shape,
    the class count, ``settings`` and a sha256 fingerprint of the training images and labels.
    """
    if train_labels is None:
        raise UserError(f"Data set {dataset_name} has no labels, so no domain classifier can be trained: "
                        f"use the inception extractor (metrics.extractor=inception).")
    train_labels = torch.as_tensor(train_labels).long()
    if test_images is None or test_labels is None:
        perm = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(settings.seed))
        n_hold = max(1, train_images.shape[0] // 10)
        test_images, test_labels = train_images[perm[:n_hold]], train_labels[perm[:n_hold]]
        train_images, train_labels = train_images[perm[n_hold:]], train_labels[perm[n_hold:]]
    test_labels = torch.as_tensor(test_labels).long()
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    parts = {
        "dataset": dataset_name,
        "arch_version": ARCH_VERSION,
        "image_shape": list(train_images.shape[1:]),
        "num_classes": num_classes,
        "settings": dataclasses.asdict(settings),
        "train_data_sha256": _fingerprint(train_images, train_labels),
    }
    key = make_key(parts)
    path = classifier_path(cache_dir, dataset_name, key)
    memo_key = (str(path), str(torch.device(device)))
    with _LOCK:
        if memo_key in _MEMO:
            return _MEMO[memo_key]
        extractor = _load(path, key, device)
        if extractor is None:
            log.info("training the %s domain classifier (first use; cached at %s)", dataset_name, path)
            t0 = time.perf_counter()
            net = train_classifier(train_images, train_labels, num_classes, settings, device)
            seconds = time.perf_counter() - t0
            acc = accuracy(net, test_images, test_labels)
            meta = {**parts, "key": key, "test_accuracy": acc, "train_seconds": seconds,
                    "n_train": int(train_images.shape[0]), "n_test": int(test_images.shape[0]),
                    "torch": str(torch.__version__)}
            _save(path, net, meta)
            log.info("%s classifier: test accuracy %.4f, trained in %.1f s", dataset_name, acc, seconds)
            extractor = ClassifierExtractor(net, meta, loaded_from_cache=False)
        _MEMO[memo_key] = extractor
        return extractor


def _save(path: Path, net: SmallCNN, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_write_bytes(path, lambda f: torch.save({"state_dict": state, "meta": meta}, f))


def _load(path: Path, key: str, device) -> Optional[ClassifierExtractor]:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = blob["meta"]
        if meta.get("key") != key:
            raise ValueError("stored key differs")
        c, h, w = meta["image_shape"]
        net = SmallCNN(c, h, w, meta["num_classes"], meta["settings"]["dropout"])
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:
        warnings.warn(f"ignoring unreadable classifier {path} ({type(exc).__name__}: {exc}); retraining",
                      RuntimeWarning, stacklevel=3)
        return None
    net.requires_grad_(False)
    return ClassifierExtractor(net.to(device).eval(), meta, loaded_from_cache=True)
