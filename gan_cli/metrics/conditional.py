"""Metrics of a class-conditional generator: does a sample look like the class it was asked for, and is each class
as diverse as the data's?  Both read the classes asked for (``ctx.fake_labels``, one per generated sample) and the
real samples' labels (``ctx.real_labels``); they run by default for conditional runs only.

* ``class_acc`` -- the domain classifier's top-1 accuracy on generated samples against the class asked for (as
  StudioGAN's and the ACGAN paper's classification accuracy, with our classifier in place of Inception);
  ``class_acc_real_clf`` beside it is the same classifier's accuracy on the real test split: the ceiling a
  perfect generator reaches.  ``metrics=images`` (the domain classifier) only: Inception's ImageNet classes are
  not the data's.
* ``ifid`` -- intra-class FID (Miyato & Koyama 2018): the FID between the real and the generated samples of each
  class, averaged over the classes, on the suite's features (``ifid10k_clf``).  Each class needs more samples
  than feature dimensions on both sides (the classifier's 128: about 1,300 samples in all for 10 classes);
  fewer, and the metric is skipped with one line.
* ``cas`` -- Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained on the generated samples,
  labelled with the classes asked for, scored on the real test split.  The classifier is the domain classifier's
  network and training recipe (:func:`gan_cli.metrics.classifier.train_classifier`: 6 epochs, at least 500 steps,
  fixed seed), so ``class_acc_real_clf`` -- the same recipe trained on the real training split -- is its ceiling.
  About 12 CPU-seconds (one thread) for 10,000 Fashion-MNIST samples.  Needs the data's test split; one process's evaluation only
  (several processes share the samples out and keep features, not images).
"""
from __future__ import annotations

import numpy as np
import torch

from gan_cli.config import UserError
from gan_cli.metrics.fid import features_to_stats, stats_to_fid
from gan_cli.metrics.registry import register_metric


@register_metric("class_acc", inputs="features", kinds=("image",), order=60, conditional=True,
                 directions={"class_acc": "max"})
def class_acc(real, fake, ctx):
    """Domain-classifier accuracy on generated samples against the class asked for (and on the real test split)."""
    if ctx.features != "clf":
        raise UserError("class_acc needs the domain classifier's classes (metrics=images); Inception's classes are "
                        "ImageNet's")
    if fake["logits"].shape[1] != ctx.n_classes:
        raise UserError(f"class_acc: the classifier has {fake['logits'].shape[1]} classes, the generator "
                        f"{ctx.n_classes}")
    hit = np.argmax(fake["logits"], axis=1) == np.asarray(ctx.fake_labels)
    out = {f"class_acc{ctx.tag}_clf": float(hit.mean())}
    test = getattr(ctx.extractor, "test_accuracy", None)
    if test is not None:
        out["class_acc_real_clf"] = float(test)
    return out


@register_metric("ifid", inputs="features", kinds=("image",), order=61, conditional=True, directions={"ifid": "min"})
def ifid(real, fake, ctx):
    """Intra-class FID: the mean over classes of the FID between the real and generated samples of that class."""
    if "pool" not in real or ctx.real_labels is None:
        raise UserError("ifid needs the real samples' features and labels (not statistics from a file)")
    rl, fl = np.asarray(ctx.real_labels), np.asarray(ctx.fake_labels)
    values = []
    for k in range(int(ctx.n_classes)):
        r, f = real["pool"][rl == k], fake["pool"][fl == k]
        if min(len(r), len(f)) <= r.shape[1]:
            raise UserError(f"ifid: class {k} has {len(r)} real and {len(f)} generated samples, and the FID of "
                            f"{r.shape[1]}-dimensional features needs more than {r.shape[1]} on each side; raise "
                            f"metrics.num_samples")
        values.append(stats_to_fid(*features_to_stats(r), *features_to_stats(f)))
    return {f"ifid{ctx.tag}_{ctx.features}": float(np.mean(values))}


@register_metric("cas", inputs="features", kinds=("image",), order=62, conditional=True, suites=("images",), images=True,
                 directions={"cas": "max"})
def cas(real, fake, ctx):
    """Classification Accuracy Score: a classifier trained on the generated samples, scored on the real test split."""
    from gan_cli.metrics.classifier import accuracy, train_classifier

    test = ctx.test_split() if ctx.test_split is not None else None
    if test is None or getattr(test, "labels", None) is None:
        raise UserError("cas scores on the data's labelled test split, and there is none here")
    images = ctx.fake_images
    net = train_classifier(images, torch.as_tensor(np.asarray(ctx.fake_labels), dtype=torch.long), int(ctx.n_classes),
                           device=ctx.device or "cpu")
    return {f"cas{ctx.tag}_clf": accuracy(net, test.images.cpu(), test.labels.cpu())}
