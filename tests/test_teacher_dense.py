"""Dense teacher: equals a plain torch mean-pooling reference; embeddings are cached by (model, texts)."""
from __future__ import annotations

import json

import numpy as np
import pytest

TEXTS = [
    "parallel sorting algorithms on multiprocessors",
    "a",
    "The compiler translates ALGOL 60 programs into machine code for the IBM 7090, " * 3,
    "information retrieval evaluation with relevance judgements",
]


@pytest.fixture(scope="module")
def encoder():
    from retrieval_kd.teachers.dense import DenseEncoder

    return DenseEncoder(batch_size=2)


def test_matches_plain_mean_pooling_reference(encoder, minilm_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    ref = []
    with torch.no_grad():
        for t in TEXTS:  # one text at a time: no padding, plain mean over every token
            ids = tok(t, return_tensors="pt", truncation=True, max_length=256)
            h = model(**ids).last_hidden_state[0].numpy()
            v = h.mean(0)
            ref.append(v / np.linalg.norm(v))
    got = encoder.encode(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    cos = (got * np.stack(ref)).sum(1)
    assert cos.min() >= 0.9999, cos
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_related_texts_score_higher(encoder):
    q = encoder.encode(["sorting numbers in parallel"])
    d = encoder.encode(TEXTS)
    scores = encoder.score(q, d)[0]
    assert int(np.argmax(scores)) == 0


def test_bad_model_folder_is_a_clear_error(tmp_path):
    from retrieval_kd.errors import RKDError
    from retrieval_kd.teachers.dense import DenseEncoder

    with pytest.raises(RKDError, match="not a Hugging Face model folder"):
        DenseEncoder(tmp_path)


MORE = TEXTS + [
    "compilers and interpreters for list processing languages",
    "numerical solution of ordinary differential equations",
    "time sharing systems and their scheduling",
    "b",
    "matrix inversion by gaussian elimination with pivoting",
]


def _entries(folder) -> list[str]:
    """Assembled entries and the store folder, by name."""
    return sorted(p.name for p in folder.iterdir())


def _counting(encoder, monkeypatch, fail_at: int | None = None) -> list[int]:
    """Count encoder.encode_batch calls (batch sizes); raise on call number `fail_at` + 1."""
    seen: list[int] = []
    real = type(encoder).encode_batch

    def batch(texts):
        if fail_at is not None and len(seen) == fail_at:
            raise KeyboardInterrupt("simulated crash")
        seen.append(len(texts))
        return real(encoder, texts)

    monkeypatch.setattr(encoder, "encode_batch", batch)
    return seen


def test_cache_is_keyed_by_texts(encoder, tmp_path, monkeypatch):
    from retrieval_kd.teachers.dense import encode_cached

    a = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    files = _entries(tmp_path)
    seen = _counting(encoder, monkeypatch)
    b = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    assert isinstance(b, np.memmap) and np.array_equal(np.asarray(a), np.asarray(b))
    assert _entries(tmp_path) == files and seen == []  # second call hit the cache
    sub = encode_cached(encoder, TEXTS[:2], "t", cache_dir=tmp_path, show_progress=False)
    assert len(_entries(tmp_path)) == len(files) + 2  # other list, other entry ...
    assert seen == [] and np.array_equal(np.asarray(sub), np.asarray(a)[:2])  # ... assembled from stored rows


def test_a_growing_corpus_encodes_only_its_new_texts(encoder, tmp_path, monkeypatch):
    from retrieval_kd.teachers.dense import encode_cached

    encode_cached(encoder, TEXTS, "corpus:a", cache_dir=tmp_path, show_progress=False)
    seen = _counting(encoder, monkeypatch)
    grown = MORE[::-1] + [TEXTS[0]]  # reordered, merged, with a duplicate
    got = encode_cached(encoder, grown, "corpus:b", cache_dir=tmp_path, show_progress=False)
    assert sum(seen) == len(MORE) - len(TEXTS)  # the 5 new texts, each once
    assert np.allclose(np.asarray(got), encoder.encode(grown), atol=1e-6)


def test_float32_cache_keeps_its_file_names(encoder, tmp_path):
    from retrieval_kd.teachers.dense import encode_cached
    from retrieval_kd.utils import sha256_text

    encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    digest = sha256_text(encoder.fingerprint, "t", str(len(TEXTS)), *TEXTS)[:20]  # the first format's key
    assert _entries(tmp_path) == [f"{digest}.f32", f"{digest}.json", "store"]


def test_float16_entry_reads_the_float32_rows(encoder, tmp_path, monkeypatch):
    from retrieval_kd.teachers.dense import encode_cached

    a = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    seen = _counting(encoder, monkeypatch)
    h = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False, dtype="float16")
    assert a.dtype == np.float32 and h.dtype == np.float16 and h.shape == a.shape and seen == []
    assert np.array_equal(np.asarray(h), np.asarray(a).astype(np.float16))  # the same rows, rounded once
    assert len(_entries(tmp_path)) == 5
    again = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False, dtype="float16")
    assert again.dtype == np.float16 and len(_entries(tmp_path)) == 5


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_interrupted_encoding_keeps_its_whole_chunks(encoder, tmp_path, monkeypatch, dtype):
    from retrieval_kd.teachers.dense import encode_cached

    one_pass = encoder.encode(MORE)  # batch_size 2; chunk=3 rounds up to 4 texts = 2 batches, 3 chunks
    _counting(encoder, monkeypatch, fail_at=4)  # chunks 0 and 1 (4 batches) committed, crash in chunk 2
    with pytest.raises(KeyboardInterrupt):
        encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, dtype=dtype, chunk=3)
    assert [n for n in _entries(tmp_path) if not n.endswith(".lock")] == ["store"]  # no entry until whole
    seen = _counting(encoder, monkeypatch)
    got = encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, dtype=dtype, chunk=5)
    assert seen == [1]  # only the text of the lost chunk was encoded again (any chunk size)
    assert got.dtype == np.dtype(dtype) and np.array_equal(np.asarray(got), one_pass.astype(dtype))
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp-" in p.name or p.name.endswith(".lock")]
    assert leftovers == []


