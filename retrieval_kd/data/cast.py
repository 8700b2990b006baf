"""TREC CAsT 2019–2022 and iKAT 2023–2025 topics (raw, manual, automatic rewrites; responses; provenance), qrels.

Every turn is normalised to one record: ``{"id", "utterance", "history": [{"role": "user"|"system", "text"}],
"manual"?, "automatic"?, "response"?, "provenance"?, "canonical"?}`` where ``history`` is what the system had
seen before the turn (earlier raw utterances and, where the track gives them, the system's responses); the
per-schema parsing lives in `formats.cast_topics` (which also reads a topic file of any year by path).
Turn ids follow the tracks: ``31_1`` (2019 evaluation; training topics 1–30 give ``1_1``), ``81_1`` (2020),
``106_1`` (2021), ``132_1-1`` (2022), ``1-1_1`` (iKAT 2023 and 2025), ``0_1`` (iKAT 2024): the sets read together
here (cast-mini; cast-train) never collide, but iKAT years collide with each other and 2024 with 2019 training.

Registered datasets:
  cast2019 … cast2022  topics + official qrels, no corpus (the passage collections are not here)
  ikat2023 … ikat2025  topics with human-resolved utterances, no qrels (NIST distributes them), no corpus
  cast-mini   evaluation: CAsT 2021 + iKAT 2023 train conversations over a small real corpus (see `mini_corpus`)
  cast-train  training conversations CAsT 2019, 2020, 2022 (+ CANARD dev) over the cast-mini corpus text and one
              document per CANARD dialogue (no evaluation turn, rewrite or judgement; no qrels)
  cast-eval   cast-mini + iKAT 2025 turns judged against their own responses (see `ikat_response_set`)
  disco-train CAsT 2019/2020/2022, CANARD dev + train, iKAT 2024 over a pool without any cast-eval judged passage
  ikat2024-dev iKAT 2024 judged by its own responses over cast-eval's corpus + them (development, `ikat2024_dev`)

Repaired quirks: a 2022 provenance entry split in two ("MARCO_16_1884092099", "-2" -> "MARCO_16_1884092099-2",
the fix of treccastweb PR #14); a 2021 canonical id given to two different passages (the second gets "#b").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data.dataset import Dataset, Qrels, read_jsonl
from retrieval_kd.data.files import clean, load_json, numbered_lines
from retrieval_kd.data.formats.cast_topics import (
    RESPONSE_PREFIX,
    canard_train_conversations,
    canonical_passages,
    check_turn_ids,
    field,
    ikat_conversations,
    linear_conversations,
    rewrites_of,
    set_rewrite,
    tree_conversations,
    warn_empty,
)
from retrieval_kd.data.formats.trec import read_trec_qrels_lines
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError, DataNotFoundError

RAW = "cast"
TRAIN_COLLECTIONS = ("cast2019", "cast2020", "cast2022", "canard")
EVAL_COLLECTIONS = ("cast2021", "ikat2023")
DISCO_TRAIN = ("cast2019", "cast2020", "cast2022", "canard", "canard_train", "ikat2024")  # disco-train collections
DISCO_EVAL = ("cast2021", "ikat2023", "ikat2025")  # cast-eval collections
IKAT_RESPONSE_PREFIX = "IKAT-RESPONSE_"
IKAT_TOPICS = {"ikat2023": {"train": "ikat2023/2023_train_topics.json", "test": "ikat2023/2023_test_topics.json"},
               "ikat2024": {"test": "ikat2024/2024_test_topics.json"},
               "ikat2025": {"test": "ikat2025/2025_test_topics.json"}}
Turn = dict[str, Any]
Conversation = dict[str, Any]
__all__ = ["RESPONSE_PREFIX", "clean", "load_json"]


def read_tsv_rewrites(path: Path) -> dict[str, str]:
    """`qid<TAB>rewrite` lines (CAsT 2019 manual rewrites); an empty rewrite is left out with a DataWarning."""
    out = {}
    for i, line in numbered_lines(path):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            raise DataFormatError(path, "expected '<qid>\\t<rewrite>'", line=i)
        if not clean(text):
            warn_empty(path, qid.strip(), "manual", line=i)
            continue
        out[qid.strip()] = clean(text)
    return out


def read_cast2019(root: Path) -> list[Conversation]:
    """CAsT 2019 training (30) and evaluation (50) topics; manual rewrites where the track gives them."""
    d = root / RAW / "2019"
    manual = read_tsv_rewrites(d / "evaluation_topics_annotated_resolved_v1.0.tsv")
    manual.update(read_tsv_rewrites(d / "train_topic_sample_annotated_resolved_v1.0.tsv"))
    convs = []
    for name in ("train_topics_v1.0.json", "evaluation_topics_v1.0.json"):
        convs += linear_conversations("cast2019", load_json(d / name), d / name, {"manual": manual})
    return convs


def read_cast2020(root: Path) -> list[Conversation]:
    """CAsT 2020 topics (25) with manual and automatic rewrites; manual canonical result ids kept."""
    p = root / RAW / "2020" / "2020_manual_evaluation_topics_v1.0.json"
    topics = load_json(p)
    rw = {"manual": rewrites_of(p, topics, "manual"), "automatic": rewrites_of(p, topics, "automatic")}
    convs = linear_conversations("cast2020", topics, p, rw)
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
    passages, canon = canonical_passages(pm, topics)
    responses = {tid: passages[pid] for tid, pid in canon.items()}
    rw = {"manual": rewrites_of(pm, topics, "manual"), "automatic": rewrites_of(pa, auto, "automatic")}
    convs = linear_conversations("cast2021", topics, pm, rw, responses)
    for c in convs:
        for t in c["turns"]:
            t["canonical"] = canon[t["id"]]
    return convs, passages


def read_cast2022(root: Path) -> tuple[list[Conversation], dict[str, str]]:
    """CAsT 2022 trees (18 topics, 205 user turns): history = the turn's ancestors (utterances and responses).

    Returns (conversations, responses {doc id: text}), one response document per System turn, id
    `CAST22-RESPONSE_<topic>_<turn>`; the user turn it answers carries it as `response` and `provenance`
    (four user turns open two branches with two replies: the turn keeps its first, lowest-numbered reply).
    """
    d = root / RAW / "2022"
    pm, pa = d / "2022_evaluation_topics_tree_v1.0.json", d / "2022_automatic_evaluation_topics_tree_v1.0.json"
    return tree_conversations("cast2022", load_json(pm), pm, rewrites_of(pa, load_json(pa), "automatic"))


def read_ikat(root: Path, collection: str, splits: tuple[str, ...] | None = None) -> list[Conversation]:
    """iKAT topics of one year (ikat2023 | ikat2024 | ikat2025): every split in `splits` (default: all) whose
    file is present (iKAT 2023: train and, where it has been added, test); none present is an error."""
    if collection not in IKAT_TOPICS:
        raise DataNotFoundError(f"unknown iKAT collection '{collection}'; known: {', '.join(IKAT_TOPICS)}")
    files = IKAT_TOPICS[collection]
    unknown = [s for s in splits or () if s not in files]
    if unknown:
        raise DataNotFoundError(f"{collection} has no split '{unknown[0]}'; known: {', '.join(files)}")
    paths = [root / RAW / files[s] for s in splits or files]
    present = [p for p in paths if p.exists()]
    if not present:
        raise DataNotFoundError(f"{collection}: none of {', '.join(map(str, paths))} found")
    convs = [c for p in present for c in ikat_conversations(collection, load_json(p), p)]
    check_turn_ids(present[0].parent, convs)
    return convs


def read_ikat2023(root: Path, splits: tuple[str, ...] | None = None) -> tuple[list[Conversation], dict[str, str]]:
    """iKAT 2023 topics (train: 11 conversations, 95 turns; test where 2023_test_topics.json is present):
    resolved utterance = manual rewrite; provenance passages of the train topics.

    Returns (conversations, passages {"<clueweb doc id>:<passage id>": text}); PTKB statements stay on the
    conversation (`ptkb`) and are not fed to any encoder.
    """
    convs = read_ikat(root, "ikat2023", splits)
    pp = root / RAW / "ikat2023" / "2023_train_topics_psg_text.jsonl"
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
            field(p, r, key, f"row {i}")
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
            turn = {"id": f"canard_{did}_{r['Question_no']}", "utterance": clean(r["Question"]), "history": history}
            set_rewrite(turn, "manual", r["Rewrite"], p)
            turns.append(turn)
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
    """Conversations of one collection by name (cast2019 … cast2022, ikat2023 … ikat2025, canard)."""
    readers = {"cast2019": read_cast2019, "cast2020": read_cast2020,
               "cast2021": lambda r: read_cast2021(r)[0], "cast2022": lambda r: read_cast2022(r)[0],
               "ikat2023": lambda r: read_ikat2023(r)[0], "ikat2024": lambda r: read_ikat(r, "ikat2024"),
               "ikat2025": lambda r: read_ikat(r, "ikat2025"), "canard": lambda r: read_canard(r)[0]}
    if collection not in readers:
        raise DataNotFoundError(f"unknown CAsT collection '{collection}'; known: {', '.join(readers)}")
    return readers[collection](root)


def mini_corpus(root: Path) -> tuple[list[dict[str, Any]], list[Conversation], Qrels]:
    """The cast-mini corpus, its evaluation conversations and binary qrels.

    Corpus, in this order: (1) the 234 distinct CAsT 2021 canonical passages (235 ids: one id carries two
    texts), (2) the 194 iKAT 2023 train provenance passages, (3) the 203 CAsT 2022 system responses (one per System
    turn of the trees) as distractors. Qrels: a 2021 turn -> its canonical passage (1); an iKAT turn -> each of its response
    provenance passages (1); iKAT turns without provenance are unjudged. Nothing else is relevant. These grades
    are built from the topic files (the passage the track names for the turn), not TREC assessments, so relevant
    = grade >= 1 (the official >= 2 convention belongs to the official graded qrels of cast2020 … cast2022).
    """
    c21, p21 = read_cast2021(root)
    ik, pik = read_ikat2023(root, splits=("train",))
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
    what = "topics and official qrels" if qrels else "topics only (no qrels here)"
    return Dataset(collection, [], _queries(convs), qrels, convs,
                   {"source": "TREC CAsT / iKAT topics (see shared/data/cast/PROVENANCE.md)", "rel_threshold": rel,
                    "external_corpus": "the track's passage collection (MS MARCO, CAR, WaPo, KILT or ClueWeb22)",
                    "note": f"{what}: the passage collections are not in shared/data"})


for _c in OFFICIAL_QRELS:
    register(_c, raw=RAW, version=2, description=f"{_c} topics (raw/manual/automatic) + official qrels, no corpus")(
        lambda root, _c=_c: _topics_only(root, _c))
for _c, _what in (("ikat2023", "train topics (+ test where present)"), ("ikat2024", "topics"),
                  ("ikat2025", "topics")):
    register(_c, raw=RAW, version=2, description=f"{_c} {_what} with human-resolved utterances; no qrels, no corpus")(
        lambda root, _c=_c: _topics_only(root, _c))


@register("cast-mini", raw=RAW, version=2,
          description="CAsT 2021 + iKAT 2023 eval turns over 632 real passages and responses")
def cast_mini(root: Path) -> Dataset:
    """Evaluation set of the DiSCo recipe (see `mini_corpus` for exactly how it is built)."""
    corpus, convs, qrels = mini_corpus(root)
    meta = {"source": "TREC CAsT 2021 canonical passages, iKAT 2023 train provenance passages, CAsT 2022 "
                      "responses as distractors (shared/data/cast)",
            "build": mini_corpus.__doc__.split("\n\n", 1)[1].strip(), "rel_threshold": 1,
            "grades": {"1": "the turn's CAsT 2021 canonical passage, or one of its iKAT 2023 response provenance "
                            "passages (labels taken from the topic files, not TREC assessments)"},
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


def prefixed(convs: list[Conversation], prefix: str) -> list[Conversation]:
    """The conversations with `prefix` before every turn id (to mix iKAT years with each other and with CAsT)."""
    return [{**c, "turns": [{**t, "id": f"{prefix}{t['id']}"} for t in c["turns"]]} for c in convs]


def ikat_response_set(root: Path, collection: str) -> tuple[list[dict[str, Any]], list[Conversation], Qrels]:
    """iKAT topics of one year judged the CAsT 2021 way: each non-empty response is a document
    `IKAT-RESPONSE_<year>_<turn id>`, relevant (grade 1) to its own turn when the turn cites provenance passages
    (2024 response_provenance, 2025 citations); turns without one are unjudged. Turn ids get `<collection>_`."""
    convs = prefixed(read_ikat(root, collection), f"{collection}_")
    corpus, qrels = [], {}
    for c in convs:
        for t in c["turns"]:
            if t.get("response"):
                did = f"{IKAT_RESPONSE_PREFIX}{collection[-4:]}_{t['id'].split('_', 1)[1]}"
                corpus.append({"id": did, "contents": t["response"], "source": f"{collection}-response"})
                if t.get("provenance"):
                    qrels[t["id"]] = {did: 1}
    return corpus, convs, qrels


@register("cast-eval", raw=RAW, version=1,
          description="cast-mini + iKAT 2025 turns judged against their own responses (choice and report sets)")
def cast_eval(root: Path) -> Dataset:
    """cast-mini (CAsT 2021, iKAT 2023 train) + iKAT 2025 (`ikat_response_set`) over one corpus of 820 documents."""
    corpus, convs, qrels = mini_corpus(root)
    c25, conv25, q25 = ikat_response_set(root, "ikat2025")
    meta = {"source": "cast-mini + iKAT 2025 topics (shared/data/cast)", "rel_threshold": 1,
            "build": f"{mini_corpus.__doc__.split(chr(10) * 2, 1)[1].strip()} {ikat_response_set.__doc__}",
            "collections": {c: sum(len(x["turns"]) for x in convs + conv25 if x["collection"] == c)
                            for c in DISCO_EVAL}}
    return Dataset("cast-eval", corpus + c25, _queries(convs + conv25), {**qrels, **q25}, convs + conv25, meta)


@register("ikat2024-dev", raw=RAW, version=1, description="iKAT 2024 judged by its own responses over cast-eval's corpus")
def ikat2024_dev(root: Path) -> Dataset:
    """iKAT 2024 (`ikat_response_set`) over the cast-eval corpus + the 2024 responses: a development set shaped like
    iKAT 2025, for diagnosing students that never trained on iKAT 2024 (disco-train holds its turns)."""
    c24, conv24, q24 = ikat_response_set(root, "ikat2024")
    meta = {"source": "cast-eval corpus + iKAT 2024 topics (shared/data/cast)", "rel_threshold": 1,
            "build": " ".join(ikat2024_dev.__doc__.split()), "collections": {"ikat2024": len(q24)}}
    return Dataset("ikat2024-dev", cast_eval(root).corpus + c24, _queries(conv24), q24, conv24, meta)


def keyword_documents(convs: list[Conversation], prefix: str) -> list[dict[str, Any]]:
    """One document per conversation: its turns' responses (CANARD train: answer keywords), words deduplicated."""
    out = []
    for c in convs:
        words = " ".join(t.get("response", "") for t in c["turns"]).split()
        if words:
            out.append({"id": f"{prefix}{c['id']}", "contents": " ".join(dict.fromkeys(words)),
                        "source": "canard-train-keywords"})
    return out


