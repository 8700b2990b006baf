"""ONNX export of the extractive rewriter (torch, parity-checked); `serving.rewriter.OnnxRewriter` runs it.

    export_tagger("runs/drr-zh-tagger", "bundles/medical/rewriter")   # rewriter.onnx + tokenizer.json + meta.json

The graph takes input_ids/attention_mask (int64, dynamic batch and sequence) and returns `keep_prob`
[batch, seq]: the sigmoid of the tagger's logit per token. Turning probabilities into queries
(`methods.drr.tagging`) is plain Python/numpy, so the server needs only onnxruntime + tokenizers.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import write_meta
from retrieval_kd.errors import RKDError
from retrieval_kd.export.onnx import export_graph
from retrieval_kd.methods.drr.tagging import Corrector, layout
from retrieval_kd.serving.rewriter import FORMAT_VERSION, GRAPH, INPUTS, KIND, OUTPUT
from retrieval_kd.utils import atomic_dir, run_info

PARITY_DIALOGUES = (
    [{"role": "user", "text": "My son takes amoxicilin for an ear infection. What are the side effects?"}],
    [{"role": "user", "text": "我之前一直在吃阿司匹林肠溶片。"}, {"role": "assistant", "text": "好的。"},
     {"role": "user", "text": "后来换成了氯吡格雷。"}, {"role": "user", "text": "这个药有什么副作用？"}],
)


def _graph_module(model):
    import torch

    class TaggerGraph(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            logits = self.m(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=torch.zeros_like(input_ids)).logits[..., 0]
            return torch.sigmoid(logits)

    return TaggerGraph(model).eval()


def export_tagger(src: str | Path, out_dir: str | Path, atol: float = 1e-4, corrector: Corrector | None = None,
                  opset: int | None = None) -> dict[str, Any]:
    """Export a trained tagger folder; raises when onnxruntime's keep-probabilities differ from torch by > atol."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from retrieval_kd.artifacts import read_meta
    from retrieval_kd.methods.drr.rewriters import TAGGER_KIND

    src = Path(src)
    meta = read_meta(src, TAGGER_KIND)
    tok = AutoTokenizer.from_pretrained(src)
    module = _graph_module(AutoModelForTokenClassification.from_pretrained(src))
    max_length = int(meta.get("max_length", 256))
    texts = [layout(d)[0] for d in PARITY_DIALOGUES]
    batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with tempfile.TemporaryDirectory(prefix="rkd-rewriter-") as work, atomic_dir(out_dir) as tmp:
        path = Path(work) / GRAPH
        example = {k: batch[k].numpy().astype(np.int64) for k in INPUTS}
        exporter = export_graph(module, example, path, opset, output=OUTPUT, output_axes={0: "batch", 1: "seq"})
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        diff = 0.0
        for rows in (slice(None), slice(0, 1)):  # a padded batch and a single dialogue
            b = tok(texts[rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                ref = module(b["input_ids"], b["attention_mask"]).numpy()
            got = sess.run([OUTPUT], {k: b[k].numpy().astype(np.int64) for k in INPUTS})[0]
            m = b["attention_mask"].numpy().astype(bool)
            diff = max(diff, float(np.abs(ref - got)[m].max()))
        if not diff <= atol:
            raise RKDError(f"{src}: ONNX keep-probabilities differ from torch by {diff:.2e} > {atol:g}")
        shutil.copyfile(path, tmp / GRAPH)
        tok.save_pretrained(str(tmp))
        if not (tmp / "tokenizer.json").exists():
            raise RKDError(f"{src}: tokenizer has no tokenizer.json (the server needs a fast tokenizer)")
        info = {"kind": KIND, "format_version": FORMAT_VERSION, "file": GRAPH, "output": OUTPUT,
                "inputs": list(INPUTS), "exporter": exporter, "parity_max_abs_diff": diff, "source": str(src),
                "pad_token": tok.pad_token, "entity_mask": bool(meta.get("entity_mask")),
                **{k: meta[k] for k in ("threshold", "mode", "boost", "max_length")},
                "keep": meta.get("keep", "terms"), "carry": bool(meta.get("carry", False))}
        if corrector is not None:
            (tmp / "corrector.json").write_text(json.dumps(corrector.to_json(), ensure_ascii=False) + "\n",
                                                encoding="utf-8")
            info["corrector"] = "corrector.json"
        write_meta(tmp, KIND, FORMAT_VERSION, info)
        (tmp / "run_info.json").write_text(json.dumps(run_info({"src": str(src)}), indent=2, default=str) + "\n")
    return info



