"""Safe correction: a medicine (or any entity name, or a dictionary word) is never corrected into another word."""
from __future__ import annotations

import re

import pytest

from retrieval_kd.methods.drr.query import appended_words_repeat
from retrieval_kd.methods.drr.tagging import Corrector, make_queries
from retrieval_kd.text.lexicon import NameLexicon, edit_distance

# (word the user wrote, the frequent corpus word the old corrector turned it into), measured on a held-out set
HARMFUL = [("topamax", "fosamax"), ("prednisolone", "prednisone"), ("desonide", "budesonide"),
           ("effexor", "flexor"), ("toradol", "tornado"), ("herceptin", "perception"), ("feeding", "feeling")]


def _vocabulary() -> dict[str, int]:
    return {bad: 50 for _, bad in HARMFUL} | {"breast": 40, "ointment": 12, "medication": 30}


def test_edit_distance_and_lexicon_nearness():
    assert edit_distance("topamax", "fosamax") == 2 and edit_distance("toradol", "tornado") == 2
    assert edit_distance("abc", "abcdef") == 3  # beyond the bound: bound + 1
    lex = NameLexicon.from_names(["Prednisone", "Budesonide Nasal Spray", "Fosamax"])
    assert {"prednisone", "budesonide", "nasal", "spray", "fosamax"} == set(lex.words)
    assert lex.protects("prednisolone") and lex.protects("desonide") and lex.protects("topamax")  # near names
    assert lex.protects("prednisoxyz")  # shared 5-letter prefix 'predn'
    assert not lex.protects("symptoms") and not lex.protects("gel")
    assert NameLexicon.from_json(lex.to_json()).words == lex.words


@pytest.mark.parametrize("word,bad", HARMFUL)
def test_old_harmful_corrections_never_happen(word, bad):
    """Without any lexicon at all: one edit only, and dictionary words ('feeding') are words, not typos."""
    from retrieval_kd.methods.drr.safety import general_words

    c = Corrector(_vocabulary(), dictionary=general_words())
    assert c.correct(word) == word
    old = Corrector(_vocabulary(), max_edits=2)  # the former corrector (2 edits, no dictionary, no lexicon)
    assert old.correct(word) == bad  # ... did make these changes


@pytest.mark.parametrize("word,bad", HARMFUL)
def test_the_shared_lexicon_protects_the_medicines(word, bad):
    """With the lexicon of the shared collections, even the 2-edit corrector leaves them as written."""
    from retrieval_kd.methods.drr.safety import entity_lexicon, general_words

    lex = entity_lexicon(["Topamax", "Effexor", "Toradol", "Herceptin"])  # drug names in the questions
    c = Corrector(_vocabulary(), lexicon=lex, dictionary=general_words(), max_edits=2)
    assert c.correct(word) == word


def test_breast_feeding_stays():
    from retrieval_kd.methods.drr.safety import general_words

    c = Corrector(_vocabulary(), dictionary=general_words())
    (q,) = make_queries("is it safe while breast feeding?", [c.correct(t) for t in ("breast", "feeding")], boost=2)
    assert q == "is it safe while breast feeding?" and dict(q.terms)["feeding"] == 3.0


def test_real_typos_are_still_corrected_and_never_into_a_name():
    c = Corrector(_vocabulary() | {"zocor": 80}, lexicon=NameLexicon(["zocor", "fosamax"]))
    assert c.correct("ointmant") == "ointment" and c.correct("medicaton") == "medication"
    assert c.correct("zocar") == "zocar"  # near a known name: left alone, never turned into it
    data = Corrector.from_json(c.to_json())
    assert data.correct("ointmant") == "ointment" and data.correct("zocar") == "zocar"


def _question_words(texts):
    return sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if len(w) >= 5})


@pytest.mark.parametrize("name", ["liveqa-med-train", "medquad-liveqa"])
def test_no_evaluation_question_word_becomes_another_name(name):
    """Every word of every evaluation question, corrected as the eval recipe would: a changed word is neither near
    an entity name nor changed into one (so no rewrite turns one medicine into another)."""
    from retrieval_kd import datasets
    from retrieval_kd.errors import RKDError
    from retrieval_kd.methods.drr.safety import safe_corrector

    try:
        ds = datasets.load(name)
    except (RKDError, OSError) as e:
        pytest.skip(f"{name}: {e}")
    c = safe_corrector(ds.doc_texts)
    changed = {w: c.correct(w) for w in _question_words(ds.queries.values())}
    changed = {w: v for w, v in changed.items() if v != w}
    for w, v in changed.items():
        assert not c.lexicon.protects(w) and not c.lexicon.protects(v), (w, v)
        assert edit_distance(w, v) == 1 and w not in c.dictionary, (w, v)
    assert len(changed) < 0.02 * max(len(ds.queries), 1) * 10  # rare: correction is a last resort
    for text in ds.queries.values():  # and no rewrite writes a word twice, whatever the tagger keeps
        words = re.findall(r"[^\W_]+", text)
        (q,) = make_queries(text, words + [w.upper() for w in words], boost=2)
        assert appended_words_repeat(q, text) == [] and str(q) == text
