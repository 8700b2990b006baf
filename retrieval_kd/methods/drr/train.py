"""Train rewriter students from teacher queries: the extractive tagger (token labels) and a seq2seq model."""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.methods.drr.rewriters import FORMAT_VERSION, SEQ2SEQ_KIND, TAGGER_KIND
from retrieval_kd.methods.drr.tagging import keep_mask, layout, token_labels
from retrieval_kd.teachers.queries import Example
from retrieval_kd.threads import set_threads
from retrieval_kd.utils import atomic_dir, run_info

_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))


def cjk_chars(examples: Sequence[Example], min_count: int = 2) -> list[str]:
    """CJK characters seen at least `min_count` times in the training dialogues (new tagger vocabulary)."""
    c = Counter(ch for e in examples for t in e["dialogue"] for ch in t["text"]
                if any(lo <= ord(ch) <= hi for lo, hi in _CJK_RANGES))
    return sorted(ch for ch, n in c.items() if n >= min_count)


def encode(tokenizer, examples: Sequence[Example], max_length: int,
           names: Sequence[str] = ()) -> list[tuple[list[int], list[int], list[int]]]:
    """(input ids, token labels, entity flags) per example; labels = tokens whose characters occur in the teacher
    queries.

    With `names`, mentions are [MASK]ed and labelled as a whole (kept when the teacher query names them); their
    tokens are flagged (they can weigh more in the loss, and the entity threshold is chosen on them).
    """
    out = []
    for e in examples:
        text, _, ents = layout(e["dialogue"], names) if names else (*layout(e["dialogue"]), [])
        enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
        labels = token_labels(enc["offset_mapping"], keep_mask(text, e["queries"], ents))
        is_ent = np.zeros(len(text), dtype=np.int8)
        for s, t, _ in ents:
            is_ent[s:t] = 1
        flags = [int(t > s and bool(is_ent[s:t].any())) for s, t in enc["offset_mapping"]]
        out.append((enc["input_ids"], labels.tolist(), flags))
    return out


def _batches(data, batch_size: int, rng: random.Random, pad_id: int, unk_id: int | None = None,
             unk_prob: float = 0.0, mask_id: int | None = None):
    """Padded (ids, mask, labels, entity flags) batches; with `unk_prob`, word dropout turns that share of tokens into
    [UNK] ([MASK]ed entities excepted: they stand for names, not words)."""
    import torch

    order = list(range(len(data)))
    rng.shuffle(order)
    for s in range(0, len(order), batch_size):
        chunk = [data[i] for i in order[s : s + batch_size]]
        n = max(len(x[0]) for x in chunk)
        ids = torch.tensor([x + [pad_id] * (n - len(x)) for x, _, _ in chunk])
        lab = torch.tensor([y + [-100] * (n - len(y)) for _, y, _ in chunk])
        ent = torch.tensor([f + [0] * (n - len(f)) for _, _, f in chunk])
        mask = (ids != pad_id).long()
        if unk_prob > 0 and unk_id is not None:
            drop = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(rng.randrange(2**31))) < unk_prob)
            drop &= (lab != -100) & (ids != mask_id) if mask_id is not None else lab != -100
            ids = torch.where(drop, torch.full_like(ids, unk_id), ids)
        yield ids, mask, lab, ent


