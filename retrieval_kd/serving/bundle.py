"""Serving bundles: a folder with manifest.json (format version, name, kind, sha256 of every file), opened by kind.

    dense bundle:  manifest.json  meta.json  query_encoder.onnx  tokenizer.json (+ tokenizer_config.json)
                   index/{index.faiss, docids.txt, meta.json}  docstore.sqlite

`open_bundle(path)` validates the manifest against its kind's schema (`serving.manifest`: types, ranges, every
named file relative, inside the bundle and listed), verifies every file's size and sha256, then hands the folder
to the Searcher class of its kind (see `searcher.py` for what a kind provides). Kinds: "dense" (faiss + ONNX query
encoder, `serving.dense`), "sparse-conversational" (DiSCo, `serving.conversational`) and "medical"
(Distill-Retrieve-Read, `serving.medical`); a plugin adds its own with `@register_kind`. Torch-free; the
bundle writers are in `retrieval_kd.export`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import read_json
from retrieval_kd.errors import BundleError
from retrieval_kd.registry import LazyRegistry
from retrieval_kd.serving.integrity import file_problem
from retrieval_kd.serving.manifest import FORMAT_VERSION, NAME_PATTERN, NAME_RE, Manifest, validate_manifest
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import Searcher

__all__ = ["FORMAT_VERSION", "KINDS", "MANIFEST", "NAME_PATTERN", "NAME_RE", "kind_class", "open_bundle",
           "file_problem", "read_manifest", "register_kind", "resolve_bundle", "valid_name", "verify_files"]

MANIFEST = "manifest.json"
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


def read_manifest(root: str | Path, model: type[Manifest] = Manifest) -> dict[str, Any]:
    """Parse manifest.json and validate it against `model` (version, name, kind, file list); no hashing."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle folder not found")
    path = root / MANIFEST
    m = validate_manifest(read_json(path, "bundle"), path, model)
    for rel in m["files"]:
        if not (root / rel).resolve().is_relative_to(root.resolve()):  # a listed symlink leading out
            raise BundleError(f"{path}: file entry {rel!r} points outside the bundle folder")
    return m


def verify_files(root: str | Path, manifest: dict[str, Any], required: tuple[str, ...] = ()) -> None:
    """Check that every listed file exists with its size and sha256, and that `required` ones are listed."""
    root = Path(root)
    for rel in required:
        if rel not in manifest["files"]:
            raise BundleError(f"{root / MANIFEST}: kind {manifest['kind']!r} needs file {rel!r}, not listed")
    for rel, entry in manifest["files"].items():
        problem = file_problem(root, rel, entry)
        if problem:
            raise BundleError(problem)


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
    """Validate a bundle's manifest against its kind's schema, verify its files, load it with its kind's Searcher."""
    root = Path(path)
    cls = kind_class(read_manifest(root)["kind"])
    manifest = read_manifest(root, cls.manifest_model)
    if verify:
        verify_files(root, manifest, cls.required_files)
    return cls(root, manifest, options or RuntimeOptions())
