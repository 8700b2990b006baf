"""Dataset registry: `load(name)` normalises a raw collection once into the cache and reads it back."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import DataNotFoundError
from retrieval_kd.paths import cache_root, data_root
from retrieval_kd.registry import LazyRegistry


@dataclass
class Entry:
    name: str
    build: Callable[[Path], Dataset]  # raw data root -> Dataset
    description: str
    raw: str  # folder under the data root that must exist
    version: int = 1  # bump when the reader's output changes, to refresh caches


# Reader modules register their datasets when first needed (kept lazy so `rkd --help` stays fast).
READERS = LazyRegistry("dataset", error=DataNotFoundError, modules=[
    f"retrieval_kd.data.{m}" for m in ("classic", "medquad", "cast", "liveqa", "medical_zh", "scifact")])


def register(name: str, raw: str, description: str, version: int = 1):
    """Decorator: register `fn(data_root) -> Dataset` under `name`."""

    def deco(fn: Callable[[Path], Dataset]) -> Callable[[Path], Dataset]:
        READERS.add(name)(Entry(name, fn, description, raw, version))
        return fn

    return deco


def available() -> dict[str, Entry]:
    """All registered dataset names with their entries."""
    return {name: READERS.get(name) for name in READERS.names()}


def prepare(name: str, root: Path | None = None, refresh: bool = False) -> Path:
    """Normalise `name` into the cache (if not there yet) and return its folder."""
    entry = READERS.get(name)
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


def imported_path(name: str) -> Path:
    """Where `rkd data import --name NAME` writes by default (and where `load(NAME)` finds it)."""
    return cache_root() / "imported" / name


def imported() -> list[str]:
    """Names of the dataset folders under `imported_path` (written by `rkd data import`)."""
    root = cache_root() / "imported"
    return sorted(p.parent.name for p in root.glob("*/meta.json")) if root.is_dir() else []


def load(name: str | Path, root: Path | None = None, refresh: bool = False) -> Dataset:
    """Load a dataset from a dataset folder path (one with meta.json, e.g. written by `Dataset.save` or
    `rkd data import`), by registered name (normalised once into the cache), or by the name of an imported one.

    An unknown name is a DataNotFoundError listing the registered and imported names; a path that exists but
    holds no meta.json is a DataNotFoundError saying so.
    """
    p = Path(name)
    if (p / "meta.json").exists():
        return Dataset.load(p)
    name = str(name)
    if name in READERS:
        return Dataset.load(prepare(name, root=root, refresh=refresh))
    if (imported_path(name) / "meta.json").exists():
        return Dataset.load(imported_path(name))
    if p.exists() or len(p.parts) > 1:
        raise DataNotFoundError(f"{p}: not a dataset folder (no meta.json); write one with `rkd data import`")
    extra = f"; imported: {', '.join(imported())}" if imported() else ""
    raise DataNotFoundError(f"unknown dataset {name!r}; known: {', '.join(READERS.names())}{extra}; or give the "
                            f"path of a dataset folder (one with meta.json)")


def describe() -> list[dict]:
    """One row per registered or imported dataset: name, description, whether raw data is present, cached counts."""
    rows = []
    root = data_root()
    for name, e in available().items():
        cached = cache_root() / "datasets" / f"{name}-v{e.version}" / "meta.json"
        counts = json.loads(cached.read_text())["counts"] if cached.exists() else None
        rows.append({"name": name, "description": e.description, "raw": (root / e.raw).is_dir(), "counts": counts})
    for name in imported():
        meta = json.loads((imported_path(name) / "meta.json").read_text())
        rows.append({"name": name, "description": f"imported ({meta.get('format', '?')}) from {meta.get('source')}",
                     "raw": True, "counts": meta.get("counts")})
    return rows


def build_demo(name: str = "cacm", root: Path | None = None, dest: Path | None = None) -> Path:
    """Normalise `name` from the raw files and write the gzipped copy plus NOTICE into the demo folder."""
    from retrieval_kd.data import demo

    if name not in demo.NOTICES:
        raise DataNotFoundError(f"no demo recipe for '{name}' (have: {', '.join(demo.NOTICES)})")
    entry = READERS.get(name)
    root = Path(root) if root else data_root()
    if not (root / entry.raw).is_dir():
        raise DataNotFoundError(f"building the demo needs {root / entry.raw}")
    ds = entry.build(root)
    ds.meta.setdefault("reader_version", entry.version)
    ds.meta["embedded"] = "normalised copy shipped in retrieval_kd/data/demo; see NOTICE"
    dest = Path(dest) if dest else demo.DEMO_DIR / name
    ds.save(dest, compress=True)
    (dest / "NOTICE").write_text(demo.NOTICES[name], encoding="utf-8")
    size = sum(p.stat().st_size for p in dest.iterdir())
    if size > demo.MAX_BYTES:
        raise RuntimeError(f"demo {name} is {size:,} bytes, over the {demo.MAX_BYTES:,} limit")
    return dest
