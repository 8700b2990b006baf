// The search page: four modes over the loaded indexes (search, compare, conversation, medical) + index info.
import { api, clearError, getKey, numberField, setKey, showError } from "./api.js";
import { el, matcher, renderChips, renderHits, renderInfo, snippet, termsOf, timingText } from "./render.js";

const $ = (id) => document.getElementById(id);
const state = { indexes: new Map(), info: new Map(), conv: [], med: [] };
const REPLY_CHARS = 1000;  // a system reply (the top passage) is cut to this before it joins the history
const path = (name, op) => `/v1/indexes/${encodeURIComponent(name)}${op ? `/${op}` : ""}`;

// Run `work` for a mode's section: busy while it runs, errors shown in the alert box.
async function run(section, work) {
  clearError();
  section.setAttribute("aria-busy", "true");
  section.dataset.status = "loading";
  try {
    await work();
    section.dataset.status = "done";
  } catch (err) {
    showError(err);
    section.dataset.status = "error";
  } finally {
    section.removeAttribute("aria-busy");
  }
}

async function timed(promise) {
  const t0 = performance.now();
  const res = await promise;
  return [res, performance.now() - t0];
}

function fillSelects() {
  for (const select of document.querySelectorAll("select[data-needs]")) {
    const able = [...state.indexes.values()].filter((i) => i.capabilities.includes(select.dataset.needs));
    const before = select.value;
    select.replaceChildren(...able.map((i) => new Option(`${i.name} (${i.kind})`, i.name)));
    if (!able.length) select.append(new Option("no index of this kind is loaded", ""));
    if (able.some((i) => i.name === before)) select.value = before;
    select.disabled = !able.length;
    const form = select.form;
    form.querySelector("button[type=submit]").disabled = !able.length;
  }
  const right = $("compare-right");
  if (right.options.length > 1 && right.value === $("compare-left").value) right.selectedIndex = 1;
}

async function loadIndexes() {
  try {
    const { indexes } = await api("/v1/indexes");
    state.indexes = new Map(indexes.map((i) => [i.name, i]));
    state.info.clear();
    fillSelects();
    updateNprobe();
    document.body.dataset.ready = "true";
    await showInfo();
  } catch (err) {
    showError(err);
    if (err.status === 401) $("api-key").focus();
    $("info-body").replaceChildren(el("p", "hint", "The indexes could not be listed."));
    document.body.dataset.ready = "error";
  }
}

function currentMode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function modeIndexes(mode) {
  const ids = { search: ["search-index"], compare: ["compare-left", "compare-right"], conversation: ["conv-index"],
    medical: ["med-index"] }[mode];
  return [...new Set(ids.map((id) => $(id).value).filter(Boolean))];
}

async function showInfo() {
  if (document.body.dataset.ready !== "true") return;
  const names = modeIndexes(currentMode());
  try {
    for (const name of names) {
      if (!state.info.has(name)) state.info.set(name, await api(path(name)));
    }
    renderInfo($("info-body"), names.map((n) => state.info.get(n)));
    if (!names.length) $("info-body").replaceChildren(el("p", "hint", "No index of this kind is loaded."));
  } catch (err) {
    showError(err);
  }
}

function setMode(mode, focus) {
  for (const section of document.querySelectorAll("section.mode")) section.hidden = section.dataset.mode !== mode;
  const radio = document.querySelector(`input[name=mode][value="${mode}"]`);
  if (radio) radio.checked = true;
  if (location.hash !== `#${mode}`) history.replaceState(null, "", `#${mode}`);
  if (focus) $(`mode-${mode}`).querySelector("input[type=search], input[type=text]").focus();
  showInfo();
}

function updateNprobe() {
  const info = state.indexes.get($("search-index").value);
  const ivf = Boolean(info && (info.nlist || info.default_nprobe));
  $("search-nprobe-field").hidden = !ivf;
  $("search-nprobe").placeholder = ivf && info.default_nprobe ? String(info.default_nprobe) : "";
  if (ivf && info.nlist) $("search-nprobe").max = String(info.nlist);
}

function searchBody(query, k, nprobeInput) {
  const body = { query, k, with_text: true };
  if (nprobeInput) {
    const nprobe = numberField(nprobeInput, true);
    if (nprobe !== undefined) body.nprobe = nprobe;
  }
  return body;
}

async function doSearch() {
  const name = $("search-index").value;
  const query = $("search-query").value;
  const nprobe = $("search-nprobe-field").hidden ? null : $("search-nprobe");
  const [res, ms] = await timed(api(path(name, "search"), searchBody(query, numberField($("search-k")), nprobe)));
  renderHits($("search-results"), res.hits, matcher(termsOf(query)));
  $("search-timing").textContent = `${res.hits.length} hits from ${res.index} · ${timingText(res, ms)}`;
}

function renderSide(side, name, res, ms, re, others) {
  side.querySelector("h3").textContent = name;
  side.querySelector(".timing").textContent = timingText(res, ms);
  renderHits(side.querySelector("ol"), res.hits, re, others);
}

