"""Content-addressed embedding store: rows cached per (model, text hash) in chunks; lists assembled from it.

Layout under the cache folder (default `$RKD_CACHE/embeddings`):

- `store/<fingerprint>/<chunk>.keys` (16-byte sha256 prefixes of the texts, one per row), `<chunk>.f32` or `.f16`
  (the rows), `<chunk>.json` (rows, dim, dtype) — the json is renamed into place last, so a chunk exists only
  whole. A corpus that grows or merges encodes only the texts the store lacks; an interrupted run loses at most
  the chunk it was writing. Shards (`shard=(i, n)`) encode disjoint parts of the missing texts into the same store
  from separate processes or machines with a shared disk; no lock is needed because chunk names are unique.
- `<digest>.f32` / `<digest>.json` (`.f16`, `.f16.json`): one text list assembled in its order (a read-only
  memmap for the caller), keyed by (model, key, texts); written under `<data>.lock` (flock) via a temporary file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.utils import atomic_file, write_json

# dtype -> (data suffix, meta suffix); float32 keeps the names of the first cache format
SUFFIXES = {"float32": (".f32", ".json"), "float16": (".f16", ".f16.json")}
KEY_BYTES = 16


def text_keys(texts: Sequence[str]) -> list[bytes]:
    """The store key of each text: the first 16 bytes of sha256(text)."""
    return [hashlib.sha256(t.encode("utf-8")).digest()[:KEY_BYTES] for t in texts]


def check_dtype(dtype: str) -> str:
    if dtype not in SUFFIXES:
        raise RKDError(f"embedding cache dtype must be one of {sorted(SUFFIXES)}, got {dtype!r}")
    return dtype


class Store:
    """The chunks of one model fingerprint: look rows up by text key, add new chunks."""

    def __init__(self, folder: Path):
        self.folder = folder

    def chunks(self) -> list[tuple[str, dict]]:
        """Committed chunks as (stem, meta), oldest first."""
        if not self.folder.is_dir():
            return []
        out = []
        for meta_path in sorted(self.folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
            try:
                out.append((meta_path.stem, json.loads(meta_path.read_text())))
            except (OSError, json.JSONDecodeError):
                continue  # a chunk being replaced: skip it, its texts count as missing
        return out

    def locate(self, wanted: dict[bytes, int]) -> dict[int, tuple[str, int, dict]]:
        """For each wanted key's id, one (chunk, row, meta) holding it."""
        found: dict[int, tuple[str, int, dict]] = {}
        for stem, meta in self.chunks():
            raw = (self.folder / f"{stem}.keys").read_bytes()
            for row in range(len(raw) // KEY_BYTES):
                uid = wanted.get(raw[row * KEY_BYTES : (row + 1) * KEY_BYTES])
                if uid is not None and uid not in found:
                    found[uid] = (stem, row, meta)
        return found

    def rows(self, stem: str, meta: dict) -> np.memmap:
        suffix = SUFFIXES[meta["dtype"]][0]
        return np.memmap(self.folder / f"{stem}{suffix}", dtype=meta["dtype"], mode="r",
                         shape=(meta["rows"], meta["dim"]))

    def add(self, keys: list[bytes], vectors: np.ndarray, dtype: str) -> None:
        """Commit one chunk (keys and rows first, the meta last)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        with atomic_file(self.folder / f"{stem}.keys", "wb") as fh:
            fh.write(b"".join(keys))
        with atomic_file(self.folder / f"{stem}{SUFFIXES[dtype][0]}", "wb") as fh:
            fh.write(np.ascontiguousarray(vectors, dtype=dtype).tobytes())
        write_json(self.folder / f"{stem}.json", {"rows": len(keys), "dim": int(vectors.shape[1]), "dtype": dtype})


class Assembled:
    """One text list's matrix in its order (format in the module docstring)."""

    def __init__(self, base: Path, digest: str, dtype: str = "float32"):
        self.dtype = check_dtype(dtype)
        data, meta = SUFFIXES[dtype]
        self.path, self.meta_path = base / f"{digest}{data}", base / f"{digest}{meta}"
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive flock while writing (one writer per entry; no lock where fcntl is missing)."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self) -> np.memmap | None:
        """The assembled matrix (read-only memmap), or None when it is not there."""
        if not (self.path.exists() and self.meta_path.exists()):
            return None
        meta = json.loads(self.meta_path.read_text())
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=tuple(meta["shape"]))

    def write(self, meta: dict, store: Store, found: dict[int, tuple[str, int, dict]], inverse: np.ndarray):
        """Gather every row from the store chunk by chunk into a temporary memmap, then rename it into place."""
        n, dim = meta["shape"]
        by_chunk: dict[str, list[tuple[int, int]]] = {}
        for uid, (stem, row, _) in found.items():
            by_chunk.setdefault(stem, []).append((uid, row))
        metas = {stem: m for stem, _, m in found.values()}
        positions: dict[int, list[int]] = {}
        for pos, uid in enumerate(inverse.tolist()):
            positions.setdefault(uid, []).append(pos)
        with atomic_file(self.path, "wb") as fh:
            out = np.memmap(fh.name, dtype=self.dtype, mode="w+", shape=(n, dim)) if n else None
            for stem, pairs in by_chunk.items():
                src = store.rows(stem, metas[stem])
                rows = np.asarray([r for _, r in pairs])
                block = np.asarray(src[rows], dtype=self.dtype)
                for (uid, _), vec in zip(pairs, block):
                    out[positions[uid]] = vec
            if out is not None:
                out.flush()
                del out
        with atomic_file(self.meta_path, "w") as fh:
            json.dump(meta, fh)
        self.lock_path.unlink(missing_ok=True)
        return self.read() if n else np.zeros((0, dim), dtype=self.dtype)