def test_shards_fill_one_store_then_assembly_encodes_nothing(encoder, tmp_path, monkeypatch):
    from retrieval_kd.teachers.dense import encode_cached

    seen = _counting(encoder, monkeypatch)
    counts = [encode_cached(encoder, MORE, "s", cache_dir=tmp_path, show_progress=False, shard=(i, 3))
              for i in range(3)]
    assert sorted(counts) == [3, 3, 3] and sum(seen) == len(MORE)  # disjoint thirds, every text once
    assert _entries(tmp_path) == ["store"]
    seen.clear()
    got = encode_cached(encoder, MORE, "s", cache_dir=tmp_path, show_progress=False)
    assert seen == [] and np.allclose(np.asarray(got), encoder.encode(MORE), atol=1e-6)
    assert encode_cached(encoder, MORE, "s", cache_dir=tmp_path, show_progress=False, shard=(1, 3)) == 0


def test_bad_shard_is_a_clear_error():
    from retrieval_kd.errors import RKDError
    from retrieval_kd.teachers.store import parse_shard

    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ["4/4", "x", "1/0", "-1/2"]:
        with pytest.raises(RKDError, match="--shard"):
            parse_shard(bad)


def test_a_waiting_writer_finds_the_entry_written_meanwhile(encoder, tmp_path, monkeypatch):
    import threading

    from retrieval_kd.teachers.dense import encode_cached
    from retrieval_kd.teachers.store import Assembled
    from retrieval_kd.utils import sha256_text

    entry = Assembled(tmp_path, sha256_text(encoder.fingerprint, "w", str(len(TEXTS)), *TEXTS)[:20])
    seen = _counting(encoder, monkeypatch)
    got: list = []
    with entry.lock():  # another writer holds the entry
        waiter = threading.Thread(target=lambda: got.append(
            encode_cached(encoder, TEXTS, "w", cache_dir=tmp_path, show_progress=False)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not got  # blocked on the lock
        np.full((len(TEXTS), 384), 0.5, np.float32).tofile(entry.path)
        entry.meta_path.write_text(json.dumps({"shape": [len(TEXTS), 384]}))
    waiter.join(30)
    assert seen == [] and np.all(np.asarray(got[0]) == 0.5)  # it re-checked and read, encoding nothing
