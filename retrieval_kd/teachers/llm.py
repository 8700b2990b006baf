"""LLM tool-call teacher: any OpenAI-compatible chat endpoint distils a dialogue into `search` queries."""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval_kd.errors import RKDError
from retrieval_kd.utils import sha256_text

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the medical database. Give short search-engine queries: the medicine, disease or "
        "condition by its full name (resolve pronouns from earlier turns) plus the aspect asked about.",
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            "required": ["queries"],
        },
    },
}
SYSTEM_PROMPT = ("You help a medication-consultation assistant. Read the dialogue and call the `search` tool once "
                 "with one to three short keyword queries that would find the evidence needed to answer the user's "
                 "last question. Do not answer the question yourself.")
_TEXT_CALL = re.compile(r"\{.*\}", re.S)


class LLMError(RKDError):
    """The endpoint could not be reached or kept failing after the allowed retries."""


@dataclass
class Answer:
    """One teacher answer: the queries, or why none could be parsed."""

    queries: list[str]
    error: str | None = None  # None, or no_tool_call / bad_json / wrong_tool / bad_arguments / http
    source: str = "tool_calls"  # tool_calls | content (a call written as text) | none
    cached: bool = False


@dataclass
class Report:
    """Counts of a teacher run: every failure is counted and its ids listed, never dropped silently."""

    asked: int = 0
    cached: int = 0
    parsed: int = 0
    parsed_from_content: int = 0
    failed: Counter = field(default_factory=Counter)
    failed_ids: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "cached": self.cached, "parsed": self.parsed,
                "parsed_from_content": self.parsed_from_content, "failed": dict(self.failed),
                "failed_ids": self.failed_ids, "retries": self.retries, "seconds": round(self.seconds, 2)}


