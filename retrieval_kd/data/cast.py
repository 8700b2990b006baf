"""TREC CAsT 2019–2022 and iKAT 2023 topics (raw, manual, automatic rewrites; responses; provenance) and qrels.

Every turn is normalised to one record: ``{"id", "utterance", "history": [{"role": "user"|"system", "text"}],
"manual"?, "automatic"?, "response"?, "provenance"?, "canonical"?}`` where ``history`` is what the system had
seen before the turn (earlier raw utterances and, where the track gives them, the system's responses).
Turn ids follow the tracks: ``31_1`` (2019), ``81_1`` (2020), ``106_1`` (2021), ``132_1-1`` (2022), ``1-1_1``
(iKAT), so they never collide.

Registered datasets:
  cast2019 … cast2022, ikat2023  topics + official qrels, no corpus (the passage collections are not here)
  cast-mini   evaluation: CAsT 2021 + iKAT 2023 train conversations over a small real corpus (see `mini_corpus`)
  cast-train  training conversations CAsT 2019, 2020, 2022 (+ CANARD dev) over the cast-mini corpus text and one
              document per CANARD dialogue (no evaluation turn, rewrite or judgement; no qrels)

Repaired quirks: a 2022 provenance entry split in two ("MARCO_16_1884092099", "-2" -> "MARCO_16_1884092099-2",
the fix of treccastweb PR #14); a 2021 canonical id given to two different passages (the second gets "#b").
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retrieval_kd.data.dataset import Dataset, Qrels, read_jsonl, read_trec_qrels_lines
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError, DataNotFoundError

RAW = "cast"
TRAIN_COLLECTIONS = ("cast2019", "cast2020", "cast2022", "canard")
EVAL_COLLECTIONS = ("cast2021", "ikat2023")
RESPONSE_PREFIX = "CAST22-RESPONSE_"
Turn = dict[str, Any]
Conversation = dict[str, Any]


def clean(text: str) -> str:
    """Collapse runs of whitespace to one space."""
    return " ".join(str(text).split())


def load_json(path: Path) -> Any:
    """Parse a JSON file, naming the file, line and column when it is malformed."""
    if not path.exists():
        raise DataNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None


def _field(path: Path, rec: dict, key: str, where: str) -> Any:
    if not isinstance(rec, dict) or key not in rec:
        raise DataFormatError(path, f"{where}: missing '{key}'", field=key)
    return rec[key]


def read_tsv_rewrites(path: Path) -> dict[str, str]:
    """`qid<TAB>rewrite` lines (CAsT 2019 manual rewrites)."""
    if not path.exists():
        raise DataNotFoundError(f"{path}: file not found")
    out = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            raise DataFormatError(path, "expected '<qid>\\t<rewrite>'", line=i)
        out[qid.strip()] = clean(text)
    return out


def _linear(collection: str, topics: list, path: Path, rewrites: dict[str, dict[str, str]],
            responses: dict[str, str] | None = None) -> list[Conversation]:
    """Conversations whose turns follow one another (2019–2021): history = earlier utterances (+ responses)."""
    convs = []
    for topic in topics:
        num = _field(path, topic, "number", "topic")
        turns: list[Turn] = []
        history: list[dict[str, str]] = []
        for t in _field(path, topic, "turn", f"topic {num}"):
            tid = f"{num}_{_field(path, t, 'number', f'topic {num} turn')}"
            utt = clean(_field(path, t, "raw_utterance", f"turn {tid}"))
            turn: Turn = {"id": tid, "utterance": utt, "history": list(history)}
            for kind, table in rewrites.items():
                if tid in table:
                    turn[kind] = table[tid]
            history.append({"role": "user", "text": utt})
            if responses is not None and tid in responses:
                turn["response"] = responses[tid]
                history.append({"role": "system", "text": responses[tid]})
            turns.append(turn)
        convs.append({"id": str(num), "collection": collection, "title": clean(topic.get("title", "")),
                      "turns": turns})
    return convs


def read_cast2019(root: Path) -> list[Conversation]:
    """CAsT 2019 training (30) and evaluation (50) topics; manual rewrites where the track gives them."""
    d = root / RAW / "2019"
    manual = read_tsv_rewrites(d / "evaluation_topics_annotated_resolved_v1.0.tsv")
    manual.update(read_tsv_rewrites(d / "train_topic_sample_annotated_resolved_v1.0.tsv"))
    convs = []
    for name in ("train_topics_v1.0.json", "evaluation_topics_v1.0.json"):
        convs += _linear("cast2019", load_json(d / name), d / name, {"manual": manual})
    return convs


def _rewrites(path: Path, topics: list, key: str, turn_key: str = "turn") -> dict[str, str]:
    return {f"{c['number']}_{t['number']}": clean(t[key]) for c in topics for t in c[turn_key] if t.get(key)}


def read_cast2020(root: Path) -> list[Conversation]:
    """CAsT 2020 topics (25) with manual and automatic rewrites; manual canonical result ids kept."""
    p = root / RAW / "2020" / "2020_manual_evaluation_topics_v1.0.json"
    topics = load_json(p)
    rw = {"manual": _rewrites(p, topics, "manual_rewritten_utterance"),
          "automatic": _rewrites(p, topics, "automatic_rewritten_utterance")}
    convs = _linear("cast2020", topics, p, rw)
    canon = {f"{c['number']}_{t['number']}": t.get("manual_canonical_result_id") for c in topics for t in c["turn"]}
    for c in convs:
        for t in c["turns"]:
            if canon.get(t["id"]):
                t["canonical"] = canon[t["id"]]
    return convs


def read_cast2021(root: Path) -> tuple[list[Conversation], dict[str, str]]:
    """CAsT 2021 (26 topics): manual + automatic rewrites; each turn's canonical passage is its response.

    Returns (conversations, passages {id: text}); the passage id is `<canonical_result_id>-<passage_id>`,
    stored on each turn as `canonical`.
    """
    d = root / RAW / "2021"
    pm, pa = d / "2021_manual_evaluation_topics_v1.0.json", d / "2021_automatic_evaluation_topics_v1.0.json"
    topics, auto = load_json(pm), load_json(pa)
    passages: dict[str, str] = {}
    canon: dict[str, str] = {}
    responses: dict[str, str] = {}
    for c in topics:
        for t in c["turn"]:
            tid = f"{c['number']}_{t['number']}"
            pid = f"{_field(pm, t, 'canonical_result_id', tid)}-{_field(pm, t, 'passage_id', tid)}"
            text = clean(_field(pm, t, "passage", tid))
            if passages.get(pid, text) != text:  # one id, two texts: keep both apart
                pid += "#b"
            passages[pid] = text
            canon[tid], responses[tid] = pid, text
    rw = {"manual": _rewrites(pm, topics, "manual_rewritten_utterance"),
          "automatic": _rewrites(pa, auto, "automatic_rewritten_utterance")}
    convs = _linear("cast2021", topics, pm, rw, responses)
    for c in convs:
        for t in c["turns"]:
            t["canonical"] = canon[t["id"]]
    return convs, passages


def _repair_provenance(ids: list[str]) -> list[str]:
    out: list[str] = []
    for p in ids:
        if p.startswith("-") and out:  # "MARCO_16_1884092099", "-2" -> "MARCO_16_1884092099-2"
            out[-1] += p
        else:
            out.append(p)
    return out


def read_cast2022(root: Path) -> tuple[list[Conversation], dict[str, str]]:
    """CAsT 2022 trees (18 topics, 205 user turns): history = the turn's ancestors (utterances and responses).

    Returns (conversations, responses {doc id: text}), one response document per System turn, id
    `CAST22-RESPONSE_<topic>_<turn>`; the user turn it answers carries it as `response` and `provenance`
    (four user turns open two branches with two replies: the turn keeps its first, lowest-numbered reply).
    """
    d = root / RAW / "2022"
    pm, pa = d / "2022_evaluation_topics_tree_v1.0.json", d / "2022_automatic_evaluation_topics_tree_v1.0.json"
    topics = load_json(pm)
    auto = {f"{c['number']}_{t['number']}": clean(t["automatic_rewritten_utterance"])
            for c in load_json(pa) for t in c["turn"] if t.get("automatic_rewritten_utterance")}
    convs, docs = [], {}
    for c in topics:
        num = _field(pm, c, "number", "topic")
        nodes = {str(_field(pm, t, "number", f"topic {num} turn")): t for t in c["turn"]}
        answer: dict[str, str] = {}  # user turn -> its first System reply (a branch may add a second one)
        for n, t in nodes.items():
            if t.get("participant") == "System":
                answer.setdefault(str(_field(pm, t, "parent", f"system turn {num}_{n}")), n)
                docs[f"{RESPONSE_PREFIX}{num}_{n}"] = clean(t.get("response", ""))
        turns = []
        for n, t in nodes.items():
            if t.get("participant") != "User":
                continue
            tid = f"{num}_{n}"
            chain, cur = [], t.get("parent")
            while cur is not None:
                node = nodes.get(str(cur))
                if node is None:
                    raise DataFormatError(pm, f"turn {tid}: parent {cur} not found", field="parent")
                chain.append(node)
                cur = node.get("parent")
            history = [{"role": "user", "text": clean(x["utterance"])} if x.get("participant") == "User"
                       else {"role": "system", "text": clean(x.get("response", ""))} for x in reversed(chain)]
            turn: Turn = {"id": tid, "utterance": clean(_field(pm, t, "utterance", tid)), "history": history,
                          "manual": clean(_field(pm, t, "manual_rewritten_utterance", tid))}
            if tid in auto:
                turn["automatic"] = auto[tid]
            if n in answer:
                sys = nodes[answer[n]]
                turn["response"] = clean(sys.get("response", ""))
                turn["provenance"] = _repair_provenance([str(p) for p in sys.get("provenance", [])])
            turns.append(turn)
        convs.append({"id": str(num), "collection": "cast2022", "turns": turns})
    return convs, docs


def read_ikat2023(root: Path) -> tuple[list[Conversation], dict[str, str]]:
    """iKAT 2023 train (11 conversations, 95 turns): resolved utterance = manual rewrite; provenance passages.

    Returns (conversations, passages {"<clueweb doc id>:<passage id>": text}); PTKB statements stay on the
    conversation (`ptkb`) and are not fed to any encoder.
    """
    d = root / RAW / "ikat2023"
    p, pp = d / "2023_train_topics.json", d / "2023_train_topics_psg_text.jsonl"
    convs = []
    for c in load_json(p):
        num = _field(p, c, "number", "topic")
        turns, history = [], []
        for t in _field(p, c, "turns", f"topic {num}"):
            tid = f"{num}_{_field(p, t, 'turn_id', f'topic {num} turn')}"
            utt, resp = clean(_field(p, t, "utterance", tid)), clean(t.get("response", ""))
            turns.append({"id": tid, "utterance": utt, "history": list(history),
                          "manual": clean(_field(p, t, "resolved_utterance", tid)), "response": resp,
                          "provenance": [str(x) for x in t.get("response_provenance", [])]})
            history += [{"role": "user", "text": utt}, {"role": "system", "text": resp}]
        convs.append({"id": str(num), "collection": "ikat2023", "title": clean(c.get("title", "")),
                      "ptkb": c.get("ptkb", {}), "turns": turns})
    passages = {}
    for i, rec in read_jsonl(pp):
        for key in ("doc_id", "passage_id", "passage_text"):
            if key not in rec:
                raise DataFormatError(pp, f"missing '{key}'", line=i, field=key)
        passages[f"{rec['doc_id']}:{rec['passage_id']}"] = clean(rec["passage_text"])
    return convs, passages


def read_canard(root: Path) -> tuple[list[Conversation], dict[str, str]]:
    """CANARD dev (QuAC dialogues, 3,430 questions with human rewrites) as training conversations.

    History = "<article>. <section>" (what the QuAC asker was shown, as a user turn), then the earlier questions
    and answers; `manual` = the human rewrite. Returns also one document per dialogue,
    `CANARD_<dialog id>` = "<article>. <section>. <every answer of the dialogue>" ("I don't know." left out),
    so the training candidates contain text about each dialogue's topic.
    """
    p = root / "canard" / "dev.json"
    rows = load_json(p)
    if not isinstance(rows, list):
        raise DataFormatError(p, "expected a JSON array of rows")
    by_dialog: dict[str, list[dict]] = {}
    for i, r in enumerate(rows):
        for key in ("History", "Question", "Rewrite", "QuAC_dialog_id", "Question_no"):
            _field(p, r, key, f"row {i}")
        by_dialog.setdefault(r["QuAC_dialog_id"], []).append(r)
    convs, docs = [], {}
    for did, rs in by_dialog.items():
        rs.sort(key=lambda r: r["Question_no"])
        last = max(rs, key=lambda r: len(r["History"]))
        hist = [clean(x) for x in last["History"]]
        head = f"{hist[0]}. {hist[1]}" if len(hist) > 1 else hist[0]
        answers = [a for a in hist[3::2] if a and a != "I don't know."]
        docs[f"CANARD_{did}"] = clean(" ".join([head + ".", *answers]))
        turns = []
        for r in rs:
            h = [clean(x) for x in r["History"]]
            history = [{"role": "user", "text": head}]
            history += [{"role": "user" if j % 2 == 0 else "system", "text": x} for j, x in enumerate(h[2:])]
            turns.append({"id": f"canard_{did}_{r['Question_no']}", "utterance": clean(r["Question"]),
                          "history": history, "manual": clean(r["Rewrite"])})
        convs.append({"id": did, "collection": "canard", "title": head, "turns": turns})
    return convs, docs


OFFICIAL_QRELS = {
    "cast2019": "2019/2019qrels.txt", "cast2020": "2020/2020qrels.txt",
    "cast2021": "2021/trec-cast-qrels-docs.2021.qrel", "cast2022": "2022/cast2022.qrel",
}
# Official relevance threshold for binary measures (RR, recall): >= 1 in 2019, >= 2 from 2020 on.
OFFICIAL_REL = {"cast2019": 1, "cast2020": 2, "cast2021": 2, "cast2022": 2}


def read_official_qrels(root: Path, collection: str) -> Qrels:
    """The track's official qrels (2019/2020/2022 passage-level, 2021 document-level)."""
    if collection not in OFFICIAL_QRELS:
        raise DataNotFoundError(f"no official qrels for '{collection}'; known: {', '.join(OFFICIAL_QRELS)}")
    path = root / RAW / OFFICIAL_QRELS[collection]
    if not path.exists():
        raise DataNotFoundError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
        return read_trec_qrels_lines((path, i, ln) for i, ln in enumerate(fh, 1) if ln.strip())


