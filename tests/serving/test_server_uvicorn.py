"""A real uvicorn subprocess on a free loopback port: start, query over HTTP, stop."""
from __future__ import annotations

from retrieval_kd.serving.process import http_json, running_server, serve_once


def test_real_server_round_trip(bundle):
    from retrieval_kd.serving.bundle import open_bundle

    want = open_bundle(bundle).search_batch(["parallel sorting algorithms"], 5)[0]
    with running_server([bundle], env={"RKD_API_KEY": "k3y"}) as sp:
        assert sp.url.startswith("http://127.0.0.1:")
        assert http_json(sp.url + "/health")[0] == 200
        assert http_json(sp.url + "/v1/indexes")[0] == 401
        key = {"X-API-Key": "k3y"}
        status, body = http_json(sp.url + "/v1/indexes", headers=key)
        assert status == 200 and body["indexes"][0]["name"] == "cacm-slice"
        status, body = http_json(sp.url + "/v1/indexes/cacm-slice/search",
                                 {"query": "parallel sorting algorithms", "k": 5}, headers=key)
        assert status == 200 and [h["id"] for h in body["hits"]] == want.ids
        assert http_json(sp.url + "/v1/indexes/cacm-slice/search", {"query": "", "k": 5}, headers=key)[0] == 422
        status, metrics = http_json(sp.url + "/metrics")
        assert status == 200 and 'status="200"' in metrics
        proc = sp.proc
    assert proc.poll() is not None  # stopped (SIGTERM, graceful)


def test_serve_once(bundle):
    res = serve_once(bundle, "hash tables", k=2)
    assert res["index"] == "cacm-slice" and len(res["hits"]) == 2 and res["hits"][0]["text"]
