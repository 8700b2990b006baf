"""CLI: `rkd --help` is fast and torch-free; user errors print one line without a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RKD = [sys.executable, "-m", "retrieval_kd"]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RKD, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_help_lists_commands_without_importing_torch():
    code = "import sys; from retrieval_kd import cli; print('torch' in sys.modules, 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
    res = run("--help")
    assert res.returncode == 0
    for cmd in ("data", "teacher", "index", "train", "export", "eval", "bench", "demo", "search"):
        assert cmd in res.stdout


def test_user_error_is_one_line_without_traceback(tmp_path: Path):
    bad = tmp_path / "run.txt"
    bad.write_text("q1 Q0 d1 one 0.5 t extra\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    res = run("eval", "run", str(bad), "--qrels", str(qrels))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{bad}:1" in res.stderr and "6 columns" in res.stderr


def test_unknown_dataset_names_known_ones(tmp_path: Path):
    res = run("data", "prepare", "no-such-set", RKD_CACHE=str(tmp_path))
    assert res.returncode == 2 and "unknown dataset 'no-such-set'" in res.stderr and "Traceback" not in res.stderr


def test_mixture_commands_refuse_bad_input_in_one_line(tmp_path: Path):
    """`rkd eval cast-mix` names the option of a weight that is not a number, and the folder that is not a run;
    `rkd bench conversational` names a folder that is not a bundle."""
    res = run("eval", "cast-mix", str(tmp_path), "--weights", "0,half")
    assert res.returncode == 2 and "--weights: 'half' is not a number" in res.stderr and "Traceback" not in res.stderr
    res = run("eval", "cast-mix", str(tmp_path), "--alphas", "-1")
    assert res.returncode == 2 and "--alphas" in res.stderr and "Traceback" not in res.stderr
    res = run("eval", "cast-mix", str(tmp_path))
    assert res.returncode == 2 and f"{tmp_path}/meta.json: missing" in res.stderr and "Traceback" not in res.stderr
    res = run("bench", "conversational", str(tmp_path), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and str(tmp_path) in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
