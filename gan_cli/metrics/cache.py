"""On-disk cache of real-data features / statistics.

As in stylegan2-ada-pytorch ``metrics/metric_utils.py`` (``compute_feature_stats_for_dataset``:
the cache file is named by an md5 of the dataset options, detector URL, and stats
options, and written to a temp file then renamed), the key here is the sha256 of a
canonical JSON of *everything the statistics depend on*: the data set's config
fields, the extractor's ``cache_id`` (network + weight hash/version), the layer,
the sample count, the split and the seed. Files are ``.npz``, written atomically
(temp file in the same folder, flush + fsync, ``os.replace``), so a killed run or
two concurrent runs never leave a half-written file under the final name. A file
that cannot be read, or whose stored key differs, counts as absent (one warning per
file) and is recomputed and overwritten.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from gan_cli.checkpoint import atomic_write_bytes  # one atomic writer for checkpoints and caches

#: bump when the meaning of cached arrays changes (e.g. a different stats convention)
CACHE_VERSION = 1

#: data-config fields that do not change the real images (loader knobs, not content)
_DATA_FIELDS_IGNORED = ("batch_size", "latent_dim", "default_net", "download")

_warned: set = set()


def _plain(obj: Any) -> Any:
    """Config objects (OmegaConf, dataclasses, enums, paths, numpy scalars) -> JSON-able plain values."""
    try:  # OmegaConf containers
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return _plain(OmegaConf.to_container(obj, resolve=True))
    except ImportError:  # pragma: no cover
        pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return _plain(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cache key part of type {type(obj).__name__} is not JSON-able: {obj!r}")


def canonical_json(parts: Mapping[str, Any]) -> str:
    """Deterministic JSON (sorted keys, no spaces) of ``parts``."""
    return json.dumps(_plain(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def make_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex digest of :func:`canonical_json` of ``parts`` plus the cache format version."""
    text = canonical_json({"cache_version": CACHE_VERSION, **_plain(parts)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_key_fields(data_cfg: Any) -> Dict[str, Any]:
    """The data config's fields that determine the real images (all but loader knobs like batch_size)."""
    fields = _plain(data_cfg)
    if not isinstance(fields, dict):
        raise TypeError("data_cfg must be a mapping or dataclass")
    return {k: v for k, v in fields.items() if k not in _DATA_FIELDS_IGNORED}


def real_stats_key(data_cfg: Any, extractor_id: str, layer: str, num_samples: int, seed: int,
                   split: str = "train", **extra: Any) -> str:
    """Key for real-data features/statistics: data fields, extractor ``cache_id``, layer, count, split, seed."""
    return make_key({
        "data": data_key_fields(data_cfg),
        "extractor": extractor_id,
        "layer": layer,
        "num_samples": int(num_samples),
        "seed": int(seed),
        "split": split,
        "extra": extra,
    })


def _warn_once(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        warnings.warn(f"ignoring unreadable feature cache {path} ({why}); recomputing", RuntimeWarning, stacklevel=3)


class StatsCache:
    """npz files ``<cache_dir>/stats/<prefix><key>.npz`` holding named arrays plus a JSON ``meta``."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.root = Path(os.path.expanduser(str(cache_dir))) / "stats"

    def path(self, key: str, prefix: str = "") -> Path:
        return self.root / f"{prefix}{key}.npz"

    def load(self, key: str, prefix: str = "") -> Optional[Dict[str, np.ndarray]]:
        """The stored arrays, or ``None`` when absent or unreadable / of another key (warned once per file)."""
        path = self.path(key, prefix)
        if not path.is_file():
            return None
        try:
            # open the file ourselves: np.load leaks its handle when a truncated zip fails to parse
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            meta = json.loads(str(arrays.pop("__meta__")))
            if meta.get("key") != key:
                raise ValueError("stored key differs")
        except Exception as exc:
            _warn_once(path, f"{type(exc).__name__}: {exc}")
            return None
        return arrays

    def load_meta(self, key: str, prefix: str = "") -> Optional[dict]:
        path = self.path(key, prefix)
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                return json.loads(str(z["__meta__"]))
        except Exception:
            return None

    def save(self, key: str, arrays: Mapping[str, np.ndarray], meta: Optional[Mapping[str, Any]] = None,
             prefix: str = "") -> Path:
        """Atomically write ``arrays`` (and ``meta``, JSON-able, e.g. the key's parts) under ``key``."""
        if "__meta__" in arrays:
            raise ValueError("'__meta__' is reserved")
        path = self.path(key, prefix)
        meta_json = json.dumps({**_plain(dict(meta or {})), "key": key, "cache_version": CACHE_VERSION},
                               sort_keys=True)
        payload = {name: np.asarray(a) for name, a in arrays.items()}
        payload["__meta__"] = np.array(meta_json)
        atomic_write_bytes(path, lambda f: np.savez(f, **payload))
        _warned.discard(str(path))
        return path

    def get_or_compute(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]],
                       meta: Optional[Mapping[str, Any]] = None, prefix: str = "") -> Dict[str, np.ndarray]:
        """``load(key)`` if present and readable, else ``compute()``, save it, and return it."""
        arrays = self.load(key, prefix)
        if arrays is None:
            arrays = {name: np.asarray(a) for name, a in compute().items()}
            self.save(key, arrays, meta, prefix)
        return arrays
