"""The FID Inception network (TF ``inception-2015-12-05`` weights) as a feature extractor.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", arXiv:1706.08500) and the Inception Score (Salimans et al.
2016, "Improved Techniques for Training GANs", arXiv:1606.03498) are defined on the
TensorFlow Inception graph of 2015-12-05, not on torchvision's ImageNet InceptionV3.
This module mirrors the PyTorch port of that graph in pytorch-fid
(mseitzer/pytorch-fid ``src/pytorch_fid/inception.py``: ``fid_inception_v3`` and its
``FIDInceptionA/C/E_1/E_2`` blocks), which torch-fidelity
(toshas/torch-fidelity ``feature_extractor_inceptionv3.py``) also follows. The three
differences from torchvision's InceptionV3 are

* the average pools inside Mixed_5b-5d, 6b-6e and 7b exclude the zero padding
  (``count_include_pad=False``, as TensorFlow does);
* the pool branch of the last block (Mixed_7c) is a *max* pool;
* the classifier has 1008 outputs (the TF graph's label map).

The module is our own so that the project does not depend on pytorch-fid at run
time; its parameter names equal pytorch-fid's so that its weight file
``pt_inception-2015-12-05-6726825d.pth`` (and torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth``, which uses the same names) load as-is.

Input convention (pytorch-fid's): images are float tensors in [-1, 1], shape
(N, C, H, W); one channel is repeated to three; anything not already 299x299 is
resized with ``F.interpolate(mode="bilinear", align_corners=False)`` (no
antialiasing). pytorch-fid resizes in [0, 1] and then maps to [-1, 1]; the map is
affine, so resizing in [-1, 1] is the same up to float rounding. torch-fidelity
instead takes uint8 images and resizes like TF1 bit-exactly; for 299x299 inputs the
two conventions coincide.

Outputs: ``pool`` = the 2048-d pool3 features (FID/KID/precision-recall) and
``logits`` = the 1008 *unbiased* logits ``pool3 @ fc.weight.T`` used by the Inception
Score: the original IS code (openai/improved-gan ``inception_score/model.py``) takes
``softmax/logits/MatMul`` without the bias, and torch-fidelity's ISC uses its
``logits_unbiased`` feature for the same reason.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan_cli.config import UserError

#: pytorch-fid's download address for the ported weights (``pytorch_fid.inception.FID_WEIGHTS_URL``).
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
#: File name under torch hub's checkpoints folder (pytorch-fid's name).
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: torch-fidelity's file of the same weights, same parameter names; also accepted.
TORCH_FIDELITY_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"

INPUT_SIZE = 299
POOL_DIMS = 2048
NUM_CLASSES = 1008


# ----------------------------------------------------------------------------- blocks
class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU, as in torchvision / pytorch-fid."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _tf_avg_pool(x):
    # TensorFlow's average pool does not count the padded zeros (pytorch-fid's patch).
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b-5d (pytorch-fid ``FIDInceptionA``)."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Mixed_6a (unchanged from torchvision)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """Mixed_6b-6e (pytorch-fid ``FIDInceptionC``)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Mixed_7a (unchanged from torchvision)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """Mixed_7b (avg pool without padding, ``FIDInceptionE_1``) and Mixed_7c (max pool, ``FIDInceptionE_2``)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            # The FID graph uses a max pool here (pytorch-fid FIDInceptionE_2).
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """The TF-2015-12-05 InceptionV3 graph; parameter names match pytorch-fid's weight file.

    ``forward(x)`` takes *preprocessed* input (N, 3, 299, 299) in [-1, 1] and returns
    ``(pool3 (N, 2048), unbiased logits (N, 1008))``.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(POOL_DIMS, NUM_CLASSES)

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = pool @ self.fc.weight.T  # unbiased (Salimans et al.; torch-fidelity "logits_unbiased")
        return pool, logits


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (N, C, H, W) -> (N, 3, 299, 299): repeat grey to RGB, bilinear resize (align_corners=False).

    The ``pytorch_fid`` mode of :mod:`gan_cli.metrics.preprocess` (the default); the other modes are there."""
    from gan_cli.metrics.preprocess import pytorch_fid

    return pytorch_fid(images)


# ----------------------------------------------------------------------------- weights
def default_weights_dir() -> Path:
    """torch hub's checkpoints folder ($TORCH_HOME/hub/checkpoints, usually ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_weights_error(detail: str) -> UserError:
    where = default_weights_dir() / WEIGHTS_FILE
    return UserError(
        f"Inception weights {WEIGHTS_FILE} not found ({detail}): download {FID_WEIGHTS_URL} on a machine with "
        f"internet and put it at {where} (or pass metrics.inception_weights=/path/to/{WEIGHTS_FILE})."
    )


