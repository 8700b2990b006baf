"""The torch side of a DiSCo query mixture (`mixing.py`): its members' SPLADE encoders and the utterance encoder.

    enc = retrieval_kd.load("runs/cast-mix/mixture")      # meta.json kind "disco-mixture"
    vec = enc.encode(history=[{"role": "user", "text": "..."}], utterance="...")   # float32 [vocab]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.methods.disco.mixing import combine, read_mixture


def student_folder(run: str | Path) -> Path:
    """The student model folder of a DiSCo run folder (meta.json kind disco-student) or the folder itself."""
    from retrieval_kd.artifacts import read_meta
    from retrieval_kd.methods.disco.conversation import STUDENT_KIND

    run = Path(run)
    meta = read_meta(run, ("disco-student", STUDENT_KIND), what="DiSCo run")
    return run / meta.get("student", "student") if meta["kind"] == "disco-student" else run


class MixtureEncoder:
    """Members' SPLADE encoders (each reads the conversation in its own input format) + the utterance encoder."""

    def __init__(self, runs: Sequence[str | Path], weights: Sequence[float], utterance_weight: float = 0.0,
                 document_encoder: str | Path | None = None, device: str | None = None):
        from retrieval_kd.methods.disco.conversation import read_student_config
        from retrieval_kd.teachers.splade import SpladeEncoder

        self.folders = [student_folder(r) for r in runs]
        self.weights = [float(w) for w in weights]
        self.utterance_weight = float(utterance_weight)
        self.configs = [read_student_config(f) for f in self.folders]
        self.members = [SpladeEncoder(f, device=device, max_length=int(c.get("max_length", 256)))
                        for f, c in zip(self.folders, self.configs, strict=True)]
        self.utterance = SpladeEncoder(document_encoder, device=device) if self.utterance_weight else None

    def encode_turns(self, turns: Sequence[tuple[Sequence[Mapping[str, str]], str]]):
        """CSR [n, vocab]: the mixture's vector of each (history, utterance)."""
        from retrieval_kd.methods.disco.conversation import conversation_text

        mats = [enc.encode([conversation_text(h, u, cfg.get("responses", "last")) for h, u in turns])
                for enc, cfg in zip(self.members, self.configs, strict=True)]
        utt = self.utterance.encode([u for _, u in turns]) if self.utterance is not None else None
        return combine(mats, self.weights, utt, self.utterance_weight).tocsr()

    def encode(self, history: Sequence[Mapping[str, str]], utterance: str) -> np.ndarray:
        """The mixture's float32 vector [vocab] of one turn."""
        return np.asarray(self.encode_turns([(history, utterance)]).toarray()[0], dtype=np.float32)


def load_mixture(path: str | Path, **kw: Any) -> MixtureEncoder:
    """A mixture folder (rkd eval cast-mix) as a MixtureEncoder."""
    meta = read_mixture(path)
    return MixtureEncoder([m["run"] for m in meta["members"]], [m["weight"] for m in meta["members"]],
                          meta["utterance"], meta["document_encoder"], **kw)
