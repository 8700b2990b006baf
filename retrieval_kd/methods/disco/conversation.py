"""The DiSCo student's input text (torch-free, shared by training, evaluation, export and the server)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESPONSES = ("last", "all", "none")


SEP = " [SEP] "


STUDENT_FILE = "student.json"


def conversation_text(history: Sequence[Mapping[str, str]], utterance: str, responses: str = "last",
                      sep: str = SEP) -> str:
    """Student input: utterance, then earlier user turns and system responses, most recent first."""
    if responses not in RESPONSES:
        raise ValueError(f"responses must be one of {RESPONSES}, got {responses!r}")
    parts = [" ".join(str(utterance).split())]
    seen_response = False
    for item in reversed(list(history)):
        role, text = item.get("role", "user"), " ".join(str(item.get("text", "")).split())
        if not text:
            continue
        if role in ("system", "assistant"):
            if responses == "none" or (responses == "last" and seen_response):
                continue
            seen_response = True
        parts.append(text)
    return sep.join(parts)


def history_text(history: Sequence[Mapping[str, str]], utterance: str, sep: str = " ") -> str:
    """Baseline 'whole history concatenated': every earlier user utterance, then the current one, in order."""
    users = [" ".join(str(h.get("text", "")).split()) for h in history if h.get("role", "user") == "user"]
    return sep.join([*users, " ".join(str(utterance).split())])


def read_student_config(folder: str | Path) -> dict[str, Any]:
    """The input-format settings saved beside a trained student (responses, sep, max_length)."""
    path = Path(folder) / STUDENT_FILE
    if not path.exists():
        return {"responses": "last", "sep": SEP, "max_length": 256}
    return json.loads(path.read_text(encoding="utf-8"))
