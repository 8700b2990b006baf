"""`rkd quickstart`: a collection to a bundle with results.json, report.md and plots; `rkd report`; runs root."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from vq_data import cacm_slice

FAST = ["train.steps=40", "train.eval_every=20", "train.val_queries=50"]


@pytest.fixture(scope="module")
def no_query_run(tmp_path_factory) -> tuple[Path, dict]:
    """`rkd quickstart corpus.tsv` on 600 CACM documents and no queries at all, through every step."""
    from typer.testing import CliRunner

    from retrieval_kd.cli import app

    base = tmp_path_factory.mktemp("qs")
    tsv = base / "qs-noq.tsv"
    tsv.write_text("".join(f"{d['id']}\t{' '.join(d['contents'].split())}\n" for d in cacm_slice(600).corpus))
    out = base / "run"
    sets = [x for s in FAST for x in ("--set", s)]
    got = CliRunner().invoke(app, ["quickstart", str(tsv), "--out", str(out), "-q", *sets])
    assert got.exit_code == 0, got.output
    assert "importing" in got.output and "as tsv -> dataset 'qs-noq'" in got.output  # format guessed from the name
    return out, json.loads((out / "results.json").read_text())


def test_a_collection_without_queries_gets_teacher_recall_on_fresh_pseudo_queries(no_query_run):
    out, res = no_query_run
    for name in ["results.json", "report.md", "training.png", "recall_vs_bytes.png", "per_query.png",
                 "bundle/manifest.json", "index/meta.json"]:
        assert (out / name).is_file(), name
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["exact teacher (float32)"]["TR@10"] == 1.0
    dvq = res["rows"][-1]
    assert dvq["method"].startswith("Distill-VQ") and 0 < dvq["TR@10"] < 1
    assert all(r["nDCG@10"] == "" for r in res["rows"])  # not measured (no judged query), not a silent 0
    assert "no real queries" in res["notes"][0]
    assert set(res["timings"]) >= {"encode", "baselines", "distill", "bundle", "report", "total"}
    assert (out / "bundle").stat().st_mode & 0o755 == 0o755  # readable by others (umask 022)


def test_report_rerenders_from_results_json(no_query_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from retrieval_kd.cli import app

    out, res = no_query_run
    copy = tmp_path / "copy"
    shutil.copy(out / "results.json", tmp_path / "results.json")
    copy.mkdir()
    shutil.copy(out / "results.json", copy / "results.json")
    got = CliRunner().invoke(app, ["report", str(copy)])
    assert got.exit_code == 0, got.output
    text = (copy / "report.md").read_text()
    assert res["rows"][-1]["method"] in text and "wins" in text and "![training](training.png)" in text
    assert (copy / "per_query.png").stat().st_size > 1000
    stored = json.loads((copy / "results.json").read_text())
    assert "per-query TR@10" not in stored["rows"][-1]  # per-query values live once, under per_query


def test_report_of_a_folder_without_results_is_one_line(tmp_path):
    from retrieval_kd.bench.report import render
    from retrieval_kd.errors import RKDError

    with pytest.raises(RKDError, match="no results.json"):
        render(tmp_path)
    (tmp_path / "results.json").write_text('{"rows": [\n  1,,\n]}')
    with pytest.raises(RKDError, match=r"results.json:2: invalid JSON"):
        render(tmp_path)


def test_runs_paths_land_under_the_runs_root(tmp_path, monkeypatch):
    import typer

    from retrieval_kd.cli import app, with_runs_root
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.distill_vq.config import VQConfig
    from retrieval_kd.paths import run_path

    monkeypatch.setenv("RKD_RUNS", str(tmp_path / "root"))
    assert run_path("runs/a/b") == tmp_path / "root" / "a" / "b"
    assert run_path("mine/a") == Path("mine/a") and run_path("/abs/runs") == Path("/abs/runs")
    cfg = load_config(None, VQConfig, ["output_dir=runs/vq"])
    assert cfg.output_dir == str(tmp_path / "root" / "vq")  # configs' runs/... too
    build = with_runs_root(typer.main.get_command(app)).commands["index"].commands["build"]
    ctx = build.make_context("build", ["-d", "cacm", "-o", "runs/idx"])
    assert ctx.params["out"] == tmp_path / "root" / "idx"  # and every folder option of `rkd`


def test_teacher_encode_shards_then_assembles(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from retrieval_kd.cli import app

    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    ds = cacm_slice(40)
    ds.save(tmp_path / "ds")
    runner = CliRunner()
    counts = []
    for i in range(2):
        got = runner.invoke(app, ["teacher", "encode", "-d", str(tmp_path / "ds"), "--shard", f"{i}/2", "-q"])
        assert got.exit_code == 0, got.output
        counts.append(int(got.output.split("encoded ")[1].split()[0]))
    assert sum(counts) == len(set(ds.doc_texts)) and min(counts) > 0  # each distinct text once, split in two
    got = runner.invoke(app, ["teacher", "encode", "-d", str(tmp_path / "ds"), "-q"])
    assert got.exit_code == 0 and "docs (40, 384)" in got.output
    bad = runner.invoke(app, ["teacher", "encode", "-d", str(tmp_path / "ds"), "--shard", "2/2"])
    assert bad.exit_code != 0 and "--shard" in str(bad.exception or bad.output)
