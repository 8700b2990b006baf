"""Progress and notes a user sees: the encoding ETA, the recipe note for a code size without its own config,
rewrite rows that leave out turns without a rewrite, third-party noise silenced once, RKD_QUIET."""
from __future__ import annotations

import os

import numpy as np


def test_encoding_prints_an_eta_and_what_was_cached(tmp_path, capsys):
    from retrieval_kd.teachers.store import cached_matrix

    texts = [f"text number {i} " * (i % 5 + 1) for i in range(12)]
    embed = lambda batch: np.ones((len(batch), 4), np.float32)  # noqa: E731
    meta = {"shape": [12, 4]}
    cached_matrix(tmp_path, "fp", "d1", texts[:6], {"shape": [6, 4]}, embed, 2, 4, show_progress=True, label="enc")
    cached_matrix(tmp_path, "fp", "d2", texts, meta, embed, 2, 4, show_progress=True, label="enc")
    err = capsys.readouterr().err
    assert "enc: 6 texts to encode, about" in err and "texts/s" in err  # the ETA, before the bulk of the work
    assert "enc: 6 of 12 distinct texts already cached" in err


def test_a_code_size_without_its_config_says_which_recipe_it_uses(capsys):
    from retrieval_kd.bench.distill_vq import config_for

    cfg = config_for("cacm", 4, 16, [])
    assert cfg.index.factory == "OPQ4,IVFn,PQ4x8np"
    assert "no vq_4b.yaml; 4 bytes use the 8-byte recipe (vq_8b.yaml)" in capsys.readouterr().err


def test_rewrite_rows_cover_only_the_turns_that_have_a_rewrite():
    from retrieval_kd.bench.cast import score_rows
    from retrieval_kd.data.dataset import Dataset

    ds = Dataset(name="m", corpus=[{"id": "d1", "contents": "x"}], queries={"t0": "a", "t1": "b"},
                 qrels={"t0": {"d1": 1}, "t1": {"d1": 1}}, meta={"rel_threshold": 1})
    run = {"t0": {"d1": 1.0}}  # t1's topic file had an empty human rewrite
    splits = {"c": ["t0", "t1"]}
    assert score_rows("raw", run, ds, splits)[0]["nDCG@3"] == 0.5  # a raw row counts the missing turn as 0
    row = score_rows("manual", run, ds, splits, covered_only=True)[0]
    assert row["nDCG@3"] == 1.0 and row["turns"] == 1  # the rewrite row leaves it out and says so


def test_third_party_noise_is_silenced_once_unless_verbose(monkeypatch):
    import logging

    from retrieval_kd import progress

    monkeypatch.setattr(progress, "_QUIETED", False)
    monkeypatch.setenv("RKD_VERBOSE", "1")
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    progress.quiet_third_party()
    assert "TRANSFORMERS_VERBOSITY" not in os.environ
    monkeypatch.delenv("RKD_VERBOSE")
    progress.quiet_third_party()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert logging.getLogger("transformers").level == logging.ERROR


def test_rkd_quiet_turns_bars_off(monkeypatch):
    from retrieval_kd.progress import progress_enabled

    monkeypatch.delenv("RKD_QUIET", raising=False)
    assert progress_enabled() and not progress_enabled(quiet=True)
    monkeypatch.setenv("RKD_QUIET", "1")
    assert not progress_enabled()
