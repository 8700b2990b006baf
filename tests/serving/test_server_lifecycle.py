"""Lifecycle (D7, D8): files damaged at run time turn /ready and the searches to 503 until restored; SIGTERM
drains (/ready 503 at once, new requests 503, requests in flight finish within the grace period), exit code 0."""
from __future__ import annotations

import http.client
import json
import signal
import threading
import time

import pytest
from fastapi.testclient import TestClient

from retrieval_kd.serving.process import ServerProcess, http_json
from server.app import create_app

URL = "/v1/indexes/cacm-slice"
HEAVY = [(f"word{i} " * 600)[:4000] for i in range(24)]
TEXT = {"query": "parallel sorting", "k": 3, "with_text": True}


@pytest.fixture
def private_copy(clone_bundle, replace_file):
    """A hard-linked bundle clone whose named files are private copies (safe to damage in place)."""
    b = clone_bundle()

    def own(rel: str):
        replace_file(b / rel, (b / rel).read_bytes())
        return b / rel

    return b, own


def test_d7_emptied_docstore_is_503_then_recovers(private_copy):
    b, own = private_copy
    store = own("docstore.sqlite")
    original = store.read_bytes()
    with TestClient(create_app([b]), raise_server_exceptions=False) as c:
        assert c.post(f"{URL}/search", json=TEXT).status_code == 200
        with open(store, "r+b") as fh:  # emptied in place while serving
            fh.truncate(0)
        first = c.post(f"{URL}/search", json=TEXT)
        assert first.status_code in (200, 503), first.text  # the page cache may still answer once; never 500
        ready = c.get("/ready")
        assert ready.status_code == 503 and "docstore.sqlite" in ready.json()["problems"]["cacm-slice"]
        assert not ready.json()["problems"]["cacm-slice"].startswith("/")  # no absolute path
        for _ in range(3):
            r = c.post(f"{URL}/search", json=TEXT)
            assert r.status_code == 503 and "docstore.sqlite" in r.json()["detail"] and r.headers["retry-after"]
        with open(store, "r+b") as fh:  # restored in place
            fh.write(original)
        assert c.get("/ready").status_code == 503 or True  # the 1 s readiness cache may still hold
        time.sleep(1.1)
        assert c.get("/ready").json() == {"status": "ready", "indexes": 1}
        again = c.post(f"{URL}/search", json=TEXT)
        assert again.status_code == 200 and all(h["text"] for h in again.json()["hits"])
        assert 'rkd_index_healthy{index="cacm-slice"} 1.0' in c.get("/metrics").text


def test_damaged_index_file_is_503_not_500(private_copy):
    b, own = private_copy
    index = own("index/index.faiss")
    data = bytearray(index.read_bytes())
    with TestClient(create_app([b]), raise_server_exceptions=False) as c:
        data[100] ^= 0xFF
        index.write_bytes(bytes(data))
        ready = c.get("/ready")
        assert ready.status_code == 503 and "index/index.faiss: sha256 mismatch" in ready.json()["problems"]["cacm-slice"]
        r = c.post(f"{URL}/search", json={"query": "sorting"})
        assert r.status_code == 503 and "index/index.faiss" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # alive, not ready
        assert 'rkd_index_healthy{index="cacm-slice"} 0.0' in c.get("/metrics").text


def _post(port: int, path: str, body: dict, timeout: float = 60.0) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def _in_background(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    return t, out


def _heavy_server(bundle, **env) -> ServerProcess:
    base = {"RKD_MAX_REQUEST_TOKENS": "100000", "RKD_REQUEST_TIMEOUT_S": "60", "RKD_MICROBATCH": "false"}
    return ServerProcess([bundle], env={**base, **env}).wait_ready()


def test_d8_sigterm_drains_then_exits_0(bundle):
    sp = _heavy_server(bundle, RKD_SHUTDOWN_GRACE_S="30", RKD_SHUTDOWN_DRAIN_S="1")
    try:
        heavy, out = _in_background(_post, sp.port, f"{URL}/search/batch", {"queries": HEAVY, "k": 5})
        time.sleep(0.5)  # the batch is running
        queued, out2 = _in_background(_post, sp.port, f"{URL}/search", {"query": "queued behind it", "k": 2})
        time.sleep(0.2)
        sp.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        status, body = http_json(sp.url + "/ready")
        assert status == 503 and body["status"] == "stopping"
        status, body, headers = _post(sp.port, f"{URL}/search", {"query": "new"})
        assert status == 503 and "shutting down" in body["detail"] and headers.get("connection") == "close"
        heavy.join(60)
        queued.join(60)
        assert out[0][0] == 200 and len(out[0][1]["results"]) == len(HEAVY)  # in flight: finished
        assert out2[0][0] == 200  # queued behind it: finished too
        assert sp.proc.wait(30) == 0
        assert "Traceback" not in sp.log() and "Exception in ASGI" not in sp.log()
    finally:
        sp.stop()


def test_d8_past_the_grace_period_requests_get_503_and_exit_is_0(bundle):
    sp = _heavy_server(bundle, RKD_SHUTDOWN_GRACE_S="0.3")
    try:
        heavy, out = _in_background(_post, sp.port, f"{URL}/search/batch", {"queries": HEAVY * 2, "k": 5})
        time.sleep(0.5)
        sp.proc.send_signal(signal.SIGTERM)
        heavy.join(60)
        assert out[0][0] == 503 and "shut down before the request finished" in out[0][1]["detail"]
        assert sp.proc.wait(30) == 0
        assert "Traceback" not in sp.log()
    finally:
        sp.stop()


def _keep_alive_client(port: int, stop: threading.Event, seen: list) -> None:
    """Small searches on one keep-alive connection until a 503 (as a load balancer would); records statuses, resets."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(2000):
        if stop.is_set():
            break
        try:
            conn.request("POST", f"{URL}/search", body=b'{"query": "hash tables", "k": 2}',
                         headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            seen.append(resp.status)
            if resp.status == 503:
                assert resp.getheader("connection", "").lower() == "close"
                break
        except ConnectionRefusedError:
            seen.append("refused")
            break
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError) as e:
            seen.append(type(e).__name__)
            break
    conn.close()


def test_d8_keep_alive_clients_see_200_then_503_never_a_reset(bundle):
    sp = ServerProcess([bundle]).wait_ready()
    stop, results = threading.Event(), [[] for _ in range(8)]
    threads = [threading.Thread(target=_keep_alive_client, args=(sp.port, stop, r)) for r in results]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        sp.proc.send_signal(signal.SIGTERM)
        assert sp.proc.wait(30) == 0
        stop.set()
        for t in threads:
            t.join(30)
        flat = [s for r in results for s in r]
        assert set(flat) <= {200, 503, "refused"}, sorted(set(map(str, flat)))
        assert all(r and r[0] == 200 and r[-1] in (503, "refused") for r in results), [r[-3:] for r in results]
    finally:
        stop.set()
        sp.stop()
