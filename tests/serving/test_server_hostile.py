"""Hostile input never gets a 5xx (D1), metric labels stay bounded (D6), the OpenAPI tells the truth (D10)."""
from __future__ import annotations

import http.client
import json
import random

import pytest
from fastapi.testclient import TestClient

from retrieval_kd.serving.process import running_server
from server.app import create_app
from server.settings import ServerSettings

URL = "/v1/indexes/cacm-slice"
JSON = {"content-type": "application/json"}
# Raw bodies a JSON parser accepts unless told not to: NaN / Infinity anywhere, lone surrogates, overflow, bad UTF-8.
HOSTILE = [
    ('{"query": NaN}', "search"), ('{"query": "a", "k": Infinity}', "search"), ('{"query": "a", "k": -Infinity}', "search"),
    ('{"query": "a", "nprobe": NaN}', "search"), ('{"query": "a", "with_text": NaN}', "search"),
    ('{"query": "\\ud800"}', "search"), ('{"query": "ok \\udfff tail"}', "search"), ('{"\\ud800": 1, "query": "a"}', "search"),
    ('{"query": "a", "k": 1e400}', "search"), ('{"queries": ["a", NaN]}', "search/batch"),
    ('{"queries": ["a", "\\ud83d"]}', "search/batch"), ('{"queries": ["a"], "k": -Infinity}', "search/batch"),
    ('{"utterance": "\\ud800", "history": []}', "conversational_search"),
    ('{"dialogue": [{"role": "user", "text": "\\udc00"}]}', "distill_search"),
    ('{"query": "a", "k": 1' + "0" * 5000 + "}", "search"), ("[" * 100_000 + "]" * 100_000, "search"),
]


@pytest.fixture(scope="module")
def client(bundle):
    with TestClient(create_app([bundle]), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("body, route", HOSTILE)
def test_nan_infinity_and_surrogates_are_422_not_500(client, body, route):
    r = client.post(f"{URL}/{route}", content=body.encode(), headers=JSON)
    assert r.status_code == 422, (body[:60], r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert detail and "\n" not in detail and "Traceback" not in r.text


def test_invalid_utf8_and_wrong_content_types_are_4xx(client):
    assert client.post(f"{URL}/search", content=b'{"query": "\xff\xfe"}', headers=JSON).status_code == 422
    r = client.post(f"{URL}/search", content=b'{"query": "a"}', headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["detail"]


def test_422_does_not_echo_the_input(client):
    big = "x" * 900_000
    r = client.post(f"{URL}/search", content=json.dumps({"query": 5, big: 1}).encode(), headers=JSON)
    assert r.status_code in (413, 422) and len(r.content) < 4096, len(r.content)
    r = client.post(f"{URL}/search", json={"query": 5, "pad": "y" * 5000})
    assert r.status_code == 422 and "y" * 100 not in r.text and len(r.content) < 4096
    errors = r.json()["errors"]
    assert {tuple(e["loc"]) for e in errors} == {("body", "query"), ("body", "pad")}
    assert all(set(e) == {"loc", "msg", "type"} for e in errors)


def test_keep_alive_connection_survives_hostile_requests(bundle):
    """20 hostile then 20 valid requests on one keep-alive connection: every one answered, no reset (real uvicorn)."""
    with running_server([bundle]) as sp:
        conn = http.client.HTTPConnection("127.0.0.1", sp.port, timeout=30)
        statuses = []
        for body, route in (HOSTILE[:10] * 2)[:20] + [('{"query": "parallel sorting", "k": 3}', "search")] * 20:
            conn.request("POST", f"{URL}/{route}", body=body.encode(), headers=JSON)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            assert resp.getheader("connection", "").lower() != "close"
        conn.close()
        assert statuses == [422] * 20 + [200] * 20
        assert "Traceback" not in sp.log()


def test_integral_floats_are_integers(client):
    r = client.post(f"{URL}/search", json={"query": "sorting", "k": 3.0, "nprobe": 8.0})
    assert r.status_code == 200 and len(r.json()["hits"]) == 3
    for bad in (2.5, "3", True, None):
        assert client.post(f"{URL}/search", json={"query": "sorting", "k": bad}).status_code == 422, bad


def test_metric_labels_stay_bounded(client):
    """Random HTTP methods, paths and index names add no new series beyond the bounded label values."""
    rng = random.Random(0)
    for i in range(300):
        method = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(3, 12)))
        client.request(method, rng.choice(["/health", f"{URL}/search", f"/v1/indexes/n{i}/search", f"/x{i}"]))
    text = client.get("/metrics").text
    series = [ln for ln in text.splitlines() if ln.startswith("rkd_requests_total{")]
    assert 0 < len(series) <= 20, len(series)
    assert all('method="other"' in ln or 'method="GET"' in ln or 'method="POST"' in ln for ln in series)
    assert not any(f'"/x{i}"' in text or f'index="n{i}"' in text for i in range(300))


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_no_absolute_paths_and_health_counts_indexes(client):
    listing = client.get("/v1/indexes").json()
    assert listing["indexes"][0]["encoder"]["max_length"] == 256
    assert not [s for s in _strings(listing) if s.startswith(("/", "~"))]
    assert not [s for s in _strings(client.get(URL).json()) if s.startswith(("/", "~"))]
    assert client.get("/health").json() == {"status": "ok", "indexes": 1}


def test_openapi_documents_every_error_the_server_returns(client):
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "500" in codes, (path, method)
            if path.startswith("/v1"):
                assert {"400", "404", "409", "422", "503"} <= codes, (path, method, codes)
            if method == "post":
                assert {"408", "413", "429", "504"} <= codes, (path, method, codes)
                assert "Retry-After" in op["responses"]["429"]["headers"]
    assert spec["paths"]["/ready"]["get"]["responses"]["503"]
    assert "X-API-Key" not in json.dumps(spec) and "securitySchemes" not in spec.get("components", {})
    err = spec["components"]["schemas"]["ValidationProblem"]
    assert set(err["properties"]) == {"detail", "errors"}


def test_openapi_limits_follow_the_settings_and_key(bundle):
    settings = ServerSettings(api_key="k", max_k=50, max_batch=5, max_turns=3, max_query_bytes=100)
    with TestClient(create_app([bundle], settings)) as c:
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["SearchRequest"]["properties"]["k"]["maximum"] == 50
    assert schemas["SearchRequest"]["properties"]["query"]["maxLength"] == 100
    assert schemas["BatchSearchRequest"]["properties"]["queries"]["maxItems"] == 5
    assert schemas["RewriteRequest"]["properties"]["dialogue"]["maxItems"] == 3
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    assert "401" in spec["paths"]["/v1/indexes"]["get"]["responses"]
    assert "401" not in spec["paths"]["/metrics"]["get"]["responses"]


def test_metrics_behind_the_key_when_asked(bundle):
    with TestClient(create_app([bundle], ServerSettings(api_key="k", metrics_need_key=True))) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "k"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_docs_load_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 404
