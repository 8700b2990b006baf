"""The search page with two dense bundles behind an API key: search, compare, info panel, errors, keyboard, phone."""
from __future__ import annotations

import re
import urllib.request

import pytest
from page_helpers import DENSE

from retrieval_kd.serving.process import http_json, running_server

KEY = "page-k3y"
FLAT, PQ = list(DENSE)
QUERY = "parallel sorting algorithms"
STEMS = ("parallel", "sort", "algorithm")
pytestmark = pytest.mark.usefixtures("same_origin_only")
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys


@pytest.fixture(scope="module")
def server(dense_bundles):
    with running_server(dense_bundles, env={"RKD_API_KEY": KEY}) as sp:
        yield sp


def api(server, name: str, body: dict) -> dict:
    status, res = http_json(f"{server.url}/v1/indexes/{name}/search", body, headers={"X-API-Key": KEY})
    assert status == 200, res
    return res


def test_the_page_and_its_files_need_no_key(server):
    for path, ctype in (("/", "text/html"), ("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        with urllib.request.urlopen(server.url + path, timeout=10) as r:
            assert r.status == 200 and ctype in r.headers["Content-Type"]
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert http_json(server.url + "/v1/indexes")[0] == 401  # the API still needs it
    assert f"search page: {server.url}/" in server.log()  # what `rkd serve` prints once it listens


def test_without_the_key_the_page_says_so(page):
    page.open("search")
    assert page.find("#error").get_attribute("role") == "alert"
    assert "401" in page.alert() and "X-API-Key" in page.alert()


def test_a_wrong_key_then_the_right_one(page):
    page.open("search")
    page.type("#api-key", "not-the-key" + Keys.ENTER)
    _wait(page, lambda: "401" in page.alert() and "missing or wrong X-API-Key" in page.alert())
    page.type("#api-key", KEY + Keys.ENTER)
    _wait(page, lambda: len(page.all("#search-index option")) == 2 and not page.alert())
    assert page.driver.execute_script("return sessionStorage.getItem('rkd.apiKey')") == KEY


def _wait(page, cond, timeout: float = 15.0):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(page.driver, timeout).until(lambda d: cond())


def test_dense_search_shows_ranks_highlights_and_timings(page, server):
    page.open("search", key=KEY)
    assert page.find("#search-nprobe-field").is_displayed()  # IVF: nprobe offered
    page.type("#search-query", QUERY)
    page.type("#search-k", "5")
    assert page.submit("#search-query", "mode-search") == "done"
    want = api(server, FLAT, {"query": QUERY, "k": 5})
    items = page.all("#search-results li.hit")
    assert [i.get_attribute("data-id") for i in items] == [h["id"] for h in want["hits"]]
    assert [i.find_element("css selector", ".rank").text for i in items] == ["1", "2", "3", "4", "5"]
    marks = [m.text.lower() for m in page.all("#search-results mark")]
    assert marks and all(m.startswith(STEMS) for m in marks)
    timing = page.find("#search-timing").text
    assert re.search(r"encode [\d.]+ ms · search [\d.]+ ms · server [\d.]+ ms", timing), timing
    page.shot("dense")
    sent = page.drain_requests()
    assert f"{server.url}/static/app.js" in sent and f"{server.url}/v1/indexes/{FLAT}/search" in sent


def test_nprobe_is_sent(page, server):
    page.open("search", key=KEY)
    page.type("#search-query", QUERY)
    page.type("#search-nprobe", "1")
    assert page.submit("#search-query", "mode-search") == "done"
    want = api(server, FLAT, {"query": QUERY, "k": 10, "nprobe": 1})
    assert [i.get_attribute("data-id") for i in page.all("#search-results li.hit")] == [h["id"] for h in want["hits"]]


def test_info_panel_shows_the_manifest(page):
    page.open("search", key=KEY)
    _wait(page, lambda: page.all("#info-body .info-block"))
    facts = dict(zip([e.text for e in page.all("#info-body dt")], [e.text for e in page.all("#info-body dd")],
                     strict=True))
    assert facts["kind"] == "dense" and facts["factory"] == "IVF8,Flat" and facts["bytes / vector"] == "1536"
    assert facts["documents"] == "200" and "nDCG@10" in facts


def test_k_out_of_range_is_a_readable_422(page):
    page.open("search", key=KEY)
    page.type("#search-query", QUERY)
    page.type("#search-k", "5000")
    assert page.submit("#search-query", "mode-search") == "error"
    text = page.alert()
    assert text.startswith("422") and "body.k" in text and "1000" in text
    page.type("#search-k", "3")
    assert page.submit("#search-query", "mode-search") == "done" and not page.alert()


def test_over_a_limit_is_a_readable_413_and_busy_a_429(page):
    page.open("search", key=KEY)
    page.driver.execute_script("document.getElementById('search-query').value = 'é'.repeat(2100)")
    assert page.submit("#search-query", "mode-search") == "error"
    assert page.alert().startswith("413") and "query is 4200 bytes; the limit is 4096" in page.alert()
    # A full admission queue is hard to cause on purpose: answer the page's next call as the server would.
    page.driver.execute_script(
        "window.fetch = async () => new Response(JSON.stringify({detail: 'server busy: 256 queries admitted'}), "
        "{status: 429, statusText: 'Too Many Requests', headers: {'Retry-After': '3', "
        "'Content-Type': 'application/json'}})")
    page.type("#search-query", QUERY)
    assert page.submit("#search-query", "mode-search") == "error"
    assert page.alert() == "429 Too Many Requests\nserver busy: 256 queries admitted — retry in 3 s."


def test_compare_shows_the_overlap_of_the_two_answers(page, server):
    page.open("search", key=KEY)
    page.mode("compare")
    assert page.find("#compare-left").get_attribute("value") == FLAT
    assert page.find("#compare-right").get_attribute("value") == PQ
    page.type("#compare-query", QUERY)
    assert page.submit("#compare-query", "mode-compare") == "done"
    a, b = (api(server, n, {"query": QUERY, "k": 10}) for n in (FLAT, PQ))
    overlap = len({h["id"] for h in a["hits"]} & {h["id"] for h in b["hits"]})
    shown = page.find("#overlap-value")
    assert int(shown.get_attribute("data-overlap")) == overlap and shown.text == str(overlap)
    assert page.find("#compare-overlap").text.startswith(f"overlap@10: {overlap} of 10")
    for side, res, other in (("left", a, b), ("right", b, a)):
        items = page.all(f"#compare-{side}-side li.hit")
        assert [i.get_attribute("data-id") for i in items] == [h["id"] for h in res["hits"]]
        differs = {i.get_attribute("data-id") for i in items if "differs" in i.get_attribute("class").split()}
        assert differs == {h["id"] for h in res["hits"]} - {h["id"] for h in other["hits"]}
    assert len(page.all("#info-body .info-block")) == 2  # both indexes described
    page.shot("compare")


def test_keyboard_labels_and_tab_order(page):
    page.open("search", key=KEY)
    unlabelled = page.driver.execute_script(
        "return [...document.querySelectorAll('input, select')].filter(e => !e.labels || !e.labels.length)"
        ".map(e => e.id || e.name)")
    assert not unlabelled
    page.find("#search-query").click()
    page.find("#search-query").send_keys(Keys.TAB)
    assert page.driver.switch_to.active_element.get_attribute("id") == "search-index"
    outline = page.driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # a visible focus style


def test_phone_width_has_no_horizontal_overflow(page):
    page.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        page.open("compare", key=KEY)
        page.type("#compare-query", QUERY)
        page.type("#compare-k", "3")
        assert page.submit("#compare-query", "mode-compare") == "done"
        width = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        scroll, client = page.driver.execute_script(width)
        assert client == 390 and scroll <= client
        left, right = (page.find(f"#compare-{s}-side").rect for s in ("left", "right"))
        assert right["y"] >= left["y"] + left["height"]  # stacked, not side by side
        page.shot("phone")
        page.mode("search")
        page.type("#search-query", QUERY)
        assert page.submit("#search-query", "mode-search") == "done"
        assert page.driver.execute_script(width)[0] <= 390
    finally:
        page.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
