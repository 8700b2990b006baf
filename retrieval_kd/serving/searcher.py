"""What a bundle kind must provide so the server can serve it: a `Searcher` subclass.

A new kind (DiSCo's "sparse-conversational", Distill-Retrieve-Read's "medical", ...) slots in without any
change to the server:

1. Write a torch-free module (onnxruntime, numpy, faiss, tokenizers, sqlite) with a subclass of `Searcher`
   that sets `kind = "<kind>"`, and name it in `serving.bundle.KINDS` ("<kind>": "module:Class"), or decorate
   it `@register_kind("<kind>")` and import the module before `open_bundle` (plugins).
2. Set the class attributes:
   - `capabilities`: the routes it answers, a subset of
     {"search", "conversational_search", "rewrite", "distill_search"}. A route asked of a bundle without the
     capability answers 409 naming the kind it needs; the server never calls the method then.
   - `required_files`: paths (relative to the bundle folder) that must be listed in manifest.json.
   - `manifest_model`: its manifest schema, a subclass of `serving.manifest.Manifest` (typed sections, ranges,
     named files listed); `open_bundle` validates the manifest with it before the class sees it.
3. Implement `__init__(root, manifest, options)` (call `super().__init__`; it opens `docstore.sqlite` when the
   manifest lists it; open every other file through `self.file(rel)`, which refuses paths outside the bundle
   or not listed in the manifest, so every file opened is one whose sha256 was checked) and the methods of
   its capabilities, all synchronous and thread-safe (the server calls
   them from a worker thread, never on the event loop):
   - "search":                `search_batch(queries: list[str], k: int, nprobe: int | None) -> list[SearchResult]`
                              (one result per query, in order; one encoder call for the whole list)
   - "conversational_search": `conversational_search(history: list[dict], utterance: str, k: int) -> SearchResult`
                              (history items are {"role": "user"|"system"|"assistant", "text": str})
   - "rewrite":               `rewrite(dialogue: list[dict]) -> str`
   - "distill_search":        `distill_search(dialogue: list[dict], k: int) -> SearchResult`
                              (put the rewrite in `SearchResult.extra["rewrite"]`)
   Optionally override `info()` (extra JSON for GET /v1/indexes/{name}; absolute paths are left out of it),
   `query_tokens(texts)` (the encoder cost the server budgets) and `close()`.
4. Build bundles (build time, `retrieval_kd.export`) with `export.bundle.write_manifest(folder, kind=..., name=...,
   encoder=..., index=..., metrics=...)` inside `utils.atomic_dir(dst)` after writing the files; it hashes every
   file so the server can verify them. Query encoders export with `export.onnx.export_encoder(model, folder,
   pooling="splade", atomic=False, write_meta=False)` and run with `serving.runtime.OnnxEncoder`
   (`output="sentence_embedding"`).

`SearchResult.extra` holds kind-specific response fields: "rewrite" (str), "queries" ([str]), "query_terms"
([{"term": str, "weight": float}]) and "timings" ({"encode_ms"|"rewrite_ms"|"search_ms": float}, see `stage_ms`)
are the ones the response schemas carry.
"""
from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.serving.integrity import FileWatch
from retrieval_kd.serving.manifest import Manifest
from retrieval_kd.serving.runtime import RuntimeOptions, inside

CAPABILITIES = ("search", "conversational_search", "rewrite", "distill_search")
NEEDED_KIND = {"search": "dense", "conversational_search": "sparse-conversational", "rewrite": "medical",
               "distill_search": "medical"}
_ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")


class NotSupported(RKDError):
    """The bundle's kind does not offer this operation."""


class BundleUnavailable(RKDError):
    """A served bundle's file is damaged or unreadable at run time (the server answers 503 until it is restored)."""


def public(obj: Any) -> Any:
    """JSON for clients: the same structure without strings that are absolute paths (build machines' folders)."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not (isinstance(v, str) and _ABSOLUTE.match(v))}
    if isinstance(obj, list):
        return [public(v) for v in obj if not (isinstance(v, str) and _ABSOLUTE.match(v))]
    return obj


def stage_ms(**seconds: float) -> dict[str, float]:
    """{"<stage>_ms": milliseconds} of each stage's seconds (e.g. encode=, search=), rounded to µs."""
    return {f"{stage}_ms": round(s * 1000.0, 3) for stage, s in seconds.items()}