def parse_response(resp: Mapping[str, Any]) -> Answer:
    """Queries from an OpenAI chat-completions response: tool_calls first, else a JSON call written as text."""
    try:
        msg = resp["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return Answer([], "bad_response", "none")
    calls = msg.get("tool_calls") or []
    errors = []
    for call in calls:
        fn = call.get("function") or {}
        if fn.get("name") != "search":
            errors.append("wrong_tool")
            continue
        args = fn.get("arguments")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            errors.append("bad_json")
            continue
        qs = _queries_of(args)
        if qs:
            return Answer(qs, None, "tool_calls")
        errors.append("bad_arguments")
    content = msg.get("content") or ""
    m = _TEXT_CALL.search(content)
    if m:
        try:
            obj = json.loads(m.group())
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            qs = _queries_of(obj.get("arguments", obj.get("parameters", obj)))
            if qs and obj.get("name", "search") == "search":
                return Answer(qs, None, "content")
    return Answer([], errors[0] if errors else "no_tool_call", "none")


def _queries_of(args: Any) -> list[str]:
    if not isinstance(args, dict):
        return []
    qs = args.get("queries", args.get("query"))
    if isinstance(qs, str):
        qs = [qs]
    if not isinstance(qs, list):
        return []
    return [q.strip() for q in qs if isinstance(q, str) and q.strip()]


class LLMTeacher:
    """Chat-completions client with a `search` tool, bounded retries and a JSONL cache of every answer."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, cache: str | Path | None = None,
                 max_retries: int = 3, timeout: float = 120.0, temperature: float = 0.0, max_tokens: int = 256,
                 tool_choice: str = "search", system_prompt: str = SYSTEM_PROMPT, backoff: float = 1.0):
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.max_retries, self.timeout, self.backoff = max_retries, timeout, backoff
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        self.tool_choice = ({"type": "function", "function": {"name": "search"}} if tool_choice == "search"
                            else tool_choice)
        self.system_prompt = system_prompt
        self.cache_path = Path(cache) if cache else None
        self._cache = _read_cache(self.cache_path) if self.cache_path else {}
        self._client = None

    def messages(self, dialogue: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """System prompt + the dialogue as user/assistant messages."""
        msgs = [{"role": "system", "content": self.system_prompt}]
        for t in dialogue:
            role = "assistant" if t.get("role") == "assistant" else "user"
            msgs.append({"role": role, "content": str(t.get("text") or t.get("utterance") or "")})
        return msgs

    def request(self, messages: list[dict[str, str]], seed: int | None = None) -> dict[str, Any]:
        """The request body sent to /chat/completions (`seed`: one sample of several at temperature > 0)."""
        body = {"model": self.model, "messages": messages, "tools": [SEARCH_TOOL], "tool_choice": self.tool_choice,
                **self.params}
        if seed is not None:
            body["seed"] = int(seed)
        return body

    def cache_key(self, body: Mapping[str, Any]) -> str:
        return sha256_text(self.model, json.dumps(body, sort_keys=True, ensure_ascii=False))

    def complete(self, body: dict[str, Any], report: Report | None = None) -> dict[str, Any]:
        """POST with bounded retries on transport errors, 429 and 5xx."""
        import httpx

        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout)
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt and report is not None:
                report.retries += 1
            try:
                r = self._client.post("/chat/completions", json=body)
                if r.status_code < 400:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code not in (408, 429) and r.status_code < 500:
                    break
            except (httpx.HTTPError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(self.backoff * 2**attempt)
        raise LLMError(f"{self.base_url}/chat/completions failed after {self.max_retries} retries: {last}")

    def ask(self, dialogue: Sequence[Mapping[str, Any]], report: Report | None = None,
            seed: int | None = None) -> Answer:
        """Queries for one dialogue (from the cache when this model has seen these messages and this seed)."""
        body = self.request(self.messages(dialogue), seed)
        key = self.cache_key(body)
        if key in self._cache:
            ans = parse_response(self._cache[key]["response"])
            ans.cached = True
            return ans
        resp = self.complete(body, report)
        self._cache[key] = {"key": key, "model": self.model, "request": body, "response": resp}
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(self._cache[key], ensure_ascii=False) + "\n")
        return parse_response(resp)

    def run(self, dialogues: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[dict[str, list[str]], Report]:
        """Ask for every dialogue; returns parsed queries by id and a report counting failures by kind."""
        rep, out, t0 = Report(), {}, time.perf_counter()
        for did, dialogue in dialogues.items():
            ans = self._counted(did, dialogue, rep, None)
            if ans is not None:
                out[did] = ans
        rep.seconds = time.perf_counter() - t0
        return out, rep

    def run_samples(self, dialogues: Mapping[str, Sequence[Mapping[str, Any]]], n: int,
                    seed: int = 0) -> tuple[dict[str, list[list[str] | None]], Report]:
        """`n` samples per dialogue, sample j with seed `seed + j` (each cached by its own request body); returns
        per id the n answers in sample order (None where that tool call failed) and the report over all n × ids."""
        rep, out, t0 = Report(), {}, time.perf_counter()
        for did, dialogue in dialogues.items():
            out[did] = [self._counted(f"{did}#{j}", dialogue, rep, seed + j) for j in range(n)]
        rep.seconds = time.perf_counter() - t0
        return out, rep

    def _counted(self, key: str, dialogue: Sequence[Mapping[str, Any]], rep: Report,
                 seed: int | None) -> list[str] | None:
        """One ask, counted in `rep` (failures by kind, ids listed); the queries, or None when it failed."""
        try:
            ans = self.ask(dialogue, rep, seed)
        except LLMError as e:
            ans = Answer([], "http", "none")
            rep.failed_ids[key] = f"http: {e}"
        rep.asked += 1
        rep.cached += ans.cached
        if ans.error:
            rep.failed[ans.error] += 1
            rep.failed_ids.setdefault(key, ans.error)
            return None
        rep.parsed += 1
        rep.parsed_from_content += ans.source == "content"
        return ans.queries


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """key -> cached record; a torn last line (interrupted run) is skipped, other bad lines are errors."""
    from retrieval_kd.errors import DataFormatError

    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[rec["key"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            if i == len(lines):
                continue
            raise DataFormatError(path, "not a cache record {key, model, request, response}", line=i) from None
    return out
