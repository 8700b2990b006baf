"""The normalised dataset form: save/load round trip, errors on bad folders, and the embedded CACM demo."""
from __future__ import annotations

import gzip

import pytest

from retrieval_kd.data import demo
from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import DataFormatError, DataNotFoundError


def tiny() -> Dataset:
    return Dataset(
        name="tiny",
        corpus=[{"id": "d1", "contents": "Résumé of the first\nline", "title": "Résumé"},
                {"id": "d2", "contents": ""}],
        queries={"q1": "first query", "q2": "zweite Anfrage ü"},
        qrels={"q1": {"d1": 2, "d2": -1}, "q2": {"d2": 0}},
        conversations=[{"id": "c1", "turns": [{"id": "c1_1", "utterance": "hi", "manual": "hello"}]}],
        meta={"rel_threshold": 2, "notes": ["inline"], "alt_queries": {"summary": {"q1": "fq"}}},
    )


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, compress):
    ds = tiny()
    out = ds.save(tmp_path / "tiny", compress=compress)
    names = sorted(p.name for p in out.iterdir())
    ext = ".gz" if compress else ""
    assert names == sorted([f"corpus.jsonl{ext}", f"queries.tsv{ext}", f"qrels.txt{ext}",
                            f"conversations.jsonl{ext}", "meta.json"])
    back = Dataset.load(out)
    assert (back.name, back.corpus, back.queries, back.conversations) == (ds.name, ds.corpus, ds.queries,
                                                                          ds.conversations)
    assert back.qrels == ds.qrels
    assert back.meta["kind"] == "dataset" and back.meta["format_version"] == 1
    assert back.meta["alt_queries"] == ds.meta["alt_queries"] and back.rel_threshold == 2
    assert back.counts() == ds.counts() == back.meta["counts"]
    assert back.judged_queries() == {"q1": "first query"}


def test_round_trip_real(shared_data, tmp_path):
    from retrieval_kd.data.classic import build_cf

    ds = build_cf(shared_data)
    back = Dataset.load(ds.save(tmp_path / "cf"))
    assert (back.corpus, back.queries, back.qrels) == (ds.corpus, ds.queries, ds.qrels)
    assert back.meta["notes"] == ds.meta["notes"]


def test_bad_dataset_folder(tmp_path):
    out = tiny().save(tmp_path / "t")
    (out / "qrels.txt").write_text("q1 0 d1 2\nq1 0 d2\n")
    with pytest.raises(DataFormatError, match=r"qrels\.txt:2: .*4 columns"):
        Dataset.load(out)
    (out / "corpus.jsonl").write_text('{"id": "d1", "contents": "x"}\n{"id": "d2", "cont\n')
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl:2: invalid JSON"):
        Dataset.load(out)
    with pytest.raises(DataNotFoundError, match="no meta.json"):
        Dataset.load(tmp_path / "nowhere")


# ---------------------------------------------------------------- embedded demo


def test_demo_files():
    assert demo.has("cacm") and not demo.has("cisi")
    folder = demo.path("cacm")
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 2_000_000
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 3204
    notice = (folder / "NOTICE").read_text()
    assert "Glasgow" in notice and "castorini/anserini" in notice and "retrieval_kd" in notice
    with pytest.raises(DataNotFoundError):
        demo.path("cisi")


def test_demo_equals_fresh_normalisation(shared_data):
    from retrieval_kd.data.classic import build_cacm

    fresh = build_cacm(shared_data)
    embedded = Dataset.load(demo.path("cacm"))
    assert embedded.corpus == fresh.corpus
    assert embedded.queries == fresh.queries and embedded.qrels == fresh.qrels
    for key in ("source", "notes", "rel_threshold", "grades"):
        assert embedded.meta[key] == fresh.meta[key]


def test_load_cacm_without_raw_data(tmp_path, monkeypatch):
    from retrieval_kd import datasets

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("RKD_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    ds = datasets.load("cacm")
    assert ds.path == demo.path("cacm")
    c = ds.counts()
    assert (c["docs"], c["queries"], c["qrels"], c["judged_queries"]) == (3204, 64, 796, 52)
    assert ds.corpus[2999]["id"] == "CACM-3000" and ds.rel_threshold == 1
    with pytest.raises(DataNotFoundError, match="RKD_DATA"):
        datasets.load("cisi")
