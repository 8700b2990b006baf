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
    aside: str | None = None  # zh: the derived set where the newest medicine named is not the answer
    tokenizer: str = "en"  # BM25 tokenizer: en | zh-bigram | zh-jieba
    extractive: RunPath | None = None  # trained tagger folder
    seq2seq: RunPath | None = None  # trained seq2seq folder (MiniLM→MiniLM, copy decoding)
    llm_extractive: RunPath | None = None  # a tagger trained on the LLM teacher's (filtered) queries
    more_students: dict[str, RunPath] = {}  # more trained taggers: row label -> folder
    correct: bool = False  # en: safe query-term correction (zh databases always link names and aspect words)
    split: Literal["all", "dev"] = "all"  # 'dev': only the dev ids (teachers.queries.split_of): choosing settings
    dev_share: float = 0.2
    focus: bool = True  # en: the 'question + focus' row (human FOCUS annotations as weighted terms)
    with_raw: bool = True  # also each student's queries fused with the raw question ('⊕ raw' rows)
    raw_fusion: Literal["rrf", "rrf-max"] = "rrf"  # how the '⊕ raw' rows fuse the raw and the rewritten runs
    dense: bool = True
    dense_focus: float = 0.0  # β: dense query = normalise(e(text) + β·e(kept terms)) for weighted rewrites
    dense_query: RunPath | None = None  # a dense-query student folder: 'dense (query student)' + its hybrid rows
    dense_query_prefix: bool | None = None  # it reads 'kept terms . text' (true) or the text (false); None: as trained
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


RAW = "raw question (last turn)"
QS_DENSE = "dense (query student)"  # the dense-query student's query vectors over the base encoder's index
HYBRIDS = {"dense": "hybrid", QS_DENSE: "hybrid (query student)"}  # BM25 + dense (RRF) per dense retriever
BASE_RETRIEVER = {QS_DENSE: "dense", HYBRIDS[QS_DENSE]: "hybrid"}
VS_BASE = "Δ vs raw with the base encoder [95% CI] W/T/L"


def _rewriters(side: SideConfig, teacher: dict[str, list[str]] | None, corrector: Corrector | None, lang: str,
               focus: dict[str, list[str]] | None = None):
    """(row name, fn(dialogues) -> {id: queries}, per-dialogue fusion or None) for every rewriter of this side."""
    from retrieval_kd.methods.drr.rewriters import ExtractiveRewriter, LastUtterance, Seq2SeqRewriter, WholeDialogue
    from retrieval_kd.methods.drr.tagging import last_user, make_queries

    raw = LastUtterance()
    rows: list[tuple[str, Callable, str | None]] = [
        (RAW, lambda d: {i: raw.rewrite(x) for i, x in d.items()}, None),
        ("whole dialogue", lambda d: {i: WholeDialogue().rewrite(x) for i, x in d.items()}, None),
    ]
    if teacher is not None:
        rows.append((TEACHER_LABELS[lang], lambda d: {i: teacher.get(i) or raw.rewrite(x) for i, x in d.items()},
                     None))
    if focus is not None:
        rows.append(("question + focus (human FOCUS, weighted)",
                     lambda d: {i: make_queries(last_user(x), focus.get(i, []), "append", 2) for i, x in d.items()},
                     None))
    if corrector is not None and corrector.names:
        from retrieval_kd.methods.drr.rewriters import LinkedRecency

        linked = LinkedRecency(corrector)
        rows.append((linked.name, lambda d: {i: linked.rewrite(x) for i, x in d.items()}, None))
    students = []
    use = corrector if (side.correct or lang == "zh") else None
    for label, path in (("extractive student", side.extractive), ("extractive student (LLM-taught)",
                                                                   side.llm_extractive), *side.more_students.items()):
        if path and Path(path).exists():
            ext = ExtractiveRewriter(path, corrector=use)
            students.append((label, lambda d, ext=ext: dict(zip(d, ext.rewrite_batch(list(d.values())))), None))
    if side.seq2seq and Path(side.seq2seq).exists():
        s2s = Seq2SeqRewriter(side.seq2seq)
        students.append(("seq2seq student (MiniLM→MiniLM)", lambda d: dict(zip(d, s2s.rewrite_batch(list(d.values())))),
                         None))
    rows += students
    if side.with_raw:
        for label, fn, _ in students:
            rows.append((f"{label} ⊕ raw (RRF)",
                         lambda d, fn=fn: {i: [raw.rewrite(d[i])[0], *q] for i, q in fn(d).items()}, side.raw_fusion))
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
        index = FaissIndex.build(np.asarray(encode_corpus(enc, ds)), ds.doc_ids)
        out.append(("dense", DenseRetriever(enc, index, side.dense_focus)))
        if side.dense_query:  # the same index (documents keep the base encoder's vectors); new query vectors
            from retrieval_kd.methods.drr.dense_query import load_dense_query

            qenc, meta = load_dense_query(side.dense_query)
            if Path(meta["base"]).resolve() != Path(enc.path).resolve():
                raise ConfigError(f"dense_query: {side.dense_query} was trained over {meta['base']}'s document "
                                  f"vectors, the index uses {enc.path}")
            prefix = meta["prefix"] if side.dense_query_prefix is None else side.dense_query_prefix
            out.append((QS_DENSE, DenseRetriever(qenc, index, prefix=bool(prefix))))
    elif side.dense_query:
        raise ConfigError("dense_query needs dense: true (it searches the dense index)")
    return out