def read_collection(root: Path, collection: str) -> list[Conversation]:
    """Conversations of one collection by name (cast2019 … cast2022, ikat2023, canard)."""
    readers = {"cast2019": read_cast2019, "cast2020": read_cast2020,
               "cast2021": lambda r: read_cast2021(r)[0], "cast2022": lambda r: read_cast2022(r)[0],
               "ikat2023": lambda r: read_ikat2023(r)[0], "canard": lambda r: read_canard(r)[0]}
    if collection not in readers:
        raise DataNotFoundError(f"unknown CAsT collection '{collection}'; known: {', '.join(readers)}")
    return readers[collection](root)


def mini_corpus(root: Path) -> tuple[list[dict[str, Any]], list[Conversation], Qrels]:
    """The cast-mini corpus, its evaluation conversations and binary qrels.

    Corpus, in this order: (1) the 234 distinct CAsT 2021 canonical passages (235 ids: one id carries two
    texts), (2) the 194 iKAT 2023 train provenance passages, (3) the 203 CAsT 2022 system responses (one per System
    turn of the trees) as distractors. Qrels: a 2021 turn -> its canonical passage (1); an iKAT turn -> each of its response
    provenance passages (1); iKAT turns without provenance are unjudged. Nothing else is relevant.
    """
    c21, p21 = read_cast2021(root)
    ik, pik = read_ikat2023(root)
    _, r22 = read_cast2022(root)
    corpus = [{"id": k, "contents": v, "source": "cast2021-canonical"} for k, v in p21.items()]
    corpus += [{"id": k, "contents": v, "source": "ikat2023-provenance"} for k, v in pik.items()]
    corpus += [{"id": k, "contents": v, "source": "cast2022-response"} for k, v in r22.items()]
    qrels: Qrels = {t["id"]: {t["canonical"]: 1} for c in c21 for t in c["turns"]}
    for c in ik:
        for t in c["turns"]:
            missing = [p for p in t["provenance"] if p not in pik]
            if missing:
                raise DataFormatError(root / RAW / "ikat2023", f"turn {t['id']}: provenance {missing[0]} has no text")
            if t["provenance"]:
                qrels[t["id"]] = {p: 1 for p in t["provenance"]}
    return corpus, c21 + ik, qrels


