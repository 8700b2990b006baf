"""Safe query-term correction: the entity-name lexicon and general dictionary a `Corrector` must respect.

Lexicon (words of entity names, see text/lexicon.py): every MedQuAD `<Focus>` (diseases, drugs, genes: 1,312
drug monographs among them, answers removed or not), the LiveQA-Med training questions' FOCUS annotations,
the MedicineQA database's medicine names, and the words a corpus marks with ® or ™ (brand names). The test
questions' own annotations are not used (they are the report set). Dictionary: the whole words of the dense
encoder's WordPiece vocabulary (21k lower-case English words): a dictionary word is a word, never a typo.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from retrieval_kd.methods.drr.tagging import Corrector
from retrieval_kd.text.lexicon import NameLexicon, name_words

_FOCUS = re.compile(r"<Focus>([^<]*)</Focus>", re.I)
_BRAND = re.compile(r"([A-Za-z][A-Za-z-]{2,})\s*[®™]")


def medquad_focus_names(root: Path | None = None) -> list[str]:
    """Every `<Focus>` of the raw MedQuAD XML tree (empty when the folder is absent)."""
    from retrieval_kd.paths import data_root

    folder = (root or data_root()) / "medquad"
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*/*.xml")):
        out += [m.strip() for m in _FOCUS.findall(f.read_text(encoding="utf-8", errors="replace")) if m.strip()]
    return out


def brand_names(texts: Iterable[str]) -> set[str]:
    """Words written with a ® or ™ mark in the texts (brand names)."""
    return {m.lower() for t in texts for m in _BRAND.findall(t)}


@lru_cache(maxsize=1)
def default_names() -> tuple[str, ...]:
    """Entity names of the shared collections: MedQuAD focus, LiveQA-Med training FOCUS, MedicineQA medicines."""
    from retrieval_kd import datasets
    from retrieval_kd.errors import RKDError

    names = medquad_focus_names()
    for name, get in (("liveqa-med-train", lambda ds: [f for c in ds.conversations for t in c["turns"]
                                                         for f in t.get("focus") or []]),
                      ("medicineqa", lambda ds: [d.get("drug") or "" for d in ds.corpus])):
        try:
            names += get(datasets.load(name))
        except (RKDError, OSError):
            continue  # a collection that is not here adds nothing
    return tuple(sorted({n for n in names if n}))


@lru_cache(maxsize=1)
def general_words() -> frozenset[str]:
    """Lower-case whole words (≥ 3 letters) of the dense encoder's WordPiece vocabulary (empty when absent)."""
    from retrieval_kd.teachers.dense import default_model_path

    vocab = Path(default_model_path()) / "vocab.txt"
    if not vocab.exists():
        return frozenset()
    return frozenset(w for w in vocab.read_text(encoding="utf-8").split("\n") if len(w) >= 3 and w.isalpha()
                     and w.islower())


def entity_lexicon(extra_names: Sequence[str] = (), texts: Iterable[str] = ()) -> NameLexicon:
    """The shared collections' entity names + `extra_names` + brand names marked in `texts`."""
    return NameLexicon(name_words(default_names()) | name_words(extra_names) | brand_names(texts))


def safe_corrector(texts: Sequence[str], extra_names: Sequence[str] = ()) -> Corrector:
    """An English corrector over `texts`' vocabulary that never changes an entity name (or a dictionary word)."""
    return Corrector.from_texts(texts, lexicon=entity_lexicon(extra_names, texts), dictionary=general_words())


def corrector_for(ds, names_field: str = "drug") -> Corrector:
    """The corrector of a dataset's corpus: zh medicine records → names + aspect words (linking, no word edits);
    otherwise the safe English corrector of its texts."""
    if any(d.get(names_field) for d in ds.corpus):
        return Corrector.for_medicines({**d, "drug": d.get(names_field)} for d in ds.corpus)
    return safe_corrector(ds.doc_texts)
