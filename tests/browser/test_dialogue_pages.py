"""The search page's dialogue modes: DiSCo conversational search (chips of query terms) and Distill-Retrieve-Read
medical search (distilled queries, fused evidence), each against the API's own answers."""
from __future__ import annotations

import pytest

from retrieval_kd.serving.process import http_json, running_server

pytestmark = pytest.mark.usefixtures("same_origin_only")
CONV = ["I just had a breast biopsy for cancer. What are the most common types?",
        "Once it breaks out, how likely is it to spread?"]
MED = [("user", "我之前一直在吃逍遥丸。"), ("assistant", "明白，请问有什么可以帮您？"), ("user", "后来医生给我换成了保泰松片。"),
       ("assistant", "明白，请问有什么可以帮您？"), ("user", "老人可以吃这药吗？")]
REPLY_CHARS = 1000  # app.js: the top passage joins the history as the system's reply, cut to this


@pytest.fixture(scope="module")
def server(request):
    bundles = []
    for name in ("conv_bundle", "med_bundle"):
        try:
            bundles.append(request.getfixturevalue(name))
        except pytest.skip.Exception:
            pass  # that mode's tests skip on their own
    if not bundles:
        pytest.skip("neither dialogue bundle could be built (shared data missing)")
    with running_server(bundles) as sp:
        yield sp


def ids(page, css: str) -> list[str]:
    return [i.get_attribute("data-id") for i in page.all(f"{css} li.hit")]


def test_conversation_searches_each_turn_with_the_dialogue(page, server, conv_bundle):
    page.open("conversation")
    assert page.find("#conv-index").get_attribute("value") == "cast-disco"
    history = []
    for turn, utterance in enumerate(CONV, 1):
        page.type("#conv-utterance", utterance)
        assert page.submit("#conv-utterance", "mode-conversation") == "done", page.alert()
        status, want = http_json(f"{server.url}/v1/indexes/cast-disco/conversational_search",
                                 {"history": history, "utterance": utterance, "k": 10, "with_text": True})
        assert status == 200 and ids(page, "#conv-results") == [h["id"] for h in want["hits"]]
        chips = page.all("#conv-turns li.turn.user")[-1].find_elements("css selector", ".chip-term")
        assert [c.text for c in chips] == [t["term"] for t in want["query_terms"]] and chips
        assert len(page.all("#conv-turns li.turn.user")) == turn
        assert page.find("#conv-turns li.turn:last-child").get_attribute("class") == "turn system"
        history += [{"role": "user", "text": utterance}, {"role": "system", "text": want["hits"][0]["text"][:REPLY_CHARS]}]
    assert "encode" in page.find("#conv-timing").text and page.all("#conv-results mark")
    page.shot("conversational", 1500)
    page.find("#conv-reset").click()
    assert not page.all("#conv-turns li") and not page.all("#conv-results li")


def test_medical_dialogue_shows_queries_and_fused_evidence(page, server, med_bundle):
    from selenium.webdriver.support.ui import Select

    page.open("medical")
    dialogue = []
    for role, text in MED:
        Select(page.find("#med-role")).select_by_value(role)
        page.type("#med-text", text)
        assert page.submit("#med-text", "mode-medical") == "done", page.alert()
        dialogue.append({"role": role, "text": text})
    status, want = http_json(f"{server.url}/v1/indexes/medicineqa-drr/distill_search",
                             {"dialogue": dialogue, "k": 10, "with_text": True})
    assert status == 200 and want["queries"] == want["rewrite"].split("\n")
    assert [q.text for q in page.all("#med-queries li.query")] == want["queries"]
    assert ids(page, "#med-results") == [h["id"] for h in want["hits"]]
    assert [t.find_element("css selector", ".said").text for t in page.all("#med-turns li.turn")] == [t for _, t in MED]
    texts = [p.text for p in page.all("#med-results .hit-text")]
    assert all(texts)  # the evidence text of every hit
    marks = {m.text for m in page.all("#med-results mark")}
    assert marks and all(any(m in q for q in want["queries"]) for m in marks)
    assert "rewrite" in page.find("#med-timing").text
    page.shot("medical", 1400)


def test_plain_search_of_a_medical_bundle_offers_no_nprobe(page, server, med_bundle):
    page.open("search")
    assert page.find("#search-index").get_attribute("value") == "medicineqa-drr"
    assert not page.find("#search-nprobe-field").is_displayed()  # BM25: no IVF lists
    page.type("#search-query", "保泰松片")
    assert page.submit("#search-query", "mode-search") == "done", page.alert()
    status, want = http_json(f"{server.url}/v1/indexes/medicineqa-drr/search", {"query": "保泰松片", "k": 10})
    assert status == 200 and ids(page, "#search-results") == [h["id"] for h in want["hits"]]
    assert "保泰松片" in {m.text for m in page.all("#search-results mark")}
    assert page.find("#search-timing").text.split(" · ")[1].startswith("search ")  # no encoder: no encode time
