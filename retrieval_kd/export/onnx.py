"""ONNX export of query encoders with the pooling head inside the graph (mean/cls + L2, or SPLADE), parity-checked.

    export_encoder("minilm", "out/enc")                          # dense: mean pooling + L2 norm, [batch, 384]
    export_encoder(splade_dir, "out/splade", pooling="splade")   # log(1+ReLU(MLM logits)) max-pooled, [batch, vocab]

The graph takes `input_ids` and `attention_mask` (int64, dynamic batch and sequence axes) and returns one
float32 output `sentence_embedding`. Token type ids are zeros inside the graph, so a runtime needs only the
tokenizer (see `runtime.OnnxEncoder`). This module imports torch; the server never imports it.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from retrieval_kd import artifacts
from retrieval_kd.errors import RKDError
from retrieval_kd.utils import atomic_dir, run_info

# The dynamo exporter warns about every torchvision op it cannot register; we export no vision ops.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

POOLINGS = ("mean", "cls", "splade")
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"
ENCODER_FILE = "query_encoder.onnx"
PARITY_TEXTS = (
    "parallel sorting algorithms",
    "What articles exist which deal with TSS (Time Sharing System), an operating system for IBM computers?",
    "x",
    "Ünïcödé queries, numbers 3.14 and punctuation!? are tokenised too",
)


class ExportError(RKDError):
    """The ONNX graph could not be written or does not match the torch model."""


class PooledEncoder(nn.Module):
    """A Hugging Face encoder plus its pooling head: what the ONNX graph computes."""

    def __init__(self, model: nn.Module, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise ExportError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.normalize = normalize and pooling != "splade"
        params = inspect.signature(model.forward).parameters
        self.uses_token_types = "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0) > 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_types:
            kw["token_type_ids"] = torch.zeros_like(input_ids)
        out = self.model(**kw)
        mask = attention_mask.unsqueeze(-1)
        if self.pooling == "splade":
            # SPLADE max: weights w_j = max_i log(1 + ReLU(logit_ij)) over the unpadded tokens i.
            weights = torch.log1p(torch.relu(out.logits)) * mask.to(out.logits.dtype)
            return weights.max(dim=1).values
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            m = mask.to(hidden.dtype)
            emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(emb, dim=-1) if self.normalize else emb


def load_pooled(model: str | Path | None, pooling: str = "mean", normalize: bool = True):
    """(PooledEncoder in eval mode, HF tokenizer, model folder) from a local folder; None/'minilm' = bundled MiniLM."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from retrieval_kd.teachers.dense import resolve_model_path

    path = resolve_model_path(model)
    cls = AutoModelForMaskedLM if pooling == "splade" else AutoModel
    hf = cls.from_pretrained(path).eval()
    return PooledEncoder(hf, pooling, normalize).eval(), AutoTokenizer.from_pretrained(path), path


def tokens(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    """int64 input_ids / attention_mask of `texts`, padded to the longest."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {k: np.asarray(enc[k], dtype=np.int64) for k in INPUTS}


def torch_forward(module: PooledEncoder, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Run the torch module on numpy token arrays."""
    with torch.inference_mode():
        return module(*(torch.from_numpy(batch[k]) for k in INPUTS)).float().numpy()


def onnx_forward(onnx_path: str | Path, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Run an exported graph once with onnxruntime (one thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT], {k: batch[k] for k in INPUTS})[0]


def parity_check(module: PooledEncoder, tokenizer: Any, onnx_path: str | Path, texts: Sequence[str] = PARITY_TEXTS,
                 max_length: int = 256) -> float:
    """Max abs difference between torch and onnxruntime outputs on padded batches of `texts`."""
    texts = list(texts)
    diff = 0.0
    for group in (texts, texts[:1]):  # a padded batch and a single unpadded query
        batch = tokens(tokenizer, group, max_length)
        diff = max(diff, float(np.abs(torch_forward(module, batch) - onnx_forward(onnx_path, batch)).max()))
    return diff


def export_graph(module: nn.Module, example: dict[str, np.ndarray], dest: Path, opset: int | None,
                 output: str = OUTPUT, output_axes: dict[int, str] | None = None) -> str:
    """Write one self-contained .onnx file (inputs input_ids/attention_mask, dynamic batch and sequence, one
    `output`); the dynamo exporter first, TorchScript if dynamo fails. Returns the exporter used."""
    args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(dest), input_names=list(INPUTS), output_names=[output],
                              dynamic_shapes={k: {0: batch, 1: seq} for k in INPUTS}, dynamo=True,
                              external_data=False, optimize=True, opset_version=opset, verbose=False)
        return "dynamo"
    except Exception as e:  # noqa: BLE001 - any exporter failure falls back to the TorchScript exporter
        warnings.warn(f"dynamo ONNX export failed ({type(e).__name__}: {e}); falling back to dynamo=False",
                      stacklevel=2)
    axes = {k: {0: "batch", 1: "seq"} for k in INPUTS} | {output: output_axes or {0: "batch"}}
    torch.onnx.export(module, args, str(dest), input_names=list(INPUTS), output_names=[output], dynamic_axes=axes,
                      dynamo=False, opset_version=opset or 17)
    return "torchscript"


