"""`rkd eval medicineqa`: every rewriter × retriever row on LiveQA-Med (en) and MedicineQA-zh (+ multi-round)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from retrieval_kd.config import RunPath, StrictModel
from retrieval_kd.errors import ConfigError
from retrieval_kd.evaluate import bootstrap_ci, evaluate, format_table, write_run
from retrieval_kd.methods.drr.pipeline import BM25Retriever, DenseRetriever, fuse, hit_at_k, mean, retrieve
from retrieval_kd.methods.drr.tagging import Corrector
from retrieval_kd.utils import atomic_dir, run_info


class SideConfig(StrictModel):
    """One language's dataset(s), BM25 tokenizer, students and retrievers."""

    dataset: str
    multiround: str | None = None  # zh: the derived multi-round dataset
    tokenizer: str = "en"  # BM25 tokenizer: en | zh-bigram | zh-jieba
    extractive: RunPath | None = None  # trained tagger folder
    seq2seq: RunPath | None = None  # trained seq2seq folder (completeness only)
    correct: bool = True  # query-term correction against the database vocabulary
    dense: bool = True
    lucene: bool = False  # also Lucene BM25 (pyserini + Java 21); skipped with a note when unavailable


class EvalConfig(StrictModel):
    """`rkd eval medicineqa`: the English and Chinese sides, output folder, depth and measures."""

    en: SideConfig | None = SideConfig(dataset="medquad-liveqa", extractive="runs/drr-en-tagger")
    zh: SideConfig | None = SideConfig(dataset="medicineqa", multiround="medicineqa-multiround", tokenizer="zh-bigram",
                                       extractive="runs/drr-zh-tagger")
    out: RunPath = "runs/drr-eval"
    sides: list[Literal["en", "zh"]] = ["en", "zh"]  # which sides run (a side set to null never runs)
    k: int = 1000
    hr_k: list[int] = [1, 3, 5]
    fusion: str = "rrf-max"  # several queries of one dialogue: rrf (sum) or rrf-max (best rank); hybrid is rrf


def _dialogues(ds: Any) -> dict[str, list[dict]]:
    """Dialogue turns per query id (a one-turn dialogue for single-turn datasets)."""
    if ds.conversations:
        return {c["id"]: [{"role": t.get("role", "user"), "text": t["utterance"]} for t in c["turns"]]
                for c in ds.conversations if c["id"] in ds.queries}
    return {q: [{"role": "user", "text": t}] for q, t in ds.queries.items()}


TEACHER_LABELS = {"zh": "teacher queries (gold drug + attribute: upper bound)",
                  "en": "teacher queries (NLM question summaries)"}


def teacher_queries(ds: Any, lang: str, log: Callable[[str], None]) -> dict[str, list[str]] | None:
    """The human-distilled teacher's queries of a set, or None (row skipped, reason printed) when it has none."""
    from retrieval_kd.errors import DataNotFoundError
    from retrieval_kd.teachers.queries import liveqa_summary_queries, medicineqa_queries

    try:
        return medicineqa_queries(ds) if lang == "zh" else liveqa_summary_queries(ds)
    except DataNotFoundError as e:
        log(f"row '{TEACHER_LABELS[lang]}' skipped: {e}")
        return None


