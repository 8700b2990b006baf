"""Kind "sparse-conversational" (DiSCo): ONNX conversational SPLADE query encoder + impact index + SQLite doc store.

    bundle:  manifest.json  meta.json  docstore.sqlite
             query_encoder/{query_encoder.onnx, tokenizer.json, tokenizer_config.json, meta.json}
             index/{meta.json, vocab.txt, docids.txt, postings.npz}

`query_encoder/` is the folder `export.conversational.export_student_onnx` writes (read by
`OnnxConversationalEncoder`); `index/` is a saved `ImpactIndex` of the corpus under the frozen SPLADE document
encoder. Torch-free; `export.conversational.build_conversational_bundle` makes a bundle from a DiSCo run.

A bundle of a query mixture (`methods/disco/mixing.py`, from `rkd eval cast-mix`) has the manifest section
`mixing`: each member's encoder folder (query_encoder/, query_encoder_2/, ...) with its weight, and
`utterance_encoder/` (the document encoder reading the current utterance alone) with its weight; the query vector
is their weighted sum (`mixing.combine`), and the reported query terms are the mixture's.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import read_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.index.impact import FILES as INDEX_FILES
from retrieval_kd.index.impact import ImpactIndex
from retrieval_kd.methods.disco.conversation import SEP, conversation_text, read_student_config, squash
from retrieval_kd.methods.disco.mixing import combine
from retrieval_kd.serving.manifest import ConversationalManifest
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import Searcher, SearchResult, stage_ms

ENCODER_DIR = "query_encoder"
INDEX_DIR = "index"
QUERY_TERMS = 10  # expansion terms reported per response


class ConversationalSearcher(Searcher):
    """Encode {history, utterance} with the ONNX student, search the impact index, return docids + query terms."""

    kind = "sparse-conversational"

    capabilities = frozenset({"conversational_search"})
    required_files = (f"{ENCODER_DIR}/query_encoder.onnx", f"{ENCODER_DIR}/tokenizer.json",
                      f"{ENCODER_DIR}/meta.json",
                      *(f"{INDEX_DIR}/{f}" for f in INDEX_FILES), "docstore.sqlite")
    manifest_model = ConversationalManifest

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        super().__init__(root, manifest, options)
        mixing = manifest.get("mixing") or {"members": [{"dir": ENCODER_DIR, "weight": 1.0}], "utterance": None}
        self.members = [self._encoder(m["dir"]) for m in mixing["members"]]
        self.weights = [float(m["weight"]) for m in mixing["members"]]
        utt = mixing.get("utterance")
        self.utterance = self._encoder(utt["dir"]).encoder if utt else None
        self.utterance_weight = float(utt["weight"]) if utt else 0.0
        for rel in INDEX_FILES:
            self.file(f"{INDEX_DIR}/{rel}")
        self.index = ImpactIndex.load(self.root / INDEX_DIR)
        for enc in [*(m.encoder for m in self.members), *([self.utterance] if self.utterance else [])]:
            if enc.dim is not None and enc.dim != len(self.index.vocab):
                raise BundleError(f"{root}: encoder output dim {enc.dim} != impact index vocabulary "
                                  f"{len(self.index.vocab)}")

    def _encoder(self, folder: str) -> OnnxConversationalEncoder:
        return OnnxConversationalEncoder(self.root / folder, threads=int(self.options.threads),
                                         resolve=lambda rel: self.file(f"{folder}/{rel}"), options=self.options)

    def encode(self, history: list[dict], utterance: str) -> tuple[np.ndarray, bool]:
        """The query vector (the mixture's, when the bundle has one) and whether an input was cut at max_length."""
        outs = [m.encode(history, utterance) for m in self.members]
        truncated = any(t for _, t in outs)
        utt = None
        if self.utterance is not None:
            vecs, cut = self.utterance.encode([squash(utterance)])
            utt, truncated = vecs[0], truncated or bool(cut[0])
        return combine([v for v, _ in outs], self.weights, utt, self.utterance_weight), truncated

    def conversational_search(self, history: list[dict], utterance: str, k: int) -> SearchResult:
        """Top-k documents for the current utterance read in its conversation."""
        t0 = time.perf_counter()
        vec, truncated = self.encode(history, utterance)
        t1 = time.perf_counter()
        ids, scores = self.index.search(vec, k)
        timings = stage_ms(encode=t1 - t0, search=time.perf_counter() - t1)
        top = np.argsort(-vec, kind="stable")[:QUERY_TERMS]
        terms = [{"term": self.index.vocab[i], "weight": round(float(vec[i]), 4)} for i in top if vec[i] > 0]
        return SearchResult(ids, scores, bool(truncated), {"query_terms": terms, "timings": timings})

    def info(self) -> dict[str, Any]:
        m = self.index.meta
        mixing = self.manifest.get("mixing")
        return {**super().info(), "n_postings": m.get("n_postings"), "vocab_size": len(self.index.vocab),
                **({"mixing": {"weights": self.weights, "utterance": self.utterance_weight}} if mixing else {})}






class OnnxConversationalEncoder:
    """Torch-free query side for serving: {history, utterance} -> student input text -> ONNX SPLADE vector."""

    def __init__(self, folder: str | Path, threads: int = 1, resolve: Callable[[str], Path] | None = None,
                 options: RuntimeOptions | None = None):
        from retrieval_kd.serving.runtime import OnnxEncoder, inside

        folder = Path(folder)
        resolve = resolve or (lambda rel: inside(folder, rel, folder / "meta.json"))
        resolve("meta.json")
        info = read_meta(folder, "onnx-encoder")["encoder"]
        self.config = read_student_config(folder)
        options = options or RuntimeOptions(threads=threads)
        self.encoder = OnnxEncoder(resolve(info.get("file")), resolve("tokenizer.json"), info.get("max_length"),
                                   info.get("pad_token"), options)

    def text(self, history: Sequence[Mapping[str, str]], utterance: str) -> str:
        """The student's input text (same function as in training)."""
        return conversation_text(history, utterance, self.config.get("responses", "last"), self.config.get("sep", SEP))

    def encode(self, history: Sequence[Mapping[str, str]], utterance: str):
        """(vocabulary-sized float32 vector, whether the input was cut at max_length)."""
        out, truncated = self.encoder.encode([self.text(history, utterance)])
        return out[0], truncated[0]
