"""The Distill-VQ benchmark and GPU scripts, run small (slow: excluded from the default suite)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@pytest.mark.slow
def test_gpu_script_tiny_on_cpu():
    from eval.distill_vq_gpu import main

    report = main(["--n", "4000", "--queries", "1000", "--eval-queries", "100", "--device", "cpu", "--threads", "1",
                   "--train-size", "4000", "--batch", "32", "--m", "8"])
    assert report["parity_ok"] and report["steps"] == 32 and len(report["seconds_per_epoch"]) == 1
    assert report["codes_agree_with_faiss_encoder"] > 0.99


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    from retrieval_kd.bench.distill_vq import run_distill_vq

    rows = run_distill_vq(datasets=["med"], sizes=[8], rows=["opq", "listnet"], plot_sizes=[],
                          sets=["train.steps=30"], out=tmp_path)
    assert [r["method"] for r in rows] == ["exact teacher", "faiss OPQ+IVFPQ", "Distill-VQ (listnet)"]
    assert (tmp_path / "table.md").read_text().count("| med |") == 4  # 3 rows + the summary row
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"][0]["dataset"] == "med"
