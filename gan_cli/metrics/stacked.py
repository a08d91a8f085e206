"""``metrics=stacked``: the mode count of the stacked 1000-mode benchmark (VEEGAN, Srivastava et al. 2017; PacGAN,
Lin et al. 2018, Table 2), on ``data=stacked`` (:mod:`gan_cli.data.stacked`).

Each channel of a sample is labelled by the base set's domain classifier (:mod:`gan_cli.metrics.classifier`,
trained on the base's training split; its held-out accuracy is in its cache file), at the base's size (a stacked
set trained at another ``data.image_size`` is resized back); the sample's mode is the triple ``100 a + 10 b + c``.
Over the generated samples (26,000 by default, as the papers):

* ``modes26k_stacked`` -- how many of the 1000 triples occur at least once;
* ``kl26k_stacked`` -- KL(p_gen || uniform) of the triples' histogram, natural log: ``sum_m p_m ln(1000 p_m)``
  (0 for a uniform histogram; ln 1000 = 6.91 when every sample is one triple).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gan_cli.metrics.features import to_unit_range
from gan_cli.metrics.registry import register_metric

MODES = 1000


class StackedExtractor:
    """Feature extractor protocol (:mod:`gan_cli.metrics.features`): ``images (N, 3, H, W) -> {"mode": (N, 1)}``,
    the triple of the base classifier's labels of the three channels."""

    dims = 1
    num_classes = MODES

    def __init__(self, classifier):
        self.classifier = classifier
        self.name = f"stacked_{classifier.name}"
        self.cache_id = f"stacked:{classifier.cache_id}"
        self.test_accuracy = classifier.test_accuracy

    def __call__(self, images: torch.Tensor) -> dict:
        x = to_unit_range(images)
        c, h, w = self.classifier.image_shape
        labels = []
        for ch in range(3):
            one = x[:, ch:ch + 1]
            if one.shape[-2:] != (h, w):
                one = F.interpolate(one, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            labels.append(self.classifier(one)["logits"].argmax(1))
        mode = labels[0] * 100 + labels[1] * 10 + labels[2]
        return {"mode": mode.float()[:, None]}


def mode_histogram(modes) -> np.ndarray:
    m = np.asarray(modes).reshape(-1).astype(np.int64)
    return np.bincount(m, minlength=MODES)[:MODES]


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform over len(counts)), natural log, of a histogram."""
    p = counts[counts > 0] / counts.sum()
    return float((p * np.log(p * len(counts))).sum())


@register_metric("stacked", inputs="features", kinds=("image",), order=5, suites=("stacked",),
                 directions={"modes": "max", "kl": "min"})
def stacked(real, fake, ctx):
    """Modes of 1000 among the generated samples and KL(p_gen || uniform) (stacked MNIST)."""
    counts = mode_histogram(fake["mode"])
    kl = kl_to_uniform(counts)
    return {f"modes{ctx.tag}_stacked": float((counts > 0).sum()), f"kl{ctx.tag}_stacked": kl if math.isfinite(kl) else math.nan}
