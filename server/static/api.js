// The HTTP API as the page uses it: the optional API key (kept in sessionStorage) and readable errors.

const KEY = "rkd.apiKey";
const HEADER = "X-API-Key";
const REASONS = {
  400: "Bad request", 401: "Unauthorized", 404: "Not found", 408: "Request timeout", 409: "Conflict",
  413: "Too large", 422: "Invalid request", 429: "Too many requests", 500: "Server error",
  503: "Unavailable", 504: "Timed out",
};

export class ApiError extends Error {
  constructor(status, title, detail, retryAfter) {
    super(`${status} ${title}: ${detail}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export function getKey() {
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch (e) {
    return "";  // storage blocked: work without a key
  }
}

export function setKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch (e) { /* storage blocked */ }
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch (e) { /* not JSON: keep the status line */ }
  const status = response.status;
  const title = body.title || response.statusText || REASONS[status] || "Error";
  let detail = typeof body.detail === "string" ? body.detail : "";
  if (!detail && Array.isArray(body.errors) && body.errors.length) detail = body.errors[0].msg || "";
  if (!detail) detail = "the server gave no reason";
  return new ApiError(status, title, detail, response.headers.get("Retry-After"));
}

// GET (no body) or POST JSON to `path`; resolves to the parsed body, rejects with an ApiError.
export async function api(path, body) {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers[HEADER] = key;
  const init = { headers, method: body === undefined ? "GET" : "POST" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "Network error", "the server could not be reached", null);
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// A number field's value as the API takes it: an integer when it is one, else the raw text (the server answers 422).
export function numberField(input, optional = false) {
  const raw = input.value.trim();
  if (raw === "") return optional ? undefined : raw;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

const box = () => document.getElementById("error");

export function showError(err) {
  const el = box();
  const status = err instanceof ApiError ? err.status : 0;
  const title = err instanceof ApiError ? (status ? `${status} ${err.title}` : err.title) : "Error";
  let detail = err instanceof ApiError ? err.detail : String(err && err.message ? err.message : err);
  if (status === 401) detail += " — enter the server's API key above.";
  if ((status === 429 || status === 503) && err.retryAfter) detail += ` — retry in ${err.retryAfter} s.`;
  el.querySelector(".error-title").textContent = title;
  el.querySelector(".error-detail").textContent = detail;
  el.dataset.status = String(status);
  el.hidden = false;
}

export function clearError() {
  const el = box();
  el.hidden = true;
  el.dataset.status = "";
  el.querySelector(".error-title").textContent = "";
  el.querySelector(".error-detail").textContent = "";
}
