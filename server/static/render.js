// DOM building for the page: highlighted hits, query-term chips, timings and the index info panel.
// Document text is only ever inserted as text nodes (never as HTML).

const STOP = new Set(("a an and are as at be but by can do does for from had has have how i if in into is it its " +
  "me my no not of on or our so than that the their them then there these they this to was we were what when " +
  "where which who why will with you your").split(" "));
const CJK = /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]/u;
const SNIPPET = 600;  // characters of a document shown per hit

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Lower-case, de-duplicated terms of some texts (stopwords, one-letter words and "##" word-piece tails left out).
export function termsOf(...texts) {
  const seen = new Set();
  for (const text of texts) {
    for (const raw of String(text || "").toLowerCase().split(/[^\p{L}\p{N}#]+/u)) {
      if (raw.startsWith("##")) continue;  // a piece of a word, not a word
      const term = raw.replace(/#+/g, "");
      if (term.length >= 2 && !STOP.has(term)) seen.add(term);
    }
  }
  return [...seen];
}

function stem(term) {
  for (const suffix of ["ing", "ies", "es", "ed", "s"]) {
    if (term.length - suffix.length >= 4 && term.endsWith(suffix)) return term.slice(0, -suffix.length);
  }
  return term;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const WORD_START = "(?<![\\p{L}\\p{N}])";
const WORD_END = "(?![\\p{L}\\p{N}])";

// The pattern of one term: (CJK) the term anywhere; a word starting with its stem (4+ letters); else the word.
function pattern(term) {
  if (CJK.test(term)) return escape(term);
  const root = stem(term);
  return root.length >= 4 ? `${WORD_START}${escape(root)}[\\p{L}\\p{N}]*` : `${WORD_START}${escape(term)}${WORD_END}`;
}

// One regular expression matching every term (longest patterns first).
export function matcher(terms) {
  const parts = terms.map(pattern);
  if (!parts.length) return null;
  parts.sort((a, b) => b.length - a.length);
  return new RegExp(parts.join("|"), "giu");
}

// Append `text` to `parent` with each match of `re` wrapped in <mark>.
export function appendHighlighted(parent, text, re) {
  if (!re) {
    parent.append(text);
    return;
  }
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (!m[0]) continue;
    parent.append(text.slice(last, m.index), el("mark", "", m[0]));
    last = m.index + m[0].length;
  }
  parent.append(text.slice(last));
}

// At most SNIPPET characters of `text`, starting a little before the first match when that lies further on.
export function snippet(text, re, size = SNIPPET) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  if (flat.length <= size) return flat;
  let start = 0;
  if (re) {
    re.lastIndex = 0;
    const first = flat.search(re);
    if (first > size * 0.6) start = Math.max(0, flat.lastIndexOf(" ", first - 120) + 1);
  }
  const cut = flat.slice(start, start + size);
  return (start ? "… " : "") + cut + (start + size < flat.length ? " …" : "");
}

// Fill `list` with one item per hit; `others` (optional) maps doc id to its rank on the other side of a compare.
export function renderHits(list, hits, re, others) {
  list.replaceChildren();
  if (!hits.length) {
    list.append(el("li", "empty", "No results."));
    return;
  }
  for (const hit of hits) {
    const item = el("li", "hit");
    item.dataset.id = hit.id;
    item.dataset.rank = String(hit.rank);
    const head = el("div", "hit-head");
    head.append(el("span", "rank", hit.rank), el("span", "docid", hit.id),
      el("span", "score", `score ${formatScore(hit.score)}`));
    if (others) {
      const there = others.get(hit.id);
      if (there === undefined) {
        item.classList.add("differs");
        head.append(el("span", "badge only", "only here"));
      } else {
        head.append(el("span", "badge both", `#${there} there`));
      }
    }
    const body = el("p", "hit-text");
    appendHighlighted(body, snippet(hit.text, re), re);
    item.append(head, body);
    list.append(item);
  }
}

function formatScore(score) {
  return Math.abs(score) >= 100 ? score.toFixed(1) : score.toFixed(4);
}

// Query-term chips: each term with its weight.
export function renderChips(container, terms) {
  const list = el("ul", "chips");
  list.setAttribute("aria-label", "top weighted query terms");
  for (const { term, weight } of terms || []) {
    const chip = el("li", "chip");
    chip.append(el("span", "chip-term", term), el("span", "chip-weight", weight.toFixed(2)));
    chip.title = `weight ${weight}`;
    list.append(chip);
  }
  container.append(list);
}

function formatMs(ms) {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

// "encode 3.10 ms · search 0.42 ms · server 5.20 ms · round trip 9.8 ms"
export function timingText(res, roundTripMs) {
  const t = res.timings || {};
  const parts = [];
  for (const [key, label] of [["encode_ms", "encode"], ["rewrite_ms", "rewrite"], ["search_ms", "search"]]) {
    if (typeof t[key] === "number") parts.push(`${label} ${formatMs(t[key])} ms`);
  }
  if (typeof res.took_ms === "number") parts.push(`server ${formatMs(res.took_ms)} ms`);
  if (roundTripMs !== undefined) parts.push(`round trip ${formatMs(roundTripMs)} ms`);
  return parts.join(" · ") + (res.truncated ? " · query cut at the encoder's token limit" : "");
}

const INFO_ROWS = [
  ["kind", (i) => i.kind],
  ["capabilities", (i) => (i.capabilities || []).join(", ")],
  ["documents", (i) => i.documents],
  ["factory", (i) => i.index && i.index.factory],
  ["index type", (i) => i.index && i.index.type],
  ["metric", (i) => i.index && i.index.metric],
  ["bytes / vector", (i) => i.index && i.index.bytes_per_vector],
  ["dim", (i) => i.index && i.index.dim],
  ["nlist", (i) => i.nlist ?? (i.index && i.index.nlist)],
  ["default nprobe", (i) => i.default_nprobe ?? (i.index && i.index.nprobe)],
  ["vectors", (i) => i.ntotal],
  ["vocabulary", (i) => i.vocab_size],
  ["postings", (i) => i.n_postings],
  ["encoder", (i) => encoderText(i.encoder)],
  ["fusion", (i) => i.retrieval && i.retrieval.fusion],
  ["depth", (i) => i.retrieval && i.retrieval.depth],
  ["created", (i) => i.created],
];

function encoderText(enc) {
  if (!enc) return null;
  const bits = [enc.precision, enc.pooling && `${enc.pooling} pooling`, enc.dim && `dim ${enc.dim}`,
    enc.max_length && `${enc.max_length} tokens`];
  return bits.filter(Boolean).join(", ") || null;
}

function flatten(obj, prefix, out) {
  for (const [key, value] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value)) flatten(value, name, out);
    else if (value !== null && value !== undefined) out.push([name, value]);
  }
  return out;
}

// Leave out "group.key" rows equal to the top-level "key" row (e.g. fp32.nDCG@10 when nDCG@10 is the fp32 one).
function dedupe(rows) {
  const top = new Map(rows.filter(([name]) => !name.includes(".")).map(([name, v]) => [name, v]));
  return rows.filter(([name, v]) => !name.includes(".") || top.get(name.slice(name.lastIndexOf(".") + 1)) !== v);
}

function dl(rows, className) {
  const list = el("dl", className);
  for (const [name, value] of rows) {
    const shown = typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : String(value);
    list.append(el("dt", "", name), el("dd", "", shown));
  }
  return list;
}

// The info panel: one block per index (name, kind, factory string, bytes per vector, metrics as built, ...).
export function renderInfo(container, infos) {
  container.replaceChildren();
  for (const info of infos) {
    const block = el("section", "info-block");
    block.dataset.index = info.name;
    block.append(el("h3", "", info.name));
    const rows = INFO_ROWS.map(([name, get]) => [name, get(info)])
      .filter(([, v]) => v !== null && v !== undefined && v !== "");
    block.append(dl(rows, "facts"));
    const metrics = dedupe(flatten(info.metrics, "", []));
    if (metrics.length) {
      block.append(el("h4", "", "Metrics (measured at build time)"), dl(metrics, "metrics"));
    }
    container.append(block);
  }
}

export { el };