def _measure(run: dict, ds: Any, lang: str, hr_k: list[int]) -> tuple[dict[str, Any], dict[str, float]]:
    """(row measures, per-query primary measure). en: nDCG@10, R@100, HR@k, primary nDCG@10; zh: HR@k at medicine
    and attribute level, primary HR@1; HR@k[0] with a bootstrap 95% CI."""
    if lang == "en":
        rel = ds.rel_threshold
        pq = evaluate(run, ds.qrels, ["nDCG@10", "R@100"], rel=rel, per_query=True)
        m = {k: mean(v) for k, v in pq.items()}
        hits = {k: hit_at_k(run, ds.qrels, k, rel=rel) for k in hr_k}
        primary = pq["nDCG@10"]
    else:
        m = {}
        drug = {d["id"]: d["drug"] for d in ds.corpus}
        hits = {k: hit_at_k(run, ds.qrels, k, group=drug) for k in hr_k}
        for k in hr_k:
            m[f"attr HR@{k}"] = mean(hit_at_k(run, ds.qrels, k))
        primary = hits[hr_k[0]]
    for k in hr_k:
        m[f"HR@{k}"] = mean(hits[k])
    lo, hi = bootstrap_ci(list(hits[hr_k[0]].values()))
    m[f"HR@{hr_k[0]} 95% CI"] = f"[{lo:.2f}, {hi:.2f}]"
    m["n"] = len(hits[hr_k[0]])
    return m, primary


def _restrict(ds: Any, keep: set[str], name: str) -> Any:
    """The dataset restricted to the query ids `keep` (queries, qrels, conversations; the corpus stays whole)."""
    return type(ds)(name, ds.corpus, {q: t for q, t in ds.queries.items() if q in keep},
                    {q: r for q, r in ds.qrels.items() if q in keep},
                    [c for c in ds.conversations if c["id"] in keep], ds.meta)


def _dev_subset(ds: Any, share: float) -> Any:
    """The dataset restricted to its dev ids."""
    from retrieval_kd.teachers.queries import split_of

    return _restrict(ds, {q for q in ds.queries if split_of(q, share) == "dev"}, f"{ds.name}-dev")


def _paired(rows: list[dict[str, Any]], primary: dict[tuple, dict[str, float]], lang: str) -> None:
    """Each row's paired bootstrap against the raw question with the same retriever, on the primary measure."""
    from retrieval_kd.evaluate import format_paired, paired_bootstrap

    name = "nDCG@10" if lang == "en" else "HR@1"
    for r in rows:
        base = primary.get((r["set"], RAW, r["retriever"]))
        mine = primary[(r["set"], r["rewriter"], r["retriever"])]
        if base is None or r["rewriter"] == RAW:
            continue
        pb = paired_bootstrap(mine, base)
        r[f"Δ{name} vs raw [95% CI]"] = format_paired(pb, wtl=False)
        r["W/T/L"] = f"{pb['wins']}/{pb['ties']}/{pb['losses']}"
    for r in rows:  # query-student rows: also against the raw question with the base encoder's retriever
        base = primary.get((r["set"], RAW, BASE_RETRIEVER.get(r["retriever"], "")))
        if base is not None:
            pb = paired_bootstrap(primary[(r["set"], r["rewriter"], r["retriever"])], base)
            r[VS_BASE] = format_paired(pb)


def _query_json(rewrites: dict[str, list[str]]) -> dict[str, list[Any]]:
    """Rewrites for queries/*.json: plain strings, or {"text", "terms"} for weighted queries."""
    return {i: [q.as_json() if hasattr(q, "as_json") else q for q in qs] for i, qs in rewrites.items()}


