"""The cost-curve benchmark: a tiny run writes its table, plot and results; RSS sampling; the synthetic data."""
from __future__ import annotations

import json
import re

import numpy as np


def test_tiny_run_writes_table_plot_and_results(tmp_path, capsys):
    from retrieval_kd.bench.cost_curve import COLUMNS, STAGES, run_cost_curve

    rows = run_cost_curve(sizes=[2000], dim=64, m=8, queries=400, steps=4, batch=16, top_k=20, train_size=2000,
                          nprobe=8, out=tmp_path, threads=1)  # in a spawned process, as for real sizes
    table = (tmp_path / "table.md").read_text()
    assert "| " + " | ".join(COLUMNS) + " |" in table and re.search(r"^\| 2000 \|", table, re.M)
    assert "| 2000 |" in capsys.readouterr().out
    png = (tmp_path / "cost_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    saved = json.loads((tmp_path / "results.json").read_text())
    row = saved["rows"][0]
    assert row == json.loads(json.dumps(rows[0]))
    assert row["N"] == 2000 and row["steps"] == 4 and row["topk_path"] == "exact" and row["threads"] == 1
    assert row["factory"] == "OPQ8,IVF45,PQ8x8np" and row["ntotal"] == 2000
    assert row["codes_agree_with_faiss_encoder"] > 0.99 and 0 < row["TR@10 start"] <= 1
    assert set(STAGES) <= set(row["stages"]) and all(row[c] > 0 for c in COLUMNS)
    assert abs(row["total s"] - sum(row["stages"][s]["s"] for s in STAGES)) < 1e-6
    assert row["peak RSS GB"] == max(row["stages"][s]["peak_gb"] for s in STAGES) > row["base_rss_gb"]
    assert saved["settings"]["queries"] == 400 and not list(tmp_path.glob(".*tmp*"))


def test_rss_monitor_sees_a_stage_allocation():
    from retrieval_kd.bench.cost_curve import RSSMonitor

    mon = RSSMonitor(interval=0.005)
    try:
        with mon.stage("small"):
            pass
        with mon.stage("big"):
            block = np.ones(256 << 20, dtype=np.uint8)  # 256 MB, touched
            del block
    finally:
        mon.close()
    assert mon.stages["big"]["peak_gb"] - mon.stages["small"]["peak_gb"] > 0.2


def test_synthetic_defaults_are_the_gpu_scripts_data():
    import torch

    from retrieval_kd.bench.cost_curve import noisy_copies, synthetic

    g = torch.Generator().manual_seed(3)  # the helper as it was in eval/distill_vq_gpu.py (n below one chunk)
    scale = torch.linspace(1.5, 0.2, 16)
    centers = torch.randn(50, 16, generator=g) * scale
    c = torch.randint(0, 50, (500,), generator=g)
    old = torch.nn.functional.normalize(centers[c] + 0.8 * torch.randn(500, 16, generator=g) * scale, dim=1)
    x = synthetic(500, 16, 3, clusters=50)
    assert np.array_equal(x, old.numpy())
    q, src = noisy_copies(x, 40, 0.6, 1)
    assert q.dtype == np.float32 and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5) and src.shape == (40,)
    assert (np.einsum("ij,ij->i", q, x[src]) > 0.5).all()  # each query is near its source document


def test_skewed_clusters_have_varying_sizes():
    import torch

    from retrieval_kd.bench.cost_curve import synthetic

    g = torch.Generator().manual_seed(0)  # the generator's first draw: the cluster centres
    centers = (torch.randn(20, 32, generator=g) * torch.linspace(1.5, 0.2, 32)).numpy()
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    ratio = {}
    for skew in (0.0, 1.0):
        x = synthetic(20_000, 32, 0, clusters=20, skew=skew, chunk=4096)
        assert x.shape == (20_000, 32) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
        sizes = np.bincount((x @ centers.T).argmax(1), minlength=20)
        ratio[skew] = sizes.max() / max(1, sizes.min())
    assert ratio[0.0] < 1.5 and ratio[1.0] > 10  # weights ∝ rank^-skew (measured 1.1 and 20)


def test_cli_passes_the_options(monkeypatch):
    from typer.testing import CliRunner

    from retrieval_kd.cli import app

    calls: list = []
    monkeypatch.setattr("retrieval_kd.bench.cost_curve.run_cost_curve", lambda *a, **k: calls.append(a))
    res = CliRunner().invoke(app, ["bench", "cost-curve", "--sizes", "10000,100000", "--dim", "128", "--m", "16",
                                   "--queries", "900", "--steps", "7", "--batch", "32", "--nprobe", "4",
                                   "--out", "runs/x", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert calls == [([10000, 100000], 128, 16, 900, 7, 32, 4, "runs/x", 2, 200, 50_000, 0)]
