"""Browser tests of the search page: real bundles served by a real uvicorn, the page driven by headless chromium.

Skips only where chromium or chromedriver cannot be found (`apt-get install chromium chromium-driver`; `.ci/run`
does it). Each module starts one server and one browser; every test then checks that the page asked nothing of
any origin but the server's (chrome's performance log). Screenshots go to a temporary folder, or to
$RKD_SCREENSHOTS (e.g. docs/screenshots) when set.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from page_helpers import DENSE, open_browser

from retrieval_kd.serving.process import REPO

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/lib/chromium-browser/chromedriver")


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chrome_paths() -> tuple[str, str]:
    """(chromium binary, chromedriver); skips when either is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    browser, driver = _find(BROWSERS), _find(DRIVERS)
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        pytest.skip(f"{missing} not found: apt-get install -y chromium chromium-driver (see .ci/run)")
    return browser, driver


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory) -> Path:
    """Where the screenshots go: $RKD_SCREENSHOTS (relative to the repository) or a temporary folder."""
    env = os.environ.get("RKD_SCREENSHOTS")
    if not env:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(env) if Path(env).is_absolute() else REPO / env
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def dense_bundles(tmp_path_factory) -> list[Path]:
    """Two dense bundles over the same 200 CACM documents (MiniLM): IVF8,Flat and IVF8,PQ8x4 (4 bytes a vector)."""
    import numpy as np
    from vq_data import cacm_slice

    from retrieval_kd.export.dense import build_bundle
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads(1)
    root = tmp_path_factory.mktemp("page-bundles")
    ds = cacm_slice(200)
    ds.save(root / "dataset")
    emb = np.asarray(encode_corpus(DenseEncoder(max_length=128), ds, show_progress=False))
    out = []
    for name, factory in DENSE.items():
        index = FaissIndex.build(emb, ds.doc_ids, factory, meta={"dataset": str(ds.path), "teacher": "minilm"})
        build_bundle(index.save(root / f"index-{name}"), root / name, name=name)
        out.append(root / name)
    return out


@pytest.fixture(scope="module")
def page(chrome_paths, server, shots_dir):
    """One browser per module on that module's `server` fixture."""
    p = open_browser(chrome_paths, server.url, shots_dir)
    try:
        yield p
    finally:
        p.driver.quit()


@pytest.fixture
def same_origin_only(page):
    """After the test: every request the page sent went to the server's origin (data: URLs allowed)."""
    start = len(page.requests)
    yield
    page.drain_requests()
    outside = [u for u in page.requests[start:] if not (u.startswith(page.url + "/") or u.startswith("data:"))]
    assert not outside, f"the page asked outside the server: {outside[:5]}"


@pytest.fixture(scope="session")
def conv_bundle(shared_data, tmp_path_factory) -> Path:
    """A DiSCo ("sparse-conversational") bundle: SPLADE-tiny as an untrained student over 48 cast-mini passages."""
    from retrieval_kd import datasets
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.errors import RKDError
    from retrieval_kd.export.conversational import build_conversational_bundle
    from retrieval_kd.methods.disco.student import SpladeStudent
    from retrieval_kd.threads import set_threads

    set_threads(1)
    root = tmp_path_factory.mktemp("page-conv")
    ds = datasets.load("cast-mini")
    sub = Dataset("cast-slice", ds.corpus[:16] + ds.corpus[235:251] + ds.corpus[429:445], meta=dict(ds.meta))
    sub.save(root / "dataset")
    try:
        student = SpladeStudent(device="cpu", max_length=128, segments=True)
    except RKDError as e:
        pytest.skip(str(e))
    build_conversational_bundle(student.save(root / "student"), root / "cast-disco", name="cast-disco",
                                dataset=str(sub.path))
    return root / "cast-disco"


@pytest.fixture(scope="session")
def med_bundle(shared_data, tiny_bert, tmp_path_factory) -> Path:
    """A Distill-Retrieve-Read ("medical") bundle: the tiny BERT tagger trained briefly on MedicineQA dialogues."""
    from retrieval_kd import datasets
    from retrieval_kd.export.medical import build_medical_bundle
    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.train import train_tagger
    from retrieval_kd.teachers.queries import dialogue_of, medicineqa_queries

    root = tmp_path_factory.mktemp("page-med")
    ds, mr = datasets.load("medicineqa"), datasets.load("medicineqa-multiround")
    teacher = medicineqa_queries(mr)
    train = [{"id": c["id"], "dialogue": dialogue_of(c), "queries": teacher[c["id"]]} for c in mr.conversations
             if c["variant"] == "pronoun" and teacher.get(c["id"])]
    cfg = TrainRewriterConfig(teachers=[], out=str(root / "tagger"), base=str(tiny_bert),
                              train={"epochs": 2, "batch_size": 16, "lr": 3e-3, "max_length": 64})
    tagger = train_tagger(cfg, train, root / "tagger", names=sorted({d["drug"] for d in ds.corpus}), log=lambda s: None)
    build_medical_bundle(tagger, root / "medicineqa-drr", name="medicineqa-drr", dataset="medicineqa",
                         tokenizer="zh-bigram")
    return root / "medicineqa-drr"