def quantize_int8(src: str | Path, dest: str | Path) -> Path:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (per channel), written atomically."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # quiet its pre-processing hint
    quantize_dynamic(str(src), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
    os.replace(tmp, dest)
    return dest


def _pooled_module(model: str | Path | nn.Module | None, tokenizer: Any, pooling: str, normalize: bool):
    """(PooledEncoder in eval mode, tokenizer, source name) of a model folder or an in-memory module."""
    if not isinstance(model, nn.Module):
        return load_pooled(model, pooling, normalize)
    if tokenizer is None:
        raise ExportError("exporting an in-memory model needs its tokenizer (tokenizer=...)")
    module = model if isinstance(model, PooledEncoder) else PooledEncoder(model, pooling, normalize)
    return module.eval(), tokenizer, getattr(module.model, "name_or_path", None) or type(module.model).__name__


def export_encoder(
    model: str | Path | nn.Module | None,
    out_dir: str | Path,
    *,
    tokenizer: Any = None,
    pooling: str = "mean",
    normalize: bool = True,
    max_length: int = 256,
    int8: bool = False,
    atol: float = 1e-4,
    parity_texts: Sequence[str] = PARITY_TEXTS,
    opset: int | None = None,
    write_meta: bool = True,
    atomic: bool = True,
) -> dict[str, Any]:
    """Export `model` to out_dir/query_encoder.onnx + tokenizer files; returns the encoder info (also meta.json).

    `model` is a model folder (None/'minilm' = bundled MiniLM) or an in-memory module (a Hugging Face model, or a
    PooledEncoder) given with its `tokenizer`. Raises ExportError when the fp32 graph differs from torch by more
    than `atol`. With `int8`, the written
    graph is the quantised one and its (larger) difference is reported, not checked. With `atomic=False` the
    files go straight into the existing folder `out_dir` (used by the bundle builder, itself atomic).
    """
    module, tokenizer, path = _pooled_module(model, tokenizer, pooling, normalize)
    pooling = module.pooling
    max_length = int(min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length))
    out_dir = Path(out_dir)
    target = atomic_dir(out_dir) if atomic else contextlib.nullcontext(out_dir)
    with tempfile.TemporaryDirectory(prefix="rkd-onnx-") as work, target as tmp:
        fp32 = Path(work) / ENCODER_FILE
        exporter = export_graph(module, tokens(tokenizer, parity_texts[:2], max_length), fp32, opset)
        diff = parity_check(module, tokenizer, fp32, parity_texts, max_length)
        if not diff <= atol:
            raise ExportError(f"{path}: ONNX output differs from torch by {diff:.2e} > {atol:g} (parity check)")
        info: dict[str, Any] = {"file": ENCODER_FILE, "pooling": pooling, "normalize": module.normalize,
                                "max_length": max_length, "exporter": exporter, "precision": "fp32",
                                "parity_max_abs_diff": diff, "source": str(path), "inputs": list(INPUTS),
                                "output": OUTPUT}
        if int8:
            quantize_int8(fp32, tmp / ENCODER_FILE)
            batch = tokens(tokenizer, parity_texts, max_length)
            info.update(precision="int8", int8_max_abs_diff=float(
                np.abs(torch_forward(module, batch) - onnx_forward(tmp / ENCODER_FILE, batch)).max()))
        else:
            shutil.copyfile(fp32, tmp / ENCODER_FILE)
        saved = [Path(f).name for f in tokenizer.save_pretrained(str(tmp)) if Path(f).exists()]
        if not (tmp / "tokenizer.json").exists():
            raise ExportError(f"{path}: tokenizer has no fast (tokenizers) version; the server needs tokenizer.json")
        with torch.inference_mode():
            info["dim"] = int(module(*(torch.from_numpy(v) for v in tokens(tokenizer, ["a"], 8).values())).shape[-1])
        info["pad_token"] = tokenizer.pad_token
        info["tokenizer_files"] = sorted(set(saved))
        if write_meta:
            artifacts.write_meta(tmp, "onnx-encoder", 1, encoder=info, run_info=run_info())
    return info
