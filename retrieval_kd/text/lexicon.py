"""Entity-name lexicon (medicines, conditions) that query-term correction must never touch (torch-free, no data).

A word is *protected* when it is a lexicon word or near one: within `max_edits` (2) edits, or sharing its first
`prefix` (5) letters with a lexicon word of at least `prefix + 1` letters. 'prednisolone' is near 'prednisone',
'topamax' near 'fosamax', 'desonide' near 'budesonide': a corrector that only sees the corpus vocabulary would
turn one medicine into another, so such words are left as the user wrote them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from retrieval_kd.text.tokenize import STOPWORDS

_WORD = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]|[a-z]")
MIN_LEN = 4  # lexicon words shorter than this ('oral', 'gel' excepted by length) are not kept


def edit_distance(a: str, b: str, bound: int = 2) -> int:
    """Levenshtein distance of a and b, or `bound + 1` as soon as it must exceed `bound` (banded DP)."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > bound:
            return bound + 1
        prev = cur
    return min(prev[-1], bound + 1)


def name_words(names: Iterable[str]) -> set[str]:
    """Lower-case words (≥ MIN_LEN letters, no stopwords) of entity names ('Budesonide Nasal Spray' → 3 words)."""
    out = set()
    for n in names:
        for w in _WORD.findall(str(n).lower()):
            if len(w) >= MIN_LEN and w not in STOPWORDS:
                out.add(w)
    return out


class NameLexicon:
    """Words of entity names; `protects(word)` says whether a word is, or is near, one of them."""

    def __init__(self, words: Iterable[str], max_edits: int = 2, prefix: int = 5):
        self.words = frozenset(w.lower() for w in words)
        self.max_edits, self.prefix = max_edits, prefix
        self._by_len: dict[int, list[str]] = {}
        for w in self.words:
            self._by_len.setdefault(len(w), []).append(w)
        self._prefixes = {w[:prefix] for w in self.words if len(w) > prefix}

    @classmethod
    def from_names(cls, names: Iterable[str], **kw) -> NameLexicon:
        """Lexicon of the words of full entity names."""
        return cls(name_words(names), **kw)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.words

    def nearest(self, word: str) -> str | None:
        """A lexicon word that `word` is, or is near (edits or shared prefix), else None."""
        w = word.lower()
        if w in self.words:
            return w
        if len(w) > self.prefix and w[: self.prefix] in self._prefixes:
            return next(x for x in self.words if x.startswith(w[: self.prefix]))
        for n in range(len(w) - self.max_edits, len(w) + self.max_edits + 1):
            for x in self._by_len.get(n, ()):
                if edit_distance(w, x, self.max_edits) <= self.max_edits:
                    return x
        return None

    def protects(self, word: str) -> bool:
        """True when `word` is, or is near, a lexicon word (short words < MIN_LEN letters are never near)."""
        return len(word) >= MIN_LEN and self.nearest(word) is not None

    def to_json(self) -> dict:
        return {"words": sorted(self.words), "max_edits": self.max_edits, "prefix": self.prefix}

    @classmethod
    def from_json(cls, data: dict) -> NameLexicon:
        return cls(data.get("words", []), int(data.get("max_edits", 2)), int(data.get("prefix", 5)))