def _queries(convs: list[Conversation]) -> dict[str, str]:
    return {t["id"]: t["utterance"] for c in convs for t in c["turns"]}


def _topics_only(root: Path, collection: str) -> Dataset:
    convs = read_collection(root, collection)
    qrels = read_official_qrels(root, collection) if collection in OFFICIAL_QRELS else {}
    rel = OFFICIAL_REL.get(collection, 1)
    return Dataset(collection, [], _queries(convs), qrels, convs,
                   {"source": "TREC CAsT / iKAT topics (see shared/data/cast/PROVENANCE.md)", "rel_threshold": rel,
                    "note": "topics and official qrels only: the passage collections are not in shared/data"})


for _c in ("cast2019", "cast2020", "cast2021", "cast2022", "ikat2023"):
    register(_c, raw=RAW, description=f"{_c} topics (raw/manual/automatic) + official qrels, no corpus")(
        lambda root, _c=_c: _topics_only(root, _c))


@register("cast-mini", raw=RAW, description="CAsT 2021 + iKAT 2023 eval turns over 632 real passages and responses")
def cast_mini(root: Path) -> Dataset:
    """Evaluation set of the DiSCo recipe (see `mini_corpus` for exactly how it is built)."""
    corpus, convs, qrels = mini_corpus(root)
    meta = {"source": "TREC CAsT 2021 canonical passages, iKAT 2023 train provenance passages, CAsT 2022 "
                      "responses as distractors (shared/data/cast)",
            "build": mini_corpus.__doc__.split("\n\n", 1)[1].strip(), "rel_threshold": 1,
            "collections": {c: sum(len(x["turns"]) for x in convs if x["collection"] == c) for c in EVAL_COLLECTIONS}}
    return Dataset("cast-mini", corpus, _queries(convs), qrels, convs, meta)


