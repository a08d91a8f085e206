"""On-disk cache of real-data features / statistics.

As in stylegan2-ada-pytorch ``metrics/metric_utils.py`` (``compute_feature_stats_for_dataset``:
the cache file is named by an md5 of the dataset options, detector URL, and stats
options, and written to a temp file then renamed), the key here is the sha256 of a
canonical JSON of *everything the statistics depend on*: the data set's config
fields, the extractor's ``cache_id`` (network + weight hash/version), the layer,
the sample count, the split and the seed. Files are ``.npz``, written atomically
(temp file in the same folder, flush + fsync, ``os.replace``), so a killed run or
two concurrent runs never leave a half-written file under the final name.

A file is trusted only if it checks out against the record its ``meta`` keeps of every
array (name, shape, dtype, sha256 of the bytes): a file that is not a regular file (a
FIFO, a symlink to a device -- never opened), cannot be read, holds another key, lacks
that record, or has a missing / extra / reshaped / altered array counts as absent: one
warning line (which file, what is wrong, "recomputing"), then it is recomputed and
replaced atomically.  Loading never unpickles (``allow_pickle=False``).
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from gan_cli.files import NotARegularFile, atomic_write_bytes, open_regular

#: bump when the meaning of cached arrays changes (e.g. a different stats convention)
CACHE_VERSION = 1

#: data-config fields that do not change the real images (loader knobs, not content)
# how the images are loaded, not which: the on-device tensor and the DataLoader stream give the same images
_DATA_FIELDS_IGNORED = ("batch_size", "latent_dim", "default_net", "download", "loader", "memory_budget_gb",
                        "num_workers", "start_method")

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
        why = " ".join(str(why).split())[:300]  # one line, whatever the exception said
        warnings.warn(f"ignoring unreadable feature cache {path} ({why}); recomputing", RuntimeWarning, stacklevel=3)


class _Damaged(Exception):
    """A cache file that must not be used; the message says why."""


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


def _record(a: np.ndarray) -> dict:
    """What a stored array must match on load: shape, dtype and a checksum of its bytes (C order)."""
    return {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha256(a)}


def _read_member(zf: zipfile.ZipFile, name: str, want: Optional[dict] = None) -> np.ndarray:
    """Array ``name`` of an npz opened as a zip; with ``want`` (its record) the header is checked
    against it before any data is read (a damaged header cannot ask for a huge allocation)."""
    try:
        if want is not None:
            with zf.open(f"{name}.npy") as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise _Damaged(f"array '{name}' has npy format version {version}")
                read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
                shape, _fortran, dtype = read_header(f)
            if list(shape) != list(want["shape"]) or dtype.str != want["dtype"]:
                raise _Damaged(f"array '{name}' has shape {tuple(shape)} {dtype.str}, "
                               f"expected {tuple(want['shape'])} {want['dtype']}")
        with zf.open(f"{name}.npy") as f:  # zipfile checks the member's CRC-32 as it reaches the end
            return np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise _Damaged(f"array '{name}' is damaged or cut short ({type(e).__name__}: {e})") from None


def _read_checked(path: Path, key: str) -> Dict[str, np.ndarray]:
    """The arrays of a cache file, checked against the record in its meta; raises :class:`_Damaged`."""
    try:
        f = open_regular(path)  # a FIFO or a device is never opened (a FIFO would block)
    except NotARegularFile as e:
        raise _Damaged(e.reason) from None
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, EOFError) as e:
            raise _Damaged(f"truncated or not an npz file: {e}") from None
        with zf:
            entries = zf.namelist()
            names = {n[: -len(".npy")] for n in entries if n.endswith(".npy")}
            if len(names) != len(entries) or "__meta__" not in names:
                raise _Damaged("not a gan_cli feature cache (no __meta__ array)")
            try:
                meta = json.loads(str(_read_member(zf, "__meta__")))
            except json.JSONDecodeError as e:
                raise _Damaged(f"its meta is not JSON ({e})") from None
            if not isinstance(meta, dict) or meta.get("key") != key:
                raise _Damaged("stored key differs")
            record = meta.get("arrays")
            if not isinstance(record, dict):
                raise _Damaged("no integrity record: written by an older gan_cli")
            names.discard("__meta__")
            if names != set(record):
                raise _Damaged(f"holds arrays {sorted(names)}, expected {sorted(record)}")
            arrays = {}
            for name in sorted(record):
                a = _read_member(zf, name, record[name])
                if _sha256(a) != record[name]["sha256"]:
                    raise _Damaged(f"array '{name}' fails its sha256 checksum: the file is damaged")
                arrays[name] = a
    return arrays


class StatsCache:
    """npz files ``<cache_dir>/stats/<prefix><key>.npz`` holding named arrays plus a JSON ``meta``."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.root = Path(os.path.expanduser(str(cache_dir))) / "stats"

    def path(self, key: str, prefix: str = "") -> Path:
        return self.root / f"{prefix}{key}.npz"

    def load(self, key: str, prefix: str = "") -> Optional[Dict[str, np.ndarray]]:
        """The stored arrays, or ``None`` when absent, or unusable for any reason (warned once per file)."""
        path = self.path(key, prefix)
        if not os.path.lexists(path):
            return None
        try:
            arrays = _read_checked(path, key)
        except _Damaged as exc:
            _warn_once(path, str(exc))
            return None
        except Exception as exc:  # unreadable in a way not foreseen above: still never trusted
            _warn_once(path, f"{type(exc).__name__}: {exc}")
            return None
        return arrays

    def load_meta(self, key: str, prefix: str = "") -> Optional[dict]:
        """The file's ``meta`` as stored (not checked against the arrays), or ``None`` if it cannot be read."""
        path = self.path(key, prefix)
        try:
            with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
                return json.loads(str(z["__meta__"]))
        except Exception:
            return None

    def save(self, key: str, arrays: Mapping[str, np.ndarray], meta: Optional[Mapping[str, Any]] = None,
             prefix: str = "") -> Path:
        """Atomically write ``arrays`` (and ``meta``, JSON-able, e.g. the key's parts) under ``key``."""
        if "__meta__" in arrays:
            raise ValueError("'__meta__' is reserved")
        path = self.path(key, prefix)
        payload = {name: np.asarray(a) for name, a in arrays.items()}
        for name, a in payload.items():
            if a.dtype.hasobject:
                raise ValueError(f"array '{name}' holds Python objects; the cache stores plain numeric arrays only")
        record = {name: _record(a) for name, a in payload.items()}
        meta_json = json.dumps({**_plain(dict(meta or {})), "key": key, "cache_version": CACHE_VERSION,
                                "arrays": record}, sort_keys=True)
        payload["__meta__"] = np.array(meta_json)
        atomic_write_bytes(path, lambda f: np.savez(f, **payload))
        _warned.discard(str(path))
        return path

    def get_or_compute(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]],
                       meta: Optional[Mapping[str, Any]] = None, prefix: str = "") -> Dict[str, np.ndarray]:
        """``load(key)`` if present and intact, else ``compute()``, save it (atomically replacing a damaged
        file), and return it."""
        arrays = self.load(key, prefix)
        if arrays is None:
            arrays = {name: np.asarray(a) for name, a in compute().items()}
            self.save(key, arrays, meta, prefix)
        return arrays
