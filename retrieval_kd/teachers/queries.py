"""Teacher queries: human-distilled (LiveQA FOCUS/summaries, MedicineQA drug + attribute), JSONL files, examples."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from retrieval_kd.data.dataset import read_jsonl
from retrieval_kd.errors import DataFormatError, DataNotFoundError
from retrieval_kd.utils import atomic_file

# One training/eval example: {"id", "dialogue": [{"role", "text"}], "queries": [str, ...]}
Example = dict[str, Any]


def dialogue_of(conv: Mapping[str, Any]) -> list[dict[str, str]]:
    """A normalised conversation's turns as [{"role","text"}] (role defaults to 'user')."""
    return [{"role": t.get("role", "user"), "text": t.get("utterance") or t.get("text") or ""}
            for t in conv["turns"]]


def examples_from_dataset(ds, field: str = "teacher_queries") -> list[Example]:
    """Examples from a dataset whose last turns carry teacher queries (liveqa-med-train, zh-consult, cmedqq)."""
    out = []
    for conv in ds.conversations:
        queries = conv["turns"][-1].get(field) or []
        if queries:
            out.append({"id": conv["id"], "dialogue": dialogue_of(conv), "queries": list(queries)})
    return out


def medicineqa_queries(ds) -> dict[str, list[str]]:
    """Human-distilled zh teacher: 'drug attribute' of each gold evidence record (upper bound)."""
    rec = {d["id"]: f"{d['drug']} {d['attribute']}" for d in ds.corpus}
    return {qid: sorted({rec[d] for d in docs}) for qid, docs in ds.qrels.items()}


def liveqa_summary_queries(ds) -> dict[str, list[str]]:
    """Human-distilled en teacher: the NLM summary of each LiveQA test question (medquad-liveqa meta)."""
    summaries = ds.meta.get("alt_queries", {}).get("summary")
    if summaries is None:
        raise DataNotFoundError(f"dataset {ds.name} has no meta alt_queries.summary (NLM summaries)")
    return {qid: [s] for qid, s in summaries.items() if s}




def split_of(qid: str, dev_share: float = 0.2) -> str:
    """'dev' or 'train' by a stable hash of the id (the same split in every run and process)."""
    import hashlib

    h = int(hashlib.sha256(str(qid).encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "dev" if h < dev_share else "train"


def focus_queries(ds) -> dict[str, list[str]]:
    """Human FOCUS annotations per question: the training questions' own (conversations), or, for medquad-liveqa,
    the LiveQA-Med test questions' ANNOTATIONS (read from the raw test file)."""
    out = {c["id"]: list(c["turns"][-1].get("focus") or []) for c in ds.conversations
           if c["turns"] and c["turns"][-1].get("focus")}
    if out or ds.name != "medquad-liveqa":
        if not out:
            raise DataNotFoundError(f"dataset {ds.name} has no FOCUS annotations")
        return out
    from retrieval_kd.data.liveqa import TEST_FILE, read_liveqa_test_annotations
    from retrieval_kd.paths import data_root

    ann = read_liveqa_test_annotations(data_root() / "liveqa_med_2017" / TEST_FILE)
    return {f"TQ{k}" if not str(k).startswith("TQ") else str(k): list(v["focus"]) for k, v in ann.items()
            if v["focus"]}


def read_jsonl_queries(path: str | Path) -> dict[str, list[str]]:
    """Any JSONL of teacher queries: lines {"id": ..., "queries": [str, ...]}; errors name line and field."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for i, row in read_jsonl(path, "teacher-query file"):
        if not isinstance(row, dict) or "id" not in row:
            raise DataFormatError(path, "needs an 'id'", line=i, field="id")
        qs = row.get("queries")
        if not isinstance(qs, list) or not all(isinstance(q, str) for q in qs):
            raise DataFormatError(path, "must be a list of strings", line=i, field="queries")
        out[str(row["id"])] = [q for q in qs if q.strip()]
    return out


def write_jsonl_queries(path: str | Path, queries: Mapping[str, Iterable[str]], **extra: Mapping[str, Any]) -> Path:
    """Write {"id","queries", ...extra[id]} lines atomically."""
    path = Path(path)
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for qid, qs in queries.items():
            row = {"id": qid, "queries": list(qs), **{k: v[qid] for k, v in extra.items() if qid in v}}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def attach(examples: list[Example], queries: Mapping[str, list[str]]) -> list[Example]:
    """Replace each example's queries by a teacher's (examples the teacher skipped are dropped)."""
    return [{**e, "queries": queries[e["id"]]} for e in examples if queries.get(e["id"])]


def zh_dialogue_examples(consult, exclude: Iterable[str] = (), limit: int | None = None,
                         aside: bool = False) -> list[Example]:
    """Synthetic multi-round zh training dialogues from ask→title consultations that name a medicine or condition.

    Names are mined from the consultations themselves (names overlapping `exclude`, e.g. the eval database's
    medicines, are dropped); each title naming exactly one becomes a 'pronoun' and a 'distractor' dialogue
    (TRAIN_TEMPLATES wording, disjoint from the eval set's, half of them varied by `vary_dialogue`) whose teacher
    query is the title, plus a 'named' one: another medicine named first, then the title asked as it is, so that
    a medicine named earlier is not carried into a question that names its own; with `aside`, also an 'aside' one
    (`make_aside`: the user's own named first, someone else's later, then the title asked by a possessive
    phrase), so that the newest mention is not always the one to carry. Each example lists
    the entity names it mentions ("names"), which training [MASK]s like the database's medicine names at test time.
    """
    from retrieval_kd.data.medical_zh import (
        TRAIN_TEMPLATES,
        TRAIN_TEMPLATES_CONDITION,
        make_aside,
        make_dialogues,
        mine_condition_names,
        mine_drug_names,
        vary_dialogue,
    )

    convs = consult.conversations
    titles = [c["turns"][-1]["teacher_queries"][0] for c in convs]
    bad = set(exclude)
    drugs = [d for d in mine_drug_names(c["turns"][-1]["utterance"] + "。" + t for c, t in zip(convs, titles))
             if not any(d in x or x in d for x in bad)]
    conds = mine_condition_names(titles)
    out: list[Example] = []
    for c, title in zip(convs, titles):
        for names, templates in ((drugs, TRAIN_TEMPLATES), (conds, TRAIN_TEMPLATES_CONDITION)):
            named = [d for d in names if d in title]
            named = [d for d in named if not any(d != o and d in o for o in named)]
            if len(named) == 1:
                convs = make_dialogues(c["id"], title, named[0], named[0], names, templates)
                dist = convs[-1]  # another medicine named first, then the title asked with its own name:
                convs.append({**dist, "id": f"{c['id']}-named", "variant": "named",  # the earlier one is not searched
                              "turns": dist["turns"][:2] + [{**dist["turns"][-1], "id": "3", "utterance": title}]})
                if aside:  # the user's own named first, someone else's later: the newest is not the one to carry
                    convs.append(make_aside(c["id"], title, named[0], named[0], names, templates))
                for conv in convs:
                    ents = [conv["drug"]] + ([conv["distractor"]] if "distractor" in conv else [])
                    conv = {**conv, "turns": vary_dialogue(conv["turns"], conv["id"])}
                    out.append({"id": conv["id"], "dialogue": dialogue_of(conv), "queries": [title],
                                "names": ents})
                break
        if limit and len(out) >= limit:
            break
    return out
