"""CAsT recipe: DiSCo students vs rewrite baselines on CAsT 2021 and iKAT 2023 (cast-mini), one SPLADE encoder.

    rkd eval cast [--config configs/disco_cast.yaml] [--out runs/cast-bench] [--set train.epochs=1]
    python eval/cast.py  (same options)

Every row uses the same frozen SPLADE document encoder and the same built-in impact index of the cast-mini
corpus; only the query side changes: the raw utterance, the whole history concatenated, the automatic rewrite
(CAsT 2021 only: iKAT gives none), the human rewrite (the teachers' upper bound), SPLADE on the student's input
text without training, and DiSCo students trained on CAsT 2019/2020/2022 with the human teacher, the
automatic teacher, and both (mean / mixture / union). BM25 rows (built-in BM25) are references.
Measures (ir-measures, binary relevance >= 1 on cast-mini): nDCG@3, RR, R@10, R@100 over judged turns.
Each set has a role: CAsT 2021 is the choice set (settings are chosen on it), every other set (iKAT 2023, iKAT
2025 in cast-eval) only reports. Each trained student is paired with the raw utterance, the concatenated
history and the human-rewrite teacher (paired bootstrap of per-turn nDCG@3, `evaluate.paired_bootstrap`).
`rkd eval cast-ablations` trains one student per row of an ablations YAML (`ablation_configs`) into one table.

`official_evaluate` applies the official CAsT conventions to a run over the real corpora: judged turns only,
graded nDCG, relevance >= 2 for RR/recall from 2020 on (>= 1 in 2019), CAsT 2021 at document level.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_kd.paths import run_path
from retrieval_kd.progress import progress_enabled

if TYPE_CHECKING:
    from retrieval_kd.methods.disco.config import DiscoConfig

MEASURES = ("nDCG@3", "RR", "R@10", "R@100")
REWRITES = ("automatic", "manual")  # turn texts that a topic file may lack (their rows cover the turns that have one)
EVAL_SETS = {"cast2021": "CAsT 2021", "ikat2023": "iKAT 2023", "ikat2024": "iKAT 2024", "ikat2025": "iKAT 2025"}
CHOICE_SETS = ("cast2021",)  # settings are chosen on these; every other set only reports (`role` column)
BASELINES = {"raw": "SPLADE: raw utterance", "history": "SPLADE: whole history concatenated",
             "teacher": "SPLADE: human rewrite (teacher bound)"}  # what each student is paired against
VARIANTS = {  # key -> (row name, teacher sources, aggregation)
    "human": ("DiSCo, human teacher", ["manual"], "mean"),
    "automatic": ("DiSCo, automatic teacher", ["automatic"], "mean"),
    "mean": ("DiSCo, human+automatic (mean)", ["manual", "automatic"], "mean"),
    "mixture": ("DiSCo, human+automatic (mixture)", ["manual", "automatic"], "mixture"),
    "union": ("DiSCo, human+automatic (union)", ["manual", "automatic"], "union"),
}


def to_document_run(run: dict) -> dict:
    """Passage run -> document run (max passage score per document; passage id = '<doc id>-<n>')."""
    out: dict = {}
    for qid, docs in run.items():
        acc = out.setdefault(qid, {})
        for pid, s in docs.items():
            doc = pid.rsplit("-", 1)[0] if pid.rsplit("-", 1)[-1].isdigit() else pid
            acc[doc] = max(acc.get(doc, float("-inf")), s)
    return out


def official_evaluate(run: dict, collection: str, root: Path | None = None,
                      measures=("nDCG@3", "RR", "R@100", "R@1000", "AP"), per_query: bool = False) -> dict:
    """Official CAsT conventions on the track's real qrels (see module doc); means, or per-turn values."""
    from retrieval_kd.data.cast import OFFICIAL_REL, read_official_qrels
    from retrieval_kd.evaluate import evaluate
    from retrieval_kd.paths import data_root

    qrels = read_official_qrels(root or data_root(), collection)
    if collection == "cast2021":
        run = to_document_run(run)
    return evaluate(run, qrels, list(measures), rel=OFFICIAL_REL[collection], per_query=per_query)


