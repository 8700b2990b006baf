"""Start-up checks: a corrupt, incomplete or wrong-version bundle stops the server with a message naming it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_kd.errors import BundleError, ConfigError
from server.app import create_app

REPO = Path(__file__).resolve().parents[2]


def _manifest(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def test_corrupt_file_names_it(clone_bundle, replace_file):
    b = clone_bundle()
    data = bytearray((b / "index" / "docids.txt").read_bytes())
    data[0] ^= 1  # same size, one bit changed
    replace_file(b / "index" / "docids.txt", bytes(data))
    with pytest.raises(BundleError, match=r"docids\.txt: sha256 mismatch"):
        create_app([b])


def test_truncated_file_names_it(clone_bundle, replace_file):
    b = clone_bundle()
    replace_file(b / "query_encoder.onnx", (b / "query_encoder.onnx").read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"query_encoder\.onnx: 1000 bytes, manifest says"):
        create_app([b])


def test_missing_file_names_it(clone_bundle):
    b = clone_bundle()
    (b / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json: missing"):
        create_app([b])


def test_required_file_not_listed(clone_bundle, replace_file):
    b = clone_bundle()
    m = _manifest(b)
    del m["files"]["docstore.sqlite"]
    replace_file(b / "manifest.json", json.dumps(m).encode())
    with pytest.raises(BundleError, match=r"needs file 'docstore\.sqlite'"):
        create_app([b])


@pytest.mark.parametrize("change, message", [
    ({"format_version": 99}, r"manifest\.json: format_version 99 is not supported"),
    ({"format_version": None}, r"format_version None"),
    ({"kind": "hologram"}, r"unknown bundle kind 'hologram'"),
    ({"name": "../evil"}, r"name '\.\./evil' must match"),
    ({"files": {"../../etc/passwd": {"sha256": "0"}}}, r"outside the bundle folder"),
])
def test_bad_manifest(clone_bundle, replace_file, change, message):
    b = clone_bundle()
    replace_file(b / "manifest.json", json.dumps({**_manifest(b), **change}).encode())
    with pytest.raises(BundleError, match=message):
        create_app([b])


def test_not_json_and_not_a_bundle(clone_bundle, replace_file, tmp_path):
    b = clone_bundle()
    replace_file(b / "manifest.json", b"{oops")
    with pytest.raises(BundleError, match=r"manifest\.json: invalid JSON"):
        create_app([b])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"manifest\.json: missing"):
        create_app([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no bundles"):
        create_app([])


def test_two_bundles_with_one_name(bundle):
    with pytest.raises(BundleError, match="already served"):
        create_app([bundle, bundle])


def test_cli_exits_2_with_the_message(clone_bundle):
    b = clone_bundle()
    (b / "docstore.sqlite").unlink()
    out = subprocess.run([sys.executable, "-m", "server", str(b), "--port", "1"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "docstore.sqlite: missing" in out.stderr and "Traceback" not in out.stderr


def test_server_never_imports_torch(bundle):
    """Importing the app, loading a bundle and answering a search leaves torch (and transformers) unloaded."""
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from server.app import create_app\n"
        f"c = TestClient(create_app([{str(bundle)!r}]))\n"
        "r = c.post('/v1/indexes/cacm-slice/search', json={'query': 'sorting', 'k': 2})\n"
        "assert r.status_code == 200, r.text\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
