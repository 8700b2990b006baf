"""Run-time file checks of a served bundle: a stat snapshot of every listed file, re-hashed only when it changes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from retrieval_kd.utils import sha256_file

MANIFEST = "manifest.json"


def file_problem(root: Path, rel: str, entry: dict[str, Any], shown: str | None = None) -> str | None:
    """Why a listed file does not match its manifest entry (missing, size, sha256), naming it `shown` (or its path)."""
    p = Path(root) / rel
    return _problem(p, entry, str(p) if shown is None else shown)


def _problem(p: Path, entry: dict[str, Any], shown: str) -> str | None:
    if not p.is_file():
        return f"{shown}: missing (listed in {MANIFEST})"
    size = p.stat().st_size
    if entry.get("bytes") is not None and size != entry["bytes"]:
        return f"{shown}: {size} bytes, manifest says {entry['bytes']} (corrupt or truncated)"
    if sha256_file(p) != entry["sha256"]:
        return f"{shown}: sha256 mismatch (corrupt or changed since the bundle was built)"
    return None


def _stat(p: Path) -> tuple[int, int, int, int] | None:
    try:
        s = os.stat(p)
    except OSError:
        return None
    return s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino


class FileWatch:
    """Each listed file's (size, mtime, ctime, inode) when it was last found good; `check()` re-hashes changed ones.

    Its messages name files relative to the bundle folder (they are shown to clients by /ready).
    """

    def __init__(self, root: str | Path, files: dict[str, dict[str, Any]]):
        self.root = Path(root)
        self.files = files
        self.good = {rel: _stat(self.root / rel) for rel in files}
        self.bad: dict[str, tuple[Any, str]] = {}  # rel -> (stat when found bad, problem): not re-hashed until it changes

    def check(self) -> str | None:
        """The first problem among the listed files (missing, truncated, changed), or None when all still match."""
        for rel, entry in self.files.items():
            now = _stat(self.root / rel)
            if now is None:
                return f"{rel}: missing (listed in {MANIFEST})"
            if now == self.good.get(rel):
                continue
            if rel in self.bad and self.bad[rel][0] == now:
                return self.bad[rel][1]
            problem = file_problem(self.root, rel, entry, shown=rel)
            if problem:
                self.bad[rel] = (now, problem)
                return problem
            self.bad.pop(rel, None)
            self.good[rel] = now
        return None
