"""Metric suites: which metrics run for which data, under names that say the protocol.

A suite turns a sampler of generated data into a dict of scalars.  For image suites the
features are extracted once per extractor and shared by FID, KID, IS and P/R/D/C; the real
side's features are cached on disk (:class:`gan_cli.metrics.cache.StatsCache`) under a key
hashing the data config, the extractor (and its weights), the sample count and seed.

Names (the number is the sample count; ``_clf`` = the project's domain classifier,
``_inception`` = the FID Inception network):

  toy   modes_2.5k, hq_2.5k, rkl_2.5k (2-D mixtures), w1_2.5k (exact W1), mean_2.5k,
        std_2.5k (1-D), precision/recall/density/coverage_2.5k_k5, critic_w_2.5k (optional)
  images / inception
        fid10k_clf, kid10k_clf (x1e3 not applied: raw MMD^2), is10k_clf, is10k_clf_std,
        precision10k_k5_clf, recall..., density..., coverage...
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from gan_cli.config import UserError

log = logging.getLogger(__name__)

SUITES = ("auto", "toy", "images", "inception", "none")
DEFAULT_SAMPLES = {"toy": 2500, "images": 10000, "inception": 10000, "none": 0}
CLASSIFIER_DATA = ("mnist", "fashion_mnist", "digits")


def count_tag(n: int) -> str:
    """10000 -> '10k', 2500 -> '2.5k', 500 -> '500'."""
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


@dataclass
class SuiteContext:
    data_cfg: object
    data_source: object  # gan_cli.data.DataSource (toy sampling / info)
    metrics_cfg: object
    device: torch.device


def _value(x):
    return getattr(x, "value", x)


def resolve_suite(metrics_cfg, info, data_name: str) -> str:
    """``auto`` -> toy for toy data, images for classifier data sets, inception for other images when
    the Inception weights are on disk, else none."""
    suite = str(_value(metrics_cfg.suite))
    if suite not in SUITES:
        raise UserError(f"metrics.suite={suite} is unknown: use one of {', '.join(SUITES)}.")
    if suite != "auto":
        if suite == "toy" and info.kind == "image":
            raise UserError("metrics=toy needs toy data (ring8, grid25, mog1d, lines); use metrics=images or inception for images.")
        if suite in ("images", "inception") and info.kind != "image":
            raise UserError(f"metrics={suite} needs image data; use metrics=toy for {data_name}.")
        if suite == "images" and data_name not in CLASSIFIER_DATA:
            raise UserError(f"metrics=images has a domain classifier for {', '.join(CLASSIFIER_DATA)} only; use metrics=inception for {data_name}.")
        return suite
    if info.kind != "image":
        return "toy"
    if data_name in CLASSIFIER_DATA:
        return "images"
    from gan_cli.metrics.inception import find_weights

    try:
        find_weights(getattr(metrics_cfg, "inception_weights", None), download=False)
        return "inception"
    except UserError as e:
        log.warning("no metric suite for %s: %s", data_name, e)
        return "none"


# ----------------------------------------------------------------------------- toy


def toy_metrics(real: torch.Tensor, fake: torch.Tensor, info, k: int = 5, critic_w: bool = False) -> dict:
    from gan_cli.metrics import toy
    from gan_cli.metrics.prdc import prdc

    n = fake.shape[0]
    t = count_tag(n)
    real_np, fake_np = real.detach().cpu().double().numpy(), fake.detach().cpu().double().numpy()
    out: dict[str, float] = {}
    if info.kind == "toy2d" and info.centers is not None:
        mm = toy.mode_metrics(fake_np, info.centers, info.std)
        out.update({f"modes_{t}": mm["modes"], f"hq_{t}": mm["high_quality"], f"rkl_{t}": mm["reverse_kl"]})
    if info.kind == "toy1d":
        mu, sd = toy.gaussian_fit(fake_np)
        out.update({f"mean_{t}": mu, f"std_{t}": sd, f"w1_{t}": toy.w1_1d(real_np, fake_np)})
    else:
        out[f"w1_{t}"] = toy.w1_exact(real_np, fake_np)
    out.update({f"{name}_{t}_k{k}": v for name, v in prdc(real_np, fake_np, k=k).items()})
    if critic_w:
        from gan_cli.metrics.critic_w import critic_w1

        out[f"critic_w_{t}"] = critic_w1(real.cpu(), fake.cpu())
    return out


# ----------------------------------------------------------------------------- images


def get_extractor(suite: str, ctx: SuiteContext):
    if suite == "inception":
        from gan_cli.metrics.inception import get_inception

        return get_inception(ctx.metrics_cfg.inception_weights, ctx.device)
    from gan_cli.data import load_images
    from gan_cli.metrics.classifier import get_classifier

    tr_x, tr_y = load_images(ctx.data_cfg, "train")
    te_x, te_y = load_images(ctx.data_cfg, "test")
    return get_classifier(str(ctx.data_cfg.name), tr_x, tr_y, te_x, te_y, ctx.metrics_cfg.cache_dir, ctx.device)


def real_features(extractor, ctx: SuiteContext, n: int) -> dict[str, np.ndarray]:
    """Features of n real training images (a seeded subset), cached on disk."""
    from gan_cli.data import load_images
    from gan_cli.metrics.cache import StatsCache, real_stats_key
    from gan_cli.metrics.features import extract_features, tensor_sampler

    seed = int(ctx.metrics_cfg.real_seed)
    key = real_stats_key(ctx.data_cfg, extractor.cache_id, "pool+logits", n, seed)

    def compute():
        images, _ = load_images(ctx.data_cfg, "train")
        if images.shape[0] < n:
            raise UserError(
                f"metrics.num_samples={n} but {ctx.data_cfg.name} has only {images.shape[0]} training images; "
                f"lower metrics.num_samples."
            )
        perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        return extract_features(extractor, tensor_sampler(images[perm]), n, ctx.metrics_cfg.feature_batch, ctx.device)

    return StatsCache(ctx.metrics_cfg.cache_dir).get_or_compute(
        key, compute, meta={"data": str(ctx.data_cfg.name), "extractor": extractor.cache_id, "n": n, "seed": seed}
    )


def feature_metrics(real: dict, fake: dict, tag: str, k: int = 5) -> dict:
    """FID, KID, IS and P/R/D/C from precomputed features ({'pool', 'logits'} arrays)."""
    from gan_cli.metrics.fid import features_to_stats, stats_to_fid
    from gan_cli.metrics.inception_score import inception_score
    from gan_cli.metrics.kid import kid
    from gan_cli.metrics.prdc import prdc

    n = fake["pool"].shape[0]
    t = count_tag(n)
    mu_r, s_r = features_to_stats(real["pool"])
    mu_f, s_f = features_to_stats(fake["pool"])
    out = {f"fid{t}_{tag}": stats_to_fid(mu_r, s_r, mu_f, s_f)}
    m = min(1000, n, real["pool"].shape[0])
    kid_mean, kid_std = kid(fake["pool"], real["pool"], subsets=100, subset_size=m)
    out[f"kid{t}_{tag}"], out[f"kid{t}_{tag}_std"] = kid_mean, kid_std
    is_mean, is_std = inception_score(fake["logits"], splits=10)
    out[f"is{t}_{tag}"], out[f"is{t}_{tag}_std"] = is_mean, is_std
    for name, v in prdc(real["pool"], fake["pool"], k=k).items():
        out[f"{name}{t}_k{k}_{tag}"] = v
    return out


def run_suite(suite: str, sample_fn: Callable[[int], torch.Tensor], ctx: SuiteContext, n: int | None = None) -> dict:
    """Evaluate generated samples from ``sample_fn(k) -> (k, ...)`` with ``suite``."""
    n = int(n or ctx.metrics_cfg.num_samples or DEFAULT_SAMPLES[suite])
    if suite == "none":
        return {}
    if suite == "toy":
        gen = torch.Generator(ctx.device).manual_seed(int(ctx.metrics_cfg.real_seed) + 12345)
        real = ctx.data_source.sample(n, gen)
        fake = torch.cat([sample_fn(min(1000, n - i)) for i in range(0, n, 1000)])
        return toy_metrics(real, fake, ctx.data_source.info, int(ctx.metrics_cfg.k), bool(ctx.metrics_cfg.critic_w))
    if suite in ("images", "inception"):
        from gan_cli.metrics.features import extract_features

        extractor = get_extractor(suite, ctx)
        real = real_features(extractor, ctx, n)
        fake = extract_features(extractor, sample_fn, n, ctx.metrics_cfg.feature_batch, ctx.device)
        tag = "inception" if suite == "inception" else "clf"
        return feature_metrics(real, fake, tag, int(ctx.metrics_cfg.k))
    raise UserError(f"metrics.suite={suite} is unknown: use one of {', '.join(SUITES)}.")


def generator_sampler(G, latent_dim: int, device, seed: int, kind: str = "none", psi: float = 1.0):
    """``sample_fn(k)`` drawing G(z) in eval mode with seeded (optionally truncated) latents."""
    from gan_cli.truncation import truncated_noise

    gen = torch.Generator(device).manual_seed(seed)

    def sample(k: int) -> torch.Tensor:
        was = G.training
        G.eval()
        with torch.no_grad():
            x = G(truncated_noise(k, latent_dim, kind, psi, gen, device))
        G.train(was)
        return x

    return sample