@register("disco-train", raw=RAW, version=1,
          description="CAsT 2019/2020/2022, CANARD dev + train, iKAT 2024 over a pool with no cast-eval passage")
def disco_train(root: Path) -> Dataset:
    """Training conversations of `DISCO_TRAIN` (iKAT 2024 turn ids prefixed `ikat2024_`) and their candidate pool:
    the 203 CAsT 2022 responses (also distractors of cast-eval, relevant to none of its turns), one document per
    CANARD dev dialogue (`read_canard`), the iKAT 2024 responses, one answer-keyword document per CANARD train
    dialogue. No CAsT 2021 canonical passage, iKAT 2023 provenance passage or iKAT 2025 response (not transductive).
    """
    convs = [c for name in DISCO_TRAIN[:3] for c in read_collection(root, name)]
    _, r22 = read_cast2022(root)
    corpus = [{"id": k, "contents": v, "source": "cast2022-response"} for k, v in r22.items()]
    canard, docs = read_canard(root)
    corpus += [{"id": k, "contents": v, "source": "canard-dialogue"} for k, v in docs.items()]
    ctrain = canard_train_conversations(root / "canard_train")
    c24, conv24, _ = ikat_response_set(root, "ikat2024")
    corpus += c24 + keyword_documents(ctrain, "CANARDT_")
    convs += canard + ctrain + conv24
    meta = {"source": "TREC CAsT 2019, 2020, 2022 and iKAT 2024 topics (shared/data/cast); CANARD dev and train "
                      "(shared/data/canard, canard_train; CC BY-SA 4.0)", "rel_threshold": 1,
            "note": disco_train.__doc__.split("\n", 1)[1].strip(),
            "collections": {c: sum(len(x["turns"]) for x in convs if x["collection"] == c) for c in DISCO_TRAIN}}
    return Dataset("disco-train", corpus, _queries(convs), {}, convs, meta)