def encode_missing(store: Store, texts: list[str], keys: list[bytes], embed: Callable[[list[str]], np.ndarray],
                   batch: int, chunk: int, dtype: str, show_progress: bool, label: str) -> int:
    """Encode `texts` (already known to be missing) longest first, one committed chunk per `chunk` texts."""
    from tqdm.auto import tqdm

    if not texts:
        return 0
    order = np.argsort([-len(t) for t in texts], kind="stable")
    per_chunk = max(1, -(-max(1, chunk) // batch)) * batch
    bar = tqdm(total=len(texts), disable=not show_progress, desc=label, unit="text")
    t0, announced = time.perf_counter(), False
    for c in range(0, len(texts), per_chunk):
        rows = order[c : c + per_chunk]
        vecs = []
        for b in range(0, len(rows), batch):
            part = rows[b : b + batch]
            vecs.append(embed([texts[i] for i in part]))
            bar.update(len(part))
            if not announced and show_progress:
                announced = True
                rate = len(part) / max(time.perf_counter() - t0, 1e-6)
                print(f"{label}: {len(texts)} texts to encode, about {len(texts) / rate / 60:.1f} min "
                      f"at the first batch's {rate:.0f} texts/s (longest first, so it speeds up)",
                      file=sys.stderr, flush=True)
        store.add([keys[i] for i in rows], np.concatenate(vecs), dtype)
    bar.close()
    return len(texts)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/n' (0 <= i < n) -> (i, n); None stays None."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise RKDError(f"--shard: expected i/n such as 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise RKDError(f"--shard: need 0 <= i < n, got {text!r}")
    return i, n


def cached_matrix(base: Path, fingerprint: str, digest: str, texts: Sequence[str], meta: dict,
                  embed: Callable[[list[str]], np.ndarray], batch: int, chunk: int, dtype: str = "float32",
                  show_progress: bool = True, shard: tuple[int, int] | None = None, label: str = "encode"):
    """The matrix of `texts` (memmap in their order), encoding only texts the store lacks.

    With `shard=(i, n)` only the i-th of n disjoint parts of the missing texts is encoded and nothing is
    assembled: the return value is the number of texts this shard encoded.
    """
    texts = list(texts)
    entry = Assembled(base, digest, dtype)
    if shard is None:
        hit = entry.read()
        if hit is not None:
            return hit
    store = Store(base / "store" / fingerprint)
    keys = text_keys(texts)
    wanted: dict[bytes, int] = {}
    inverse = np.fromiter((wanted.setdefault(k, len(wanted)) for k in keys), dtype=np.int64, count=len(keys))
    uniq = [b""] * len(wanted)
    first = [0] * len(wanted)
    for pos in range(len(keys) - 1, -1, -1):
        uniq[inverse[pos]], first[inverse[pos]] = keys[pos], pos
    if shard is not None:
        found = store.locate(wanted)
        mine = sorted(range(len(uniq)), key=lambda u: uniq[u])[shard[0] :: shard[1]]  # a fixed split of all texts
        todo = [u for u in mine if u not in found]
        return encode_missing(store, [texts[first[u]] for u in todo], [uniq[u] for u in todo], embed, batch, chunk,
                              dtype, show_progress, f"{label} shard {shard[0]}/{shard[1]}")
    with entry.lock():
        hit = entry.read()  # another process may have written it while this one waited
        if hit is not None:
            return hit
        found = store.locate(wanted)
        todo = [u for u in range(len(uniq)) if u not in found]
        if show_progress and found:
            print(f"{label}: {len(found)} of {len(uniq)} distinct texts already cached", file=sys.stderr, flush=True)
        encode_missing(store, [texts[first[u]] for u in todo], [uniq[u] for u in todo], embed, batch, chunk, dtype,
                       show_progress, label)
        found.update(store.locate({uniq[u]: u for u in todo}))
        if len(found) != len(uniq):
            raise RKDError(f"embedding store {store.folder}: {len(uniq) - len(found)} rows missing after encoding")
        return entry.write(meta, store, found, inverse)

