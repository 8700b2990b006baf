"""Torch-free parts of the extractive rewriter: dialogue layout, teacher labels, tag probabilities → queries."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from retrieval_kd.methods.drr.query import WeightedQuery, weighted_query
from retrieval_kd.text.cjk import CJK, IS_CJK
from retrieval_kd.text.lexicon import NameLexicon
from retrieval_kd.text.medicine_zh import ASPECT_WORDS, aliases
from retrieval_kd.text.tokenize import STOPWORDS, stem

SEP = " [SEP] "
_TOKEN = re.compile(rf"[{CJK}]|[^\W_]+", re.UNICODE)
Dialogue = Sequence[Mapping[str, Any]]


def turn_text(turn: Mapping[str, Any]) -> str:
    """The text of a turn given as {"role","text"} (server) or {"utterance"} (datasets)."""
    return str(turn.get("text") if turn.get("text") is not None else turn.get("utterance", ""))


def last_user(dialogue: Dialogue) -> str:
    """The last user utterance (the question being asked now)."""
    for t in reversed(dialogue):
        if t.get("role", "user") == "user":
            return turn_text(t)
    return turn_text(dialogue[-1]) if dialogue else ""


MASK = "[MASK]"
Entities = list[tuple[int, int, str]]  # (start, end, original text) of each masked mention in the layout text


def find_mentions(text: str, names: Sequence[str]) -> list[tuple[int, int]]:
    """Non-overlapping spans naming one of `names` (the full name or a shortened form, see `aliases`), longest first."""
    taken = np.zeros(len(text), dtype=bool)
    spans = []
    for form in _alias_forms(tuple(names)):
        start = text.find(form)
        while start >= 0:
            end = start + len(form)
            if not taken[start:end].any():
                taken[start:end] = True
                spans.append((start, end))
            start = text.find(form, end)
    return sorted(spans)


@lru_cache(maxsize=8)
def _alias_forms(names: tuple[str, ...]) -> list[str]:
    return sorted({a for n in names for a in aliases(n)}, key=lambda a: (-len(a), a))


def mask_entities(text: str, names: Sequence[str]) -> tuple[str, list[tuple[int, int, str]]]:
    """Replace each named entity by [MASK]: the tagger judges a mention by its context, not its (unknown) characters."""
    out, ents, last = "", [], 0
    for s, e in find_mentions(text, names) if names else []:
        out += text[last:s]
        ents.append((len(out), len(out) + len(MASK), text[s:e]))
        out += MASK
        last = e
    return out + text[last:], ents


def layout(dialogue: Dialogue, names: Sequence[str] = ()) -> tuple[str, list[tuple[int, int]]] | tuple:
    """Tagger input: the last user turn first, then earlier turns newest first, joined by [SEP].

    Returns the text and the (start, end) character span of each segment (segment 0 = the question), so that
    truncating the end of the text drops the oldest turns first. With `names` (a gazetteer of medicines), each
    mention becomes [MASK] and a third value lists the masked (start, end, original) spans.
    """
    turns = [turn_text(t) for t in dialogue]
    last = max((i for i, t in enumerate(dialogue) if t.get("role", "user") == "user"), default=len(turns) - 1)
    order = [last] + [i for i in range(len(turns) - 1, -1, -1) if i != last]
    text, spans, ents = "", [], []
    for k, i in enumerate(order):
        if k:
            text += SEP
        turn, found = mask_entities(turns[i], names) if names else (turns[i], [])
        ents += [(s + len(text), e + len(text), orig) for s, e, orig in found]
        spans.append((len(text), len(text) + len(turn)))
        text += turn
    return (text, spans, ents) if names else (text, spans)


def _units(text: str) -> list[tuple[int, int, str]]:
    """(start, end, unit): single CJK characters and other words."""
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def keep_mask(text: str, queries: Iterable[str], entities: Entities = ()) -> np.ndarray:
    """Teacher labels per character: words whose stem is in a teacher query, CJK bigrams found in one.

    A masked entity is labelled as a whole: kept when its original text occurs in a teacher query.
    """
    qs = [q.lower() for q in queries]
    stems = {stem(w) for q in qs for w in re.findall(r"[^\W_]+", q) if not IS_CJK.search(w) and w not in STOPWORDS}
    bigrams = {q[i : i + 2] for q in qs for i in range(len(q) - 1) if IS_CJK.match(q[i]) and IS_CJK.match(q[i + 1])}
    mask = np.zeros(len(text), dtype=np.int8)
    low = text.lower()
    for s, e, u in _units(low):
        if not IS_CJK.match(u) and u not in STOPWORDS and stem(u) in stems:
            mask[s:e] = 1
    for i in range(len(low) - 1):
        if low[i : i + 2] in bigrams:
            mask[i : i + 2] = 1
    for s, e, orig in entities:
        mask[s:e] = int(any(orig.lower() in q for q in qs))
    return mask


def token_labels(offsets: Sequence[tuple[int, int]], mask: np.ndarray) -> np.ndarray:
    """Per-token label = any labelled character under the token; -100 for special tokens (no characters)."""
    out = np.full(len(offsets), -100, dtype=np.int64)
    for i, (s, e) in enumerate(offsets):
        if e > s:
            out[i] = int(mask[s:e].max())
    return out


def char_probs(n_chars: int, offsets: Sequence[tuple[int, int]], probs: np.ndarray) -> np.ndarray:
    """Spread token keep-probabilities onto the characters they cover."""
    out = np.zeros(n_chars, dtype=np.float32)
    for (s, e), p in zip(offsets, probs):
        if e > s:
            out[s:e] = np.maximum(out[s:e], p)
    return out


def kept_terms(text: str, spans: Sequence[tuple[int, int]], cprobs: np.ndarray, threshold: float = 0.5,
               min_cjk: int = 2, entities: Entities = ()) -> list[str]:
    """Kept words, CJK runs and masked entities, question segment first then history newest first, deduplicated."""
    terms: list[str] = []
    ent_at = {s: (e, orig) for s, e, orig in entities}
    for s0, e0 in spans:
        run = ""
        skip_to = -1
        for s, e, u in _units(text[s0:e0]):
            s, e = s + s0, e + s0
            if s < skip_to:
                continue
            if s - 1 in ent_at:  # a [MASK] unit ('MASK' starts one character after '[')
                end, orig = ent_at[s - 1]
                skip_to = end
                if len(run) >= min_cjk:
                    terms.append(run)
                run = ""
                if float(cprobs[s - 1 : end].max()) >= threshold:
                    terms.append(orig)
                continue
            keep = float(cprobs[s:e].max()) >= threshold if e > s else False
            if IS_CJK.match(u):
                if keep:
                    run += u
                    continue
            elif keep and u.lower() not in STOPWORDS:
                terms.append(u)
            if len(run) >= min_cjk:
                terms.append(run)
            run = ""
        if len(run) >= min_cjk:
            terms.append(run)
    seen: set[str] = set()
    return [t for t in terms if not (t.lower() in seen or seen.add(t.lower()))]


class Corrector:
    """Query-term correction against the database vocabulary: one edit (en words), name similarity (zh).

    Safe by construction: a word that is, or is near, an entity name of `lexicon` (see text/lexicon.py) is never
    changed, nor is a word of the general `dictionary` (the encoder's whole-word vocabulary: 'feeding' is a word,
    not a typo of 'feeling'); a correction is one edit (`max_edits`), and its result is never a lexicon name.
    """

    def __init__(self, words: Mapping[str, int] | None = None, names: Iterable[str] = (),
                 aspects: Mapping[str, str] | None = None, lexicon: NameLexicon | None = None,
                 dictionary: Iterable[str] = (), max_edits: int = 1):
        self.words = {w.lower(): int(c) for w, c in (words or {}).items()}
        self.names = sorted(set(names))
        self.aspect_words = dict(aspects or {})
        self.lexicon, self.dictionary, self.max_edits = lexicon, frozenset(dictionary), int(max_edits)
        self._bigrams = {n: _bigrams(n) for n in self.names}

    @classmethod
    def from_texts(cls, texts: Iterable[str], names: Iterable[str] = (), min_count: int = 2,
                   aspects: Mapping[str, str] | None = None, **kw: Any) -> Corrector:
        """Vocabulary of lower-case alphabetic words seen at least `min_count` times (+ entity names, aspects)."""
        c = Counter(w for t in texts for w in re.findall(r"[a-z]{3,}", t.lower()))
        return cls({w: n for w, n in c.items() if n >= min_count}, names, aspects, **kw)

    @classmethod
    def for_medicines(cls, records: Iterable[Mapping[str, Any]]) -> Corrector:
        """zh database vocabulary: medicine names of the records + the colloquial → attribute aspect words."""
        recs = list(records)
        return cls.from_texts((r["contents"] for r in recs), {r["drug"] for r in recs if r.get("drug")},
                              aspects=ASPECT_WORDS)

    def aspects(self, question: str) -> list[str]:
        """Database attribute names that the question's wording asks about ('副作用' → '不良反应')."""
        taken = np.zeros(len(question), dtype=bool)
        found = set()
        for word in sorted(self.aspect_words, key=len, reverse=True):  # '副作用' wins over '作用'
            start = question.find(word)
            while start >= 0:
                if not taken[start : start + len(word)].any():
                    taken[start : start + len(word)] = True
                    found.add(self.aspect_words[word])
                start = question.find(word, start + 1)
        return sorted(found)

    def protected(self, word: str) -> bool:
        """True when the word must stay as written: a dictionary word, or (near) a lexicon name."""
        w = word.lower()
        return w in self.dictionary or (self.lexicon is not None and self.lexicon.protects(w))

    def correct(self, term: str) -> str:
        """The database spelling of a term, or the term itself when nothing safe and close is known."""
        if IS_CJK.search(term):
            return self._name(term)
        w = term.lower()
        if not self.words or w in self.words or len(w) < 5 or not w.isalpha() or self.protected(w):
            return term
        cands = [c for c in _edits1(w) if c in self.words]
        if not cands and self.max_edits >= 2 and len(w) >= 7:
            cands = [c for e in _edits1(w) for c in _edits1(e) if c in self.words]
        cands = [c for c in cands if self.lexicon is None or not self.lexicon.protects(c)]
        return max(cands, key=lambda c: (self.words[c], c)) if cands else term

    def _name(self, span: str, min_dice: float = 0.6) -> str:
        if not self.names or any(span in n for n in self.names):
            return span
        b = _bigrams(span)
        best = max(self.names, key=lambda n: _dice(b, self._bigrams[n]))
        return best if _dice(b, self._bigrams[best]) >= min_dice else span

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words, "names": self.names, "aspects": self.aspect_words,
                "lexicon": self.lexicon.to_json() if self.lexicon is not None else None,
                "dictionary": sorted(self.dictionary), "max_edits": self.max_edits}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Corrector:
        """The corrector `to_json` wrote (older files without lexicon/dictionary read as before)."""
        lex = data.get("lexicon")
        return cls(data.get("words"), data.get("names", []), data.get("aspects"),
                   NameLexicon.from_json(lex) if lex else None, data.get("dictionary", []),
                   int(data.get("max_edits", 2 if "lexicon" not in data else 1)))


