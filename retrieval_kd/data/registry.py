"""Dataset registry: `load(name)` normalises a raw collection once into the cache and reads it back."""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import DataNotFoundError
from retrieval_kd.paths import cache_root, data_root

# Modules whose import registers readers (kept lazy so `rkd --help` stays fast).
_READER_MODULES = ("classic", "medquad", "cast", "liveqa", "medical_zh")


@dataclass
class Entry:
    name: str
    build: Callable[[Path], Dataset]  # raw data root -> Dataset
    description: str
    raw: str  # folder under the data root that must exist
    version: int = 1  # bump when the reader's output changes, to refresh caches


_REGISTRY: dict[str, Entry] = {}


def register(name: str, raw: str, description: str, version: int = 1):
    """Decorator: register `fn(data_root) -> Dataset` under `name`."""

    def deco(fn: Callable[[Path], Dataset]) -> Callable[[Path], Dataset]:
        _REGISTRY[name] = Entry(name, fn, description, raw, version)
        return fn

    return deco


def _ensure_loaded() -> None:
    for mod in _READER_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise


def available() -> dict[str, Entry]:
    """All registered dataset names with their entries."""
    _ensure_loaded()
    return dict(sorted(_REGISTRY.items()))


def prepare(name: str, root: Path | None = None, refresh: bool = False) -> Path:
    """Normalise `name` into the cache (if not there yet) and return its folder."""
    entries = available()
    if name not in entries:
        raise DataNotFoundError(f"unknown dataset '{name}'; known: {', '.join(entries)}")
    entry = entries[name]
    dest = cache_root() / "datasets" / f"{name}-v{entry.version}"
    if (dest / "meta.json").exists() and not refresh:
        return dest
    root = Path(root) if root else data_root()
    if not (root / entry.raw).is_dir():
        from retrieval_kd.data import demo

        if demo.has(name):
            return demo.path(name)
        raise DataNotFoundError(
            f"dataset '{name}' needs {root / entry.raw}; set RKD_DATA to the folder holding '{entry.raw}/'"
        )
    ds = entry.build(root)
    ds.meta.setdefault("reader_version", entry.version)
    ds.save(dest)
    return dest


def load(name: str, root: Path | None = None, refresh: bool = False) -> Dataset:
    """Load a dataset by registered name, or from a dataset folder path."""
    p = Path(name)
    if (p / "meta.json").exists():
        return Dataset.load(p)
    return Dataset.load(prepare(name, root=root, refresh=refresh))


def describe() -> list[dict]:
    """One row per registered dataset: name, description, whether raw data or a cached copy is present."""
    rows = []
    root = data_root()
    for name, e in available().items():
        cached = cache_root() / "datasets" / f"{name}-v{e.version}" / "meta.json"
        counts = json.loads(cached.read_text())["counts"] if cached.exists() else None
        rows.append({"name": name, "description": e.description, "raw": (root / e.raw).is_dir(), "counts": counts})
    return rows
