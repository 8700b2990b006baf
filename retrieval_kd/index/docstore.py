"""SQLite document store: id -> text + metadata JSON, read-only and thread-safe once built."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.errors import BundleError

FORMAT_VERSION = 1
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs (id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL) WITHOUT ROWID;
"""


class DocStore:
    """Documents by id from a `docstore.sqlite` file (opened read-only)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"{self.path}: missing (document store)")
        try:
            self._con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise BundleError(f"{self.path}: not a document store ({e})") from None
        if meta.get("format_version") != str(FORMAT_VERSION):
            raise BundleError(f"{self.path}: docstore format_version {meta.get('format_version')} != {FORMAT_VERSION}")
        self.count = int(meta.get("count", 0))
        self._lock = threading.Lock()

    @classmethod
    def build(cls, path: str | Path, docs: Iterable[Mapping[str, Any]], text_field: str = "contents") -> DocStore:
        """Write {"id", text_field, ...metadata} records to a new SQLite file (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(tmp)
        try:
            con.executescript(_SCHEMA)
            rows = ((str(d["id"]), str(d.get(text_field, "")),
                     json.dumps({k: v for k, v in d.items() if k not in ("id", text_field)}, ensure_ascii=False))
                    for d in docs)
            try:
                con.executemany("INSERT INTO docs VALUES (?, ?, ?)", rows)
            except sqlite3.IntegrityError as e:
                raise BundleError(f"{path}: duplicate document id ({e})") from None
            count = con.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
            con.executemany("INSERT INTO meta VALUES (?, ?)", [("kind", "docstore"), ("count", str(count)),
                                                                ("format_version", str(FORMAT_VERSION))])
            con.commit()
        except BaseException:
            con.close()
            tmp.unlink(missing_ok=True)
            raise
        con.close()
        os.replace(tmp, path)
        return cls(path)

    def get(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: {"id", "text", "metadata"}} for the ids present (missing ids are left out)."""
        out: dict[str, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(uniq), 500):
                part = uniq[start : start + 500]
                q = f"SELECT id, text, metadata FROM docs WHERE id IN ({','.join('?' * len(part))})"
                for doc_id, text, meta in self._con.execute(q, part):
                    out[doc_id] = {"id": doc_id, "text": text, "metadata": json.loads(meta)}
        return out

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Close the connection."""
        self._con.close()
