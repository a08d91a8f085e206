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
          "stacked": ("features", "stacked"), "none": (None, None)}
#: suites whose features only their own metrics read (a metric names them in register_metric(suites=...))
EXCLUSIVE = ("stacked",)


def _warn(msg: str) -> None:
    print(f"gan_cli: warning: {msg}", file=sys.stderr)


def resolve_suite(metrics_cfg, info, source=None) -> str:
    """``auto`` -> toy for toy data; images (a domain classifier) for labelled grey-scale images;
    inception for other images when the Inception weights are on disk; else none."""
    suite = str(getattr(metrics_cfg.suite, "value", metrics_cfg.suite))
    if suite not in SUITES and suite != "auto":
        raise UserError(f"metrics.suite={suite} is unknown: use auto, {', '.join(SUITES)}.")
    labelled = source is not None and getattr(source, "labels", None) is not None
    stacked = source is not None and getattr(source, "stack_base", None) is not None
    if suite == "stacked" and source is not None and not stacked:
        raise UserError(f"metrics=stacked counts the modes of data=stacked (three images of a base set as R, G, B), "
                        f"not of data={info.name}; use metrics=auto.")
    if suite == "auto" and stacked:
        return "stacked"
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
                 test_split: Optional[Callable[[], object]] = None, n_classes: int = 0):
        """``test_split()`` gives the data set's test split as a source (images, labels): the domain
        classifier measures its accuracy there when it is first trained.  ``n_classes`` > 0: the generator is
        class-conditional (its samplers say the class of each sample), and the conditional metrics run too."""
        import_plugins(getattr(metrics_cfg, "imports", None))
        self.test_split = test_split
        self.n_classes = int(n_classes or 0)
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
        self._real_labels = None
        self._extractor = None
        self._fake_images = None  # the last fake() call's images, when a metric reads them

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
                if not self._suits(m):
                    raise UserError(f"metrics.names: {m.name} reads the features of metrics={'/'.join(m.suites or ())}"
                                    f"{'' if m.suites else 'images or inception'}, not of metrics={self.suite}; drop it.")
                if m.conditional and not self.n_classes:
                    raise UserError(f"metrics.names: {m.name} scores a class-conditional generator (cond=concat|"
                                    f"projection|acgan), and this one is unconditional; drop it from metrics.names.")
            return chosen
        optional = {"critic_w": bool(getattr(self.cfg, "critic_w", False))}
        return [m for m in metrics(self.inputs)
                if self.info.kind in m.kinds and (m.default or optional.get(m.name, False))
                and (self.n_classes or not m.conditional) and self._suits(m)
                and not (m.conditional and m.name == "class_acc" and self.features != "clf")]

    def _suits(self, m) -> bool:
        return self.suite in m.suites if m.suites is not None else self.suite not in EXCLUSIVE

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
            elif self.suite == "stacked":  # the base set's classifier labels each channel
                from gan_cli.metrics.classifier import get_classifier
                from gan_cli.metrics.stacked import StackedExtractor

                base = self.source.stack_base
                (tr, trl), (te, tel) = base.load(True), base.load(False)
                self._extractor = StackedExtractor(get_classifier(base.name, tr, trl, te, tel, self.cfg.cache_dir,
                                                                  self.device))
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

    def _real_subset(self) -> torch.Tensor:
        """The indices of the real samples scored (``metrics.real_seed``'s draw; the same for every run)."""
        gen = seeds.generator(int(self.cfg.real_seed), "real_subset")
        return torch.randperm(len(self.source), generator=gen)[:self.n]

    def real_labels(self):
        """The labels of the real samples scored (int64 numpy), or None when the data has none."""
        labels = getattr(self.source, "labels", None)
        if self._real_labels is None and labels is not None and self.inputs == "features":
            self._real_labels = labels.cpu()[self._real_subset()].numpy()
        return self._real_labels

    def _real_features(self) -> dict:
        from gan_cli.metrics.cache import StatsCache, real_stats_key
        from gan_cli.metrics.features import extract_features, tensor_sampler

        ext, n, seed = self.extractor(), self.n, int(self.cfg.real_seed)
        key = real_stats_key(self.data_cfg, ext.cache_id, "pool+logits", n, seed)

        def compute():
            perm = self._real_subset()
            if hasattr(self.source, "real_sampler"):  # a streamed data set: read through its DataLoader workers
                sample_fn = self.source.real_sampler(perm)
            else:
                images = self.source.images
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
        from gan_cli.metrics.features import extract_features, to_uint8

        self._fake_images = None
        keep = any(m.images for m in self.metrics)  # e.g. CAS trains on the generated images: keep them (uint8)
        if keep:
            kept, inner = [], sample_fn

            def sample_fn(k):
                x = inner(k)
                kept.append(to_uint8(x))
                return x

        feats = extract_features(self.extractor(), sample_fn, n, self.chunk, self.device)
        if keep:
            self._fake_images = torch.cat(kept)
        return feats

    def __call__(self, sample_fn: Callable[[int], torch.Tensor], n: Optional[int] = None) -> dict:
        """``{key: value}`` of every selected metric on ``n`` (default: ``self.n``) samples of ``sample_fn``."""
        if not self.metrics:
            return {}
        n = min(int(n or self.n), self.n)
        labels = sample_fn.labels(n) if callable(getattr(sample_fn, "labels", None)) else None
        return self.score(self.real(), self.fake(sample_fn, n), n, fake_labels=labels)

    def score(self, real, fake, n: int, allow_singular: bool = False, fake_labels=None) -> dict:
        """Every selected metric on given real and generated inputs (``n`` generated samples); real features
        may be statistics only (``{"mu", "sigma"}``) for FID and IS (gan-eval ref=<stats.npz>).
        ``allow_singular``: FID of fewer samples than feature dimensions too (gan-eval ref=, as the tools).
        ``fake_labels``: the class each generated sample was asked for (a conditional generator)."""
        conditional = self.n_classes and fake_labels is not None
        ctx = MetricContext(n=n, tag=count_tag(n), info=self.info, k=self.k, features=self.features, options=self.cfg,
                            allow_singular=allow_singular, device=self.device,
                            fake_labels=fake_labels if conditional else None,
                            real_labels=self.real_labels() if conditional else None,
                            n_classes=self.n_classes, extractor=self._extractor,
                            fake_images=self._fake_images if conditional else None, test_split=self.test_split)
        out: dict[str, float] = {}
        for m in self.metrics:
            need = max(m.min_samples, self.k + 1 if m.name == "prdc" else 2)
            if m.conditional and ctx.fake_labels is None:
                _warn(f"metric {m.name} skipped: the classes of the generated samples are not known.")
                continue
            if m.images and ctx.fake_images is None:
                _warn(f"metric {m.name} skipped: it reads the generated images, which this evaluation does not keep "
                      f"(several processes share the samples out).")
                continue
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


