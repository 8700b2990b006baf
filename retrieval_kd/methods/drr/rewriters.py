"""Query-rewriter students: extractive token tagger (MiniLM body), seq2seq (any HF folder), no-model baselines."""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import META, read_meta
from retrieval_kd.errors import RKDError
from retrieval_kd.methods.drr.tagging import (
    Corrector,
    Dialogue,
    TaggerRewriter,
    char_probs,
    last_user,
    layout,
    turn_text,
)

_CJK_SPACE = re.compile(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])")
TAGGER_KIND = "rewriter-tagger"
SEQ2SEQ_KIND = "rewriter-seq2seq"
FORMAT_VERSION = 1


class LastUtterance:
    """Baseline: the last user utterance as the only query (Retrieve-then-Read on the raw question)."""

    name = "last-utterance"

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        return [last_user(dialogue)]


class WholeDialogue:
    """Baseline: every turn of the dialogue concatenated into one query."""

    name = "whole-dialogue"

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        return [" ".join(turn_text(t) for t in dialogue)]


class LinkedRecency:
    """No-model reference: database names linked by string match; a question naming none carries the newest one.

    Query = question + the medicine it names (else the most recently named one) + linked aspect words, the way
    the tagger's output is assembled; shows what database-vocabulary linking plus a recency rule gives.
    """

    name = "linked names + recency (no model)"

    def __init__(self, corrector: Corrector, boost: int = 2):
        self.corrector, self.boost = corrector, boost

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        from retrieval_kd.methods.drr.tagging import find_mentions, make_queries

        question = last_user(dialogue)
        found = [question[s:e] for s, e in find_mentions(question, self.corrector.names)]
        for t in reversed(dialogue[:-1]):
            if found:
                break
            text = turn_text(t)
            found = [text[s:e] for s, e in find_mentions(text, self.corrector.names)][-1:]
        return make_queries(question, found + self.corrector.aspects(question), "append", self.boost)


