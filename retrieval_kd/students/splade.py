"""DiSCo student: a SPLADE query encoder that reads the whole conversation.

Input text (torch-free, shared by training, evaluation and the server): the current utterance first, then the
earlier turns from the most recent backwards, joined by " [SEP] ", so truncation at `max_length` (256) tokens
drops the oldest context first. `responses` says which system responses enter: "last" (only the most recent
one, default), "all" or "none". Roles "system" and "assistant" both mean a system response.

    text = conversation_text(history=[{"role": "user", "text": "..."}, ...], utterance="...")

With `segments` (default), token type ids mark the current utterance (0, up to the first [SEP]) and the
context (1); they are derived from the token ids (`teachers.splade.segment_ids`), also inside the ONNX graph.

`SpladeStudent` (torch) computes the SPLADE vector restricted to a vocabulary subset during training: the
scores against a set of documents only depend on the terms those documents contain, so the MLM decoder is
evaluated on those rows only (exact, several times cheaper on CPU).
"""
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


class SpladeStudent:
    """Trainable SPLADE query encoder over a local masked-LM folder (default SPLADE-tiny-msmarco)."""

    def __init__(self, model: str | Path | None = None, device: str | None = None, max_length: int = 256,
                 responses: str = "last", segments: bool = True):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from ..teachers.splade import resolve_splade_path

        self.path = resolve_splade_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForMaskedLM.from_pretrained(self.path).to(self.device)
        self.max_length = int(max_length)
        self.responses = responses
        self.segments = segments
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
        from ..teachers.splade import segment_ids, splade_pool

        batch = self.tokenize(texts)
        if self.segments:
            batch["token_type_ids"] = segment_ids(batch["input_ids"], self.tokenizer.sep_token_id)
        self._subset = vocab_subset
        try:
            logits = self.model(**batch).logits
        finally:
            self._subset = None
        return splade_pool(logits, batch["attention_mask"])

    def save(self, dest: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Save the model + tokenizer (HF format) and the input settings (student.json) into `dest`."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(dest)
        self.tokenizer.save_pretrained(dest)
        cfg = {"responses": self.responses, "sep": SEP, "max_length": self.max_length, "segments": self.segments,
               "init": str(self.path),
               **(extra or {})}
        (dest / STUDENT_FILE).write_text(json.dumps(cfg, indent=2, default=str) + "\n", encoding="utf-8")
        return dest


def _export_module(student_dir: Path):
    """(torch module input_ids, attention_mask -> SPLADE vector with segment ids inside, tokenizer, config)."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ..teachers.splade import segment_ids, splade_pool

    cfg = read_student_config(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    model = AutoModelForMaskedLM.from_pretrained(student_dir).eval()
    sep_id, segments = int(tokenizer.sep_token_id), bool(cfg.get("segments", False))

    class ConversationalSplade(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            types = segment_ids(input_ids, sep_id) if segments else torch.zeros_like(input_ids)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=types)
            return splade_pool(out.logits, attention_mask)

    return ConversationalSplade().eval(), tokenizer, cfg


def export_student_onnx(student_dir: str | Path, dest: str | Path, parity_texts: Sequence[str] | None = None,
                        atol: float = 1e-4) -> dict[str, Any]:
    """ONNX graph of a trained student (segment ids and SPLADE pooling inside), parity-checked, written atomically.

    The folder holds query_encoder.onnx (inputs input_ids/attention_mask, output `sentence_embedding`
    [batch, vocab]), the tokenizer files, student.json (input format) and meta.json (kind "onnx-encoder").
    """
    import tempfile

    from ..export.onnx import ENCODER_FILE, INPUTS, OUTPUT, ExportError, _export_graph, _tokens, parity_check
    from ..utils import atomic_dir, run_info

    student_dir = Path(student_dir)
    module, tokenizer, cfg = _export_module(student_dir)
    texts = list(parity_texts or ["how deadly is it? [SEP] what are the most common types of breast cancer?", "x"])
    max_length = int(cfg["max_length"])
    with tempfile.TemporaryDirectory(prefix="rkd-disco-onnx-") as work, atomic_dir(dest) as tmp:
        path = Path(work) / ENCODER_FILE
        exporter = _export_graph(module, _tokens(tokenizer, texts[:2], max_length), path, None)
        diff = parity_check(module, tokenizer, path, texts, max_length)
        if not diff <= atol:
            raise ExportError(f"{student_dir}: ONNX output differs from torch by {diff:.2e} > {atol:g}")
        (tmp / ENCODER_FILE).write_bytes(path.read_bytes())
        tokenizer.save_pretrained(str(tmp))
        info = {"file": ENCODER_FILE, "pooling": "splade", "normalize": False, "max_length": max_length,
                "exporter": exporter, "precision": "fp32", "parity_max_abs_diff": diff, "source": str(student_dir),
                "inputs": list(INPUTS), "output": OUTPUT, "dim": int(module.model.config.vocab_size),
                "pad_token": tokenizer.pad_token, "segments": bool(cfg.get("segments", False))}
        (tmp / STUDENT_FILE).write_text(json.dumps(cfg, indent=2, default=str) + "\n", encoding="utf-8")
        meta = {"kind": "onnx-encoder", "format_version": 1, "encoder": info, "conversational": True,
                "run_info": run_info()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info


class OnnxConversationalEncoder:
    """Torch-free query side for serving: {history, utterance} -> student input text -> ONNX SPLADE vector."""

    def __init__(self, folder: str | Path, threads: int = 1):
        from ..export.runtime import OnnxEncoder, RuntimeOptions

        folder = Path(folder)
        info = json.loads((folder / "meta.json").read_text(encoding="utf-8"))["encoder"]
        self.config = read_student_config(folder)
        self.encoder = OnnxEncoder(folder / info["file"], folder / "tokenizer.json", int(info["max_length"]),
                                   info.get("pad_token"), RuntimeOptions(threads=threads))

    def text(self, history: Sequence[Mapping[str, str]], utterance: str) -> str:
        """The student's input text (same function as in training)."""
        return conversation_text(history, utterance, self.config.get("responses", "last"), self.config.get("sep", SEP))

    def encode(self, history: Sequence[Mapping[str, str]], utterance: str):
        """(vocabulary-sized float32 vector, whether the input was cut at max_length)."""
        out, truncated = self.encoder.encode([self.text(history, utterance)])
        return out[0], truncated[0]