def split_queries(ds: Any) -> dict[str, list[str]]:
    """Evaluation collection (each conversation's `collection`, else the dataset's name) -> its judged turn ids."""
    from retrieval_kd.errors import DataFormatError

    judged = ds.judged_queries()
    out: dict[str, list[str]] = {}
    for x in ds.conversations:
        ids = [t["id"] for t in x["turns"] if t["id"] in judged]
        if ids:
            out.setdefault(x.get("collection") or ds.name, []).extend(ids)
    if not out:
        where = ds.path / "qrels.txt" if ds.path else f"dataset {ds.name}"
        raise DataFormatError(where, f"no judged turn at grade >= {ds.rel_threshold} in {len(ds.conversations)} "
                              "conversations: nothing to evaluate (data.eval names the evaluation dataset)")
    return out


def set_label(collection: str) -> str:
    """A table's set name: the track's name for the known ones, else the collection's own."""
    return EVAL_SETS.get(collection, collection)


def turn_texts(ds: Any, kind: str, responses: str = "last") -> dict[str, str]:
    """Query text per turn: raw | history | automatic | manual | student (the DiSCo input text)."""
    from retrieval_kd.methods.disco.conversation import conversation_text, history_text

    out = {}
    for c in ds.conversations:
        for t in c["turns"]:
            if kind == "raw":
                out[t["id"]] = t["utterance"]
            elif kind == "history":
                out[t["id"]] = history_text(t["history"], t["utterance"])
            elif kind == "student":
                out[t["id"]] = conversation_text(t["history"], t["utterance"], responses)
            elif t.get(kind):
                out[t["id"]] = t[kind]
    return out


def score_rows(name: str, run: dict, ds: Any, splits: dict[str, list[str]], extra: dict | None = None,
               covered_only: bool = False) -> list[dict]:
    """One row per evaluation set. Turns the run has no text for count as zero, or with `covered_only` (rewrite
    rows: a turn whose topic file has an empty rewrite was warned about when read) are left out of that row."""
    from retrieval_kd.evaluate import evaluate

    rows = []
    for coll, qids in splits.items():
        if covered_only:
            qids = [q for q in qids if q in run]
        covered = sum(1 for q in qids if q in run)
        if not covered:
            continue
        pq = evaluate(run, ds.qrels, list(MEASURES), rel=ds.rel_threshold, queries=qids, per_query=True)
        m = {k: sum(v.get(q, 0.0) for q in qids) / len(qids) for k, v in pq.items()}
        rows.append({"set": set_label(coll), "role": "choice" if coll in CHOICE_SETS else "report", "query": name,
                     **m, "turns": len(qids), **(extra or {}), "_pq": {q: pq["nDCG@3"].get(q, 0.0) for q in qids}})
    return rows


def sparse_run(encoder: Any, index: Any, texts: dict[str, str], k: int = 100) -> dict:
    """Encode query texts with a SPLADE encoder and search the impact index."""
    qids = list(texts)
    return index.search_run(qids, encoder.encode([texts[q] for q in qids]), k)


def student_config(base: DiscoConfig, sources: list[str], aggregation: str, out: Path) -> DiscoConfig:
    """The base DiscoConfig with these teachers, aggregation and output folder."""
    from retrieval_kd.methods.disco.config import TeacherConfig

    names = {"manual": "human", "automatic": "automatic"}
    teachers = [TeacherConfig(name=names.get(s, Path(s).stem), source=s) for s in sources]
    return base.model_copy(update={"teachers": teachers, "aggregation": aggregation, "output": str(out)})


def check_variants(variants: Sequence[str]) -> None:
    """Raise ConfigError for a DiSCo row key that is not one of VARIANTS."""
    from retrieval_kd.errors import ConfigError

    for key in variants:
        if key not in VARIANTS:
            raise ConfigError(f"unknown variant {key!r}; choose from {', '.join(VARIANTS)}")


def reference_rows(cfg: DiscoConfig, ds: Any, splits: dict[str, list[str]], enc: Any, index: Any,
                   bm25: bool = True) -> list[dict]:
    """BM25 rows (unless bm25=False) and SPLADE rows of every untrained query text."""
    from retrieval_kd.methods.disco.init import MINILM_SPLADE
    from retrieval_kd.teachers.splade import SpladeEncoder

    rows: list[dict] = []
    if bm25:
        from retrieval_kd.index.bm25 import BM25Index

        bm = BM25Index.build(ds.doc_texts, ds.doc_ids)
        for kind in ("raw", "history", "automatic", "manual"):
            rows += score_rows(f"BM25: {kind}", bm.search_run(turn_texts(ds, kind), 100), ds, splits,
                               covered_only=kind in REWRITES)
    labels = {"raw": "raw utterance", "history": "whole history concatenated", "automatic": "automatic rewrite",
              "manual": "human rewrite (teacher bound)", "student": "DiSCo input text, untrained"}
    if cfg.model.student_init == MINILM_SPLADE:  # its start is built by the trainer from the run's own texts
        labels.pop("student")
        init = None
    else:
        init = SpladeEncoder(cfg.model.student_init or enc.path, max_length=cfg.model.max_length,
                             segments=cfg.model.segments, pool=cfg.model.pool)  # the student before training
    for kind, label in labels.items():
        rows += score_rows(f"SPLADE: {label}", sparse_run(init if kind == "student" else enc, index,
                                                          turn_texts(ds, kind, cfg.model.responses)), ds, splits,
                           covered_only=kind in REWRITES)
    return rows


