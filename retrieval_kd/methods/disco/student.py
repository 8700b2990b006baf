"""DiSCo student: a SPLADE query encoder that reads the whole conversation (its input text: `conversation.py`).

With `segments` (default), token type ids mark the current utterance (0, up to the first [SEP]) and the
context (1); they are derived from the token ids (`teachers.splade.segment_ids`), also inside the ONNX graph.

`SpladeStudent` (torch) computes the SPLADE vector restricted to a vocabulary subset during training: the
scores against a set of documents only depend on the terms those documents contain, so the MLM decoder is
evaluated on those rows only (exact, several times cheaper on CPU).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import write_meta
from retrieval_kd.methods.disco.conversation import SEP, STUDENT_KIND, conversation_text


class SpladeStudent:
    """Trainable SPLADE query encoder over a local masked-LM folder (default SPLADE-tiny-msmarco)."""

    def __init__(self, model: str | Path | None = None, device: str | None = None, max_length: int = 256,
                 responses: str = "last", segments: bool = True, pool: str = "all"):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from retrieval_kd.teachers.splade import resolve_splade_path

        self.path = resolve_splade_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForMaskedLM.from_pretrained(self.path).to(self.device)
        self.max_length = int(max_length)
        self.responses = responses
        self.segments = segments
        self.pool = pool  # all | utterance: which tokens SPLADE max-pools over (teachers.splade.pool_mask)
        self.decoder = self.model.get_output_embeddings()
        self._subset = None
        full = self.decoder.forward

        def forward(x):
            if self._subset is None:
                return full(x)
            bias = self.decoder.bias[self._subset] if self.decoder.bias is not None else None
            return torch.nn.functional.linear(x, self.decoder.weight[self._subset], bias)

        self.decoder.forward = forward  # restricted decoder rows while `_subset` is set

    def text(self, history: Sequence[Mapping[str, str]], utterance: str) -> str:
        """The student's input text for one turn."""
        return conversation_text(history, utterance, self.responses)

    def tokenize(self, texts: Sequence[str]):
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self.device)

    def forward(self, texts: Sequence[str], vocab_subset=None):
        """SPLADE weights [batch, len(vocab_subset) or vocab] with gradients."""
        from retrieval_kd.teachers.splade import pool_mask, segment_ids, splade_pool

        batch = self.tokenize(texts)
        if self.segments:
            batch["token_type_ids"] = segment_ids(batch["input_ids"], self.tokenizer.sep_token_id)
        self._subset = vocab_subset
        try:
            logits = self.model(**batch).logits
        finally:
            self._subset = None
        return splade_pool(logits, pool_mask(batch["input_ids"], batch["attention_mask"],
                                             self.tokenizer.sep_token_id, self.pool))

    def save(self, dest: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Save the model + tokenizer (HF format) and the input settings (meta.json, kind splade-student) into `dest`."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(dest)
        self.tokenizer.save_pretrained(dest)
        cfg = {"responses": self.responses, "sep": SEP, "max_length": self.max_length, "segments": self.segments,
               "pool": self.pool, "init": str(self.path),
               **(extra or {})}
        write_meta(dest, STUDENT_KIND, 1, **cfg)
        return dest








def load_student(path: str | Path, **kw: Any) -> SpladeStudent:
    """A trained student from a DiSCo run folder (meta.json kind disco-student) or its student/ model folder."""
    from retrieval_kd.artifacts import read_meta
    from retrieval_kd.methods.disco.conversation import read_student_config

    path = Path(path)
    meta = read_meta(path, ("disco-student", STUDENT_KIND))
    folder = path / meta.get("student", "student") if meta["kind"] == "disco-student" else path
    cfg = read_student_config(folder)
    return SpladeStudent(folder, max_length=cfg.get("max_length", 256), responses=cfg.get("responses", "last"),
                         segments=bool(cfg.get("segments", False)), pool=str(cfg.get("pool", "all")), **kw)
