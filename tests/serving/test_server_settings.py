"""Settings that use the machine: workers x intra-op threads = the cores this process may use, unless set."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from retrieval_kd.utils import machine_cores
from server.app import create_app
from server.settings import ServerSettings


@pytest.fixture
def no_thread_env(monkeypatch):
    for var in ("RKD_THREADS", "RKD_WORKERS"):
        monkeypatch.delenv(var, raising=False)


def test_defaults_use_every_core(no_thread_env):
    cores = machine_cores()
    s = ServerSettings()
    assert s.runtime_workers * s.runtime_threads == cores and s.runtime_threads == 1
    assert ServerSettings(workers=1).runtime_threads == cores  # one worker: onnxruntime/faiss threads = the cores
    assert ServerSettings(threads=1).runtime_workers == cores
    assert (ServerSettings(threads=3, workers=2).runtime_threads, ServerSettings(threads=3, workers=2).runtime_workers) == (3, 2)


def test_the_sessions_and_pool_get_those_numbers(bundle, no_thread_env):
    cores = machine_cores()
    app = create_app([bundle], ServerSettings(workers=1))
    s = app.state.rkd.searchers["cacm-slice"]
    assert s.encoder.session.get_session_options().intra_op_num_threads == cores
    assert s.encoder.session.get_session_options().enable_cpu_mem_arena is False
    with TestClient(app) as c:
        assert c.post("/v1/indexes/cacm-slice/search", json={"query": "sorting", "k": 2}).status_code == 200
    app = create_app([bundle], ServerSettings(threads=1))
    assert app.state.rkd.executor._max_workers == cores
    assert app.state.rkd.searchers["cacm-slice"].encoder.session.get_session_options().intra_op_num_threads == 1
