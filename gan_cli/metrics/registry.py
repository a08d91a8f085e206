"""The metric registry: every metric registers itself by name (the style of stylegan2-ada-pytorch
``metrics/metric_main.py``, ``register_metric``), and :class:`gan_cli.metrics.evaluator.Evaluator`
runs the ones a config names.

A metric is a function ``fn(real, fake, ctx) -> {key: float}`` of either

* ``inputs="points"``: real and generated samples as float64 numpy arrays ``(n, d)`` (toy data), or
* ``inputs="features"``: dicts ``{"pool": (n, dims), "logits": (n, classes)}`` of extractor features
  (images), extracted once and shared by every feature metric;

``ctx`` (:class:`MetricContext`) gives the sample count, its tag (``2.5k``, ``10k``), the extractor's
tag (``clf``, ``inception``), the data's :class:`~gan_cli.data.DataInfo` and ``k``.  The keys it
returns say the protocol (``fid10k_clf``, ``modes_2.5k``).  Register with::

    @register_metric("mmd", inputs="points", kinds=("toy2d",), directions={"mmd": "min"})
    def mmd(real, fake, ctx):
        return {f"mmd_{ctx.tag}": ...}

A user's metric module is imported through ``metrics.imports=[my_pkg.my_metrics]``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from gan_cli.config import UserError

#: samples per evaluation when metrics.num_samples=0, by data kind (the one defaults table)
DEFAULT_SAMPLES = {"toy2d": 2500, "toy1d": 2500, "image": 10000}
ALL_KINDS = ("toy2d", "toy1d", "image")


@dataclass(frozen=True)
class MetricContext:
    n: int  # generated samples (and at most as many real ones)
    tag: str  # count tag: 2500 -> "2.5k"
    info: Any  # gan_cli.data.DataInfo
    k: int = 5  # k-NN size
    features: Optional[str] = None  # extractor tag for feature metrics ("clf", "inception")
    options: Any = None  # the metrics config
    # FID of n <= d samples (singular covariances), as the folder-vs-folder tools compute it (gan-eval ref=)
    allow_singular: bool = False
    device: Any = None  # where feature math may run (the run's device; None: the CPU), e.g. PRDC's k-NN tiles
    # a class-conditional generator's evaluation: the classes asked for, one per generated sample, and the real
    # samples' labels, int64 numpy arrays (None for an unconditional one); n_classes: their count
    fake_labels: Any = None
    real_labels: Any = None
    n_classes: int = 0
    extractor: Any = None  # the feature extractor (e.g. the domain classifier's held-out accuracy)
    fake_images: Any = None  # the generated images (uint8, CPU) for a metric registered with images=True
    test_split: Any = None  # () -> the data set's test split (a source with images, labels), or None


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Any, Any, MetricContext], dict]
    inputs: str  # "points" | "features"
    kinds: tuple = ALL_KINDS
    default: bool = True  # run when metrics.names is empty
    directions: dict = field(default_factory=dict)  # output name prefix -> "min" | "max"
    min_samples: int = 2  # fewer samples than this: skipped with one line
    doc: str = ""
    order: int = 50  # position in the default list and in tables
    conditional: bool = False  # needs the classes of the generated samples: run for class-conditional generators
    suites: Optional[tuple] = None  # the suites whose features it reads (None: every suite but the exclusive ones)
    images: bool = False  # reads the generated images themselves (ctx.fake_images), beside their features


_METRICS: dict[tuple[str, str], Metric] = {}  # (name, inputs) -> metric: one name may serve both inputs
_builtins_loaded = False


def register_metric(name: str, *, inputs: str, kinds=ALL_KINDS, default: bool = True,
                    directions: Optional[dict] = None, min_samples: int = 2, order: int = 50, conditional: bool = False,
                    suites: Optional[tuple] = None, images: bool = False):
    """Decorator: register ``fn(real, fake, ctx) -> dict`` as metric ``name``; ``conditional``: it reads the classes
    of the generated samples (``ctx.fake_labels``), and runs by default for class-conditional generators only."""
    if inputs not in ("points", "features"):
        raise ValueError(f"register_metric({name!r}): inputs must be 'points' or 'features', not {inputs!r}")

    def deco(fn):
        _METRICS[(name, inputs)] = Metric(name, fn, inputs, tuple(kinds), default, dict(directions or {}), int(min_samples),
                                (fn.__doc__ or "").strip().split("\n")[0], int(order), bool(conditional),
                                tuple(suites) if suites is not None else None, bool(images))
        return fn

    return deco


def _load_builtins() -> None:
    """Import every module of gan_cli.metrics once (the built-in metrics register on import)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    import gan_cli.metrics as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"gan_cli.metrics.{mod.name}")


def import_plugins(modules) -> None:
    """Import the user's metric modules (``metrics.imports``); one line if one cannot be imported."""
    for name in modules or ():
        try:
            importlib.import_module(str(name))
        except ImportError as e:
            raise UserError(f"metrics.imports: cannot import {name} ({e}); check the module name and that its "
                            f"folder is on PYTHONPATH.") from None


def metrics(inputs: Optional[str] = None) -> list[Metric]:
    """The registered metrics (for ``inputs`` only, when given), in registration order."""
    _load_builtins()
    return sorted((m for (_, inp), m in _METRICS.items() if inputs is None or inp == inputs), key=lambda m: m.order)


def get_metric(name: str, inputs: str) -> Metric:
    """The metric ``name`` that takes ``inputs``; one line naming the registered ones otherwise."""
    _load_builtins()
    if (name, inputs) in _METRICS:
        return _METRICS[(name, inputs)]
    what = "toy data (points)" if inputs == "points" else "image features"
    have = sorted({m.name for m in metrics(inputs)})
    other = " (it exists for the other kind of data)" if any(n == name for n, _ in _METRICS) else ""
    raise UserError(f"metrics.names: no metric {name!r} for {what}{other}; registered: {', '.join(have)} "
                    f"(a metric of your own: metrics.imports=[your.module] with @register_metric).")


def direction(key: str) -> Optional[str]:
    """``"min"`` or ``"max"`` for an output key (``fid10k_clf`` -> min), None when unknown."""
    best = None
    for m in metrics():
        for prefix, d in m.directions.items():
            if key.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, d)
    return best[1] if best else None


def count_tag(n: int) -> str:
    """10000 -> '10k', 2500 -> '2.5k', 500 -> '500'."""
    return f"{n / 1000:g}k" if n >= 1000 else str(n)
