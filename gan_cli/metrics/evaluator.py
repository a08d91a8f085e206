"""One evaluation service for gan-train, gan-eval and the theory lab.

:class:`Evaluator` is built once per run from the metrics config and the data source the caller
already holds (the trainer's: no second load of the training set).  It picks the inputs (toy
points, or features of the domain classifier / the FID Inception network), the metric names
(``metrics.names``, else every default metric of the registry that applies to the data), and the
sample count (``metrics.num_samples``, else :data:`~gan_cli.metrics.registry.DEFAULT_SAMPLES`).
Real-side points / features are computed once per Evaluator (image features also cached on disk,
:class:`gan_cli.metrics.cache.StatsCache`); each call then scores a sampler of generated data.

A metric that cannot run on the data at hand does not stop the run: a sample count larger than
the real data is sized down to it with one warning line, and a metric that needs more samples
than there are is skipped with one line.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable, Optional

import torch

from gan_cli import seeds
from gan_cli.config import UserError
from gan_cli.metrics.registry import (DEFAULT_SAMPLES, MetricContext, count_tag, get_metric, import_plugins,
                                      metrics)

log = logging.getLogger(__name__)

#: suite -> (inputs, feature extractor tag)
SUITES = {"toy": ("points", None), "images": ("features", "clf"), "inception": ("features", "inception"),
          "none": (None, None)}


def _warn(msg: str) -> None:
    print(f"gan_cli: warning: {msg}", file=sys.stderr)


def resolve_suite(metrics_cfg, info, source=None) -> str:
    """``auto`` -> toy for toy data; images (a domain classifier) for labelled grey-scale images;
    inception for other images when the Inception weights are on disk; else none."""
    suite = str(getattr(metrics_cfg.suite, "value", metrics_cfg.suite))
    if suite not in SUITES and suite != "auto":
        raise UserError(f"metrics.suite={suite} is unknown: use auto, {', '.join(SUITES)}.")
    labelled = source is not None and getattr(source, "labels", None) is not None
    if suite != "auto":
        if suite == "toy" and info.kind == "image":
            raise UserError("metrics=toy needs toy data (ring8, grid25, mog1d, lines); use metrics=images or "
                            "inception for images.")
        if suite in ("images", "inception") and info.kind != "image":
            raise UserError(f"metrics={suite} needs image data; use metrics=toy for {info.name}.")
        if suite == "images" and source is not None and not labelled:
            raise UserError(f"metrics=images trains a domain classifier on labels, and data={info.name} has none; "
                            f"use metrics=inception.")
        return suite
    if info.kind != "image":
        return "toy"
    if labelled and info.shape[0] == 1:
        return "images"
    from gan_cli.metrics.inception import find_weights

    try:
        find_weights(getattr(metrics_cfg, "inception_weights", None), download=False)
        return "inception"
    except UserError as e:
        log.warning("no metric suite for %s: %s", info.name, e)
        return "none"


class Evaluator:
    """Scores generated samples against the real data of ``source`` (a DataSource)."""

    def __init__(self, metrics_cfg, data_cfg, source, device, n: Optional[int] = None,
                 test_split: Optional[Callable[[], object]] = None):
        """``test_split()`` gives the data set's test split as a source (images, labels): the domain
        classifier measures its accuracy there when it is first trained."""
        import_plugins(getattr(metrics_cfg, "imports", None))
        self.test_split = test_split
        self.cfg, self.data_cfg, self.source, self.device = metrics_cfg, data_cfg, source, torch.device(device)
        self.info = source.info
        self.suite = resolve_suite(metrics_cfg, self.info, source)
        self.inputs, self.features = SUITES[self.suite]
        self.preprocess = self._preprocess_mode()
        self.k = int(metrics_cfg.k)
        self.metrics = self._select(list(getattr(metrics_cfg, "names", None) or []))
        n = int(n or metrics_cfg.num_samples or DEFAULT_SAMPLES[self.info.kind])
        self.n = self._size(n) if self.metrics else n  # nothing to evaluate (metrics=none): nothing to warn about
        self._real = None
        self._extractor = None

    # -- set-up ---------------------------------------------------------------
    def _preprocess_mode(self) -> Optional[str]:
        """The Inception preprocessing mode (inception suite only; None otherwise).  It is a component of
        the extractor, and its tag (inception, inception_tf, inception_clean) names the metrics."""
        from gan_cli.metrics.preprocess import DEFAULT, get_preprocess, metric_tag

        mode = get_preprocess(getattr(self.cfg, "preprocess", None) or DEFAULT).name
        if self.suite != "inception":
            if mode != DEFAULT and self.suite == "images":
                _warn(f"metrics.preprocess={mode} applies to the Inception network; metrics=images (the domain "
                      f"classifier, names _clf) ignores it.")
            return None
        self.features = metric_tag(mode)
        return mode

    def _select(self, names: list[str]):
        if self.inputs is None:
            return []
        if names:  # named: each must exist for these inputs and apply to this data
            chosen = [get_metric(str(n), self.inputs) for n in names]
            for m in chosen:
                if self.info.kind not in m.kinds:
                    raise UserError(f"metrics.names: {m.name} applies to {', '.join(m.kinds)} data, not "
                                    f"{self.info.name} ({self.info.kind}); drop it from metrics.names.")
            return chosen
        optional = {"critic_w": bool(getattr(self.cfg, "critic_w", False))}
        return [m for m in metrics(self.inputs)
                if self.info.kind in m.kinds and (m.default or optional.get(m.name, False))]

    def _size(self, n: int) -> int:
        available = len(self.source) if hasattr(self.source, "__len__") else None
        if available is not None and n > available:
            _warn(f"metrics.num_samples={n} but {self.info.name} has only {available} training images: "
                  f"evaluating with {available} samples (set metrics.num_samples<={available} to silence this).")
            n = available
        return n

    @property
    def active(self) -> bool:
        return bool(self.metrics)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def extractor(self):
        if self._extractor is None and self.features is not None:
            if self.suite == "inception":
                from gan_cli.metrics.inception import get_inception

                self._extractor = get_inception(self.cfg.inception_weights, self.device, preprocess=self.preprocess)
            else:
                from gan_cli.metrics.classifier import get_classifier

                test = self.test_split() if self.test_split is not None else None
                self._extractor = get_classifier(str(self.info.name), self.source.images.cpu(), self.source.labels,
                                                 getattr(test, "images", None), getattr(test, "labels", None),
                                                 self.cfg.cache_dir, self.device)
        return self._extractor

    # -- real side, once -------------------------------------------------------
    def real(self):
        if self._real is None:
            if self.inputs == "points":
                gen = seeds.generator(int(self.cfg.real_seed), "eval_real", self.device)
                self._real = self.source.sample(self.n, gen).x.detach().cpu().double().numpy()
            else:
                self._real = self._real_features()
        return self._real

    def _real_features(self) -> dict:
        from gan_cli.metrics.cache import StatsCache, real_stats_key
        from gan_cli.metrics.features import extract_features, tensor_sampler

        ext, n, seed = self.extractor(), self.n, int(self.cfg.real_seed)
        key = real_stats_key(self.data_cfg, ext.cache_id, "pool+logits", n, seed)

        def compute():
            gen = seeds.generator(seed, "real_subset")
            if hasattr(self.source, "real_sampler"):  # a streamed data set: read through its DataLoader workers
                sample_fn = self.source.real_sampler(torch.randperm(len(self.source), generator=gen)[:n])
            else:
                images = self.source.images
                perm = torch.randperm(images.shape[0], generator=gen)[:n]
                sample_fn = tensor_sampler(images[perm.to(images.device)])
            return extract_features(ext, sample_fn, n, self.cfg.feature_batch, self.device)

        return StatsCache(self.cfg.cache_dir).get_or_compute(
            key, compute, meta={"data": str(self.info.name), "extractor": ext.cache_id, "n": n, "seed": seed})

    # -- one evaluation ----------------------------------------------------------
    @property
    def chunk(self) -> int:
        """How many samples ``fake`` asks ``sample_fn`` for at a time (gan_cli.training.dist shares the chunks out)."""
        return 1000 if self.inputs == "points" else int(self.cfg.feature_batch)

    def fake(self, sample_fn: Callable[[int], torch.Tensor], n: int):
        if self.inputs == "points":
            c = self.chunk
            return torch.cat([sample_fn(min(c, n - i)) for i in range(0, n, c)]).detach().cpu().double().numpy()
        from gan_cli.metrics.features import extract_features

        return extract_features(self.extractor(), sample_fn, n, self.chunk, self.device)

    def __call__(self, sample_fn: Callable[[int], torch.Tensor], n: Optional[int] = None) -> dict:
        """``{key: value}`` of every selected metric on ``n`` (default: ``self.n``) samples of ``sample_fn``."""
        if not self.metrics:
            return {}
        n = min(int(n or self.n), self.n)
        return self.score(self.real(), self.fake(sample_fn, n), n)

    def score(self, real, fake, n: int, allow_singular: bool = False) -> dict:
        """Every selected metric on given real and generated inputs (``n`` generated samples); real features
        may be statistics only (``{"mu", "sigma"}``) for FID and IS (gan-eval ref=<stats.npz>).
        ``allow_singular``: FID of fewer samples than feature dimensions too (gan-eval ref=, as the tools)."""
        ctx = MetricContext(n=n, tag=count_tag(n), info=self.info, k=self.k, features=self.features, options=self.cfg,
                            allow_singular=allow_singular, device=self.device)
        out: dict[str, float] = {}
        for m in self.metrics:
            need = max(m.min_samples, self.k + 1 if m.name == "prdc" else 2)
            if n < need:
                _warn(f"metric {m.name} skipped: it needs at least {need} samples, metrics.num_samples gives {n}.")
                continue
            try:
                out.update({k: float(v) for k, v in m.fn(real, fake, ctx).items()})
            except UserError as e:  # e.g. a covariance with fewer samples than dimensions
                _warn(f"metric {m.name} skipped: {e}")
        return out


def eval_latents(latent_dim: int, device, seed: int, kind: str = "none", psi: float = 1.0):
    """``draw(k)``: the next ``k`` latents of ``seed``'s eval stream (optionally truncated,
    :mod:`gan_cli.truncation`).  The one source of evaluation latents: one process
    (:func:`generator_sampler`) and N ranks (:func:`gan_cli.training.dist.evaluate`) score the same samples."""
    from gan_cli.truncation import truncated_noise

    gen = seeds.generator(seed, "eval", device)
    return lambda k: truncated_noise(k, latent_dim, kind, psi, gen, device)


def generator_sampler(G, latent_dim: int, device, seed: int, kind: str = "none", psi: float = 1.0):
    """``sample_fn(k)`` drawing G(z) in eval mode with latents from :func:`eval_latents`."""
    draw = eval_latents(latent_dim, device, seed, kind, psi)

    def sample(k: int) -> torch.Tensor:
        was = G.training
        G.eval()
        with torch.no_grad():
            x = G(draw(k), None)
        G.train(was)
        return x

    return sample