class ExtractiveRewriter(TaggerRewriter):
    """Token tagger on a BERT body: keeps the dialogue terms a teacher would search for, emits keyword queries."""

    name = "extractive"

    def __init__(self, path: str | Path, threshold: float | None = None, mode: str | None = None,
                 boost: int | None = None, corrector: Corrector | None = None, device: str = "cpu"):
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.path = Path(path)
        meta = read_meta(self.path, TAGGER_KIND, what="extractive rewriter")
        self.meta = meta
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForTokenClassification.from_pretrained(self.path).to(device).eval()
        self.device = device
        self.max_length = int(meta.get("max_length", 256))
        self.threshold = float(threshold if threshold is not None else meta.get("threshold", 0.5))
        self.mode = mode or meta.get("mode", "append")
        self.boost = int(boost if boost is not None else meta.get("boost", 2))
        self.keep, self.carry = meta.get("keep", "terms"), bool(meta.get("carry", False))
        self.corrector = corrector
        self._torch = torch

    @property
    def names(self) -> list[str]:
        """Entity gazetteer for [MASK]ing (the corrector's medicine names) when the tagger was trained so."""
        return self.corrector.names if self.meta.get("entity_mask") and self.corrector is not None else []

    def tag(self, dialogues: Sequence[Dialogue], batch_size: int = 32) -> list[tuple[str, list, np.ndarray, list]]:
        """(layout text, segment spans, per-character keep probabilities, masked entities) of each dialogue."""
        out = []
        names = self.names
        for start in range(0, len(dialogues), batch_size):
            laid = [layout(d, names) if names else (*layout(d), []) for d in dialogues[start : start + batch_size]]
            enc = self.tokenizer([x[0] for x in laid], truncation=True, max_length=self.max_length, padding=True,
                                 return_offsets_mapping=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").tolist()
            with self._torch.inference_mode():
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits[..., 0]
            probs = self._torch.sigmoid(logits).float().cpu().numpy()
            for (text, spans, ents), off, p in zip(laid, offsets, probs):
                out.append((text, spans, char_probs(len(text), off, p), ents))
        return out


class Seq2SeqRewriter:
    """Any Hugging Face seq2seq folder (T5, BART, MiniLM2MiniLM...): dialogue in, ';'-separated terms out (greedy);
    the terms are appended to the question as weighted terms (`boost`), like the tagger's.

    `copy_only` (the trained student's meta, default on): decoding may only write tokens of the dialogue, ';' and
    the end token, so the student chooses what to search for among the user's words and never invents a name.
    """

    name = "seq2seq"

    def __init__(self, path: str | Path, max_length: int | None = None, max_new_tokens: int = 24,
                 device: str = "cpu", append: bool = True, boost: float | None = None,
                 copy_only: bool | None = None):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise RKDError(f"{self.path}: not a Hugging Face model folder (no config.json)")
        meta = read_meta(self.path) if (self.path / META).exists() else {}
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(self.path).to(device).eval()
        self.max_length = int(max_length or meta.get("max_length", 256))
        self.max_new_tokens, self.device, self.append = max_new_tokens, device, append
        self.boost = float(boost if boost is not None else meta.get("boost", 2))
        self.copy_only = bool(meta.get("copy_only", False) if copy_only is None else copy_only)

    def _allowed(self, input_ids):
        """prefix_allowed_tokens_fn: the row's input tokens + ';' + end (specials and padding excepted)."""
        tok = self.tokenizer
        extra = set(tok.convert_tokens_to_ids([";"])) | {tok.sep_token_id or tok.eos_token_id}
        banned = {tok.pad_token_id, tok.cls_token_id, tok.unk_token_id, tok.mask_token_id} - {None}
        rows = [sorted((set(r.tolist()) - banned) | extra) for r in input_ids]
        return lambda batch_id, _prefix: rows[batch_id]

    def generate(self, dialogues: Sequence[Dialogue], batch_size: int = 16) -> list[list[str]]:
        """The generated terms of each dialogue (split at ';')."""
        import torch

        out = []
        for start in range(0, len(dialogues), batch_size):
            chunk = dialogues[start : start + batch_size]
            enc = self.tokenizer([layout(d)[0] for d in chunk], truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt", return_token_type_ids=False).to(self.device)
            kw = {"prefix_allowed_tokens_fn": self._allowed(enc["input_ids"])} if self.copy_only else {}
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                          no_repeat_ngram_size=2, **kw)
            for d, text in zip(chunk, self.tokenizer.batch_decode(gen, skip_special_tokens=True)):
                text = _CJK_SPACE.sub("", text)  # WordPiece decoding puts spaces between CJK characters
                terms = [q.strip() for q in text.split(";") if q.strip()]
                out.append(list(dict.fromkeys(_snap(terms, d) if self.copy_only else terms)))
        return out

    def rewrite_batch(self, dialogues: Sequence[Dialogue], batch_size: int = 16) -> list[list[str]]:
        from retrieval_kd.methods.drr.tagging import make_queries

        out = []
        for d, terms in zip(dialogues, self.generate(dialogues, batch_size)):
            q = last_user(d)
            out.append(make_queries(q, terms, "append", self.boost) if self.append else (terms or [q]))
        return out

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        return self.rewrite_batch([dialogue])[0]


def _snap(terms: list[str], dialogue: Dialogue) -> list[str]:
    """Copied terms as whole dialogue words: a word piece ('fiss') becomes the first word it starts ('fissures');
    a piece starting no word is dropped."""
    words = [w for t in dialogue for w in re.findall(r"[^\W_]+", turn_text(t))]
    out = []
    for term in terms:
        snapped = []
        for piece in re.findall(r"[^\W_]+", term):
            full = next((w for w in words if w.lower() == piece.lower()), None) or \
                next((w for w in words if w.lower().startswith(piece.lower())), None)
            if full and full not in snapped:
                snapped.append(full)
        if snapped:
            out.append(" ".join(snapped))
    return out


def load_rewriter(spec: str | Path, **kw: Any):
    """A rewriter by name ('last-utterance', 'whole-dialogue') or from a trained student folder."""
    if str(spec) == LastUtterance.name:
        return LastUtterance()
    if str(spec) == WholeDialogue.name:
        return WholeDialogue()
    path = Path(spec)
    if (path / META).exists():
        kind = read_meta(path).get("kind")
        if kind == TAGGER_KIND:
            return ExtractiveRewriter(path, **kw)
        if kind == SEQ2SEQ_KIND:
            return Seq2SeqRewriter(path)
    if (path / "config.json").exists():
        return Seq2SeqRewriter(path)
    raise RKDError(f"{spec}: not a rewriter (expected last-utterance, whole-dialogue or a student folder)")