def _bigrams(s: str) -> set[str]:
    return {s[i : i + 2] for i in range(len(s) - 1)} or {s}


def _dice(a: set[str], b: set[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b))


def _edits1(w: str) -> set[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
    return ({a + b[1:] for a, b in splits if b} | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in letters} | {a + c + b for a, b in splits for c in letters})


def kept_entities(spans: Sequence[tuple[int, int]], cprobs: np.ndarray, entities: Entities, threshold: float = 0.5,
                  carry: bool = True) -> list[str]:
    """Masked entities to search for: those of the question kept by the tagger, plus at most one from the history.

    Of the history entities the tagger keeps, the newest is carried (the layout puts newer turns first: a pronoun
    refers to the latest medicine named); when it keeps none and the question keeps none either, `carry` takes the
    most probable history entity anyway ('what are its side effects?' must refer to something).
    """
    q_end = spans[0][1] if spans else 0
    scored = [(float(cprobs[s:e].max()) if e > s else 0.0, s, orig) for s, e, orig in entities]
    out = [orig for p, s, orig in scored if s < q_end and p >= threshold]
    history = sorted((x for x in scored if x[1] >= q_end), key=lambda x: x[1])  # newest first
    kept = [orig for p, _, orig in history if p >= threshold]
    if kept:
        out.append(kept[0])
    elif carry and history and not out:
        out.append(max(history, key=lambda x: (x[0], -x[1]))[2])  # ties: the newest
    return list(dict.fromkeys(out))


