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