def _scores(model, data, batch_size: int, pad_id: int, device: str = "cpu",
            entities_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (keep probability, label) of every labelled token, or of the entity tokens only."""
    import torch

    probs, labels = [], []
    with torch.inference_mode():
        for ids, mask, lab, ent in _batches(data, batch_size, random.Random(0), pad_id):
            p = torch.sigmoid(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[..., 0]).cpu()
            keep = (lab != -100) & (ent == 1) if entities_only else lab != -100
            probs.append(p[keep].float().numpy())
            labels.append(lab[keep].numpy())
    return (np.concatenate(probs), np.concatenate(labels)) if probs else (np.zeros(0), np.zeros(0))


def best_threshold(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, token F1) maximising F1 on held-out tokens."""
    best = (0.5, 0.0)
    for thr in np.arange(0.2, 0.85, 0.05):
        pred = probs >= thr
        tp = float((pred & (labels == 1)).sum())
        f1 = 2 * tp / max(pred.sum() + (labels == 1).sum(), 1)
        if f1 > best[1]:
            best = (round(float(thr), 2), f1)
    return best


def train_tagger(examples: Sequence[Example], out: str | Path, base: str | Path | None = None, epochs: int = 1,
                 batch_size: int = 16, lr: float = 5e-5, max_length: int = 128, add_cjk: bool = False,
                 heldout: float = 0.1, seed: int = 0, mode: str = "append", boost: int = 2, keep: str = "terms",
                 carry: bool = False, unk_prob: float = 0.0, entity_weight: float = 1.0, names: Sequence[str] = (),
                 device: str | None = None, config: dict | None = None, log=print) -> Path:
    """Fine-tune MiniLM (or `base`) as a token tagger on teacher-query labels; saves an HF folder + rewriter.json."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from retrieval_kd.teachers.dense import resolve_model_path

    set_threads()
    torch.manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if len(examples) < 10:
        raise RKDError(f"need at least 10 training examples with teacher queries, got {len(examples)}")
    base_path = resolve_model_path(base)
    tok = AutoTokenizer.from_pretrained(base_path)
    added = tok.add_tokens(cjk_chars(examples)) if add_cjk else 0
    model = AutoModelForTokenClassification.from_pretrained(base_path, num_labels=1)
    if added:
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    model.to(device)
    rng = random.Random(seed)
    ex = list(examples)
    rng.shuffle(ex)
    n_dev = max(1, int(len(ex) * heldout))
    dev, train = encode(tok, ex[:n_dev], max_length, names), encode(tok, ex[n_dev:], max_length, names)
    pos = sum(int(v == 1) for _, y, _ in train for v in y)
    neg = sum(int(v == 0) for _, y, _ in train for v in y)
    pos_weight = torch.tensor(min(neg / max(pos, 1), 10.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device), reduction="none")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                              * max(0.0, 1 - s / max(steps, 1)))
    t0, step = time.perf_counter(), 0
    model.train()
    for ep in range(epochs):
        for ids, mask, lab, ent in _batches(train, batch_size, rng, tok.pad_token_id, tok.unk_token_id, unk_prob,
                                            tok.mask_token_id):
            ids, mask, lab = ids.to(device), mask.to(device), lab.to(device)
            wts = 1.0 + (entity_weight - 1.0) * ent.to(device).float()
            logits = model(input_ids=ids, attention_mask=mask).logits[..., 0]
            on = lab != -100
            loss = (loss_fn(logits[on], lab[on].float()) * wts[on]).sum() / wts[on].sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == steps:
                log(f"epoch {ep + 1} step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    by_entity = keep == "entities" and bool(names)  # only entities are emitted: choose their threshold on them
    thr, f1 = best_threshold(*_scores(model, dev, batch_size, tok.pad_token_id, device, by_entity))
    model.to("cpu")
    log(f"held-out {'entity ' if by_entity else ''}token F1 {f1:.3f} at threshold {thr}")
    meta = {"kind": TAGGER_KIND, "format_version": FORMAT_VERSION, "base": str(base_path), "threshold": thr,
            "mode": mode, "boost": boost, "keep": keep, "carry": carry, "max_length": max_length,
            "added_cjk_tokens": added, "train_examples": len(train), "heldout_examples": len(dev),
            "heldout_token_f1": round(f1, 4), "threshold_on": "entities" if by_entity else "tokens",
            "pos_weight": round(float(pos_weight), 3), "unk_prob": unk_prob, "entity_weight": entity_weight,
            "entity_mask": bool(names), "entity_names": len(names), "steps": steps, "device": device,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    return _save_rewriter(out, model, tok, meta, config)


def init_tiny_seq2seq(out: str | Path, tokenizer: str | Path | None = None, extra_tokens: Sequence[str] = (),
                      d_model: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny T5 built from a config (no weights downloaded) with the MiniLM WordPiece tokenizer (+ extra tokens)."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from retrieval_kd.teachers.dense import resolve_model_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(resolve_model_path(tokenizer))
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    cfg = T5Config(vocab_size=len(tok), d_model=d_model, d_kv=d_model // 4, d_ff=d_model * 2, num_layers=layers,
                   num_decoder_layers=layers, num_heads=4, pad_token_id=tok.pad_token_id,
                   eos_token_id=tok.sep_token_id, decoder_start_token_id=tok.pad_token_id)
    model = T5ForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = tok.sep_token_id
    model.generation_config.decoder_start_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


def train_seq2seq(examples: Sequence[Example], out: str | Path, model_path: str | Path, epochs: int = 1,
                  batch_size: int = 8, lr: float = 3e-4, max_length: int = 256, seed: int = 0,
                  config: dict | None = None, log=print) -> Path:
    """Teacher-forced fine-tuning of any HF seq2seq folder to emit 'query ; query' from the dialogue."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    set_threads()
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_path)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(seed)
    ex = list(examples)
    t0, step = time.perf_counter(), 0
    model.train()
    for _ in range(epochs):
        rng.shuffle(ex)
        for s in range(0, len(ex), batch_size):
            chunk = ex[s : s + batch_size]
            enc = tok([layout(e["dialogue"])[0] for e in chunk], truncation=True, max_length=max_length,
                      padding=True, return_tensors="pt", return_token_type_ids=False)
            tgt = tok(text_target=[" ; ".join(e["queries"]) for e in chunk], truncation=True, max_length=64,
                      padding=True, return_tensors="pt")["input_ids"]
            tgt[tgt == tok.pad_token_id] = -100
            loss = model(**enc, labels=tgt).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                log(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    meta: dict[str, Any] = {"kind": SEQ2SEQ_KIND, "format_version": FORMAT_VERSION, "base": str(model_path),
                            "train_examples": len(ex), "steps": step,
                            "train_seconds": round(time.perf_counter() - t0, 1)}
    return _save_rewriter(out, model, tok, meta, config)


def _save_rewriter(out: str | Path, model: Any, tok: Any, meta: dict[str, Any], config: Any) -> Path:
    """Model, tokenizer, rewriter.json and run_info.json, written to a temp folder then renamed."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "rewriter.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp / "run_info.json").write_text(json.dumps(run_info(config), indent=2, default=str) + "\n")
    return Path(out)