def _sets(side: SideConfig) -> list[tuple[str, Any]]:
    """(set name, dataset) of a side: the single-turn set (its dev ids with split 'dev'), the multi-round variants."""
    from retrieval_kd import datasets

    base = datasets.load(side.dataset)
    sets = [("dev split" if side.split == "dev" else "single-turn",
             _dev_subset(base, side.dev_share) if side.split == "dev" else base)]
    if side.multiround:
        mr = datasets.load(side.multiround)
        for variant in ("pronoun", "distractor"):
            keep = {c["id"] for c in mr.conversations if c.get("variant") == variant}
            sets.append((f"multi-round {variant}", _restrict(mr, keep, mr.name)))
    if side.aside:
        sets.append(("aside (recency is not the answer)", datasets.load(side.aside)))
    return sets


def evaluate_side(name: str, side: SideConfig, cfg: EvalConfig, out: Path,
                  log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """All rows of one language: each rewriter with BM25, dense and hybrid (BM25 + dense, RRF)."""
    from retrieval_kd.methods.drr.safety import corrector_for

    lang = "zh" if side.tokenizer.startswith("zh") else "en"
    sets = _sets(side)
    base = sets[0][1]
    corrector = corrector_for(base) if (side.correct or lang == "zh") else None
    retrievers = _retrievers(base, side, log)
    rows, primary = [], {}
    (out / "queries").mkdir(exist_ok=True)
    for set_name, ds in sets:
        teacher = teacher_queries(ds, lang, log)
        focus = _focus(ds, log) if side.focus and lang == "en" else None
        dialogues = _dialogues(ds)
        for rw_name, fn, fusion in _rewriters(side, teacher, corrector, lang, focus):
            t0 = time.perf_counter()
            rewrites = fn(dialogues)
            t_rw = time.perf_counter() - t0
            runs = {rt_name: retrieve(rewrites, rt, cfg.k, fusion=fusion or cfg.fusion) for rt_name, rt in retrievers}
            for dense, hybrid in HYBRIDS.items():
                if dense in runs:
                    runs[hybrid] = fuse([runs["BM25"], runs[dense]], depth=cfg.k)
            tag = f"{name}-{set_name}-{rw_name}".replace(" ", "_").replace("(", "").replace(")", "").replace("/", "")
            (out / "queries" / f"{tag}.json").write_text(json.dumps(_query_json(rewrites), ensure_ascii=False,
                                                                    indent=1))
            for rt_name, run in runs.items():
                write_run(run, out / "runs" / f"{tag}-{rt_name}.trec", tag=rt_name)
                m, per_q = _measure(run, ds, lang, cfg.hr_k)
                row = {"set": f"{ds.name} {set_name}", "rewriter": rw_name, "retriever": rt_name, **m,
                       "rewrite ms/q": 1000 * t_rw / max(len(dialogues), 1)}
                primary[(row["set"], rw_name, rt_name)] = per_q
                rows.append(row)
                log(format_table([row]).splitlines()[-1])
    _paired(rows, primary, lang)
    return rows


def _focus(ds: Any, log: Callable[[str], None]) -> dict[str, list[str]] | None:
    """FOCUS annotations of a set's questions, or None (row skipped, reason printed)."""
    from retrieval_kd.errors import DataNotFoundError
    from retrieval_kd.teachers.queries import focus_queries

    try:
        return focus_queries(ds)
    except DataNotFoundError as e:
        log(f"row 'question + focus' skipped: {e}")
        return None


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
                name = "nDCG@10" if lang == "en" else "HR@1"
                cols = (["set", "rewriter", "retriever", "nDCG@10", "R@100"] if lang == "en"
                        else ["set", "rewriter", "retriever"]) + [f"HR@{k}" for k in cfg.hr_k] + \
                    [f"HR@{cfg.hr_k[0]} 95% CI"] + ([f"attr HR@{k}" for k in cfg.hr_k] if lang == "zh" else []) + \
                    [f"Δ{name} vs raw [95% CI]", "W/T/L"] + \
                    ([VS_BASE] if any(VS_BASE in r for r in rows) else []) + ["n", "rewrite ms/q"]
                tables.append(format_table(rows, cols))
        table = "\n\n".join(tables)
        (tmp / "rows.json").write_text(json.dumps(all_rows, indent=1, ensure_ascii=False) + "\n")
        (tmp / "table.md").write_text(table + "\n", encoding="utf-8")
        (tmp / "run_info.json").write_text(json.dumps(run_info(cfg.model_dump()), indent=2, default=str) + "\n")
        (tmp / "meta.json").write_text(json.dumps({"kind": "drr-eval", "format_version": 1,
                                                   "config": cfg.model_dump()}, indent=2) + "\n")
    return all_rows, table