async function doCompare() {
  const query = $("compare-query").value;
  const k = numberField($("compare-k"));
  const [left, right] = [$("compare-left").value, $("compare-right").value];
  const body = searchBody(query, k, null);
  const [[a, msA], [b, msB]] = await Promise.all([timed(api(path(left, "search"), body)),
    timed(api(path(right, "search"), body))]);
  const rankA = new Map(a.hits.map((h) => [h.id, h.rank]));
  const rankB = new Map(b.hits.map((h) => [h.id, h.rank]));
  const shared = a.hits.filter((h) => rankB.has(h.id)).length;
  const depth = Math.max(a.hits.length, b.hits.length);
  const re = matcher(termsOf(query));
  renderSide($("compare-left-side"), left, a, msA, re, rankB);
  renderSide($("compare-right-side"), right, b, msB, re, rankA);
  const out = $("compare-overlap");
  const value = el("strong", "", String(shared));
  value.id = "overlap-value";
  value.dataset.overlap = String(shared);
  out.replaceChildren(`overlap@${k}: `, value, ` of ${depth} documents in both lists` +
    (depth ? ` (${Math.round((100 * shared) / depth)}%)` : ""));
}

function renderTurns(list, turns) {
  list.replaceChildren();
  for (const turn of turns) {
    const item = el("li", `turn ${turn.role}`);
    const who = { user: turn.patient ? "Patient" : "You", system: "System", assistant: "Doctor" }[turn.role];
    item.append(el("span", "who", who), el("p", "said", turn.role === "system" ? snippet(turn.text, null, 280) : turn.text));
    if (turn.terms) renderChips(item, turn.terms);
    list.append(item);
  }
  if (turns.length) list.lastElementChild.scrollIntoView({ block: "nearest" });
}

async function doConversation() {
  const input = $("conv-utterance");
  const utterance = input.value;
  const history = state.conv.map(({ role, text }) => ({ role, text }));
  const body = { history, utterance, k: numberField($("conv-k")), with_text: true };
  const [res, ms] = await timed(api(path($("conv-index").value, "conversational_search"), body));
  const terms = res.query_terms || [];
  state.conv.push({ role: "user", text: utterance, terms });
  const top = res.hits.find((h) => h.text);
  if ($("conv-reply").checked && top) state.conv.push({ role: "system", text: top.text.slice(0, REPLY_CHARS) });
  renderTurns($("conv-turns"), state.conv);
  renderHits($("conv-results"), res.hits, matcher(termsOf(utterance, ...terms.map((t) => t.term))));
  $("conv-timing").textContent = `turn ${state.conv.filter((t) => t.role === "user").length} · ${timingText(res, ms)}`;
  input.value = "";
}

async function doMedical() {
  const input = $("med-text");
  const dialogue = [...state.med, { role: $("med-role").value, text: input.value }];
  const body = { dialogue, k: numberField($("med-k")), with_text: true };
  const [res, ms] = await timed(api(path($("med-index").value, "distill_search"), body));
  state.med = dialogue;
  renderTurns($("med-turns"), state.med.map((t) => ({ ...t, patient: true })));
  const queries = res.queries || String(res.rewrite || "").split("\n").filter(Boolean);
  $("med-queries").replaceChildren(...queries.map((q) => el("li", "query", q)));
  if (!queries.length) $("med-queries").append(el("li", "empty", "no query was distilled"));
  renderHits($("med-results"), res.hits, matcher(termsOf(...queries)));
  $("med-timing").textContent = timingText(res, ms);
  input.value = "";
}

function bindForm(formId, sectionId, work) {
  $(formId).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const query = $(formId).querySelector("input[required]");
    if (!query.value.trim()) {
      showError(new Error(`type ${query.labels[0].textContent.toLowerCase()} first`));
      query.focus();
      return;
    }
    run($(sectionId), work);
  });
}

function bindKey() {
  const input = $("api-key");
  const shown = () => { $("key-state").textContent = getKey() ? "key set for this tab" : ""; };
  input.value = getKey();
  shown();
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    shown();
    clearError();
    loadIndexes();
  });
  $("key-forget").addEventListener("click", () => {
    input.value = "";
    setKey("");
    shown();
    loadIndexes();
  });
}

function bindResets() {
  $("conv-reset").addEventListener("click", () => {
    state.conv = [];
    renderTurns($("conv-turns"), []);
    $("conv-results").replaceChildren();
    $("conv-timing").textContent = "";
  });
  $("med-reset").addEventListener("click", () => {
    state.med = [];
    for (const id of ["med-turns", "med-queries", "med-results"]) $(id).replaceChildren();
    $("med-timing").textContent = "";
  });
}

function init() {
  bindKey();
  bindResets();
  bindForm("search-form", "mode-search", doSearch);
  bindForm("compare-form", "mode-compare", doCompare);
  bindForm("conv-form", "mode-conversation", doConversation);
  bindForm("med-form", "mode-medical", doMedical);
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => setMode(radio.value, false));
  }
  for (const select of document.querySelectorAll("select[data-needs]")) select.addEventListener("change", showInfo);
  $("search-index").addEventListener("change", updateNprobe);
  const wanted = location.hash.slice(1);
  setMode(document.querySelector(`input[name=mode][value="${wanted}"]`) ? wanted : "search", false);
  loadIndexes();
}

init();