def _rewriters(side: SideConfig, teacher: dict[str, list[str]] | None, corrector: Corrector | None, lang: str):
    """(row name, fn(dialogues) -> {id: queries}) for every rewriter this side can run."""
    from retrieval_kd.methods.drr.rewriters import ExtractiveRewriter, LastUtterance, Seq2SeqRewriter, WholeDialogue

    rows: list[tuple[str, Callable]] = [
        ("raw question (last turn)", lambda d: {i: LastUtterance().rewrite(x) for i, x in d.items()}),
        ("whole dialogue", lambda d: {i: WholeDialogue().rewrite(x) for i, x in d.items()}),
    ]
    if teacher is not None:
        rows.append((TEACHER_LABELS[lang], lambda d: {i: teacher.get(i) or LastUtterance().rewrite(x)
                                                      for i, x in d.items()}))
    if corrector is not None and corrector.names:
        from retrieval_kd.methods.drr.rewriters import LinkedRecency

        linked = LinkedRecency(corrector)
        rows.append((linked.name, lambda d: {i: linked.rewrite(x) for i, x in d.items()}))
    if side.extractive and Path(side.extractive).exists():
        ext = ExtractiveRewriter(side.extractive, corrector=corrector if side.correct else None)
        rows.append(("extractive student", lambda d: dict(zip(d, ext.rewrite_batch(list(d.values()))))))
    if side.seq2seq and Path(side.seq2seq).exists():
        s2s = Seq2SeqRewriter(side.seq2seq)
        rows.append(("seq2seq student (tiny)", lambda d: dict(zip(d, s2s.rewrite_batch(list(d.values()))))))
    return rows


def _retrievers(ds: Any, side: SideConfig, log: Callable[[str], None] = print) -> list[tuple[str, Any]]:
    """(row name, retriever) for BM25, Lucene BM25 (when asked and available) and dense retrieval."""
    from retrieval_kd.index.bm25 import BM25Index
    from retrieval_kd.paths import cache_root

    out = [("BM25", BM25Retriever(BM25Index.build(ds.doc_texts, ds.doc_ids, side.tokenizer)))]
    if side.lucene:
        from retrieval_kd.index import lucene
        from retrieval_kd.methods.drr.pipeline import LuceneRetriever

        reason = lucene.unavailable_reason()
        if reason is None:
            dest = cache_root() / "lucene-bm25" / ds.name
            if not (dest / "index").is_dir():
                lucene.build_bm25_index(ds.doc_texts, ds.doc_ids, dest)
            out.append(("Lucene BM25", LuceneRetriever(lucene.LuceneBM25Searcher(dest))))
        else:
            log(f"Lucene BM25 rows skipped: {reason}")
    if side.dense:
        from retrieval_kd.index.faiss_ivfpq import FaissIndex
        from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus

        enc = DenseEncoder()
        out.append(("dense", DenseRetriever(enc, FaissIndex.build(np.asarray(encode_corpus(enc, ds)), ds.doc_ids))))
    return out


def _measure(run: dict, ds: Any, lang: str, hr_k: list[int]) -> dict[str, Any]:
    """en: nDCG@10, R@100, HR@k; zh: HR@k at medicine and attribute level; HR@k[0] with a bootstrap 95% CI."""
    if lang == "en":
        rel = ds.rel_threshold
        m = evaluate(run, ds.qrels, ["nDCG@10", "R@100"], rel=rel)
        hits = {k: hit_at_k(run, ds.qrels, k, rel=rel) for k in hr_k}
    else:
        m = {}
        drug = {d["id"]: d["drug"] for d in ds.corpus}
        hits = {k: hit_at_k(run, ds.qrels, k, group=drug) for k in hr_k}
        for k in hr_k:
            m[f"attr HR@{k}"] = mean(hit_at_k(run, ds.qrels, k))
    for k in hr_k:
        m[f"HR@{k}"] = mean(hits[k])
    lo, hi = bootstrap_ci(list(hits[hr_k[0]].values()))
    m[f"HR@{hr_k[0]} 95% CI"] = f"[{lo:.2f}, {hi:.2f}]"
    m["n"] = len(hits[hr_k[0]])
    return m