def train_and_score(cfg: DiscoConfig, name: str, dest: Path, ds: Any, splits: dict[str, list[str]], index: Any,
                    reuse: bool = False) -> list[dict]:
    """Train (or, with reuse, reload) one student into `dest` and score it; rows carry its training seconds."""
    from retrieval_kd.methods.disco.trainer import train_disco
    from retrieval_kd.teachers.splade import SpladeEncoder

    if not (reuse and (dest / "meta.json").exists()):
        t0 = time.time()
        train_disco(cfg, dest, progress=progress_enabled())
        print(f"trained {name} in {time.time() - t0:.0f}s -> {dest}", file=sys.stderr)
    meta = json.loads((dest / "meta.json").read_text())
    student = SpladeEncoder(dest / "student", max_length=cfg.model.max_length)
    texts = turn_texts(ds, "student", cfg.model.responses)
    alpha = float(meta.get("utterance_mix") or 0.0)
    if alpha:  # trained with the utterance term: its queries carry it (methods/disco/trainer.py)
        from retrieval_kd.methods.disco.mixing import combine

        qids, raw = list(texts), turn_texts(ds, "raw")
        utt = SpladeEncoder(cfg.model.document_encoder, max_length=cfg.model.doc_max_length)
        run = index.search_run(qids, combine([student.encode([texts[q] for q in qids])], [1.0],
                                             utt.encode([raw[q] for q in qids]), alpha), 100)
    else:
        run = sparse_run(student, index, texts)
    return score_rows(name, run, ds, splits, {"train_s": meta.get("train_seconds"),
                                              "train_turns": meta.get("train_turns")})


def student_rows(cfg: DiscoConfig, key: str, ds: Any, splits: dict[str, list[str]], index: Any, out: Path,
                 reuse: bool = False) -> list[dict]:
    """Train (or, with reuse, reload) the DiSCo student of one variant under out/students and score it."""
    name, sources, agg = VARIANTS[key]
    dest = out / "students" / key
    return train_and_score(student_config(cfg, sources, agg, dest), name, dest, ds, splits, index, reuse)


def paired_rows(rows: list[dict], n: int = 10_000) -> list[dict]:
    """Each trained student row against raw, history and the teacher on the same set: paired
    bootstrap of the nDCG@3 difference (95% percentile interval, wins/ties/losses), the share of the teacher's
    nDCG@3, and R@100 minus the concatenated history's."""
    from retrieval_kd.evaluate import format_paired, paired_bootstrap

    out = []
    for r in rows:
        if "train_s" not in r:  # a trained student
            continue
        base = {k: next((b for b in rows if b["set"] == r["set"] and b["query"] == q), None)
                for k, q in BASELINES.items()}
        rec = {"set": r["set"], "role": r["role"], "query": r["query"], "nDCG@3": r["nDCG@3"]}
        for k, b in base.items():
            if b is None:
                continue
            common = set(r["_pq"]) & set(b["_pq"])
            pb = paired_bootstrap({q: r["_pq"][q] for q in common}, {q: b["_pq"][q] for q in common}, n=n)
            rec[f"vs {k}"] = format_paired(pb)
        if base["teacher"] and base["teacher"]["nDCG@3"]:
            rec["% teacher"] = f"{r['nDCG@3'] / base['teacher']['nDCG@3']:.0%}"
        if base["history"]:
            rec["R@100 - history"] = r["R@100"] - base["history"]["R@100"]
        out.append(rec)
    return out


