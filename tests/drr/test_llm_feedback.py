"""Learning from a small LLM: sampled tool calls (seeds, per-sample cache), retrieval-feedback filtering, the rates,
the train-only guard and the `rkd teacher llm` recipe with `feedback`, against a stub OpenAI-compatible HTTP server
(it answers by the dialogue's last message and the request's seed; it checks bookkeeping, not a model)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from json_stub import JSONStub, serving

from retrieval_kd.config import load_config
from retrieval_kd.errors import ConfigError
from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.methods.drr.config import LLMTeacherConfig, TrainRewriterConfig
from retrieval_kd.methods.drr.feedback import check_train_only, filter_by_retrieval, rates
from retrieval_kd.methods.drr.pipeline import BM25Retriever
from retrieval_kd.teachers.llm import LLMTeacher
from retrieval_kd.teachers.queries import read_jsonl_queries, split_of

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
assert split_of("Q0") == split_of("Q2") == "train" and split_of("Q1") == "dev"

DOCS = {"d-asp": "aspirin side effects include stomach bleeding and ulcers",
        "d-met": "metformin treats type 2 diabetes by lowering blood sugar",
        "d-flu": "influenza vaccine is given every autumn to prevent flu"}
TEXT = {"Q0": "my mother takes aspirin every day, what are the side effects?",
        "Q2": "what is metformin used for?", "Q1": "is the flu shot safe?"}
QRELS = {"Q0": {"d-asp": 1}, "Q2": {"d-met": 1}, "Q1": {"d-flu": 1}}
# (dialogue, seed) -> the tool call's arguments (None: the model answers in prose, no tool call)
ANSWERS = {("Q0", 0): '{"queries": ["aspirin side effects"]}', ("Q0", 1): '{"queries": ["Aspirin  side effects", '
           '"flu vaccine"]}', ("Q0", 2): '{"queries": [', ("Q2", 0): '{"queries": ["influenza autumn"]}',
           ("Q2", 1): None, ("Q2", 2): '{"queries": ["vaccine"]}'}


def call(args) -> dict:
    if args is None:
        return {"choices": [{"message": {"role": "assistant", "content": "Please see a doctor."}}]}
    return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "search", "arguments": args}}]}}]}


class Stub(JSONStub):
    seen: list[dict] = []

    def answer(self, body: dict) -> tuple[int, dict]:
        Stub.seen.append(body)
        qid = next(q for q, t in TEXT.items() if t == body["messages"][-1]["content"])
        return 200, call(ANSWERS.get((qid, body.get("seed")), None))


@pytest.fixture()
def server():
    Stub.seen = []
    with serving(Stub) as url:
        yield url


def dialogues(*ids):
    return {i: [{"role": "user", "text": TEXT[i]}] for i in ids}


def bm25():
    return BM25Retriever(BM25Index.build(list(DOCS.values()), list(DOCS), "en"))


def test_samples_have_distinct_seeds_and_are_cached_per_sample(server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    t = LLMTeacher(server, "m", cache=cache, temperature=0.8, max_retries=0)
    samples, rep = t.run_samples(dialogues("Q0", "Q2"), n=3, seed=0)
    assert [b["seed"] for b in Stub.seen] == [0, 1, 2, 0, 1, 2] and {b["temperature"] for b in Stub.seen} == {0.8}
    assert samples["Q0"] == [["aspirin side effects"], ["Aspirin  side effects", "flu vaccine"], None]
    assert samples["Q2"][1] is None and rep.asked == 6 and rep.parsed == 4
    assert dict(rep.failed) == {"bad_json": 1, "no_tool_call": 1} and set(rep.failed_ids) == {"Q0#2", "Q2#1"}
    assert len(cache.read_text().splitlines()) == 6
    again, rep2 = LLMTeacher(server, "m", cache=cache, temperature=0.8).run_samples(dialogues("Q0", "Q2"), 3)
    assert again == samples and rep2.cached == 6 and len(Stub.seen) == 6  # every sample answered by the cache
    LLMTeacher(server, "m", cache=cache, temperature=0.8).run_samples(dialogues("Q0"), 4)
    assert [b["seed"] for b in Stub.seen[6:]] == [3]  # a 4th sample is the only new request


def test_filter_keeps_queries_whose_retrieval_finds_gold_and_rates():
    samples = {"Q0": [["aspirin side effects"], ["Aspirin  side effects", "flu vaccine"], None],
               "Q2": [["influenza autumn"], None, ["vaccine"]]}
    kept, details = filter_by_retrieval(samples, QRELS, bm25(), k=1)
    assert kept == {"Q0": ["aspirin side effects"]}  # the duplicate (case, spaces) counted once; Q2 keeps none
    assert details["Q0"]["queries"] == {"aspirin side effects": True, "flu vaccine": False}
    assert details["Q2"]["parsed_samples"] == 2
    r = rates(samples, kept, details)
    assert (r["calls_asked"], r["calls_parsed"], r["parse_rate"]) == (6, 4, round(4 / 6, 4))
    assert (r["dialogues"], r["dialogues_kept"], r["dialogue_keep_rate"]) == (2, 1, 0.5)
    assert (r["queries_parsed"], r["queries_kept"], r["query_keep_rate"]) == (4, 1, 0.25)
    second = {"Q0": [["stomach flu vaccine"]]}  # d-flu (2 words) ranks above the gold d-asp (1 word: stomach)
    assert filter_by_retrieval(second, QRELS, bm25(), k=1)[0] == {}
    assert filter_by_retrieval(second, QRELS, bm25(), k=2)[0] == {"Q0": ["stomach flu vaccine"]}


def test_train_only_guard():
    check_train_only(["Q0", "Q2"], QRELS, "toy", report_ids={"toy-report": ["TQ1"]})
    with pytest.raises(ConfigError, match="^feedback: id Q1 is in the dev split of toy"):
        check_train_only(["Q0", "Q1"], QRELS, "toy")
    with pytest.raises(ConfigError, match="^feedback: id TQ1 is a question of report set toy-report"):
        check_train_only(["TQ1"], QRELS, "toy", report_ids={"toy-report": ["TQ1"]})
    with pytest.raises(ConfigError, match="id Q3 has no gold evidence in toy qrels"):
        check_train_only(["Q3"], QRELS, "toy")


def toy_load(name):
    if name == "toy-report":
        return SimpleNamespace(name=name, queries={"TQ1": "what is aspirin"}, conversations=[])
    convs = [{"id": i, "turns": [{"id": "1", "role": "user", "utterance": t}]} for i, t in TEXT.items()]
    return SimpleNamespace(name="toy", conversations=convs, queries=TEXT, qrels=QRELS, doc_texts=list(DOCS.values()),
                           doc_ids=list(DOCS))


def test_recipe_writes_kept_queries_and_report(server, tmp_path, monkeypatch):
    from retrieval_kd import datasets
    from retrieval_kd.methods.drr.recipes import run_llm_teacher

    monkeypatch.setattr(datasets, "load", toy_load)
    base = {"base_url": server, "model": "m", "dataset": "toy", "cache": str(tmp_path / "c.jsonl"),
            "out": str(tmp_path / "q.jsonl"), "temperature": 0.8, "samples": 3, "max_retries": 0,
            "feedback": {"k": 1, "report_sets": ["toy-report"]}}
    rep = run_llm_teacher(LLMTeacherConfig(**base), log=lambda s: None)
    assert {b["messages"][-1]["content"] for b in Stub.seen} == {TEXT["Q0"], TEXT["Q2"]}  # the dev id is never asked
    assert read_jsonl_queries(tmp_path / "q.jsonl") == {"Q0": ["aspirin side effects"]}
    saved = json.loads((tmp_path / "q.report.json").read_text())
    assert saved["parse_rate"] == rep["parse_rate"] == round(4 / 6, 4) and saved["dialogue_keep_rate"] == 0.5
    assert rep["asked"] == 6 and rep["cached"] == 0 and (tmp_path / "q.details.json").exists()
    for ids, msg in ((["Q0", "Q1"], "Q1 is in the dev split"), (["TQ1"], "TQ1 is a question of report set")):
        with pytest.raises(ConfigError, match=msg):
            run_llm_teacher(LLMTeacherConfig(**base, ids=ids), log=lambda s: None)
    with pytest.raises(ConfigError, match="need temperature > 0"):
        run_llm_teacher(LLMTeacherConfig(**{**base, "temperature": 0.0}), log=lambda s: None)


def test_feedback_configs_validate():
    from retrieval_kd.bench.medicineqa import EvalConfig

    cfg = load_config(CONFIGS / "drr_llm_feedback.yaml", LLMTeacherConfig)
    assert cfg.samples > 1 and cfg.temperature > 0 and cfg.feedback is not None and cfg.dataset == "liveqa-med-train"
    student = load_config(CONFIGS / "drr_liveqa_llm.yaml", TrainRewriterConfig)
    assert student.teachers[0].jsonl == cfg.out and student.teachers[0].split == "train"
    ev = load_config(CONFIGS / "drr_eval_llm.yaml", EvalConfig)
    assert ev.en.llm_extractive == student.out and not ev.en.dense and ev.en.dataset == "medquad-liveqa"
