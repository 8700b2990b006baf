"""HTTP API through FastAPI's TestClient: results, limits (4xx, never 5xx), API key, reserved routes, metrics."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings

URL = "/v1/indexes/cacm-slice"


@pytest.fixture(scope="module")
def client(bundle):
    app = create_app([bundle], ServerSettings(max_query_bytes=2000, max_batch=8, max_k=500, max_body_bytes=10_000))
    with TestClient(app) as c:
        yield c


def test_search_and_text(client, bundle):
    from retrieval_kd.serving.bundle import open_bundle

    r = client.post(f"{URL}/search", json={"query": "parallel sorting algorithms", "k": 5, "with_text": True})
    assert r.status_code == 200, r.text
    body = r.json()
    want = open_bundle(bundle).search_batch(["parallel sorting algorithms"], 5)[0]
    assert [h["id"] for h in body["hits"]] == want.ids and [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    assert all(h["text"] for h in body["hits"]) and body["truncated"] is False
    plain = client.post(f"{URL}/search", json={"query": "parallel sorting algorithms", "k": 2}).json()
    assert "text" not in plain["hits"][0] and len(plain["hits"]) == 2


@pytest.mark.parametrize("body, status", [
    ({"query": ""}, 422), ({"query": "   \n"}, 422), ({"query": "a", "k": 0}, 422), ({"query": "a", "k": 1001}, 422),
    ({"query": "a", "k": 501}, 422), ({"query": "a", "k": "3"}, 422), ({"query": 7}, 422), ({"k": 3}, 422),
    ({"query": "a", "k": 2.5}, 422), ({"query": "a", "nprobe": 0}, 422), ({"query": "a", "with_text": "yes"}, 422),
    ({"query": "a", "extra": 1}, 422), ({"query": "é" * 1001}, 413), (["a"], 422), ("a", 422),
])
def test_search_limits(client, body, status):
    r = client.post(f"{URL}/search", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_long_query_is_truncated_not_rejected(client):
    r = client.post(f"{URL}/search", json={"query": "sort " * 300, "k": 3})  # 1,500 bytes, 302 tokens > 256
    assert r.status_code == 200 and r.json()["truncated"] is True


def test_bad_json_and_body_limits(client):
    assert client.post(f"{URL}/search", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 422
    assert client.post(f"{URL}/search", content=b"x" * 20_000, headers={"content-type": "application/json"}
                       ).status_code == 413
    # `curl -d` sends JSON labelled as a form: still read as JSON
    r = client.post(f"{URL}/search", content=b'{"query": "sorting", "k": 1}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and len(r.json()["hits"]) == 1


def test_unknown_and_hostile_index_names(client):
    for name in ("nope", "..", "..%2F..%2Fetc", "%2e%2e", "a" * 65):
        r = client.post(f"/v1/indexes/{name}/search", json={"query": "a"})
        assert r.status_code in (404, 422), (name, r.status_code)
    assert client.get("/v1/indexes/nope").status_code == 404
    assert client.get("/v1/indexes/../../etc/passwd").status_code == 404


def test_batch(client):
    r = client.post(f"{URL}/search/batch", json={"queries": ["parallel sorting", "compilers", "hash tables"], "k": 4})
    assert r.status_code == 200
    res = r.json()["results"]
    single = client.post(f"{URL}/search", json={"query": "compilers", "k": 4}).json()
    assert len(res) == 3 and [h["id"] for h in res[1]["hits"]] == [h["id"] for h in single["hits"]]
    assert client.post(f"{URL}/search/batch", json={"queries": ["a"] * 9}).status_code == 413
    assert client.post(f"{URL}/search/batch", json={"queries": []}).status_code == 422
    assert client.post(f"{URL}/search/batch", json={"queries": ["a", " "]}).status_code == 422
    assert client.post(f"{URL}/search/batch", json={"queries": "a"}).status_code == 422


def test_index_listing_and_ops(client):
    listing = client.get("/v1/indexes").json()["indexes"]
    assert [i["name"] for i in listing] == ["cacm-slice"] and listing[0]["kind"] == "dense"
    info = client.get(URL).json()
    assert info["capabilities"] == ["search"] and info["default_nprobe"] == 8 and info["documents"] > 0
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json() == {"status": "ready", "indexes": 1}
    text = client.get("/metrics").text
    assert 'rkd_requests_total{index="cacm-slice",method="POST",route="/v1/indexes/{name}/search",status="200"}' in text
    assert 'rkd_request_seconds_bucket{index="cacm-slice"' in text and "rkd_encoder_batch_queries" in text


def test_reserved_routes_answer_409_for_a_dense_bundle(client):
    turns = [{"role": "user", "text": "what is a compiler"}, {"role": "system", "text": "a translator"}]
    r = client.post(f"{URL}/conversational_search", json={"history": turns, "utterance": "how fast?", "k": 3})
    assert r.status_code == 409 and "sparse-conversational" in r.json()["detail"]
    r = client.post(f"{URL}/distill_search", json={"dialogue": turns, "k": 3})
    assert r.status_code == 409 and "medical" in r.json()["detail"]
    r = client.post("/v1/rewrite", json={"dialogue": turns})
    assert r.status_code == 409 and "medical" in r.json()["detail"]
    bad_role = [{"role": "doctor", "text": "x"}]
    assert client.post("/v1/rewrite", json={"dialogue": bad_role}).status_code == 422
    assert client.post(f"{URL}/conversational_search", json={"utterance": ""}).status_code == 422


def test_api_key(bundle):
    app = create_app([bundle], ServerSettings(api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/v1/indexes").status_code == 401
        assert c.post(f"{URL}/search", json={"query": "a"}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post(f"{URL}/search", json={"query": "a"}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200


@pytest.mark.parametrize("microbatch", [True, False])
def test_concurrent_requests_are_micro_batched(bundle, microbatch):
    """32 concurrent requests: same hits as one-by-one; with micro-batching some encoder calls carry > 1 query."""
    app = create_app([bundle], ServerSettings(microbatch=microbatch, microbatch_wait_ms=5.0))
    queries = [f"{w} algorithms" for w in ("sorting", "parallel", "numerical", "list", "matrix", "hash", "tree",
                                           "graph")] * 4

    async def run() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rs = await asyncio.gather(*(c.post(f"{URL}/search", json={"query": q, "k": 3 + i % 3})
                                        for i, q in enumerate(queries)))
            metrics = (await c.get("/metrics")).text
        assert all(r.status_code == 200 for r in rs)
        return [r.json() for r in rs], metrics

    results, metrics = asyncio.run(run())
    with TestClient(app) as c:
        for i, (q, res) in enumerate(zip(queries, results, strict=True)):
            one = c.post(f"{URL}/search", json={"query": q, "k": 3 + i % 3}).json()
            assert [h["id"] for h in res["hits"]] == [h["id"] for h in one["hits"]]
    calls = [ln for ln in metrics.splitlines() if ln.startswith("rkd_encoder_batch_queries_count")]
    n_calls = float(calls[0].split()[-1])
    assert (n_calls < len(queries)) if microbatch else (n_calls == len(queries))
