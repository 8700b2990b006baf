"""Query mixtures of DiSCo students (torch-free; shared by the library, the bench and the server).

A mixture's query vector is a weighted sum in the document encoder's vocabulary, so the scores add:

    v = sum_i w_i * student_i(conversation) + u * SPLADE(utterance)

The members are trained students (each reads the conversation in its own input format); the last term is the
frozen document encoder's SPLADE vector of the current utterance alone (its exact terms, which a larger student
tends to lose). No training: the weights are chosen after training, on the choice set, by
`rkd eval cast-mix` (`bench/cast_mix.py`), which writes the mixture folder:

    meta.json  {"kind": "disco-mixture", "format_version": 1,
                "members": [{"run": "/abs/run-a", "weight": 1.0}, {"run": "/abs/run-b", "weight": 0.5}],
                "utterance": 0.375, "document_encoder": null, "chosen_on": ["CAsT 2021"], "dataset": "cast-eval",
                "grid": [...the choice-set figure of every candidate...]}

`retrieval_kd.load(folder)` opens it as a `MixtureEncoder` (`mixture.py`, torch); `rkd export disco-bundle folder`
writes every member and the utterance encoder into one bundle, and the server mixes with `combine` as here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MIX_KIND = "disco-mixture"
MAX_WEIGHT = 100.0


def check_weight(value: Any, where: str) -> float:
    """`value` as a float in [0, MAX_WEIGHT]; ConfigError naming `where` otherwise."""
    from retrieval_kd.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.0 <= value <= MAX_WEIGHT:
        raise ConfigError(f"{where}: a mixing weight must be a number in [0, {MAX_WEIGHT:g}], got {value!r}")
    return float(value)


def combine(members: Sequence[Any], weights: Sequence[float], utterance: Any = None, utterance_weight: float = 0.0):
    """sum_i weights[i] * members[i] + utterance_weight * utterance (numpy arrays or scipy sparse, one shape)."""
    if not members or len(members) != len(weights):
        raise ValueError(f"{len(members)} member vectors for {len(weights)} weights")
    shape = members[0].shape
    if any(m.shape != shape for m in members) or (utterance is not None and utterance.shape != shape):
        raise ValueError("member and utterance vectors differ in shape")
    out = members[0] * weights[0]
    for m, w in zip(members[1:], weights[1:], strict=True):
        if w:
            out = out + m * w
    if utterance is not None and utterance_weight:
        out = out + utterance * utterance_weight
    return out


def read_mixture(folder: str | Path) -> dict[str, Any]:
    """A mixture folder's meta.json, checked: members [{run, weight}] (first weight > 0), utterance weight."""
    from retrieval_kd.artifacts import read_meta
    from retrieval_kd.errors import ConfigError

    folder = Path(folder)
    meta = read_meta(folder, MIX_KIND)
    where = folder / "meta.json"
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{where}: members must be a non-empty list of {{run, weight}}")
    checked = []
    for i, m in enumerate(members):
        if not isinstance(m, Mapping) or not isinstance(m.get("run"), str) or not m["run"]:
            raise ConfigError(f"{where}: members[{i}]: needs 'run' (a DiSCo run folder) and 'weight'")
        checked.append({"run": m["run"], "weight": check_weight(m.get("weight"), f"{where}: members[{i}].weight")})
    if checked[0]["weight"] <= 0:
        raise ConfigError(f"{where}: members[0].weight must be > 0 (the first member anchors the mixture)")
    doc = meta.get("document_encoder")
    if doc is not None and not isinstance(doc, str):
        raise ConfigError(f"{where}: document_encoder must be a folder path or null")
    return {**meta, "members": checked, "utterance": check_weight(meta.get("utterance", 0.0), f"{where}: utterance"),
            "document_encoder": doc}
