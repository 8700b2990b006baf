"""`rkd bench|eval` recipes: real typer options (shown by --help, passed to the bench functions); eval/ scripts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval_kd.cli import app
from retrieval_kd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    """Run `rkd ARGS` in-process; the output without terminal colours."""
    res = CliRunner().invoke(app, list(args))
    res.plain = re.sub(r"\x1b\[[0-9;]*m", "", res.output)
    return res


@pytest.mark.parametrize(("command", "options"), [
    ("bench vq", ["--datasets", "--sizes", "--rows", "--nprobe", "--plot-sizes", "--seed", "--set", "--out",
                  "--threads"]),
    ("bench baselines", ["--datasets", "--factories", "--nprobe", "--out", "--threads"]),
    ("bench server", ["--index", "--out", "--duration", "--warmup", "--clients", "--inproc-seconds", "--no-int8",
                      "--rebuild"]),
    ("eval cast", ["--config", "--out", "--set", "--variants", "--reuse", "--no-bm25"]),
    ("eval medicineqa", ["--config", "--set"]),
])
def test_help_lists_the_options(command: str, options: list[str]):
    res = invoke(*command.split(), "--help")
    assert res.exit_code == 0, res.output
    for opt in options:
        assert re.search(rf"{re.escape(opt)}\b", res.plain), f"{command}: {opt} missing from\n{res.plain}"


def _record(monkeypatch, module: str, name: str) -> list:
    """Replace a bench function by one that records its arguments."""
    calls: list = []
    monkeypatch.setattr(f"retrieval_kd.bench.{module}.{name}", lambda *a, **k: calls.append((a, k)))
    return calls


def test_bench_baselines_defaults(monkeypatch):
    from retrieval_kd.bench.baselines import DATASETS, DEFAULT_FACTORIES

    calls = _record(monkeypatch, "baselines", "run_baselines")
    assert invoke("bench", "baselines").exit_code == 0
    assert calls == [((list(DATASETS), list(DEFAULT_FACTORIES), 8, "runs/bench_baselines", None), {})]


def test_bench_vq_options(monkeypatch):
    calls = _record(monkeypatch, "distill_vq", "run_distill_vq")
    res = invoke("bench", "vq", "--datasets", "med", "--sizes", "8", "--rows", "opq,listnet", "--plot-sizes", "",
                 "--set", "train.steps=30", "--set", "seed=1", "--out", "runs/x", "--threads", "2")
    assert res.exit_code == 0, res.output
    assert calls == [((["med"], [8], ["opq", "listnet"], 16, [], 0, ["train.steps=30", "seed=1"], "runs/x", 2), {})]


def test_bench_server_defaults(monkeypatch):
    calls = _record(monkeypatch, "server", "run_server_bench")
    assert invoke("bench", "server", "--no-int8").exit_code == 0
    assert calls == [((None, Path("runs/bench_server"), 30.0, 2.0, [1, 4, 16], 3.0, False, False), {})]


def test_eval_cast_passes_config_and_command(monkeypatch):
    calls = _record(monkeypatch, "cast", "run_cast")
    monkeypatch.chdir(REPO)
    res = invoke("eval", "cast", "--set", "train.epochs=1", "--variants", "human,union", "--reuse")
    assert res.exit_code == 0, res.output
    (cfg, out, variants, reuse, bm25, command), _ = calls[0]
    assert cfg.train.epochs == 1 and out == "runs/cast-bench" and variants == ["human", "union"]
    assert reuse and bm25
    assert command.endswith("cast --set train.epochs=1 --variants human,union --reuse")


def test_unknown_rows_and_variants_are_config_errors():
    res = invoke("bench", "vq", "--rows", "opq,nope")
    assert isinstance(res.exception, ConfigError) and "unknown rows: nope" in str(res.exception)
    res = invoke("eval", "cast", "--variants", "nope")
    assert isinstance(res.exception, ConfigError) and "unknown variant 'nope'" in str(res.exception)


def test_a_missing_config_given_on_the_command_line_is_an_error_not_the_defaults():
    res = invoke("eval", "cast", "--config", "missing.yaml")
    assert isinstance(res.exception, ConfigError) and "missing.yaml: config file not found" in str(res.exception)


def test_eval_recipe_runs_the_command():
    res = subprocess.run([sys.executable, "eval/baselines.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "python eval/baselines.py" in res.stdout
    for opt in ("--datasets", "--factories", "--nprobe", "--out", "--threads"):
        assert opt in res.stdout


def test_bench_vq_defaults_to_all_six_collections(monkeypatch):
    import retrieval_kd.bench.distill_vq as bench

    calls = []
    monkeypatch.setattr(bench, "run_distill_vq", lambda *a, **k: calls.append(a))
    res = invoke("bench", "vq")
    assert res.exit_code == 0 and calls[0][0] == ["cacm", "med", "cisi", "cranfield", "cf", "scifact"]
