"""Tokenisers shared by BM25, the taggers and the trainers: English (Lucene stopwords, Snowball stems), Chinese."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from retrieval_kd.errors import RKDError
from retrieval_kd.text.cjk import CJK, IS_CJK

# Lucene's default English stop set (EnglishAnalyzer), as Anserini uses it.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)




_WORD = re.compile(rf"[{CJK}]+|[^\W_]+", re.UNICODE)




@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball (Porter2) English stem of one lower-case word (memoised: the stemmer is pure Python)."""
    return _stemmer().stemWord(word)


def tokenize_en(text: str) -> list[str]:
    """Lower-cased words without Lucene stopwords, Snowball (Porter2) stemmed."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and not IS_CJK.match(w)]


def tokenize_zh_bigram(text: str) -> list[str]:
    """Overlapping character bigrams of CJK runs (a lone character stays a unigram) + English words."""
    out: list[str] = []
    for run in _WORD.findall(text.lower()):
        if IS_CJK.match(run):
            out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        elif run not in STOPWORDS:
            out.append(run)
    return out


def tokenize_zh_jieba(text: str) -> list[str]:
    """jieba words (search mode off) of CJK runs + English words."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    out: list[str] = []
    for run in _WORD.findall(text.lower()):
        if IS_CJK.match(run):
            out.extend(w for w in jieba.lcut(run) if w.strip())
        elif run not in STOPWORDS:
            out.append(run)
    return out


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "en": tokenize_en, "zh-bigram": tokenize_zh_bigram, "zh-jieba": tokenize_zh_jieba,
}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    """A tokeniser by name: 'en', 'zh-bigram', 'zh-jieba'."""
    if name not in TOKENIZERS:
        raise RKDError(f"unknown BM25 tokenizer {name!r}; choose one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[name]