def evaluate_side(name: str, side: SideConfig, cfg: EvalConfig, out: Path,
                  log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """All rows of one language: each rewriter with BM25, dense and hybrid (BM25 + dense, RRF)."""
    from retrieval_kd import datasets

    lang = "zh" if side.tokenizer.startswith("zh") else "en"
    sets = [("single-turn", datasets.load(side.dataset))]
    if side.multiround:
        mr = datasets.load(side.multiround)
        for variant in ("pronoun", "distractor"):
            keep = {c["id"] for c in mr.conversations if c.get("variant") == variant}
            sub = type(mr)(mr.name, mr.corpus, {q: t for q, t in mr.queries.items() if q in keep},
                           {q: r for q, r in mr.qrels.items() if q in keep},
                           [c for c in mr.conversations if c["id"] in keep], mr.meta)
            sets.append((f"multi-round {variant}", sub))
    base = sets[0][1]
    corrector = None
    if side.correct:
        corrector = Corrector.for_medicines(base.corpus) if lang == "zh" else Corrector.from_texts(base.doc_texts)
    retrievers = _retrievers(base, side, log)
    rows = []
    for set_name, ds in sets:
        teacher = teacher_queries(ds, lang, log)
        dialogues = _dialogues(ds)
        for rw_name, fn in _rewriters(side, teacher, corrector, lang):
            t0 = time.perf_counter()
            rewrites = fn(dialogues)
            t_rw = time.perf_counter() - t0
            runs = {}
            for rt_name, rt in retrievers:
                runs[rt_name] = retrieve(rewrites, rt, cfg.k, fusion=cfg.fusion)
            if "dense" in runs:
                runs["hybrid"] = fuse([runs["BM25"], runs["dense"]], depth=cfg.k)
            tag = f"{name}-{set_name}-{rw_name}".replace(" ", "_").replace("(", "").replace(")", "")
            (out / "queries").mkdir(exist_ok=True)
            (out / "queries" / f"{tag}.json").write_text(json.dumps(rewrites, ensure_ascii=False, indent=1))
            for rt_name, run in runs.items():
                write_run(run, out / "runs" / f"{tag}-{rt_name}.trec", tag=rt_name)
                row = {"set": f"{ds.name} {set_name}", "rewriter": rw_name, "retriever": rt_name,
                       **_measure(run, ds, lang, cfg.hr_k), "rewrite ms/q": 1000 * t_rw / max(len(dialogues), 1)}
                rows.append(row)
                log(format_table([row]).splitlines()[-1])
    return rows


def run_eval(cfg: EvalConfig, log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], str]:
    """Evaluate every configured side; writes runs, queries, rows.json, table.md, config + run_info to cfg.out."""
    out = Path(cfg.out)
    all_rows: list[dict[str, Any]] = []
    with atomic_dir(out) as tmp:
        (tmp / "runs").mkdir()
        for name, side in (("en", cfg.en), ("zh", cfg.zh)):
            if side is not None and name in cfg.sides:
                log(f"side {name}: dataset {side.dataset}" + (f" + {side.multiround}" if side.multiround else ""))
                all_rows += evaluate_side(name, side, cfg, tmp, log)
        if not all_rows:
            raise ConfigError(f"sides {cfg.sides}: no side ran (en: {cfg.en and cfg.en.dataset}, zh: "
                              f"{cfg.zh and cfg.zh.dataset}); nothing evaluated")
        tables = []
        for lang in ("en", "zh"):
            rows = [r for r in all_rows if ("attr HR@1" in r) == (lang == "zh")]
            if rows:
                cols = (["set", "rewriter", "retriever", "nDCG@10", "R@100"] if lang == "en"
                        else ["set", "rewriter", "retriever"]) + [f"HR@{k}" for k in cfg.hr_k] + \
                    [f"HR@{cfg.hr_k[0]} 95% CI"] + ([f"attr HR@{k}" for k in cfg.hr_k] if lang == "zh" else []) + \
                    ["n", "rewrite ms/q"]
                tables.append(format_table(rows, cols))
        table = "\n\n".join(tables)
        (tmp / "rows.json").write_text(json.dumps(all_rows, indent=1, ensure_ascii=False) + "\n")
        (tmp / "table.md").write_text(table + "\n", encoding="utf-8")
        (tmp / "run_info.json").write_text(json.dumps(run_info(cfg.model_dump()), indent=2, default=str) + "\n")
        (tmp / "meta.json").write_text(json.dumps({"kind": "drr-eval", "format_version": 1,
                                                   "config": cfg.model_dump()}, indent=2) + "\n")
    return all_rows, table
