"""Torch-free query encoding: a `tokenizers` tokenizer plus one shared onnxruntime session.

Memory: onnxruntime's CPU arena is off by default (it keeps the peak of the largest request for the life of
the process); calls are cut so none pads more than `RuntimeOptions.max_call_tokens` tokens, and the C heap is
trimmed after large calls, so the resident size returns to about its idle value after a heavy request.
Cancellation: each session call runs with RunOptions registered on the thread's `cancel.current_token()`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import BundleError
from retrieval_kd.serving.cancel import Cancelled, current_token

MAX_LENGTH = 8192  # no query encoder here takes more tokens; larger max_length values are manifest errors
TRIM_TOKENS = 2048  # after a session call over this many padded tokens, hand freed heap pages back to the OS


@dataclass
class RuntimeOptions:
    """How bundles run: intra-op threads, CPU arena, largest session call, spinning of idle intra-op threads."""

    threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    arena: bool = False
    max_call_tokens: int = 4096
    spin: bool = False


class EncoderFailure(RuntimeError):
    """onnxruntime failed on a call that passed every check (a bug or a broken graph, not the request's fault)."""


def init_thread(threads: int) -> None:
    """Per-thread settings for a worker thread: OpenMP's thread count is per thread, so set faiss's there too."""
    import contextlib

    with contextlib.suppress(ImportError):
        import faiss

        faiss.omp_set_num_threads(int(threads))


def _libc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none (musl, macOS)."""
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_TRIM = _libc_trim()


def release_memory() -> None:
    """Return freed C-heap pages to the OS (glibc keeps them otherwise)."""
    if _TRIM is not None:
        _TRIM(0)


def _model_max_length(tokenizer_path: Path) -> int | None:
    """model_max_length of tokenizer_config.json beside the tokenizer (None when absent or a sentinel)."""
    cfg = Path(tokenizer_path).with_name("tokenizer_config.json")
    try:
        value = json.loads(cfg.read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and 0 < value <= MAX_LENGTH else None


def check_max_length(max_length: object, where: str | Path, tokenizer_path: str | Path) -> int:
    """max_length as an int in 1..MAX_LENGTH and within the tokenizer's model_max_length; BundleError otherwise."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 1 <= max_length <= MAX_LENGTH:
        raise BundleError(f"{where}: max_length {max_length!r} must be an integer 1..{MAX_LENGTH}")
    limit = _model_max_length(Path(tokenizer_path))
    if limit is not None and max_length > limit:
        raise BundleError(f"{where}: max_length {max_length} is over the tokenizer's model_max_length {limit}")
    return max_length


class OnnxEncoder:
    """Encode texts with an exported graph (inputs input_ids/attention_mask, one output)."""

    def __init__(self, onnx_path: str | Path, tokenizer_path: str | Path, max_length: int, pad_token: str | None = None,
                 options: RuntimeOptions | None = None, output: str = "sentence_embedding", call_cost_tokens: float = 4.0,
                 probe: bool = True):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = options or RuntimeOptions()
        self.max_length = check_max_length(max_length, onnx_path, tokenizer_path)
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception on bad JSON
            raise BundleError(f"{tokenizer_path}: unreadable tokenizer ({str(e)[:200]})") from None
        self.tokenizer.enable_truncation(self.max_length)
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token else None
        if pad_token and pad_id is None:
            raise BundleError(f"{tokenizer_path}: pad token {pad_token!r} is not in the vocabulary")
        self.tokenizer.enable_padding(pad_id=pad_id or 0, pad_token=pad_token or "[PAD]")  # to the longest in batch
        self.session = _session(ort, onnx_path, options)
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input_ids", "attention_mask"}:
            raise BundleError(f"{onnx_path}: graph inputs {sorted(names)} != ['attention_mask', 'input_ids']")
        self._ort = ort
        self.output = output
        self.max_call_tokens = max(int(options.max_call_tokens), self.max_length)
        self.call_cost_tokens = call_cost_tokens  # fixed cost of one session call, in tokens (for length buckets)
        self.dim = int(self.session.get_outputs()[0].shape[-1]) if isinstance(
            self.session.get_outputs()[0].shape[-1], int) else None
        if probe:
            self._probe(onnx_path)

    def _probe(self, onnx_path: str | Path) -> None:
        """Encode one text of max_length tokens now, so a max_length the graph cannot take stops start-up."""
        try:
            self.encode(["a " * self.max_length])
        except EncoderFailure as e:
            raise BundleError(f"{onnx_path}: cannot encode max_length={self.max_length} tokens ({e})") from None

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Token arrays padded to the longest text, and whether each text was cut at max_length."""
        encs = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask}, [bool(e.overflowing) for e in encs]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs the encoder (after truncation at max_length)."""
        return [int(sum(e.attention_mask)) for e in self.tokenizer.encode_batch(list(texts))]

    def run(self, feed: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """One session call, cancellable through the thread's token; EncoderFailure on an onnxruntime error."""
        token = current_token()
        run_options = self._ort.RunOptions()
        try:
            if token is None:
                return self.session.run(outputs or [self.output], feed, run_options)
            token.check()
            with token.track(run_options):
                return self.session.run(outputs or [self.output], feed, run_options)
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidArgument types
            if token is not None and token.cancelled:
                raise Cancelled("cancelled: the request's deadline passed") from None
            raise EncoderFailure(str(e).splitlines()[0][:300]) from None
        finally:
            if feed["input_ids"].size >= TRIM_TOKENS:
                release_memory()

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Float32 outputs [n, dim] and per-text truncation flags; texts of similar length share one session call."""
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32), []
        feeds, truncated = self.tokenize(texts)
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        lengths = mask.sum(1)
        out: np.ndarray | None = None
        for rows in call_rows(lengths, self.call_cost_tokens, self.max_call_tokens):
            width = int(lengths[rows].max())  # right padding: cut the columns only longer texts need
            res = self.run({"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]})[0]
            if out is None:
                out = np.empty((len(texts), *res.shape[1:]), dtype=np.float32)
            out[rows] = res
        return out, truncated


def _session(ort: Any, onnx_path: str | Path, options: RuntimeOptions) -> Any:
    """An InferenceSession with the options' threads and arena; BundleError naming the file when it cannot load."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(options.threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_cpu_mem_arena = bool(options.arena)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spin else "0")
    try:
        return ort.InferenceSession(str(onnx_path), so, providers=list(options.providers))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise BundleError(f"{onnx_path}: onnxruntime cannot load it ({str(e).splitlines()[0][:300]})") from None


def call_rows(lengths: np.ndarray, call_cost: float, max_tokens: int) -> list[np.ndarray]:
    """Length buckets (see `length_buckets`), each cut so rows x longest length stays within max_tokens."""
    out = []
    for rows in length_buckets(lengths, call_cost):
        per_call = max(1, int(max_tokens // max(1, int(lengths[rows].max()))))
        out += [rows[i : i + per_call] for i in range(0, len(rows), per_call)]
    return out


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
    return OnnxEncoder(inside(folder, info.get("file"), folder / "meta.json"), folder / "tokenizer.json",
                       info["max_length"], info.get("pad_token"), options)


def inside(folder: str | Path, rel: object, where: str | Path) -> Path:
    """folder/rel when rel is a relative path that stays inside folder; BundleError naming `where` otherwise."""
    folder = Path(folder)
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise BundleError(f"{where}: file {rel!r} must be a relative path inside {folder.name}/")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not (folder / p).resolve().is_relative_to(folder.resolve()):
        raise BundleError(f"{where}: file {rel!r} points outside {folder.name}/")
    return folder / p
