"""Learning from a small LLM: sampled `search` tool calls, kept when their own BM25 retrieval finds the gold evidence.

Retrieval-feedback filtering runs on the *train* split only: the dev split chooses settings and the report set
reports, so an input id of either is an error (`check_train_only`), never silently dropped.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.drr.pipeline import Retriever, top


def check_train_only(ids: Iterable[str], gold: Mapping[str, Any], dataset: str, dev_share: float = 0.2,
                     report_ids: Mapping[str, Iterable[str]] | None = None) -> None:
    """Raise ConfigError (one line, the id and why) for the first id of the dev split, of a report set, or
    without gold evidence in `dataset`."""
    from retrieval_kd.teachers.queries import split_of

    reported = {name: set(map(str, qs)) for name, qs in (report_ids or {}).items()}
    for qid in ids:
        for name, qs in reported.items():
            if str(qid) in qs:
                raise ConfigError(f"feedback: id {qid} is a question of report set {name}: it must never teach")
        if split_of(qid, dev_share) != "train":
            raise ConfigError(f"feedback: id {qid} is in the dev split of {dataset} (split_of, dev_share "
                              f"{dev_share}): only train-split dialogues may teach")
        if not gold.get(qid):
            raise ConfigError(f"feedback: id {qid} has no gold evidence in {dataset} qrels")


def filter_by_retrieval(samples: Mapping[str, Sequence[Sequence[str] | None]], qrels: Mapping[str, Mapping[str, int]],
                        retriever: Retriever, k: int = 10, rel: int = 1) -> tuple[dict[str, list[str]], dict]:
    """Kept queries per id (distinct, first-sampled order) and per-id details.

    Each distinct query (case- and space-normalised) of a dialogue's parsed samples is searched alone; it is kept
    when a document graded >= `rel` for that dialogue is in its top k. Ids whose every query fails are left out.
    """
    distinct: dict[str, list[str]] = {}
    for qid, answers in samples.items():
        seen: dict[str, str] = {}
        for qs in answers:
            for q in qs or []:
                seen.setdefault(" ".join(q.lower().split()), q.strip())
        distinct[qid] = list(seen.values())
    flat = [(qid, q) for qid, qs in distinct.items() for q in qs]
    hits = retriever.search_many([q for _, q in flat], k)
    found: dict[str, dict[str, bool]] = {qid: {} for qid in distinct}
    for (qid, q), h in zip(flat, hits):
        gold = {d for d, g in qrels.get(qid, {}).items() if g >= rel}
        found[qid][q] = bool(gold & set(top(dict(h), k)))
    kept = {qid: [q for q in qs if found[qid][q]] for qid, qs in distinct.items()}
    details = {qid: {"parsed_samples": sum(a is not None for a in samples[qid]), "queries": found[qid]}
               for qid in distinct}
    return {qid: qs for qid, qs in kept.items() if qs}, details


def rates(samples: Mapping[str, Sequence[Sequence[str] | None]], kept: Mapping[str, Sequence[str]],
          details: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Parse rate (tool calls parsed / asked) and keep rates (dialogues with >= 1 kept query / dialogues;
    distinct queries kept / distinct queries parsed)."""
    asked = sum(len(a) for a in samples.values())
    parsed = sum(a is not None for answers in samples.values() for a in answers)
    q_parsed = sum(len(d["queries"]) for d in details.values())
    q_kept = sum(len(qs) for qs in kept.values())
    n = len(samples)
    return {"dialogues": n, "calls_asked": asked, "calls_parsed": parsed,
            "parse_rate": round(parsed / asked, 4) if asked else 0.0,
            "dialogues_with_parsed": sum(any(a is not None for a in s) for s in samples.values()),
            "dialogues_kept": len(kept), "dialogue_keep_rate": round(len(kept) / n, 4) if n else 0.0,
            "queries_parsed": q_parsed, "queries_kept": q_kept,
            "query_keep_rate": round(q_kept / q_parsed, 4) if q_parsed else 0.0}


def run_feedback(teacher, ds, dialogues: Mapping[str, Sequence[Mapping[str, Any]]], cfg,
                 report_ids: Mapping[str, Iterable[str]] | None = None,
                 log: Callable[[str], Any] = print) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Guard (train only), sample `cfg.samples` tool calls per dialogue, filter them by BM25 feedback over the
    dataset's corpus; returns the kept queries and a report (the LLM report's counts + the rates)."""
    from retrieval_kd.index.bm25 import BM25Index
    from retrieval_kd.methods.drr.pipeline import BM25Retriever

    fb = cfg.feedback
    check_train_only(dialogues, ds.qrels, ds.name, fb.dev_share, report_ids)
    samples, rep = teacher.run_samples(dialogues, cfg.samples, cfg.seed)
    log(f"{rep.parsed}/{rep.asked} tool calls parsed ({rep.cached} from cache, {rep.seconds:.0f} s)")
    retriever = BM25Retriever(BM25Index.build(ds.doc_texts, ds.doc_ids, fb.tokenizer))
    kept, details = filter_by_retrieval(samples, ds.qrels, retriever, fb.k, fb.rel)
    report = {**rep.as_dict(), **rates(samples, kept, details),
              "feedback": fb.model_dump(), "samples": cfg.samples, "seed": cfg.seed, "temperature": cfg.temperature}
    return kept, {"report": report, "details": details, "samples": samples}
