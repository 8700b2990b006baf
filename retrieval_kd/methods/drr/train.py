"""Train rewriter students from teacher queries: the extractive tagger (token labels) and a seq2seq model."""
from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import write_meta
from retrieval_kd.errors import RKDError
from retrieval_kd.methods.drr.config import TrainParamsConfig, TrainRewriterConfig
from retrieval_kd.methods.drr.rewriters import FORMAT_VERSION, SEQ2SEQ_KIND, TAGGER_KIND
from retrieval_kd.methods.drr.tagging import keep_mask, layout, token_labels
from retrieval_kd.progress import progress_enabled
from retrieval_kd.teachers.queries import Example
from retrieval_kd.text.cjk import is_cjk
from retrieval_kd.threads import set_threads
from retrieval_kd.utils import atomic_dir, run_info, write_json


def cjk_chars(examples: Sequence[Example], min_count: int = 2) -> list[str]:
    """CJK characters seen at least `min_count` times in the training dialogues (new tagger vocabulary)."""
    c = Counter(ch for e in examples for t in e["dialogue"] for ch in t["text"]
                if is_cjk(ch))
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


def train_tagger(cfg: TrainRewriterConfig, examples: Sequence[Example], out: str | Path | None = None,
                 names: Sequence[str] = (), log: Callable[[str], Any] = print) -> Path:
    """Fine-tune MiniLM (or `cfg.base`) as a token tagger on teacher-query labels; saves an HF folder + meta.json.

    `names`: medicine names [MASK]ed in the dialogues (see `encode`); `out`: the folder (default `cfg.out`).
    """
    import torch

    p = cfg.train
    set_threads()
    torch.manual_seed(p.seed)
    device = p.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if len(examples) < 10:
        raise RKDError(f"need at least 10 training examples with teacher queries, got {len(examples)}")
    base_path, tok, model, added = _tagger_model(cfg.base, examples, p.add_cjk, device)
    rng = random.Random(p.seed)
    ex = list(examples)
    rng.shuffle(ex)
    n_dev = max(1, int(len(ex) * p.heldout))
    dev, train = encode(tok, ex[:n_dev], p.max_length, names), encode(tok, ex[n_dev:], p.max_length, names)
    t0 = time.perf_counter()
    pos_weight, steps = _fit_tagger(model, tok, train, p, device, rng, log)
    model.eval()
    by_entity = cfg.keep == "entities" and bool(names)  # only entities are emitted: choose their threshold on them
    thr, f1 = best_threshold(*_scores(model, dev, p.batch_size, tok.pad_token_id, device, by_entity))
    model.to("cpu")
    log(f"held-out {'entity ' if by_entity else ''}token F1 {f1:.3f} at threshold {thr}")
    meta = {"base": str(base_path), "threshold": thr, "mode": cfg.mode, "boost": cfg.boost, "keep": cfg.keep,
            "carry": cfg.carry, "max_length": p.max_length, "added_cjk_tokens": added, "train_examples": len(train),
            "heldout_examples": len(dev), "heldout_token_f1": round(f1, 4),
            "threshold_on": "entities" if by_entity else "tokens", "pos_weight": round(pos_weight, 3),
            "unk_prob": p.unk_prob, "entity_weight": p.entity_weight, "entity_mask": bool(names),
            "entity_names": len(names), "steps": steps, "device": device,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    return _save_rewriter(out or cfg.out, model, tok, TAGGER_KIND, meta, cfg.model_dump())


def _tagger_model(base: str | Path | None, examples: Sequence[Example], add_cjk: bool, device: str):
    """(base path, tokenizer (+ the data's CJK characters), one-logit token-classification model on `device`,
    number of added tokens)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from retrieval_kd.teachers.dense import resolve_model_path

    base_path = resolve_model_path(base)
    tok = AutoTokenizer.from_pretrained(base_path)
    added = tok.add_tokens(cjk_chars(examples)) if add_cjk else 0
    model = AutoModelForTokenClassification.from_pretrained(base_path, num_labels=1)
    if added:
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    return base_path, tok, model.to(device), added


def _fit_tagger(model: Any, tok: Any, train: list, p: TrainParamsConfig, device: str, rng: random.Random,
                log: Callable[[str], Any]) -> tuple[float, int]:
    """Train the tagger with the weighted BCE of `retrieval_kd.losses`; returns (pos_weight, steps)."""
    import torch

    from retrieval_kd.losses import get_loss
    from retrieval_kd.training import TrainLoop, make_scheduler

    pos = sum(int(v == 1) for _, y, _ in train for v in y)
    neg = sum(int(v == 0) for _, y, _ in train for v in y)
    pos_weight = torch.tensor(min(neg / max(pos, 1), 10.0)).to(device)
    bce = get_loss("weighted_bce")
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=0.01)
    per_epoch = (len(train) + p.batch_size - 1) // p.batch_size
    steps = p.epochs * per_epoch
    batches = itertools.chain.from_iterable(
        _batches(train, p.batch_size, rng, tok.pad_token_id, tok.unk_token_id, p.unk_prob, tok.mask_token_id)
        for _ in range(p.epochs))

    def step_loss(step: int):
        """Weighted BCE of the next batch."""
        ids, mask, lab, ent = (x.to(device) for x in next(batches))
        wts = 1.0 + (p.entity_weight - 1.0) * ent.float()
        return bce(model(input_ids=ids, attention_mask=mask).logits[..., 0], lab, wts, pos_weight), {}

    loop = TrainLoop(opt, make_scheduler(opt, "linear", steps // 10, steps), steps, clip_norm=1.0, log_every=50,
                     progress=progress_enabled(), desc="tagger")  # a bar with ETA, not a line per 50 steps
    model.train()
    out = loop.run(step_loss)
    last = out.get("last") or {}
    log(f"tagger: {steps} steps ({max(1, -(-steps // max(per_epoch, 1)))} epochs) in {out['seconds']:.0f}s, "
        f"last loss {last.get('loss', float('nan')):.4f}")
    return float(pos_weight), steps


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


def init_bert2bert(out: str | Path, encoder: str | Path | None = None) -> Path:
    """A seq2seq student warm-started from pretrained weights: MiniLM as encoder and as decoder (causal self-attention,
    new cross-attention layers), output projection tied to the word embeddings, the WordPiece tokenizer."""
    from transformers import AutoTokenizer, EncoderDecoderModel

    from retrieval_kd.teachers.dense import resolve_model_path

    path = resolve_model_path(encoder)
    tok = AutoTokenizer.from_pretrained(path)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(path), str(path), decoder_tie_word_embeddings=True)
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = tok.cls_token_id, tok.pad_token_id, \
            tok.sep_token_id
    model.config.tie_word_embeddings = False  # encoder and decoder embeddings stay separate modules
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


def _targets(tok, model, texts: Sequence[str]):
    """Label ids of target texts: an encoder-decoder starts from [CLS] itself, so its labels drop it."""
    if getattr(model.config, "is_encoder_decoder", False) and model.config.model_type == "encoder-decoder":
        ids = tok(list(texts), add_special_tokens=False, truncation=True, max_length=63)["input_ids"]
        ids = [x + [tok.sep_token_id] for x in ids]
        n = max(len(x) for x in ids)
        import torch

        return torch.tensor([x + [-100] * (n - len(x)) for x in ids])
    tgt = tok(text_target=list(texts), truncation=True, max_length=64, padding=True, return_tensors="pt")["input_ids"]
    tgt[tgt == tok.pad_token_id] = -100
    return tgt


def train_seq2seq(cfg: TrainRewriterConfig, examples: Sequence[Example], model_path: str | Path,
                  out: str | Path | None = None, log: Callable[[str], Any] = print) -> Path:
    """Teacher-forced fine-tuning of any HF seq2seq folder to emit 'query ; query' from the dialogue."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from retrieval_kd.training import TrainLoop, make_scheduler

    p = cfg.train
    set_threads()
    torch.manual_seed(p.seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_path)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr)
    rng = random.Random(p.seed)
    ex = list(examples)
    steps = p.epochs * ((len(ex) + p.batch_size - 1) // p.batch_size)
    batches = _seq2seq_batches(ex, p.batch_size, p.epochs, rng)

    def step_loss(step: int):
        """Teacher-forced cross-entropy of the next batch."""
        chunk = next(batches)
        enc = tok([layout(e["dialogue"])[0] for e in chunk], truncation=True, max_length=p.max_length,
                  padding=True, return_tensors="pt", return_token_type_ids=False)
        tgt = _targets(tok, model, [" ; ".join(e["queries"]) for e in chunk])
        return model(**enc, labels=tgt).loss, {}

    loop = TrainLoop(opt, make_scheduler(opt, "linear", steps // 10, steps), steps, clip_norm=1.0, log_every=50,
                     progress=progress_enabled(), desc="seq2seq")
    model.train()
    result = loop.run(step_loss)
    last = result.get("last") or {}
    log(f"seq2seq: {steps} steps in {result['seconds']:.0f}s, last loss {last.get('loss', float('nan')):.4f}")
    meta: dict[str, Any] = {"base": str(model_path), "train_examples": len(ex), "steps": result["steps"],
                            "train_seconds": round(result["seconds"], 1), "boost": cfg.boost,
                            "copy_only": cfg.copy_only, "max_length": p.max_length}
    return _save_rewriter(out or cfg.out, model, tok, SEQ2SEQ_KIND, meta, cfg.model_dump())


def _seq2seq_batches(ex: list[Example], batch_size: int, epochs: int, rng: random.Random):
    """Batches of examples, the list reshuffled in place at the start of each epoch."""
    for _ in range(epochs):
        rng.shuffle(ex)
        for s in range(0, len(ex), batch_size):
            yield ex[s : s + batch_size]


def _save_rewriter(out: str | Path, model: Any, tok: Any, kind: str, meta: dict[str, Any], config: Any) -> Path:
    """Model, tokenizer, meta.json (`kind`, format version, how it was trained) and run_info.json, atomically."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_meta(tmp, kind, FORMAT_VERSION, **meta)
        write_json(tmp / "run_info.json", run_info(config))
    return Path(out)
