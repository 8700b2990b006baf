"""Torch-free extractive rewriter for serving: tokenizers + onnxruntime + the tagger's numpy post-processing."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.artifacts import read_meta
from retrieval_kd.methods.drr.tagging import Corrector, Dialogue, TaggerRewriter, char_probs, layout
from retrieval_kd.serving.runtime import OnnxEncoder, RuntimeOptions, inside

KIND = "rewriter-tagger-onnx"


FORMAT_VERSION = 1


GRAPH = "rewriter.onnx"


OUTPUT = "keep_prob"


INPUTS = ("input_ids", "attention_mask")


class OnnxRewriter(TaggerRewriter):
    """Torch-free extractive rewriter: tokenizers + onnxruntime + the numpy post-processing."""

    name = "extractive-onnx"

    def __init__(self, folder: str | Path, options: RuntimeOptions | None = None, mode: str | None = None,
                 boost: int | None = None, threshold: float | None = None,
                 resolve: Callable[[str], Path] | None = None):
        folder = Path(folder)
        resolve = resolve or (lambda rel: inside(folder, rel, folder / "meta.json"))
        resolve("meta.json")
        self.meta = read_meta(folder, KIND, FORMAT_VERSION, what="exported rewriter")
        self.encoder = OnnxEncoder(resolve(self.meta.get("file")), resolve("tokenizer.json"),
                                   self.meta.get("max_length"), self.meta.get("pad_token"), options,
                                   output=self.meta["output"])
        self.threshold = float(threshold if threshold is not None else self.meta["threshold"])
        self.mode = mode or self.meta["mode"]
        self.boost = int(boost if boost is not None else self.meta["boost"])
        self.keep, self.carry = self.meta.get("keep", "terms"), bool(self.meta.get("carry", False))
        self.corrector = None
        if self.meta.get("corrector"):
            data = json.loads(resolve(self.meta["corrector"]).read_text(encoding="utf-8"))
            self.corrector = Corrector.from_json(data)
        self.names = self.corrector.names if self.meta.get("entity_mask") and self.corrector is not None else []

    def tag(self, dialogues: Sequence[Dialogue]) -> list[tuple[str, list, np.ndarray, list]]:
        """(layout text, segment spans, per-character keep probabilities, masked entities) of each dialogue."""
        if not dialogues:
            return []
        laid = [layout(d, self.names) if self.names else (*layout(d), []) for d in dialogues]
        encs = self.encoder.tokenizer.encode_batch([x[0] for x in laid])
        feeds = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64)}
        probs = self.encoder.run(feeds, [self.meta["output"]])[0]
        return [(text, spans, char_probs(len(text), e.offsets, p), ents)
                for (text, spans, ents), e, p in zip(laid, encs, probs)]