def class_count(G) -> int:
    """How many classes a generator is conditioned on (0: unconditional); ``G.n_classes`` set by the build."""
    return int(getattr(G, "n_classes", 0) or getattr(getattr(G, "module", None), "n_classes", 0) or 0)


def eval_classes(start: int, k: int, n_classes: int, cls: Optional[int] = None) -> torch.Tensor:
    """The classes of evaluation samples ``start .. start + k - 1`` of a conditional generator: sample i is asked
    for class ``i mod n_classes`` (every class equally often, in any chunking, on any number of ranks), or all
    for ``cls``."""
    if cls is not None:
        return torch.full((k,), int(cls), dtype=torch.long)
    return torch.arange(start, start + k) % int(n_classes)


def generator_sampler(G, latent_dim: int, device, seed: int, kind: str = "none", psi: float = 1.0,
                      cls: Optional[int] = None):
    """``sample_fn(k)`` drawing G(z) in eval mode with latents from :func:`eval_latents`; a class-conditional G
    (:func:`class_count`) is asked for the classes of :func:`eval_classes` (only ``cls`` when given), which
    ``sample_fn.labels(n)`` gives for the first ``n`` samples."""
    draw = eval_latents(latent_dim, device, seed, kind, psi)
    n_classes = class_count(G)
    if cls is not None and not 0 <= int(cls) < max(n_classes, 1):
        raise UserError(f"class {cls}: the generator has {n_classes} classes (0 .. {n_classes - 1})." if n_classes else
                        f"class {cls}: this generator is unconditional (trained with cond=none); drop the class.")
    pos = [0]

    def sample(k: int) -> torch.Tensor:
        was = G.training
        G.eval()
        c = eval_classes(pos[0], k, n_classes, cls).to(device) if n_classes else None
        with torch.no_grad():
            x = G(draw(k), c)
        G.train(was)
        pos[0] += k
        return x

    if n_classes:
        sample.labels = lambda n: eval_classes(0, n, n_classes, cls).numpy()
    return sample