@dataclass
class SearchResult:
    """Ranked document ids with scores, plus kind-specific extras."""

    ids: list[str]
    scores: list[float]
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int) -> SearchResult:
        """The first k hits."""
        return SearchResult(self.ids[:k], self.scores[:k], self.truncated, self.extra)


class Searcher:
    """A loaded bundle: the object the server's routes call."""

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    required_files: ClassVar[tuple[str, ...]] = ()
    manifest_model: ClassVar[type[Manifest]] = Manifest

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        self.root = Path(root)
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.options = options
        self.damaged: str | None = None  # why the bundle cannot serve right now (None: it can)
        self._reopen_lock = threading.Lock()
        self.watch = FileWatch(self.root, manifest["files"])
        self.docstore = self._open_docstore()

    def _open_docstore(self) -> Any:
        from retrieval_kd.index.docstore import DocStore

        return DocStore(self.file("docstore.sqlite")) if "docstore.sqlite" in self.manifest["files"] else None

    def file(self, rel: str) -> Path:
        """root/rel for a file listed in the manifest (so hash-checked); BundleError for any other path."""
        path = inside(self.root, rel, self.root / "manifest.json")
        if Path(rel).as_posix() not in self.manifest["files"]:
            raise BundleError(f"{self.root / 'manifest.json'}: {rel!r} is opened but not listed in 'files' "
                              "(it could not be hash-checked)")
        return path

    @property
    def max_query_tokens(self) -> int | None:
        """Token limit of the query encoder (longer queries are truncated)."""
        return (self.manifest.get("encoder") or {}).get("max_length")

    def info(self) -> dict[str, Any]:
        """JSON description for GET /v1/indexes/{name} (no absolute paths)."""
        m = self.manifest
        return public({"name": self.name, "kind": self.kind, "capabilities": sorted(self.capabilities),
                       "documents": len(self.docstore) if self.docstore else None, "encoder": m.get("encoder"),
                       "index": m.get("index"), "metrics": m.get("metrics", {}), "created": m.get("created")})

    def query_tokens(self, texts: list[str]) -> list[int]:
        """Encoder tokens each text costs (default: an estimate from its UTF-8 length, one token per 4 bytes)."""
        return [len(t.encode("utf-8")) // 4 + 1 for t in texts]

    def documents(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """{id: {"id", "text", "metadata"}} from the doc store (empty without one); BundleUnavailable when unreadable."""
        store = self.docstore
        if store is None:
            return {}
        try:
            return store.get(ids)
        except (sqlite3.Error, ValueError) as e:
            self.damaged = self.damaged or f"{store.path.name}: unreadable ({str(e)[:200]})"
            raise BundleUnavailable(f"index {self.name}: document store unreadable; the server re-checks it "
                                    "and serves it again once the file matches its manifest") from None

    def check(self) -> str | None:
        """Re-check the listed files (re-hashing changed ones); reopen the doc store once they match again."""
        problem = self.watch.check()
        if problem is None and self.damaged is not None:
            with self._reopen_lock:
                old, self.docstore = self.docstore, self._open_docstore()
                if old is not None:
                    with old._lock:
                        old.close()
        self.damaged = problem
        return problem

    def search_batch(self, queries: list[str], k: int, nprobe: int | None = None) -> list[SearchResult]:
        raise NotSupported(f"index {self.name} (kind {self.kind}) does not support search")

    def conversational_search(self, history: list[dict], utterance: str, k: int) -> SearchResult:
        raise NotSupported(f"index {self.name} (kind {self.kind}) does not support conversational_search")

    def rewrite(self, dialogue: list[dict]) -> str:
        raise NotSupported(f"index {self.name} (kind {self.kind}) does not support rewrite")

    def distill_search(self, dialogue: list[dict], k: int) -> SearchResult:
        raise NotSupported(f"index {self.name} (kind {self.kind}) does not support distill_search")

    def close(self) -> None:
        """Release files and sessions."""
        if self.docstore:
            self.docstore.close()
