"""The import contracts of pyproject.toml (import-linter) hold, and they fail when an arrow goes the wrong way."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed (pip install -e '.[dev]')")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(LINT.parent), "PYTHONPATH": str(root)})


def test_contracts_hold_on_the_tree():
    res = lint(REPO)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for name in ("retrieval_kd", "server"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "demo"))
    shutil.copyfile(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("path, line, contract", [
    ("server/app.py", "import torch", "server imports only the torch-free serving package"),
    ("server/routes.py", "from retrieval_kd.export.dense import build_bundle", "server imports only"),
    ("retrieval_kd/serving/runtime.py", "import transformers", "serving is torch-free"),
    ("retrieval_kd/data/dataset.py", "from retrieval_kd.teachers.dense import DenseEncoder", "data knows no model"),
    ("retrieval_kd/index/fusion.py", "from retrieval_kd.methods.drr.tagging import layout", "one direction"),
    ("retrieval_kd/methods/disco/trainer.py", "from retrieval_kd.methods.distill_vq.queries import pseudo_queries",
     "methods do not import each other"),
    ("retrieval_kd/cli.py", "import eval.medicineqa", "nothing imports the eval/ recipes or the app"),
])
def test_an_upward_arrow_breaks_its_contract(tree_copy: Path, path: str, line: str, contract: str):
    f = tree_copy / path
    f.write_text(f.read_text() + f"\n\ndef _arrow():\n    {line}  # noqa\n")
    res = lint(tree_copy)
    assert res.returncode != 0
    broken = res.stdout[res.stdout.index("Broken contracts"):] if "Broken contracts" in res.stdout else ""
    assert contract in " ".join(broken.split()), res.stdout[-2000:]
