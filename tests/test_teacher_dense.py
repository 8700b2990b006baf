"""Dense teacher: equals a plain torch mean-pooling reference; embeddings are cached by (model, texts)."""
from __future__ import annotations

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


def test_cache_is_keyed_by_texts(encoder, tmp_path):
    from retrieval_kd.teachers.dense import encode_cached

    a = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    b = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    assert isinstance(b, np.memmap) and np.array_equal(np.asarray(a), np.asarray(b))
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # second call hit the cache
    encode_cached(encoder, TEXTS[:2], "t", cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.iterdir())) == len(files) + 2  # other texts, other entry


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


def test_float32_cache_keeps_its_file_names(encoder, tmp_path):
    from retrieval_kd.teachers.dense import encode_cached
    from retrieval_kd.utils import sha256_text

    encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    digest = sha256_text(encoder.fingerprint, "t", str(len(TEXTS)), *TEXTS)[:20]  # the first format's key
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{digest}.f32", f"{digest}.json"]


def test_float16_cache_is_its_own_entry(encoder, tmp_path):
    from retrieval_kd.teachers.dense import encode_cached

    a = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False)
    h = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False, dtype="float16")
    assert a.dtype == np.float32 and h.dtype == np.float16 and h.shape == a.shape
    assert np.array_equal(np.asarray(h), np.asarray(a).astype(np.float16))  # the same rows, rounded once
    assert len(list(tmp_path.iterdir())) == 4
    again = encode_cached(encoder, TEXTS, "t", cache_dir=tmp_path, show_progress=False, dtype="float16")
    assert again.dtype == np.float16 and len(list(tmp_path.iterdir())) == 4


def _interrupt_after(encoder, monkeypatch, calls: int) -> list[int]:
    """Make encoder.encode_batch raise on call number `calls` + 1; returns the list of batch sizes seen."""
    seen: list[int] = []
    real = type(encoder).encode_batch

    def batch(texts):
        if len(seen) == calls:
            raise KeyboardInterrupt("simulated crash")
        seen.append(len(texts))
        return real(encoder, texts)

    monkeypatch.setattr(encoder, "encode_batch", batch)
    return seen


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_interrupted_encoding_resumes_at_the_next_chunk(encoder, tmp_path, monkeypatch, dtype, capsys):
    import json

    from retrieval_kd.teachers.dense import encode_cached

    one_pass = encoder.encode(MORE)  # batch_size 2; chunk=3 rounds up to 4 texts = 2 batches, 3 chunks
    seen = _interrupt_after(encoder, monkeypatch, 4)  # chunks 0 and 1 (4 batches) done, crash in chunk 2
    with pytest.raises(KeyboardInterrupt):
        encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, dtype=dtype, chunk=3)
    suffix = {"float32": "f32", "float16": "f16"}[dtype]
    names = sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir())
    assert names == [f"{suffix}.lock", f"{suffix}.partial", f"{suffix}.progress.json"]  # no data until whole
    progress = json.loads(next(tmp_path.glob("*.progress.json")).read_text())
    assert progress["chunks_done"] == 2 and progress["n_chunks"] == 3
    seen = _interrupt_after(encoder, monkeypatch, 99)
    got = encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, dtype=dtype, chunk=3)
    assert seen == [1]  # only the last chunk (one text) was encoded again
    assert "resuming at chunk 2 (8 done)" in capsys.readouterr().err
    assert got.dtype == np.dtype(dtype) and np.array_equal(np.asarray(got), one_pass.astype(dtype))
    done = sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir())
    assert done == {"float32": ["f32", "json"], "float16": ["f16", "f16.json"]}[dtype]  # only the entry is left


def test_a_changed_plan_starts_afresh(encoder, tmp_path, monkeypatch):
    from retrieval_kd.teachers.dense import encode_cached

    _interrupt_after(encoder, monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, chunk=2)
    seen = _interrupt_after(encoder, monkeypatch, 99)
    got = encode_cached(encoder, MORE, "r", cache_dir=tmp_path, show_progress=False, chunk=4)  # other chunks
    assert len(seen) == 5 and np.array_equal(np.asarray(got), encoder.encode(MORE))


def test_a_waiting_writer_finds_the_entry_written_meanwhile(encoder, tmp_path, monkeypatch):
    import threading

    from retrieval_kd.teachers.dense import CacheEntry, encode_cached
    from retrieval_kd.utils import sha256_text

    entry = CacheEntry(tmp_path, sha256_text(encoder.fingerprint, "w", str(len(TEXTS)), *TEXTS)[:20])
    seen = _interrupt_after(encoder, monkeypatch, 99)
    got: list = []
    with entry.lock():  # another writer holds the entry
        waiter = threading.Thread(target=lambda: got.append(
            encode_cached(encoder, TEXTS, "w", cache_dir=tmp_path, show_progress=False)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not got  # blocked on the lock
        meta = {"shape": [len(TEXTS), 384], "fingerprint": encoder.fingerprint}
        entry.write(meta, np.arange(len(TEXTS)), lambda rows: np.full((len(rows), 384), 0.5, np.float32), 2, 2,
                    False)
    waiter.join(30)
    assert seen == [] and np.all(np.asarray(got[0]) == 0.5)  # it re-checked and read, encoding nothing
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".f32", ".json"]  # lock and progress files gone