def find_weights(path: Optional[str] = None, download: bool = True) -> Path:
    """Locate the weight file: the explicit ``path`` (metrics.inception_weights), else torch hub's
    checkpoints folder (pytorch-fid's or torch-fidelity's file name), else download pytorch-fid's file
    into that folder with ``torch.hub.load_state_dict_from_url``. Raises :class:`UserError` (one line)
    when none works, e.g. offline."""
    if path:
        p = Path(os.path.expanduser(str(path)))
        if not p.is_file():
            raise UserError(
                f"metrics.inception_weights={path} is not a file: point it at {WEIGHTS_FILE} "
                f"(download it from {FID_WEIGHTS_URL})."
            )
        return p
    folder = default_weights_dir()
    for name in (WEIGHTS_FILE, TORCH_FIDELITY_WEIGHTS_FILE):
        if (folder / name).is_file():
            return folder / name
    if not download:
        raise _missing_weights_error(f"not in {folder}, downloading disabled")
    try:
        torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, model_dir=str(folder), progress=False,
                                           file_name=WEIGHTS_FILE, weights_only=True)
    except Exception as exc:  # offline: URLError, socket errors, HTTP errors ...
        raise _missing_weights_error(f"download failed: {type(exc).__name__}") from None
    if not (folder / WEIGHTS_FILE).is_file():
        raise _missing_weights_error("download did not produce the file")
    return folder / WEIGHTS_FILE


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_network(weights: Path) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load ``weights`` (``torch.load(weights_only=True)``), frozen, eval mode."""
    net = FIDInceptionV3()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"Cannot read Inception weights {weights} ({type(exc).__name__}): "
                        f"replace it with {WEIGHTS_FILE} from {FID_WEIGHTS_URL}.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    # Older ports lack BatchNorm's num_batches_tracked buffer; it plays no role in eval mode.
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        bad = (missing or unexpected)[0]
        raise UserError(f"{weights} is not the FID Inception weight file ({'missing' if missing else 'unexpected'} "
                        f"parameter {bad}): use {WEIGHTS_FILE} from {FID_WEIGHTS_URL}.")
    net.requires_grad_(False)
    return net.eval()


class InceptionExtractor(nn.Module):
    """Feature extractor protocol (:mod:`gan_cli.metrics.features`) over :class:`FIDInceptionV3`.

    ``extractor(images)`` with images float in [-1, 1], (N, 1|3, H, W) returns
    ``{"pool": (N, 2048), "logits": (N, 1008)}`` (float32, on the images' device).
    """

    name = "inception"
    dims = POOL_DIMS
    num_classes = NUM_CLASSES

    def __init__(self, net: FIDInceptionV3, weights_id: str, preprocess: str = "pytorch_fid"):
        super().__init__()
        from gan_cli.metrics.preprocess import get_preprocess, metric_tag

        self.net = net
        #: identifies the weights in cache keys (sha256 of the weight file)
        self.weights_id = weights_id
        #: the preprocessing mode (metrics.preprocess): a component, images -> network input
        self.preprocessing = get_preprocess(preprocess)
        self.preprocess = self.preprocessing.name
        #: the extractor tag in metric names (inception, inception_tf, inception_clean)
        self.tag = metric_tag(self.preprocess)
        # the mode is part of every cache key; the default mode keeps the key it always had
        self.cache_id = f"inception-2015-12-05:{weights_id}:{self.preprocessing.cache_tag}"

    def train(self, mode: bool = True):
        """A frozen feature extractor stays in eval mode (batch-norm running statistics, no dropout)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict:
        dev = next(self.net.parameters()).device
        pool, logits = self.net(self.preprocessing.fn(images.to(dev)))
        return {"pool": pool, "logits": logits}


_CACHE: dict = {}
_LOCK = threading.Lock()


def get_inception(weights: Optional[str] = None, device: str | torch.device = "cpu",
                  download: bool = True, preprocess: str = "pytorch_fid") -> InceptionExtractor:
    """The FID Inception extractor on ``device`` with the preprocessing mode ``preprocess``
    (:mod:`gan_cli.metrics.preprocess`); the network is loaded once per (weight file, device) per process
    and shared by the modes.

    ``weights``: ``metrics.inception_weights`` (``None``: torch hub's checkpoints folder, then download).
    """
    from gan_cli.metrics.preprocess import get_preprocess

    mode = get_preprocess(preprocess).name  # an unknown mode fails before any file is looked for
    path = find_weights(weights, download=download)
    key = (str(path.resolve()), os.path.getmtime(path), str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = (load_network(path).to(device), file_sha256(path)[:16], {})
        net, sha, by_mode = _CACHE[key]
        if mode not in by_mode:
            by_mode[mode] = InceptionExtractor(net, sha, mode).eval()
        return by_mode[mode]
