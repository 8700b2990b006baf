"""Dense query student: the dense encoder's query side, taught by the training dialogues' gold answers, reading the
rewrite.

The rewrite alone cannot move dense retrieval here: the extractive student keeps the question's own words, so its
text *is* the question (README, Distill-Retrieve-Read). This student changes the other side of the dot product:
a copy of the dense encoder (all-MiniLM-L6-v2 by default) reads `query_text(rewrite)` — the rewrite's kept terms,
' . ', then its text — and is trained so that the *frozen* corpus vectors of the same base encoder rank the
dialogue's gold answers first. The index is untouched (documents keep their base vectors, one faiss index serves
both encoders); only query vectors change.

Loss: softmax over the whole corpus (every document is a negative: with frozen document vectors the full score
row is one matrix product), multi-positive — −log(Σ_gold e^{s/τ} / Σ_all e^{s/τ}). Training texts carry the
teacher's queries (the human FOCUS of liveqa-med-train) as kept terms (`prefix: true`), so at search time the
rewriter's kept terms take their place. Train split only (`teachers[].split`), like every other student.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import read_meta
from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.drr.config import TrainRewriterConfig
from retrieval_kd.methods.drr.query import query_text

KIND = "drr-dense-query"
FORMAT_VERSION = 1


def training_pairs(cfg: TrainRewriterConfig, log: Callable[[str], Any] = print):
    """(dataset, [(query text, gold document rows)]) from the one teacher source: its train-split dialogues, their
    teacher queries as kept terms, their qrels (grade ≥ the dataset's rel_threshold) in its corpus."""
    from retrieval_kd import datasets
    from retrieval_kd.methods.drr.query import weighted_query
    from retrieval_kd.methods.drr.recipes import collect_examples
    from retrieval_kd.methods.drr.tagging import last_user

    if len(cfg.teachers) != 1:
        raise ConfigError(f"teachers: the dense-query student takes one source (its corpus holds the negatives), "
                          f"got {len(cfg.teachers)}")
    ds = datasets.load(cfg.teachers[0].dataset)
    row = {d: i for i, d in enumerate(ds.doc_ids)}
    rel = max(int(getattr(ds, "rel_threshold", 1) or 1), 1)
    pairs, no_gold = [], 0
    for e in collect_examples(cfg.teachers):
        gold = sorted(row[d] for d, g in ds.qrels.get(e["id"], {}).items() if g >= rel and d in row)
        if not gold:
            no_gold += 1
            continue
        q = weighted_query(last_user(e["dialogue"]), e["queries"], cfg.boost)
        pairs.append((query_text(q, cfg.dense.prefix), gold))
    if no_gold:
        log(f"{no_gold} training dialogues have no gold document (grade >= {rel}) in {ds.name}: left out")
    if len(pairs) < 10:
        raise ConfigError(f"teachers[0] ({ds.name}): need at least 10 dialogues with gold documents, got {len(pairs)}")
    return ds, pairs


def train_dense_query(cfg: TrainRewriterConfig, log: Callable[[str], Any] = print) -> Path:
    """Fine-tune a copy of the dense encoder's query side (see the module docstring); saves an HF folder + meta."""
    import torch

    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    p = cfg.train
    set_threads()
    torch.manual_seed(p.seed)
    ds, pairs = training_pairs(cfg, log)
    device = p.device or ("cuda" if torch.cuda.is_available() else "cpu")
    enc = DenseEncoder(cfg.base, device=device, max_length=p.max_length)
    docs = torch.tensor(np.array(encode_corpus(enc, ds), dtype=np.float32), device=device)
    log(f"dense-query student: {len(pairs)} dialogues, softmax over {docs.shape[0]} frozen document vectors")
    t0 = time.perf_counter()
    steps, last = _fit(enc, docs, pairs, p, 1.0 / cfg.dense.temperature, device)
    secs = time.perf_counter() - t0
    log(f"dense-query student: {steps} steps in {secs:.0f}s, last loss {last:.4f}")
    meta = {"base": str(enc.path), "prefix": cfg.dense.prefix, "temperature": cfg.dense.temperature,
            "max_length": enc.max_length, "pooling": enc.pooling, "normalize": enc.normalize,
            "dataset": ds.name, "train_examples": len(pairs), "steps": steps, "device": device,
            "train_seconds": round(secs, 1)}
    enc.model.to("cpu")
    return _save(cfg, enc, meta)


def _fit(enc: Any, docs: Any, pairs: Sequence[tuple[str, list[int]]], p: Any, scale: float, device: str):
    """AdamW at a constant rate over shuffled batches for `p.epochs` epochs (the project's `TrainLoop`); returns
    (steps, last loss)."""
    import torch

    from retrieval_kd.progress import progress_enabled
    from retrieval_kd.training import TrainLoop, make_scheduler

    rng, order, batches = random.Random(p.seed), list(range(len(pairs))), []
    for _ in range(p.epochs):
        rng.shuffle(order)
        batches += [[pairs[i] for i in order[s : s + p.batch_size]] for s in range(0, len(order), p.batch_size)]

    def step_loss(step: int):
        """Multi-positive softmax cross-entropy of the step's batch over the whole corpus."""
        batch = batches[step]
        tok = enc.tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=enc.max_length,
                            return_tensors="pt").to(device)
        logits = scale * enc.embed(**tok) @ docs.T
        gold = torch.zeros_like(logits, dtype=torch.bool)
        for r, (_, rows) in enumerate(batch):
            gold[r, rows] = True
        return (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~gold, -1e4), 1)).mean(), {}

    opt = torch.optim.AdamW(enc.model.parameters(), lr=p.lr, weight_decay=0.01)
    loop = TrainLoop(opt, make_scheduler(opt, "constant", 0, len(batches)), len(batches), log_every=10,
                     progress=progress_enabled(), desc="dense-query")
    enc.model.train()
    out = loop.run(step_loss)
    enc.model.eval()
    return len(batches), float((out.get("last") or {}).get("loss", float("nan")))


def _save(cfg: TrainRewriterConfig, enc: Any, meta: dict[str, Any]) -> Path:
    """Model, tokenizer, meta.json and run_info.json, written to a temporary folder and renamed."""
    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.utils import atomic_dir, run_info, write_json

    with atomic_dir(cfg.out) as tmp:
        enc.model.save_pretrained(tmp)
        enc.tokenizer.save_pretrained(tmp)
        write_meta(tmp, KIND, FORMAT_VERSION, **meta)
        write_json(tmp / "run_info.json", run_info(cfg.model_dump()))
    return Path(cfg.out)


def load_dense_query(path: str | Path, device: str | None = None):
    """(DenseEncoder of a saved dense-query student, its meta); the folder's kind and version are checked."""
    from retrieval_kd.teachers.dense import DenseEncoder

    meta = read_meta(path, KIND, FORMAT_VERSION, what="dense-query student")
    enc = DenseEncoder(path, device=device, max_length=int(meta["max_length"]), pooling=meta["pooling"],
                       normalize=bool(meta["normalize"]))
    return enc, meta


def open_dense_query(path: str | Path, **kw: Any):
    """`retrieval_kd.load` of a dense-query student: its DenseEncoder, the folder's meta as `.meta`."""
    enc, meta = load_dense_query(path, **kw)
    enc.meta = meta
    return enc
