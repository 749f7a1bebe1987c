// The one way the apps reach the server: the public HTTP API, with the
// token kept in localStorage. Failures become ApiError with the problem's
// stable `code`, which the apps translate (i18n.js).

const TOKEN_KEY = "tandem.token";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail || "";
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
  for (const f of listeners) f(t);
}

/** Called with the new token (or null) whenever the session changes. */
export function onSession(f) {
  listeners.add(f);
}

/** A fresh key for an Idempotency-Key header or a chat client_id. */
export function freshKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Calls the API. `opts.idempotencyKey` sets the header (keep the same key
 * when retrying). Resolves to the parsed body (null for 204); rejects with
 * ApiError. A 401 on a call made with a token ends the session.
 */
export async function api(method, path, body, opts = {}) {
  const headers = {};
  const t = token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", String(e));
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const code = (data && data.code) || `http_${resp.status}`;
    if (resp.status === 401 && t && path !== "/auth/logout") setToken(null);
    throw new ApiError(resp.status, code, data && data.detail);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}, opts) => api("POST", path, body, opts);
export const put = (path, body, opts) => api("PUT", path, body, opts);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);

/** Uploads a picture (multipart, part `file`); resolves to the media object. */
export async function upload(file) {
  const form = new FormData();
  form.append("file", file);
  const resp = await fetch("/api/v1/media", {
    method: "POST",
    headers: { Authorization: `Bearer ${token()}` },
    body: form,
  });
  const data = await resp.json();
  if (!resp.ok) throw new ApiError(resp.status, data.code, data.detail);
  return data;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
