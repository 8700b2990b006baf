"""`import_collection`: a collection in one of FORMATS -> a checked Dataset (`rkd data import`).

  beir     SOURCE = BEIR folder; --split picks qrels/<split>.tsv (default test)
  jsonl    SOURCE = corpus file; --queries / --qrels optional
  tsv, csv SOURCE = corpus file, same; --header / --no-header (TSV default: a first row naming the id column)
  trec     SOURCE = TREC SGML documents; --queries = TREC topics (XML, SGML or TSV); --qrels = TREC qrels
  scifact  SOURCE = the SciFact CSV zip; --split test (BEIR test = claims_validation.csv) or train
  cast     SOURCE = a CAsT / iKAT topic file of any year; --qrels optional (e.g. NIST's); no corpus (the passage
           collection stays outside: meta external_corpus, judged documents are not checked against it)

A queries file is read by its kind, whatever the corpus format: TREC topics when it opens with `<`, JSONL
(.jsonl / .json / opening with `{`), CSV (.csv), else TSV. Qrels: TREC 4 columns or BEIR's 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data.dataset import Dataset
from retrieval_kd.data.files import numbered_lines
from retrieval_kd.errors import ConfigError

FORMATS = ("beir", "jsonl", "tsv", "csv", "trec", "scifact", "cast")


def _first_char(path: Path) -> str:
    for _, line in numbered_lines(path):
        if line.strip():
            return line.strip()[0]
    return ""


def read_queries_any(path: Path, fields: dict[str, str] | None = None, header: bool | None = None,
                     topic_field: str = "title") -> dict[str, str]:
    """Queries of a topics / JSONL / CSV / TSV file, told apart by its first character and suffix."""
    from retrieval_kd.data.formats.tabular import read_queries
    from retrieval_kd.data.formats.topics import read_topics

    first = _first_char(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if first == "<":
        return read_topics(path, topic_field)
    if first == "{" or suffixes[-1:] in ([".jsonl"], [".json"]):
        return read_queries(path, "jsonl", fields)
    if suffixes[-1:] == [".csv"]:
        return read_queries(path, "csv", fields, header)
    return read_queries(path, "tsv", fields, header)


def _scifact(source: Path, name: str, split: str) -> Dataset:
    from retrieval_kd.data import scifact

    if split not in scifact.SPLITS:
        raise ConfigError(f"SciFact has no split {split!r}; known: {', '.join(scifact.SPLITS)}")
    member = scifact.SPLITS[split]
    return scifact.build_from_zip(source, name, member, f"imported from {source} (split {split} = {member})")


def _cast(source: Path, name: str) -> Dataset:
    from retrieval_kd.data.formats.cast_topics import read_topic_file

    convs = read_topic_file(source, collection=name)
    queries = {t["id"]: t["utterance"] for c in convs for t in c["turns"]}
    return Dataset(name, [], queries, {}, convs, {"external_corpus": "the track's passage collection"})


def build(fmt: str, source: str | Path, name: str, queries: str | Path | None = None,
          qrels: str | Path | None = None, fields: dict[str, str] | None = None,
          query_fields: dict[str, str] | None = None, split: str = "test", header: bool | None = None,
          topic_field: str = "title") -> Dataset:
    """The Dataset of `source` in format `fmt` (see the module docstring), before the dataset checks."""
    from retrieval_kd.data.formats import beir, tabular, trec

    source = Path(source)
    qpath, rpath = (Path(queries) if queries else None), (Path(qrels) if qrels else None)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "scifact" and (qpath or rpath):
        raise ConfigError(f"--format scifact reads everything from {source}; --queries and --qrels do not apply")
    if fmt == "cast" and qpath:
        raise ConfigError("--format cast: the queries are the turns of the topic file; --queries does not apply")
    if fmt in ("scifact", "cast", "trec") and fields:
        raise ConfigError(f"--fields does not apply to --format {fmt} (its columns are fixed)")
    if fmt == "scifact":
        return _scifact(source, name, split)
    if fmt == "cast":
        ds = _cast(source, name)
        ds.qrels = trec.read_qrels(rpath) if rpath else {}
    elif fmt == "beir":
        corpus, qs, qr, meta = beir.read_beir(source, split, fields, query_fields, qpath, rpath)
        ds = Dataset(name, corpus, qs, qr, meta=meta)
    else:
        corpus = trec.read_trec_docs(source) if fmt == "trec" else tabular.read_corpus(source, fmt, fields, header)
        qs = read_queries_any(qpath, query_fields, header, topic_field) if qpath else {}
        ds = Dataset(name, corpus, qs, trec.read_qrels(rpath) if rpath else {})
    if fields:
        ds.meta["fields"] = fields
    if query_fields:
        ds.meta["query_fields"] = query_fields
    return ds


def import_collection(fmt: str, source: str | Path, name: str, out: str | Path, rel_threshold: int | None = None,
                      missing: str = "error", **kw: Any) -> Dataset:
    """Read `source` (see `build` for the keyword arguments), check it and write it as a dataset folder `out`;
    `rel_threshold` (default: the reader's, else 1) is the lowest grade counted relevant."""
    from retrieval_kd.data.checks import check_judgements

    ds = build(fmt, source, name, **kw)
    if rel_threshold is not None:
        ds.meta["rel_threshold"] = int(rel_threshold)
    ds.meta.setdefault("rel_threshold", 1)
    ds.meta.update({"format": fmt, "source": str(Path(source).resolve())})
    ds.meta.update({f"{k}_file": str(Path(v).resolve()) for k, v in kw.items() if k in ("queries", "qrels") and v})
    where = kw.get("qrels") or source
    check_judgements(ds, where, missing)  # names the source files; save checks the result again
    ds.save(out)
    return ds