def finish(dialogue: Dialogue, text: str, spans: Sequence[tuple[int, int]], cprobs: np.ndarray,
           entities: Entities, threshold: float, mode: str, boost: int, corrector: Corrector | None,
           keep: str = "terms", carry: bool = False) -> list[str]:
    """Tag probabilities → kept terms (corrected, + linked aspects) → queries: the students' shared last step.

    keep='terms': every kept word, CJK run and entity; keep='entities': only the masked entities (`kept_entities`),
    for databases searched by name + aspect, where kept question fragments only repeat the question.
    """
    if keep == "terms":
        terms = kept_terms(text, spans, cprobs, threshold, entities=entities)
    elif keep == "entities":
        terms = kept_entities(spans, cprobs, entities, threshold, carry)
    else:
        raise ValueError(f"keep must be terms or entities, got {keep!r}")
    question = last_user(dialogue)
    if corrector is not None:
        terms = list(dict.fromkeys([corrector.correct(t) for t in terms] + corrector.aspects(question)))
    return make_queries(question, terms, mode, boost)


class TaggerRewriter:
    """The last step both tagger runtimes share (torch, ONNX): `tag` (their own) → `finish` for each dialogue."""

    threshold: float
    mode: str
    boost: int
    corrector: Corrector | None
    keep: str = "terms"
    carry: bool = False

    def tag(self, dialogues: Sequence[Dialogue]) -> list[tuple[str, list, np.ndarray, list]]:
        raise NotImplementedError

    def rewrite_batch(self, dialogues: Sequence[Dialogue]) -> list[list[str]]:
        return [finish(d, text, spans, cp, ents, self.threshold, self.mode, self.boost, self.corrector, self.keep,
                       self.carry) for d, (text, spans, cp, ents) in zip(dialogues, self.tag(dialogues))]

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        return self.rewrite_batch([dialogue])[0]


def make_queries(question: str, terms: Sequence[str], mode: str = "append", boost: int = 2) -> list[str]:
    """Weighted queries from kept terms: 'append' (question words 1, kept terms `boost`), 'replace' (the kept terms,
    weight 1 each), 'both'. Each is a `WeightedQuery`: its text never repeats a word (see query.py)."""
    appended = weighted_query(question, terms, boost) if terms else WeightedQuery(question, [])
    keywords = weighted_query("", terms, 1.0) if terms else WeightedQuery(question, [])
    if mode == "append":
        return [appended]
    if mode == "replace":
        return [keywords]
    if mode == "both":
        return [appended] + ([keywords] if terms else [])
    raise ValueError(f"mode must be append, replace or both, got {mode!r}")
