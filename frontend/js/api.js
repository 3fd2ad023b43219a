// Every URL of the REST API and every fetch / EventSource lives here (TensorBoard's split):
// views ask for data, never build paths. Same-origin only: nothing leaves the server we came from.

const TOKEN_KEY = "normscope.token";

/** An API call that did not succeed: status 0 means the server could not be reached. */
export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

// A link like http://host/?token=abc#/run/x stores the token once and drops it from the URL.
const fromUrl = new URLSearchParams(location.search).get("token");
if (fromUrl) {
  setToken(fromUrl);
  history.replaceState(null, "", location.pathname + location.hash);
}

const enc = encodeURIComponent;

function query(params) {
  const q = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return q.length ? `?${q.map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&")}` : "";
}

function describe(status, body, path) {
  const detail = body?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
  return `${path} answered ${status}`;
}

async function request(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, null, `The NormScope server at ${location.host} cannot be reached (${err.message}).`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 300) };
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data, describe(res.status, data, path));
    err.retryAfter = Number(res.headers.get("Retry-After")) || null;
    throw err;
  }
  return data;
}

// Run statuses come from the catalog (their one home is normcore/frames.py), loaded before the
// first response that carries a status, so isActive / isTerminal can answer synchronously.
const statuses = { active: new Set(), terminal: new Set() };
let statusesLoaded = null;

function withStatuses(load) {
  statusesLoaded ??= request("/api/catalog").then((c) => {
    for (const s of c.statuses.active) statuses.active.add(s);
    for (const s of c.statuses.terminal) statuses.terminal.add(s);
  }).catch((err) => {
    statusesLoaded = null; // a failed load (no token yet, server down) is retried next time
    throw err;
  });
  return statusesLoaded.then(load);
}

/** The run (or claim run) is queued or running. */
export const isActive = (status) => statuses.active.has(status);
/** The run has ended: its status will not change again. */
export const isTerminal = (status) => statuses.terminal.has(status);

export const api = {
  health: () => request("/healthz"),
  catalog: () => request("/api/catalog"),
  runs: (status) => withStatuses(() => request(`/api/runs${query({ status })}`)),
  run: (id) => withStatuses(() => request(`/api/runs/${enc(id)}`)),
  createRun: (config) => request("/api/runs", { method: "POST", body: config }),
  cancelRun: (id) => request(`/api/runs/${enc(id)}/cancel`, { method: "POST" }),
  rerunRun: (id) => request(`/api/runs/${enc(id)}/rerun`, { method: "POST" }),
  deleteRun: (id) => request(`/api/runs/${enc(id)}`, { method: "DELETE" }),
  /** Just the fields a view draws, as columns over a step range (app/series.py). */
  series: (id, { fields, layers, fromStep, toStep, toSeq, points } = {}) =>
    request(`/api/runs/${enc(id)}/series${query({
      fields: fields?.join(","), layers: layers?.join(","), from_step: fromStep, to_step: toStep, to_seq: toSeq, points,
    })}`),
  frames: (id, { maxPoints, sinceSeq, layers } = {}) =>
    request(`/api/runs/${enc(id)}/frames${query({ max_points: maxPoints, since_seq: sinceSeq, layers })}`),

  /**
   * The live stream. EventSource cannot send headers, so a token travels as ?token=.
   * since_seq is the first seq we lack (the history we hold ends before it); the browser's own
   * Last-Event-ID takes over on reconnects.
   */
  events: (id, sinceSeq) =>
    new EventSource(`/api/runs/${enc(id)}/events${query({ token: getToken(), since_seq: sinceSeq > 0 ? sinceSeq : undefined })}`),

  claims: () => withStatuses(() => request("/api/claims")),
  claim: (id) => withStatuses(() => request(`/api/claims/${enc(id)}`)),
  runClaim: (id, quick = true) => request(`/api/claims/${enc(id)}/run`, { method: "POST", body: { quick } }),

  sweeps: () => withStatuses(() => request("/api/sweeps")),
  sweep: (id) => withStatuses(() => request(`/api/sweeps/${enc(id)}`)),
  createSweep: (body) => request("/api/sweeps", { method: "POST", body }),
  cancelSweep: (id) => request(`/api/sweeps/${enc(id)}/cancel`, { method: "POST" }),
  resumeSweep: (id) => request(`/api/sweeps/${enc(id)}/resume`, { method: "POST" }),
  deleteSweep: (id) => request(`/api/sweeps/${enc(id)}`, { method: "DELETE" }),
  sweepEvents: (id) => new EventSource(`/api/sweeps/${enc(id)}/events${query({ token: getToken() })}`),
  sweepCsvUrl: (id) => `/api/sweeps/${enc(id)}/summary.csv`,

  exportUrl: (id, format) => `/api/runs/${enc(id)}/export${query({ format })}`,
  // A new tab cannot send a header; the server takes ?token= on GET requests.
  reportUrl: (id) => `/api/runs/${enc(id)}/report.html${query({ token: getToken() })}`,

  /** Fetch a file route with the token header and hand it to the browser as a download. */
  async download(url, filename) {
    const token = getToken();
    const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (!res.ok) throw new ApiError(res.status, null, `${url} answered ${res.status}`);
    const blob = URL.createObjectURL(await res.blob());
    const a = Object.assign(document.createElement("a"), { href: blob, download: filename });
    a.click();
    setTimeout(() => URL.revokeObjectURL(blob), 10_000);
  },
};
