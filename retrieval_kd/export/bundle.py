"""Bundle writer: hash every file of a bundle folder into manifest.json (read by `serving.bundle`)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import write_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.serving.bundle import FORMAT_VERSION, MANIFEST, NAME_RE, kind_class, valid_name
from retrieval_kd.serving.manifest import validate_manifest
from retrieval_kd.utils import atomic_file, run_info, sha256_file


def bundle_name(name: str | None, dst: Path, default: str) -> str:
    """The index name served: `name`, else the destination folder's name made valid; BundleError when invalid."""
    name = name or re.sub(r"[^A-Za-z0-9._-]", "-", Path(dst).name).strip(".-") or default
    if not valid_name(name):
        raise BundleError(f"bundle name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    return name


def documents_of(docids: list[str], ds: Any, where: Path) -> list[dict[str, Any]]:
    """The dataset's records of an index's docids, in index order; BundleError naming `where` for unknown ids."""
    by_id = {d["id"]: d for d in ds.corpus}
    missing = [d for d in docids if d not in by_id]
    if missing:
        raise BundleError(f"{where}: {len(missing)} ids not in dataset {ds.name!r} (e.g. {missing[0]!r})")
    return [by_id[d] for d in docids]


def write_manifest(folder: str | Path, *, kind: str, name: str, **sections: Any) -> dict[str, Any]:
    """Hash every file under `folder`, validate and write manifest.json (temp file, rename) + meta.json; returns it.

    `sections` are JSON sections such as encoder=..., index=..., docstore=..., metrics=..., source=...; the
    manifest is validated against the kind's schema (`serving.manifest`) before it is written.
    """
    folder = Path(folder)
    if not valid_name(name):
        raise BundleError(f"bundle name {name!r} must match {NAME_RE.pattern}")
    files = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel not in (MANIFEST, "meta.json"):
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {"format_version": FORMAT_VERSION, "kind": kind, "name": name, "files": files,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **sections}
    validate_manifest(json.loads(json.dumps(manifest)), folder / MANIFEST, kind_class(kind).manifest_model)
    with atomic_file(folder / MANIFEST, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_meta(folder, "bundle", FORMAT_VERSION, bundle_kind=kind, name=name, manifest=MANIFEST, run_info=run_info())
    return manifest
