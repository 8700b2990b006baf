"""Structured rewrites: a query is a readable text plus weighted terms, never a text that repeats words to boost them.

`WeightedQuery` *is* its text (a `str`, so every consumer of plain queries keeps working: dense encoders, JSON,
the server's rewrite string) and carries `terms`, (term, weight) pairs in order. BM25 adds each term's tokens with
its weight (`BM25Index.weighted`), Lucene boosts them (`term^w`), dense retrieval reads the text. The weights of
'question + kept terms' reproduce the former 'question + terms × boost' string exactly (question words 1 each,
kept terms `boost` each), so BM25 scores are unchanged while the text no longer reads 'morphine morphine morphine'.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from retrieval_kd.text.cjk import IS_CJK

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class WeightedQuery(str):
    """A query text with weighted terms: `str(q)` is what a person reads, `q.terms` what a sparse index scores."""

    terms: tuple[tuple[str, float], ...]
    focus: tuple[str, ...]  # the rewriter's kept terms (what dense retrieval may read on their own)

    def __new__(cls, text: str, terms: Iterable[tuple[str, float]] = (), focus: Iterable[str] = ()):
        obj = super().__new__(cls, text)
        obj.terms = tuple((str(t), float(w)) for t, w in terms if str(t).strip() and float(w) > 0)
        obj.focus = tuple(str(f) for f in focus if str(f).strip())
        return obj

    def __reduce__(self):
        return (WeightedQuery, (str(self), self.terms, self.focus))

    @property
    def text(self) -> str:
        return str(self)

    def as_json(self) -> dict[str, Any]:
        """{"text", "terms": [{"term", "weight"}]}: how the server shows a rewrite."""
        return {"text": self.text, "terms": [{"term": t, "weight": w} for t, w in self.terms]}

    def lucene(self) -> str:
        """Lucene query-parser syntax: each word (word characters only: nothing to escape) with its summed boost."""
        weights: dict[str, float] = {}
        for term, w in self.terms:
            for word in _WORD.findall(term.lower()):
                weights[word] = weights.get(word, 0.0) + w
        return " ".join(f"{word}^{w:g}" if w != 1 else word for word, w in weights.items())


def weighted_query(question: str, terms: Sequence[str], boost: float = 2.0) -> WeightedQuery:
    """Question words (weight 1 per occurrence) + the kept terms' words (`boost` each), merged per lower-case word in
    order of appearance; text = the question + the kept terms' words it does not already contain (a CJK word: as a
    substring, Chinese writing no spaces), each once."""
    weights: dict[str, float] = {}
    for w in _WORD.findall(question):
        weights[w.lower()] = weights.get(w.lower(), 0.0) + 1.0
    seen, written = set(weights), question.lower()
    extra = []
    for t in terms:
        words = _WORD.findall(t)
        for w in words:
            low = w.lower()
            if low not in seen and not (IS_CJK.search(w) and low in written):  # CJK: no spaces between words
                extra.append(w)
                seen.add(low)
                written += " " + low
            weights[low] = weights.get(low, 0.0) + float(boost)
    text = " ".join(x for x in [question.strip(), *extra] if x) if extra else question
    return WeightedQuery(text, weights.items(), terms)


def query_text(query: Any, prefix: bool = True) -> str:
    """What the dense query student reads (methods/drr/dense_query.py): 'kept terms . text' for a rewrite with kept
    terms and `prefix` on, else the text."""
    focus = getattr(query, "focus", ()) if prefix else ()
    return f"{' '.join(focus)} . {query}" if focus else str(query)


def appended_words_repeat(query: str, question: str) -> list[str]:
    """Words the rewrite text writes beyond the question that are already in it or written twice (should be [])."""
    text = str(query)
    rest = text[len(question):] if text.startswith(question) else text
    seen, written = {w.lower() for w in _WORD.findall(question)}, question.lower()
    out = []
    for w in _WORD.findall(rest):
        if w.lower() in seen or (IS_CJK.search(w) and w.lower() in written):
            out.append(w)
        seen.add(w.lower())
        written += " " + w.lower()
    return out
