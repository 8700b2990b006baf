"""The manifest is a schema (D2, D3): every file it names stays inside the bundle and is hash-checked, every value
has its type and range, and each problem stops start-up with one line naming the field."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_kd.errors import BundleError
from retrieval_kd.serving.bundle import open_bundle
from retrieval_kd.serving.runtime import inside
from server.app import create_app

REPO = Path(__file__).resolve().parents[2]


def _edit(b: Path, replace_file, **sections) -> None:
    m = json.loads((b / "manifest.json").read_text())
    for section, values in sections.items():
        m[section] = {**(m.get(section) or {}), **values} if isinstance(values, dict) else values
    replace_file(b / "manifest.json", json.dumps(m).encode())


@pytest.mark.parametrize("file", ["../evil/other.onnx", "../../../../etc/passwd", "/etc/passwd",
                                  "index/../../x.onnx", "C:\\evil.onnx", ""])
def test_encoder_file_outside_the_bundle_is_refused(clone_bundle, replace_file, tmp_path, file):
    b = clone_bundle()
    evil = tmp_path / "evil"
    evil.mkdir()
    shutil.copyfile(b / "query_encoder.onnx", evil / "other.onnx")  # a loadable graph, were it ever loaded
    _edit(b, replace_file, encoder={"file": file})
    with pytest.raises(BundleError, match=r"manifest\.json: encoder\.file: .*(outside the bundle|valid string)") as e:
        create_app([b])
    assert "\n" not in str(e.value)


def test_encoder_file_not_listed_is_refused_so_every_opened_file_is_hashed(clone_bundle, replace_file):
    b = clone_bundle()
    shutil.copyfile(b / "query_encoder.onnx", b / "unlisted.onnx")
    _edit(b, replace_file, encoder={"file": "unlisted.onnx"})
    with pytest.raises(BundleError, match=r"encoder\.file: the bundle needs file 'unlisted\.onnx', not listed"):
        create_app([b])


@pytest.mark.parametrize("nprobe", [-5, 0, "abc", 2.5, True, 10**9])
def test_bad_nprobe_stops_start_up(clone_bundle, replace_file, nprobe):
    b = clone_bundle()
    _edit(b, replace_file, index={"nprobe": nprobe})
    with pytest.raises(BundleError, match=r"manifest\.json: index\.nprobe: ") as e:
        create_app([b])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("max_length, message", [
    ("abc", r"encoder\.max_length: Input should be a valid integer"), (100_000_000, r"encoder\.max_length: .*8192"),
    (0, r"encoder\.max_length: .*greater than or equal to 1"), (None, r"encoder\.max_length: "),
    (1000, r"max_length 1000 is over the tokenizer's model_max_length 512"),
])
def test_bad_max_length_stops_start_up(clone_bundle, replace_file, max_length, message):
    b = clone_bundle()
    _edit(b, replace_file, encoder={"max_length": max_length})
    with pytest.raises(BundleError, match=message) as e:
        create_app([b])
    assert "\n" not in str(e.value)


def test_max_length_the_graph_cannot_take_stops_start_up(clone_bundle, replace_file):
    """Without tokenizer_config.json's limit, the start-up probe (one max_length-token encode) still catches it."""
    b = clone_bundle()
    cfg = json.loads((b / "tokenizer_config.json").read_text())
    cfg.pop("model_max_length")
    replace_file(b / "tokenizer_config.json", json.dumps(cfg).encode())
    m = json.loads((b / "manifest.json").read_text())
    from retrieval_kd.utils import sha256_file

    m["files"]["tokenizer_config.json"] = {"sha256": sha256_file(b / "tokenizer_config.json"),
                                           "bytes": (b / "tokenizer_config.json").stat().st_size}
    m["encoder"]["max_length"] = 1000
    replace_file(b / "manifest.json", json.dumps(m).encode())
    with pytest.raises(BundleError, match=r"cannot encode max_length=1000 tokens"):
        create_app([b])


@pytest.mark.parametrize("change, message", [
    ({"files": {"a.txt": {"sha256": "not-hex"}}}, r"files\.a\.txt\.sha256: String should match pattern"),
    ({"files": {"a.txt": {"sha256": "0" * 64, "bytes": -1}}}, r"files\.a\.txt\.bytes: "),
    ({"docstore": {"file": "../docs.sqlite"}}, r"docstore\.file: .*outside the bundle"),
    ({"kind": 7}, r"kind: Input should be a valid string"),
    ({"name": ["x"]}, r"name: Input should be a valid string"),
])
def test_other_manifest_fields_are_typed(clone_bundle, replace_file, change, message):
    b = clone_bundle()
    m = json.loads((b / "manifest.json").read_text())
    replace_file(b / "manifest.json", json.dumps({**m, **change}).encode())
    with pytest.raises(BundleError, match=message):
        open_bundle(b)


def test_cli_reports_a_bad_value_in_one_line(clone_bundle, replace_file):
    b = clone_bundle()
    _edit(b, replace_file, encoder={"max_length": "abc"})
    out = subprocess.run([sys.executable, "-m", "server", str(b), "--port", "1"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "encoder.max_length" in out.stderr


def test_inside_refuses_escapes(tmp_path):
    (tmp_path / "enc").mkdir()
    assert inside(tmp_path / "enc", "model.onnx", "meta.json") == tmp_path / "enc" / "model.onnx"
    for bad in ("../x", "/etc/passwd", None, "", "a/../../b", "a\\b"):
        with pytest.raises(BundleError, match="meta.json: file"):
            inside(tmp_path / "enc", bad, "meta.json")


def test_searcher_opens_only_listed_files(bundle):
    s = open_bundle(bundle)
    assert s.file("index/index.faiss") == bundle / "index" / "index.faiss"
    with pytest.raises(BundleError, match="not listed"):
        s.file("manifest.json")
    with pytest.raises(BundleError, match="outside"):
        s.file("../cacm-slice/manifest.json")
    s.close()


def test_the_writer_refuses_an_invalid_manifest(tmp_path):
    from retrieval_kd.export.bundle import write_manifest

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "query_encoder.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"index\.nprobe: "):
        write_manifest(tmp_path / "b", kind="dense", name="b", encoder={"max_length": 16}, index={"nprobe": 0})
    assert not (tmp_path / "b" / "manifest.json").exists()
    write_manifest(tmp_path / "b", kind="dense", name="b", encoder={"max_length": 16}, index={"nprobe": 2})
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["index"]["nprobe"] == 2
