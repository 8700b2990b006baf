"""Diagnosis of DiSCo students on a development set: how close to the teacher, and how often they echo the context.

    rkd eval cast-dev RUN [RUN ...] [--dataset ikat2024-dev] [--alphas 0,0.25] [--out runs/cast-dev]

Every run is scored over the dataset's impact index (the same frozen document encoder as `rkd eval cast-mix`), alone
and with `alpha * SPLADE(utterance)` added for each `--alphas` value, next to the raw utterance, the concatenated
history and the human-rewrite teacher, with the paired table of `rkd eval cast`. The extra column **echo@1** is
the share of turns whose top-ranked document is judged relevant to the conversation's previous turn and not to the
turn itself: a query that repeats what the conversation has just answered (`echo_rate`). Nothing is chosen here.
A run that trained on one of the dataset's collections is refused (its figures would not be a development check).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.bench.cast import (
    BASELINES,
    MEASURES,
    paired_rows,
    score_rows,
    set_label,
)
from retrieval_kd.paths import run_path


def previous_turns(ds: Any) -> dict[str, str]:
    """Turn id -> the id of the turn before it in its conversation (first turns have none)."""
    return {t["id"]: prev["id"] for c in ds.conversations for prev, t in zip(c["turns"], c["turns"][1:])}


def echo_rate(run: dict[str, dict[str, float]], ds: Any, qids: Sequence[str]) -> tuple[float, int]:
    """(share, turns): over the turns whose previous turn has a relevant document, the share whose top-ranked
    document is relevant to that previous turn and not to the turn itself."""
    prev, rel = previous_turns(ds), ds.rel_threshold
    relevant = {q: {d for d, g in ds.qrels.get(q, {}).items() if g >= rel} for q in {*qids, *prev.values()}}
    hits = n = 0
    for q in qids:
        before = relevant.get(prev.get(q, ""), set())
        if not before:
            continue
        n += 1
        ranked = run.get(q) or {}
        if ranked:
            top = max(ranked, key=ranked.get)
            hits += top in before and top not in relevant[q]
    return (hits / n if n else 0.0), n


def _rows(name: str, run: dict, ds: Any, splits: dict[str, list[str]], extra: dict | None = None,
          covered_only: bool = False) -> list[dict]:
    """`score_rows` with each set's echo@1 (over the same turns)."""
    rows = score_rows(name, run, ds, splits, extra, covered_only)
    for r in rows:
        qids = next(q for c, q in splits.items() if set_label(c) == r["set"])
        r["echo@1"], r["echo turns"] = echo_rate(run, ds, [q for q in qids if q in run or not covered_only])
    return rows


def _check_not_trained_on(m: dict[str, Any], ds: Any) -> None:
    from retrieval_kd.errors import ConfigError

    seen = sorted({c.get("collection") for c in ds.conversations} & set(m["train_collections"]))
    if seen:
        raise ConfigError(f"{m['run']}: trained on {', '.join(seen)}, a collection of {ds.name}: "
                          "not a development check")


def run_dev(runs: Sequence[str | Path], out: str | Path = "runs/cast-dev", dataset: str = "ikat2024-dev",
            alphas: Sequence[float] = (0.0, 0.25), document_encoder: str | None = None,
            command: str = "rkd eval cast-dev") -> dict[str, Any]:
    """Score each run (alone and with each utterance share) beside the references; print and write the tables."""
    from retrieval_kd.bench.cast_mix import Scoring
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.methods.disco.mixing import check_weight, combine
    from retrieval_kd.utils import run_info, write_json

    alphas = [check_weight(a, "--alphas") for a in alphas]
    sc = Scoring(runs, dataset, document_encoder)
    ds, splits = sc.ds, sc.splits
    for m in sc.members:
        _check_not_trained_on(m, ds)
    rows = [r for name, run, covered in sc.references() for r in _rows(name, run, ds, splits, covered_only=covered)]
    for m in sc.members:
        vec = sc.member_vectors(m)
        for a in alphas:
            name = m["run"].name + (f" + {a:g}*utterance" if a else "")
            rows += _rows(name, sc.search(combine([vec], [1.0], sc.utterances, a)), ds, splits,
                          {"train_s": m["train_s"]})
    paired = paired_rows(rows)
    table = format_table(rows, ["set", "query", *MEASURES, "echo@1", "echo turns", "turns"])
    ptable = format_table(paired, ["set", "query", "nDCG@3", *(f"vs {k}" for k in BASELINES), "% teacher"])
    text = (f"`{command.strip()}` (development set {dataset}: nothing is chosen here)\n\n{table}\n\n"
            f"nDCG@3 paired with each baseline (diff [95% CI] wins/ties/losses):\n\n{ptable}\n")
    print(f"\n{text}")
    out = Path(run_path(out))
    result = {"command": command, "dataset": dataset, "runs": [str(m["run"]) for m in sc.members],
              "rows": [{k: v for k, v in r.items() if k != "_pq"} for r in rows], "paired": paired}
    write_json(out / "results.json", {**result, "run_info": run_info()})
    (out / "table.md").write_text(text, encoding="utf-8")
    return result
