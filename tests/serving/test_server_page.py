"""The search page's HTTP side (no browser: tests/browser drives it): `/` and its files need no key, carry a CSP
that allows this origin only, stay out of the OpenAPI; the search responses carry the timings the page shows."""
from __future__ import annotations

import re

from fastapi.testclient import TestClient

from server.app import create_app
from server.page import STATIC
from server.settings import ServerSettings


def test_page_and_files_without_key_api_with_it(bundle):
    with TestClient(create_app([bundle], ServerSettings(api_key="k"))) as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for name in ("app.js", "api.js", "render.js", "app.css"):
            r = c.get(f"/static/{name}")
            assert r.status_code == 200 and "connect-src 'self'" in r.headers["content-security-policy"], name
        missing = c.get("/static/nope.js")
        assert missing.status_code == 404 and "detail" in missing.json()
        assert c.get("/static/../app.py").status_code == 404
        assert c.get("/v1/indexes").status_code == 401
        assert not [p for p in c.get("/openapi.json").json()["paths"] if p == "/" or p.startswith("/static")]


def test_the_page_asks_nothing_of_another_origin():
    """No absolute URL to another host in the page's files (fonts, scripts, styles, images all local)."""
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I), path.name
        assert "@import" not in text and "@font-face" not in text


def test_page_off(bundle):
    with TestClient(create_app([bundle], ServerSettings(page=False))) as c:
        assert c.get("/").status_code == 404 and c.get("/static/app.js").status_code == 404


def test_search_responses_carry_stage_timings(bundle):
    with TestClient(create_app([bundle])) as c:
        body = c.post("/v1/indexes/cacm-slice/search", json={"query": "parallel sorting", "k": 3}).json()
        t = body["timings"]
        assert set(t) == {"encode_ms", "search_ms"} and all(v >= 0 for v in t.values())
        assert t["encode_ms"] + t["search_ms"] <= body["took_ms"]
