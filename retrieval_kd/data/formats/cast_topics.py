"""CAsT / iKAT topic files of any year, by path: the schema is told from the file, each turn normalised to
``{"id", "utterance", "history": [{"role", "text"}], "manual"?, "automatic"?, "response"?, "provenance"?,
"canonical"?}``.

Schemas (each a JSON list of topics):
  linear  CAsT 2019–2021: topic {number, turn: [{number, raw_utterance, manual_rewritten_utterance?,
          automatic_rewritten_utterance?, canonical_result_id? + passage_id? + passage?}]}
  tree    CAsT 2022: turns with participant User/System and parent (history = the turn's ancestors)
  ikat    iKAT 2023 and 2024: topic {number, title, ptkb, turns: [{turn_id, utterance, resolved_utterance,
          response, response_provenance}]}
  ikat25  iKAT 2025: topic {number, title, ptkb, responses: [{turn_id, user_utterance, resolved_utterance,
          response, citations}]}
CANARD train (`canard_train_conversations`): three aligned TSVs `<dialog>_q#<n>\t<text>` (question, rewrite,
answer keywords), the history rebuilt from the dialogue's earlier turns.

Turn ids are `<topic number>_<turn>` as each track writes them, so they match its qrels; years reuse numbers
(iKAT 2023 and 2025 both have `1-1_1`, iKAT 2024 numbers topics from 0 like CAsT 2019's training topics), so
prefix them before mixing years in one dataset. An empty human (or automatic) rewrite is left out of the turn
with a DataWarning naming file and turn: the turn then has no human-rewrite query (`warn_empty`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data.files import clean, load_json, warn
from retrieval_kd.errors import DataFormatError

Turn = dict[str, Any]
Conversation = dict[str, Any]
SCHEMAS = ("linear", "tree", "ikat", "ikat25")
REWRITE_KEYS = {"manual": "manual_rewritten_utterance", "automatic": "automatic_rewritten_utterance"}
ROWS = {"manual": "human-rewrite", "automatic": "automatic-rewrite"}
RESPONSE_PREFIX = "CAST22-RESPONSE_"


def field(path: Path, rec: Any, key: str, where: str) -> Any:
    """rec[key], or DataFormatError naming the file, the record and the field."""
    if not isinstance(rec, dict) or key not in rec:
        raise DataFormatError(path, f"{where}: missing '{key}'", field=key)
    return rec[key]


def warn_empty(path: Path, tid: str, kind: str, line: int | None = None) -> None:
    """The DataWarning for an empty `kind` (manual | automatic) rewrite of turn `tid`."""
    warn(path, f"turn {tid}: empty {kind} rewrite; the turn has no query in the {ROWS[kind]} row and is left "
               f"out of its evaluation", line=line)


def set_rewrite(turn: Turn, kind: str, text: Any, path: Path, line: int | None = None) -> None:
    """turn[kind] = the cleaned rewrite; an empty one is left out with a DataWarning naming file and turn."""
    text = clean(text or "")
    if text:
        turn[kind] = text
    else:
        warn_empty(path, turn["id"], kind, line)


def schema(path: Path, topics: Any) -> str:
    """Which of SCHEMAS a parsed topic file follows."""
    if not isinstance(topics, list) or not topics:
        raise DataFormatError(path, "expected a non-empty JSON array of topics")
    first = topics[0]
    if not isinstance(first, dict):
        raise DataFormatError(path, f"topic 0 is a {type(first).__name__}, not an object")
    if "responses" in first:
        return "ikat25"
    if "turns" in first:
        return "ikat"
    turns = field(path, first, "turn", f"topic {first.get('number', 0)} (no 'turn', 'turns' or 'responses')")
    return "tree" if any(isinstance(t, dict) and "participant" in t for t in turns) else "linear"


def rewrites_of(path: Path, topics: list, kind: str) -> dict[str, str]:
    """{turn id: rewrite} of the turns that carry the `kind` key (manual | automatic); empty ones warn."""
    key, out = REWRITE_KEYS[kind], {}
    for c in topics:
        for t in c.get("turn", []):
            if key in t:
                probe: Turn = {"id": f"{c['number']}_{t['number']}"}
                set_rewrite(probe, kind, t[key], path)
                if kind in probe:
                    out[probe["id"]] = probe[kind]
    return out


def linear_conversations(collection: str, topics: list, path: Path, rewrites: dict[str, dict[str, str]],
                         responses: dict[str, str] | None = None) -> list[Conversation]:
    """Conversations whose turns follow one another (2019–2021): history = earlier utterances (+ responses)."""
    convs = []
    for topic in topics:
        num = field(path, topic, "number", "topic")
        turns: list[Turn] = []
        history: list[dict[str, str]] = []
        for t in field(path, topic, "turn", f"topic {num}"):
            tid = f"{num}_{field(path, t, 'number', f'topic {num} turn')}"
            utt = clean(field(path, t, "raw_utterance", f"turn {tid}"))
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


def canonical_passages(path: Path, topics: list) -> tuple[dict[str, str], dict[str, str]]:
    """CAsT 2021: (passages {id: text}, turn id -> passage id); id `<canonical_result_id>-<passage_id>`, a
    second text under an id already used gets `#b`."""
    passages: dict[str, str] = {}
    canon: dict[str, str] = {}
    for c in topics:
        for t in c["turn"]:
            tid = f"{c['number']}_{t['number']}"
            pid = f"{field(path, t, 'canonical_result_id', tid)}-{field(path, t, 'passage_id', tid)}"
            text = clean(field(path, t, "passage", tid))
            if passages.get(pid, text) != text:  # one id, two texts: keep both apart
                pid += "#b"
            passages[pid] = text
            canon[tid] = pid
    return passages, canon


def _repair_provenance(ids: list[str]) -> list[str]:
    out: list[str] = []
    for p in ids:
        if p.startswith("-") and out:  # "MARCO_16_1884092099", "-2" -> "MARCO_16_1884092099-2"
            out[-1] += p
        else:
            out.append(p)
    return out


def _ancestors(path: Path, nodes: dict[str, dict], tid: str, parent: Any) -> list[dict[str, str]]:
    chain, cur = [], parent
    while cur is not None:
        node = nodes.get(str(cur))
        if node is None:
            raise DataFormatError(path, f"turn {tid}: parent {cur} not found", field="parent")
        chain.append(node)
        cur = node.get("parent")
    return [{"role": "user", "text": clean(x["utterance"])} if x.get("participant") == "User"
            else {"role": "system", "text": clean(x.get("response", ""))} for x in reversed(chain)]


def tree_conversations(collection: str, topics: list, path: Path,
                       auto: dict[str, str] | None = None) -> tuple[list[Conversation], dict[str, str]]:
    """CAsT 2022 trees: (conversations of the User turns, one response document per System turn); a user turn
    keeps its first, lowest-numbered System reply as `response` and `provenance`."""
    convs, docs = [], {}
    for c in topics:
        num = field(path, c, "number", "topic")
        nodes = {str(field(path, t, "number", f"topic {num} turn")): t for t in c["turn"]}
        answer: dict[str, str] = {}  # user turn -> its first System reply (a branch may add a second one)
        for n, t in nodes.items():
            if t.get("participant") == "System":
                answer.setdefault(str(field(path, t, "parent", f"system turn {num}_{n}")), n)
                docs[f"{RESPONSE_PREFIX}{num}_{n}"] = clean(t.get("response", ""))
        turns = []
        for n, t in nodes.items():
            if t.get("participant") != "User":
                continue
            tid = f"{num}_{n}"
            turn: Turn = {"id": tid, "utterance": clean(field(path, t, "utterance", tid)),
                          "history": _ancestors(path, nodes, tid, t.get("parent"))}
            if "manual_rewritten_utterance" in t:
                set_rewrite(turn, "manual", t["manual_rewritten_utterance"], path)
            if auto and tid in auto:
                turn["automatic"] = auto[tid]
            elif "automatic_rewritten_utterance" in t:
                set_rewrite(turn, "automatic", t["automatic_rewritten_utterance"], path)
            if n in answer:
                sys = nodes[answer[n]]
                turn["response"] = clean(sys.get("response", ""))
                turn["provenance"] = _repair_provenance([str(p) for p in sys.get("provenance", [])])
            turns.append(turn)
        convs.append({"id": str(num), "collection": collection, "turns": turns})
    return convs, docs


def ikat_conversations(collection: str, topics: list, path: Path) -> list[Conversation]:
    """iKAT 2023–2025: resolved utterance = human rewrite, response, provenance (2025: citations); PTKB
    statements stay on the conversation (`ptkb`)."""
    convs = []
    new = schema(path, topics) == "ikat25"
    turns_key, utt_key, prov_key = ("responses", "user_utterance", "citations") if new else \
        ("turns", "utterance", "response_provenance")
    for c in topics:
        num = field(path, c, "number", "topic")
        turns, history = [], []
        for t in field(path, c, turns_key, f"topic {num}"):
            tid = f"{num}_{field(path, t, 'turn_id', f'topic {num} turn')}"
            utt, resp = clean(field(path, t, utt_key, tid)), clean(t.get("response", "") or "")
            turn: Turn = {"id": tid, "utterance": utt, "history": list(history)}
            set_rewrite(turn, "manual", field(path, t, "resolved_utterance", tid), path)
            turn["response"] = resp
            turn["provenance"] = [str(x) for x in t.get(prov_key, []) or []]
            turns.append(turn)
            history += [{"role": "user", "text": utt}, {"role": "system", "text": resp}]
        convs.append({"id": str(num), "collection": collection, "title": clean(c.get("title", "")),
                      "ptkb": c.get("ptkb", {}), "turns": turns})
    return convs


def read_topic_file(path: str | Path, collection: str | None = None) -> list[Conversation]:
    """Conversations of one CAsT / iKAT topic file of any year (schema from the file; rewrites, responses and
    canonical passages from the same file); an empty file or a repeated turn id is an error."""
    path = Path(path)
    topics = load_json(path)
    kind = schema(path, topics)
    collection = collection or path.stem
    if kind == "tree":
        convs = tree_conversations(collection, topics, path)[0]
    elif kind in ("ikat", "ikat25"):
        convs = ikat_conversations(collection, topics, path)
    else:
        rw = {k: rewrites_of(path, topics, k) for k in REWRITE_KEYS}
        responses = None
        if any("passage" in t for c in topics for t in c.get("turn", [])):
            passages, canon = canonical_passages(path, topics)
            responses = {tid: passages[pid] for tid, pid in canon.items()}
        if responses is None:  # 2020: the canonical result named by the manual rewrite
            canon = {f"{c['number']}_{t['number']}": t["manual_canonical_result_id"]
                     for c in topics for t in c.get("turn", []) if t.get("manual_canonical_result_id")}
        convs = linear_conversations(collection, topics, path, {k: v for k, v in rw.items() if v}, responses)
        for c in convs:
            for t in c["turns"]:
                if t["id"] in canon:
                    t["canonical"] = canon[t["id"]]
    check_turn_ids(path, convs)
    return convs


def check_turn_ids(path: Path, convs: list[Conversation]) -> None:
    """Turn ids must be unique and some turn must exist (DataFormatError naming the file)."""
    seen: set[str] = set()
    for c in convs:
        for t in c["turns"]:
            if t["id"] in seen:
                raise DataFormatError(path, f"turn id {t['id']} appears twice", field="turn_id")
            seen.add(t["id"])
    if not seen:
        raise DataFormatError(path, "no turns (empty topics)")


def _canard_tsv(path: Path) -> list[tuple[str, int, str]]:
    """(dialog id, 0-based question index, text) of each `<dialog>_q#<n>\\t<text>` line of a CANARD train TSV."""
    from retrieval_kd.data.files import numbered_lines

    out = []
    for i, line in numbered_lines(path):
        key, sep, text = line.partition("\t")
        did, mark, num = key.rpartition("_q#")
        if not sep or not mark or not num.isdigit():
            raise DataFormatError(path, "expected '<QuAC dialog id>_q#<n>\\t<text>'", line=i)
        out.append((did, int(num), clean(text)))
    if not out:
        raise DataFormatError(path, "no rows (empty file)")
    return out


def canard_train_conversations(folder: Path, collection: str = "canard_train") -> list[Conversation]:
    """CANARD train without its History field (train.question/rewrite/answer.tokens.tsv, rows aligned by id).

    History is rebuilt from the dialogue's earlier questions (user turns), each followed by its answer keywords
    (train.answer.tokens.tsv, '|'-separated words derived from the QuAC answer) as a system turn; the article and
    section titles are not in these files. `manual` = the human rewrite, `response` = the turn's own answer keywords. Turn id `canard_<dialog>_<n>` with n
    1-based, as CANARD dev's Question_no (the two splits share no dialogue).
    """
    files = [folder / f"train.{k}.tsv" for k in ("question", "rewrite", "answer.tokens")]
    questions, rewrites, answers = (_canard_tsv(p) for p in files)
    for path, rows in zip(files[1:], (rewrites, answers), strict=True):
        if len(rows) != len(questions):
            raise DataFormatError(path, f"{len(rows)} rows; {files[0].name} has {len(questions)}")
        for i, (a, b) in enumerate(zip(questions, rows, strict=True), 1):
            if a[:2] != b[:2]:
                raise DataFormatError(path, f"id {b[0]}_q#{b[1]} where {files[0].name} has {a[0]}_q#{a[1]}", line=i)
    by_dialog: dict[str, list[tuple[int, str, str, str]]] = {}
    for (did, n, q), (_, _, r), (_, _, a) in zip(questions, rewrites, answers, strict=True):
        by_dialog.setdefault(did, []).append((n, q, r, " ".join(w.strip() for w in a.split("|") if w.strip())))
    convs = []
    for did, rows in by_dialog.items():
        turns, history = [], []
        for n, q, r, a in sorted(rows):
            turn: Turn = {"id": f"canard_{did}_{n + 1}", "utterance": q, "history": list(history), "response": a}
            set_rewrite(turn, "manual", r, files[1])
            turns.append(turn)
            history += [{"role": "user", "text": q}] + ([{"role": "system", "text": a}] if a else [])
        convs.append({"id": did, "collection": collection, "turns": turns})
    return convs
