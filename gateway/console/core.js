// Ledger console: the core that every page uses (API calls, the key, permissions, DOM helpers).
// Plain ES modules with no dependency and no build step; the gateway serves them from its binary.

/** Every rate and size the console keeps to (gateway/README.md, "Console"). */
export const LIMITS = Object.freeze({
  requestTimeoutMs: 15000, // one API call
  pollMs: 2000, // cluster, group, balance and metrics refresh
  topicPollMs: 5000, // a topic's end offsets (one request per partition)
  tailWaitMs: 1000, // a live tail's long poll
  tailMinGapMs: 250, // at most 4 tail fetches a second, even when records keep coming
  tailBatch: 50, // records per tail fetch
  tailKept: 200, // records a tail keeps on the page
  tailBacklog: 20, // records before the end a tail starts with
  chartWindowMs: 5 * 60 * 1000, // charts show the last 5 minutes
  chartPoints: 300, // points a chart series keeps
  pageSize: 20, // rows per page of history and lists
  searchLimit: 50, // accounts per search
  partitionsShown: 64, // partitions whose end offsets a topic page reads
});

// ---- JSON with exact big integers -------------------------------------------------------------
// Balances are 128-bit: a number beyond 2^53 is kept as a BigInt from its source text.

export function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

export function toJson(value, indent) {
  const s = JSON.stringify(value, (k, v) => (typeof v === 'bigint' ? `\u0000big:${v}` : v), indent);
  return s.replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

/** An amount typed by a person: digits only, as a Number when exact, else a BigInt. */
export function parseAmount(text, field) {
  const t = String(text).trim();
  if (!/^\d+$/.test(t)) throw new FormProblem(`${field} must be a whole number of minor units (digits only)`);
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : BigInt(t);
}

// ---- Problems ---------------------------------------------------------------------------------

/** An API error: the problem+json body, or what stood in for it. */
export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `http_${status}`;
    this.title = problem.title || '';
    this.detail = problem.detail || '';
    this.retryable = problem.retryable === true;
  }
}

/** A form the console refuses to send (checked before any request). */
export class FormProblem extends Error {
  constructor(detail) {
    super(detail);
    this.status = 0;
    this.code = 'invalid_input';
    this.title = 'Check the form';
    this.detail = detail;
  }
}

/** Whether the outcome of a failed write is unknown (it may have been applied): a retry with the
 *  same id is then the safe next step. */
export function outcomeUnknown(err) {
  return err.status === 0 || err.status === 408 || err.status >= 500;
}

/** The box that shows a problem: its code, status and detail, never swallowed. */
export function problemBox(err) {
  const status = err.status ? `HTTP ${err.status}` : 'no answer';
  return h(
    'div',
    { class: 'problem', role: 'alert', 'data-code': err.code || 'error' },
    h('strong', { class: 'problem-code' }, err.code || 'error'),
    ' ',
    h('span', { class: 'problem-status' }, `${status}${err.title ? ` · ${err.title}` : ''}`),
    h('p', { class: 'problem-detail' }, err.detail || String(err.message || err)),
  );
}

// ---- The API ----------------------------------------------------------------------------------

export const session = {
  key: sessionStorage.getItem('ledger.key') || '',
  me: null, // GET /v1/whoami
  // The highest `Ledger-Index` a write from this tab was answered with. Reads of the ledger pass it
  // as `min_index` (see `ownWrites`), so a page shown after a write never comes from a replica
  // that has not applied it yet: the gateway spreads reads over followers, which may lag.
  written: 0,
};

/** `min_index` for a read that must see this tab's own writes (undefined before the first). */
export const ownWrites = () => (session.written > 0 ? session.written : undefined);

/** One API call; throws an ApiProblem for anything but 2xx. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session.key) headers.Authorization = `Bearer ${session.key}`;
  let payload;
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    payload = toJson(body === undefined ? {} : body);
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), LIMITS.requestTimeoutMs);
  let res;
  let text;
  try {
    res = await fetch(path, { method, headers, body: payload, signal: ctrl.signal, cache: 'no-store' });
    text = await res.text();
  } catch (e) {
    const timedOut = e && e.name === 'AbortError';
    throw new ApiProblem(0, {
      code: timedOut ? 'timeout' : 'network_error',
      title: timedOut ? `No answer within ${LIMITS.requestTimeoutMs / 1000} s` : 'The gateway did not answer',
      detail: String((e && e.message) || e),
    });
  } finally {
    clearTimeout(timer);
  }
  const json = (res.headers.get('content-type') || '').includes('json');
  if (!res.ok) {
    let p = null;
    try {
      p = json ? parseJson(text) : null;
    } catch {
      p = null;
    }
    if (!p || typeof p !== 'object') p = { title: res.statusText, detail: text.slice(0, 500) };
    throw new ApiProblem(res.status, p);
  }
  const index = res.headers.get('ledger-index');
  if (method !== 'GET' && index && Number(index) > session.written) session.written = Number(index);
  return {
    status: res.status,
    body: json && text ? parseJson(text) : text,
    index,
    replayed: res.headers.get('idempotent-replayed') === 'true',
  };
}

/** Path segment encoding. */
export const seg = (s) => encodeURIComponent(String(s));

/** A query string from the defined values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---- Permissions (as the gateway's Caller::allows) ---------------------------------------------

export function can(scope) {
  const scopes = (session.me && session.me.scopes) || [];
  return scopes.some((s) => {
    if (s === 'admin' || s === scope) return true;
    if (!s.endsWith(':*')) return false;
    const p = s.slice(0, -1);
    return scope.startsWith(p) && !scope.slice(p.length).includes(':');
  });
}

// ---- DOM --------------------------------------------------------------------------------------

/** An element: attributes (`on*` are listeners) and children (text is always text, never HTML). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function table(headers, rows, attrs) {
  return h(
    'table',
    Object.assign({ class: 'grid' }, attrs || {}),
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows),
  );
}

export const fmtTime = (ms) => (ms === undefined || ms === null ? '—' : new Date(Number(ms)).toISOString().replace('T', ' ').replace('Z', ' UTC'));
export const link = (hash, text) => h('a', { href: hash }, text);

/** A fresh client-chosen id: `prefix` and 16 random hex digits. */
export function newId(prefix) {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
