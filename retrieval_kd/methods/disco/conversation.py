"""The DiSCo student's input text (torch-free, shared by training, evaluation, export and the server).

The current utterance first, then the earlier turns from the most recent backwards, joined by " [SEP] ", so
truncation at `max_length` (256) tokens drops the oldest context first. `responses` says which system
responses enter: "last" (only the most recent one, default), "all" or "none". Roles "system" and "assistant"
both mean a system response.

    text = conversation_text(history=[{"role": "user", "text": "..."}, ...], utterance="...")
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESPONSES = ("last", "all", "none")


SEP = " [SEP] "


STUDENT_KIND = "splade-student"  # meta.json kind of a trained student model folder


def squash(text: Any) -> str:
    """The text with its whitespace runs made single spaces (how every turn text is compared and read)."""
    return " ".join(str(text).split())


def is_response(item: Mapping[str, str]) -> bool:
    """A history item said by the system (role "system" or "assistant"; no role means a user turn)."""
    return item.get("role", "user") in ("system", "assistant")


def conversation_text(history: Sequence[Mapping[str, str]], utterance: str, responses: str = "last",
                      sep: str = SEP) -> str:
    """Student input: utterance, then earlier user turns and system responses, most recent first."""
    if responses not in RESPONSES:
        raise ValueError(f"responses must be one of {RESPONSES}, got {responses!r}")
    parts = [squash(utterance)]
    seen_response = False
    for item in reversed(list(history)):
        text = squash(item.get("text", ""))
        if not text:
            continue
        if is_response(item):
            if responses == "none" or (responses == "last" and seen_response):
                continue
            seen_response = True
        parts.append(text)
    return sep.join(parts)


def history_text(history: Sequence[Mapping[str, str]], utterance: str, sep: str = " ") -> str:
    """Baseline 'whole history concatenated': every earlier user utterance, then the current one, in order."""
    users = [squash(h.get("text", "")) for h in history if h.get("role", "user") == "user"]
    return sep.join([*users, squash(utterance)])


def read_student_config(folder: str | Path) -> dict[str, Any]:
    """The input-format settings of a student model folder or its ONNX export (responses, sep, max_length, ...)."""
    from retrieval_kd.artifacts import META, read_meta

    if not (Path(folder) / META).is_file():
        return {"responses": "last", "sep": SEP, "max_length": 256}
    meta = read_meta(folder, (STUDENT_KIND, "onnx-encoder"))
    if meta["kind"] == "onnx-encoder":
        return dict(meta.get("conversation") or {"responses": "last", "sep": SEP, "max_length": 256})
    return {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