@register("cast-train", raw=RAW, version=2,
          description="CAsT 2019/2020/2022 + CANARD training conversations over cast-mini text + CANARD docs")
def cast_train(root: Path) -> Dataset:
    """Training conversations (CAsT 2019, 2020, 2022; CANARD dev when present) and candidate documents.

    Corpus = the cast-mini passage text (no labels, queries or rewrites of evaluation turns) + one CANARD
    document per QuAC dialogue (`read_canard`). No qrels: DiSCo learns from teachers, not judgements.
    """
    corpus, _, _ = mini_corpus(root)
    convs = [c for name in TRAIN_COLLECTIONS[:3] for c in read_collection(root, name)]
    if (root / "canard" / "dev.json").exists():
        canard, docs = read_canard(root)
        convs += canard
        corpus += [{"id": k, "contents": v, "source": "canard-dialogue"} for k, v in docs.items()]
    meta = {"source": "TREC CAsT 2019, 2020, 2022 topics (shared/data/cast); CANARD dev (shared/data/canard, "
                      "CC BY-SA 4.0)", "rel_threshold": 1,
            "note": "candidate documents: the cast-mini corpus text + CANARD dialogue documents; no evaluation "
                    "turn, rewrite or judgement is included (CAsT 2021 and iKAT 2023 are evaluation)",
            "collections": {c: sum(len(x["turns"]) for x in convs if x["collection"] == c) for c in TRAIN_COLLECTIONS}}
    return Dataset("cast-train", corpus, _queries(convs), {}, convs, meta)
