"""LLM tool-call teacher: parsing, bounded retries and failure counts over HTTP, the JSONL cache, replay of a real run.

The retry/failure tests talk to a scripted stdlib HTTP server on 127.0.0.1 (it checks the client's transport
and bookkeeping, not a model); the recorded answers in data/ come from a real llama.cpp server run
(SmolLM2-135M-Instruct, see test_llm_teacher_real.py) and are replayed from the cache without any HTTP call.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from json_stub import JSONStub, serving

from retrieval_kd.teachers.llm import LLMError, LLMTeacher, parse_response

DATA = Path(__file__).parent / "data"


def call(args) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "search", "arguments": args}}]}}]}


def test_parse_response_kinds():
    assert parse_response(call('{"queries": ["aspirin side effects", " "]}')).queries == ["aspirin side effects"]
    assert parse_response(call({"query": "aspirin"})).queries == ["aspirin"]
    assert parse_response(call('{"queries": [')).error == "bad_json"
    assert parse_response(call('{"q": 1}')).error == "bad_arguments"
    wrong = call("{}")
    wrong["choices"][0]["message"]["tool_calls"][0]["function"]["name"] = "answer"
    assert parse_response(wrong).error == "wrong_tool"
    text = {"choices": [{"message": {"content": 'Sure: {"name": "search", "arguments": {"queries": ["x y"]}}'}}]}
    ans = parse_response(text)
    assert ans.queries == ["x y"] and ans.source == "content"
    assert parse_response({"choices": [{"message": {"content": "I think you should rest."}}]}).error == "no_tool_call"
    assert parse_response({"oops": 1}).error == "bad_response"


class Scripted(JSONStub):
    script: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def answer(self, body: dict) -> tuple[int, dict]:
        Scripted.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        return Scripted.script.pop(0) if Scripted.script else (500, {"error": "script exhausted"})


@pytest.fixture()
def server():
    Scripted.script, Scripted.seen = [], []
    with serving(Scripted) as url:
        yield url


DIALOGUES = {"a": [{"role": "user", "text": "我在吃阿司匹林"}, {"role": "user", "text": "它有副作用吗"}],
             "b": [{"role": "user", "text": "what is metformin for"}],
             "c": [{"role": "user", "text": "hello"}]}


def test_retries_failures_and_cache(server, tmp_path):
    Scripted.script = [(503, {"error": "busy"}), (200, call('{"queries": ["阿司匹林 不良反应"]}')),
                       (200, call('{"queries": [')), (200, {"choices": [{"message": {"content": "no idea"}}]})]
    cache = tmp_path / "cache.jsonl"
    t = LLMTeacher(server, "m", api_key="k", cache=cache, max_retries=2, backoff=0.01)
    queries, rep = t.run(DIALOGUES)
    assert queries == {"a": ["阿司匹林 不良反应"]}
    assert rep.asked == 3 and rep.parsed == 1 and rep.retries == 1
    assert dict(rep.failed) == {"bad_json": 1, "no_tool_call": 1} and set(rep.failed_ids) == {"b", "c"}
    first = Scripted.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k"
    assert first["body"]["tools"][0]["function"]["name"] == "search"
    assert first["body"]["messages"][0]["role"] == "system" and first["body"]["messages"][-1]["content"] == "它有副作用吗"
    assert len(cache.read_text().splitlines()) == 3  # every answer cached, failures included
    n_http = len(Scripted.seen)
    again, rep2 = LLMTeacher(server, "m", cache=cache).run(DIALOGUES)
    assert again == queries and rep2.cached == 3 and len(Scripted.seen) == n_http  # second run is free
    _, rep3 = LLMTeacher(server, "other-model", cache=cache, max_retries=1, backoff=0.01).run({"a": DIALOGUES["a"]})
    assert rep3.cached == 0 and rep3.failed["http"] == 1 and "failed after 1 retries" in rep3.failed_ids["a"]


def test_client_errors_are_not_retried(server):
    Scripted.script = [(401, {"error": "bad key"})]
    with pytest.raises(LLMError, match="HTTP 401"):
        LLMTeacher(server, "m", max_retries=3, backoff=0.01).ask(DIALOGUES["b"])
    assert len(Scripted.seen) == 1


def test_replay_recorded_real_run(tmp_path):
    """Answers recorded from a real llama.cpp server are replayed from the cache: parse counts, no HTTP."""
    rec = DATA / "llm_teacher_smollm2.jsonl"
    meta = json.loads((DATA / "llm_teacher_smollm2.meta.json").read_text())
    cache = tmp_path / "cache.jsonl"
    shutil.copy(rec, cache)
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    dialogues = {}
    for i, r in enumerate(records):
        msgs = r["request"]["messages"][1:]
        dialogues[str(i)] = [{"role": m["role"], "text": m["content"]} for m in msgs]
    t = LLMTeacher("http://127.0.0.1:9/v1", meta["model"], cache=cache, max_retries=0,
                   max_tokens=records[0]["request"]["max_tokens"], temperature=records[0]["request"]["temperature"],
                   system_prompt=records[0]["request"]["messages"][0]["content"])
    queries, rep = t.run(dialogues)
    assert rep.cached == len(records) and rep.failed.get("http", 0) == 0  # nothing was sent to port 9
    assert rep.parsed == meta["parsed"] and sum(rep.failed.values()) == meta["failed"]
    assert all(isinstance(q, str) and q for qs in queries.values() for q in qs)
