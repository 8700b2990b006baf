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
3. Implement `__init__(root, manifest, options)` (call `super().__init__`; it opens `docstore.sqlite` when the
   manifest lists it) and the methods of its capabilities, all synchronous and thread-safe (the server calls
   them from a worker thread, never on the event loop):
   - "search":                `search_batch(queries: list[str], k: int, nprobe: int | None) -> list[SearchResult]`
                              (one result per query, in order; one encoder call for the whole list)
   - "conversational_search": `conversational_search(history: list[dict], utterance: str, k: int) -> SearchResult`
                              (history items are {"role": "user"|"system"|"assistant", "text": str})
   - "rewrite":               `rewrite(dialogue: list[dict]) -> str`
   - "distill_search":        `distill_search(dialogue: list[dict], k: int) -> SearchResult`
                              (put the rewrite in `SearchResult.extra["rewrite"]`)
   Optionally override `info()` (extra JSON for GET /v1/indexes/{name}) and `close()`.
4. Build bundles (build time, `retrieval_kd.export`) with `export.bundle.write_manifest(folder, kind=..., name=...,
   encoder=..., index=..., metrics=...)` inside `utils.atomic_dir(dst)` after writing the files; it hashes every
   file so the server can verify them. Query encoders export with `export.onnx.export_encoder(model, folder,
   pooling="splade", atomic=False, write_meta=False)` and run with `serving.runtime.OnnxEncoder`
   (`output="sentence_embedding"`).

`SearchResult.extra` holds kind-specific response fields: "rewrite" (str) and "query_terms"
([{"term": str, "weight": float}]) are the ones the response schemas carry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from retrieval_kd.errors import RKDError
from retrieval_kd.serving.runtime import RuntimeOptions

CAPABILITIES = ("search", "conversational_search", "rewrite", "distill_search")
NEEDED_KIND = {"search": "dense", "conversational_search": "sparse-conversational", "rewrite": "medical",
               "distill_search": "medical"}


class NotSupported(RKDError):
    """The bundle's kind does not offer this operation."""


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

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        from retrieval_kd.index.docstore import DocStore

        self.root = Path(root)
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.options = options
        self.docstore = DocStore(self.root / "docstore.sqlite") if "docstore.sqlite" in manifest["files"] else None

    @property
    def max_query_tokens(self) -> int | None:
        """Token limit of the query encoder (longer queries are truncated)."""
        return (self.manifest.get("encoder") or {}).get("max_length")

    def info(self) -> dict[str, Any]:
        """JSON description for GET /v1/indexes/{name}."""
        m = self.manifest
        return {"name": self.name, "kind": self.kind, "capabilities": sorted(self.capabilities),
                "documents": len(self.docstore) if self.docstore else None, "encoder": m.get("encoder"),
                "index": m.get("index"), "metrics": m.get("metrics", {}), "created": m.get("created")}

    def documents(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """{id: {"id", "text", "metadata"}} from the doc store (empty without one)."""
        return self.docstore.get(ids) if self.docstore else {}

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
