// Shared helpers of the k6 scripts: the gateway URL, unique ids, account setup with bounded
// retries, and the conservation check run in every script's teardown.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

export const GATEWAY = (__ENV.GATEWAY || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const CURRENCY = 'USD';
// Destination accounts (or wallets) per run.
export const ACCOUNTS = 100;
// Threshold knobs: p99 latency in ms and the largest tolerated failed-request rate.
export const P99_MS = Number(__ENV.P99_MS || 500);
export const MAX_ERROR_RATE = Number(__ENV.MAX_ERROR_RATE || 0.01);
// Setup and check requests are retried (same ids: idempotent) at most this many times.
const SETUP_ATTEMPTS_MAX = 10;
const SETUP_RETRY_PAUSE_S = 0.3;

// The API key (`LEDGER_KEY`), sent as `Authorization: Bearer` by every request when set: a
// gateway in `--auth keys` asks for one with the scopes of the script.
export const AUTH = __ENV.LEDGER_KEY ? { Authorization: `Bearer ${__ENV.LEDGER_KEY}` } : {};
export const JSON_PARAMS = { headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH) };
// Parameters of a GET: its tags (and whatever else is given) plus the key.
export function getParams(extra) {
  return Object.assign({ headers: AUTH }, extra || {});
}

// Counts money that was not conserved; every script has the threshold `count==0` on it.
export const conservationViolations = new Counter('conservation_violations');

// The thresholds every script shares.
export function thresholds(extra) {
  return Object.assign(
    {
      http_req_failed: [`rate<${MAX_ERROR_RATE}`],
      http_req_duration: [`p(99)<${P99_MS}`],
      conservation_violations: ['count==0'],
      checks: ['rate>0.99'],
    },
    extra || {},
  );
}

// A prefix unique to this run: every id the run creates starts with it.
export function runId() {
  return `k6${Date.now().toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
}

// POSTs until a 2xx; 5xx and connection errors are retried, 4xx is fatal.
export function setupPost(path, body, what) {
  let last = '';
  for (let i = 0; i < SETUP_ATTEMPTS_MAX; i++) {
    const r = http.post(`${GATEWAY}${path}`, JSON.stringify(body), Object.assign({ tags: { phase: 'setup' } }, JSON_PARAMS));
    if (r.status >= 200 && r.status < 300) return r;
    last = `${r.status} ${r.body}`;
    if (r.status >= 400 && r.status < 500) break;
    sleep(SETUP_RETRY_PAUSE_S);
  }
  throw new Error(`setup: ${what} failed: ${last}`);
}

// Creates `<run>-src` (overdraft allowed) and ACCOUNTS accounts `<run>-a<i>`; returns their ids
// (source first).
export function createAccounts(run) {
  const ids = [`${run}-src`];
  for (let i = 0; i < ACCOUNTS; i++) ids.push(`${run}-a${i}`);
  ids.forEach((id, i) => {
    setupPost('/v1/accounts', { id, currency: CURRENCY, allow_overdraft: i === 0 }, `create account ${id}`);
  });
  return ids;
}

// One transfer's JSON object.
export function transferBody(id, debit, credit, amount) {
  return { id, debit_account_id: debit, credit_account_id: credit, amount, currency: CURRENCY };
}

// Reads every account back (linearizable) and checks that, per currency, balances sum to 0 and
// nothing is pending: what was debited was credited. Counts violations (threshold) and throws,
// so a violation can never pass unnoticed.
export function checkConservation(ids) {
  const sums = {};
  const problems = [];
  for (const id of ids) {
    let r = null;
    for (let i = 0; i < SETUP_ATTEMPTS_MAX; i++) {
      r = http.get(`${GATEWAY}/v1/accounts/${id}?consistency=strong`, getParams({ tags: { phase: 'check' } }));
      if (r.status < 500) break;
      sleep(SETUP_RETRY_PAUSE_S);
    }
    if (r.status !== 200) {
      problems.push(`account ${id}: ${r.status} ${r.body}`);
      continue;
    }
    const a = r.json();
    sums[a.currency] = (sums[a.currency] || 0) + a.balance;
    if (a.debits_pending !== 0 || a.credits_pending !== 0) problems.push(`account ${id}: pending money left`);
  }
  for (const [cur, sum] of Object.entries(sums)) {
    if (sum !== 0) problems.push(`currency ${cur}: balances sum to ${sum}, not 0`);
  }
  const ok = check(problems, { 'conservation: balances sum to zero per currency': (p) => p.length === 0 });
  if (!ok) {
    conservationViolations.add(problems.length);
    throw new Error(`conservation violated: ${problems.join('; ')}`);
  }
  console.log(`conservation OK: ${ids.length} accounts read back, balance sums ${JSON.stringify(sums)}`);
}