def write_report(rows: list[dict], cfg: DiscoConfig, out: Path, command: str) -> None:
    """Print the measures table and the paired comparisons; write results.json (with per-turn nDCG@3), table.md."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.utils import run_info, write_json

    if not rows:
        raise RKDError(f"{out}: no row was evaluated (no run covered a judged turn); nothing written")
    cols = ["set", "role", "query", *MEASURES, "turns"] + (["train_s"] if any("train_s" in r for r in rows) else [])
    table = format_table(rows, cols)
    paired = paired_rows(rows)
    pcols = ["set", "role", "query", "nDCG@3", *(f"vs {k}" for k in BASELINES), "% teacher", "R@100 - history"]
    ptable = format_table(paired, pcols) if paired else ""
    text = f"`{command.strip()}`\n\n{table}\n" + (f"\nnDCG@3 paired with each baseline (diff [95% CI] "
                                                   f"wins/ties/losses):\n\n{ptable}\n" if ptable else "")
    print(f"\n{text}")
    write_json(out / "results.json", {"command": command, "rows": [{k: v for k, v in r.items() if k != "_pq"}
                                                                   for r in rows], "paired": paired,
                                      "per_query_ndcg3": {f"{r['set']} | {r['query']}": r["_pq"] for r in rows},
                                      "run_info": run_info(cfg.model_dump(mode="json"))})
    (out / "table.md").write_text(text, encoding="utf-8")


def ablation_configs(cfg: DiscoConfig, path: str | Path) -> list[tuple[str, str, DiscoConfig]]:
    """(key, row name, config) of each row of an ablations YAML: `rows: [{key, name, config?, set?: [a.b=v]}]`;
    a row's config file (default: `cfg`) gets its overrides and `cfg`'s evaluation set (the leak check's)."""
    import yaml
    from pydantic import ValidationError

    from retrieval_kd.config import deep_merge, load_config, parse_overrides
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.methods.disco.config import DiscoConfig

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: ablations file not found")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = spec.get("rows") if isinstance(spec, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{path}: expected 'rows': a non-empty list of {{key, name, config?, set?}}")
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not {"key", "name"} <= set(r) or set(r) - {"key", "name", "config", "set"}:
            raise ConfigError(f"{path}: rows[{i}]: needs 'key' and 'name'; may have 'config' and 'set' only")
        try:
            row_cfg = load_config(r["config"], DiscoConfig, r.get("set") or []) if r.get("config") else \
                DiscoConfig.model_validate(deep_merge(cfg.model_dump(mode="json"), parse_overrides(r.get("set") or [])))
        except ValidationError as e:
            msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ConfigError(f"{path}: rows[{i}] ({r['key']}): {msg}") from None
        except ConfigError as e:
            raise ConfigError(f"{path}: rows[{i}] ({r['key']}): {e}") from None
        row_cfg = row_cfg.model_copy(update={"data": row_cfg.data.model_copy(update={"eval": cfg.data.eval})})
        out.append((str(r["key"]), str(r["name"]), row_cfg))
    return out


def run_cast(cfg: DiscoConfig, out: str | Path = "runs/cast-bench", variants: Sequence[str] = tuple(VARIANTS),
             reuse: bool = False, bm25: bool = True, command: str = "rkd eval cast",
             ablations: str | Path | None = None) -> list[dict]:
    """Run the recipe for a DiscoConfig: print the Markdown table, write index, students and results; the rows.
    With `ablations` (a YAML of rows, see `ablation_configs`) those students are trained and scored too."""
    from retrieval_kd.datasets import load
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.teachers.splade import SpladeEncoder, encode_cached
    from retrieval_kd.threads import set_threads

    check_variants(variants)
    extra = ablation_configs(cfg, ablations) if ablations else []
    set_threads()
    out = run_path(out)
    ds = load(cfg.data.eval)
    splits = split_queries(ds)
    enc = SpladeEncoder(cfg.model.document_encoder, max_length=cfg.model.doc_max_length)
    docs = encode_cached(enc, ds.doc_texts, "corpus")
    index = ImpactIndex.build(docs, ds.doc_ids, enc.vocab, meta={"dataset": ds.name, "encoder": str(enc.path)})
    index.save(out / "index")
    rows = reference_rows(cfg, ds, splits, enc, index, bm25)
    for key in variants:
        rows += student_rows(cfg, key, ds, splits, index, out, reuse)
    for key, name, row_cfg in extra:
        rows += train_and_score(row_cfg.model_copy(update={"output": str(out / "students" / key)}), name,
                                out / "students" / key, ds, splits, index, reuse)
    write_report(rows, cfg, out, command)
    return rows
