"""Torch-free query encoding: a `tokenizers` tokenizer plus one shared onnxruntime session."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_kd.errors import BundleError


@dataclass
class RuntimeOptions:
    """How bundles run: intra-op threads of onnxruntime and faiss (1 is fastest on a 2-vCPU box)."""

    threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)


def init_thread(threads: int) -> None:
    """Per-thread settings for a worker thread: OpenMP's thread count is per thread, so set faiss's there too."""
    import contextlib

    with contextlib.suppress(ImportError):
        import faiss

        faiss.omp_set_num_threads(int(threads))


class OnnxEncoder:
    """Encode texts with an exported graph (inputs input_ids/attention_mask, one output)."""

    def __init__(self, onnx_path: str | Path, tokenizer_path: str | Path, max_length: int, pad_token: str | None = None,
                 options: RuntimeOptions | None = None, output: str = "sentence_embedding", call_cost_tokens: float = 4.0):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = options or RuntimeOptions()
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception on bad JSON
            raise BundleError(f"{tokenizer_path}: unreadable tokenizer ({e})") from None
        self.max_length = int(max_length)
        self.tokenizer.enable_truncation(self.max_length)
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token else None
        if pad_token and pad_id is None:
            raise BundleError(f"{tokenizer_path}: pad token {pad_token!r} is not in the vocabulary")
        self.tokenizer.enable_padding(pad_id=pad_id or 0, pad_token=pad_token or "[PAD]")  # to the longest in batch
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(options.threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(onnx_path), so, providers=list(options.providers))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{onnx_path}: onnxruntime cannot load it ({str(e).splitlines()[0][:300]})") from None
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input_ids", "attention_mask"}:
            raise BundleError(f"{onnx_path}: graph inputs {sorted(names)} != ['attention_mask', 'input_ids']")
        self.output = output
        self.call_cost_tokens = call_cost_tokens  # fixed cost of one session call, in tokens (for length buckets)
        self.dim = int(self.session.get_outputs()[0].shape[-1]) if isinstance(
            self.session.get_outputs()[0].shape[-1], int) else None

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Token arrays padded to the longest text, and whether each text was cut at max_length."""
        encs = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask}, [bool(e.overflowing) for e in encs]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Float32 outputs [n, dim] and per-text truncation flags; texts of similar length share one session call."""
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32), []
        feeds, truncated = self.tokenize(texts)
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        lengths = mask.sum(1)
        out: np.ndarray | None = None
        for rows in length_buckets(lengths, self.call_cost_tokens):
            width = int(lengths[rows].max())  # right padding: cut the columns only longer texts need
            feed = {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]}
            res = self.session.run([self.output], feed)[0]
            if out is None:
                out = np.empty((len(texts), *res.shape[1:]), dtype=np.float32)
            out[rows] = res
        return out, truncated


def length_buckets(lengths: np.ndarray, call_cost: float = 4.0) -> list[np.ndarray]:
    """Split row indices into groups of similar token length, minimising padded tokens + call_cost per group.

    Encoder cost on a CPU is close to linear in padded tokens, so one batch padded to its longest query can cost
    several times the unpadded work; an exact dynamic programme over the distinct lengths picks the cut points.
    """
    order = np.argsort(lengths, kind="stable")
    uniq, counts = np.unique(lengths[order], return_counts=True)
    m = len(uniq)
    before = np.concatenate([[0], np.cumsum(counts)])
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        width = float(uniq[j - 1])
        for i in range(j):
            c = best[i] + call_cost + (before[j] - before[i]) * width
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], m
    while j > 0:
        groups.append(order[before[cut[j]] : before[j]])
        j = cut[j]
    return groups[::-1]


def open_encoder(folder: str | Path, options: RuntimeOptions | None = None):
    """An exported encoder folder (meta.json kind onnx-encoder): OnnxEncoder, or the conversational one."""
    from retrieval_kd.artifacts import read_meta

    folder = Path(folder)
    meta = read_meta(folder, "onnx-encoder")
    options = options or RuntimeOptions()
    if meta.get("conversational"):
        from retrieval_kd.serving.conversational import OnnxConversationalEncoder

        return OnnxConversationalEncoder(folder, threads=options.threads)
    info = meta["encoder"]
    return OnnxEncoder(folder / info["file"], folder / "tokenizer.json", info["max_length"], info.get("pad_token"),
                       options)
