"""Serving bundles: a folder with manifest.json (format version, name, kind, sha256 of every file), opened by kind.

    dense bundle:  manifest.json  meta.json  query_encoder.onnx  tokenizer.json (+ tokenizer_config.json)
                   index/{index.faiss, docids.txt, meta.json}  docstore.sqlite

`open_bundle(path)` verifies the manifest and every file's size and sha256, then hands the folder to the
Searcher class of its kind (see `searcher.py` for what a kind provides). Kinds: "dense" (faiss + ONNX query
encoder, `serving.dense`), "sparse-conversational" (DiSCo, `serving.conversational`) and "medical"
(Distill-Retrieve-Read, `serving.medical`); a plugin adds its own with `@register_kind`. Torch-free; the
bundle writers are in `retrieval_kd.export`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import read_json
from retrieval_kd.errors import BundleError
from retrieval_kd.registry import LazyRegistry
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import Searcher
from retrieval_kd.utils import sha256_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KINDS = LazyRegistry("bundle kind", error=BundleError, targets={
    "dense": "retrieval_kd.serving.dense:DenseSearcher",
    "sparse-conversational": "retrieval_kd.serving.conversational:ConversationalSearcher",
    "medical": "retrieval_kd.serving.medical:MedicalSearcher",
})


def register_kind(kind: str):
    """Class decorator: serve bundles whose manifest says `kind` with this Searcher subclass (plugins)."""
    return KINDS.add(kind, kind=kind)


def kind_class(kind: str) -> type[Searcher]:
    """The Searcher class of a kind, importing its module on first use."""
    return KINDS.get(kind)


def valid_name(name: str) -> bool:
    """Index names: letters, digits, '.', '_', '-' (no path separators), at most 64 characters."""
    return bool(NAME_RE.match(name)) and name not in {".", ".."}


def _inside(root: Path, rel: str) -> bool:
    p = Path(rel)
    return not p.is_absolute() and ".." not in p.parts and (root / p).resolve().is_relative_to(root.resolve())




def read_manifest(root: str | Path) -> dict[str, Any]:
    """Parse and check manifest.json (version, name, kind, file list); no hashing."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: bundle folder not found")
    m = read_json(path, "bundle")
    if m.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {m.get('format_version')!r} is not supported "
                          f"(this version reads {FORMAT_VERSION}); rebuild the bundle with `rkd export bundle`")
    for key, typ in (("kind", str), ("name", str), ("files", dict)):
        if not isinstance(m.get(key), typ):
            raise BundleError(f"{path}: field '{key}' missing or not a {typ.__name__}")
    if not valid_name(m["name"]):
        raise BundleError(f"{path}: name {m['name']!r} must match {NAME_RE.pattern}")
    for rel, entry in m["files"].items():
        if not _inside(root, rel):
            raise BundleError(f"{path}: file entry {rel!r} points outside the bundle folder")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"{path}: file entry {rel!r} has no sha256")
    return m


def verify_files(root: str | Path, manifest: dict[str, Any], required: tuple[str, ...] = ()) -> None:
    """Check that every listed file exists with its size and sha256, and that `required` ones are listed."""
    root = Path(root)
    for rel in required:
        if rel not in manifest["files"]:
            raise BundleError(f"{root / MANIFEST}: kind {manifest['kind']!r} needs file {rel!r}, not listed")
    for rel, entry in manifest["files"].items():
        p = root / rel
        if not p.is_file():
            raise BundleError(f"{p}: missing (listed in {MANIFEST})")
        if "bytes" in entry and p.stat().st_size != entry["bytes"]:
            raise BundleError(f"{p}: {p.stat().st_size} bytes, manifest says {entry['bytes']} (corrupt or truncated)")
        if sha256_file(p) != entry["sha256"]:
            raise BundleError(f"{p}: sha256 mismatch (corrupt or changed since the bundle was built)")


def resolve_bundle(spec: str | Path, bundle_root: str | Path | None = None) -> Path:
    """A bundle folder from a path or a name under `bundle_root`; never outside `bundle_root` when one is set."""
    if bundle_root is None:
        return Path(spec).expanduser().resolve()
    root = Path(bundle_root).expanduser().resolve()
    path = (root / Path(spec).expanduser()).resolve()
    if not path.is_relative_to(root):
        raise BundleError(f"{spec}: outside the bundle root {root}")
    return path


def open_bundle(path: str | Path, options: RuntimeOptions | None = None, verify: bool = True) -> Searcher:
    """Verify a bundle and load it with its kind's Searcher."""
    root = Path(path)
    manifest = read_manifest(root)
    cls = kind_class(manifest["kind"])
    if verify:
        verify_files(root, manifest, cls.required_files)
    return cls(root, manifest, options or RuntimeOptions())

