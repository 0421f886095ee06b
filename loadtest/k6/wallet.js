// Wallets, mixed reads and writes: setup funds 100 wallets (one atomic batch from the overdraft
// source); each iteration is a balance read (80 %) or a transfer of 1..100 units between two
// random wallets (20 %). Thresholds on p99 and the error rate; teardown checks conservation.
//   k6 run --vus 64 --duration 30s loadtest/k6/wallet.js
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { ACCOUNTS, GATEWAY, JSON_PARAMS, checkConservation, createAccounts, getParams, runId, setupPost, thresholds, transferBody } from './lib.js';

// Money given to each wallet, and the largest amount one transfer moves (a wallet runs dry only
// after thousands of unlucky transfers).
const FUNDING = 1000000;
const AMOUNT_MAX = 100;
const READ_PERCENT = 80;

export const options = {
  vus: 16,
  duration: '30s',
  thresholds: thresholds({ 'http_req_duration{op:read}': [`p(99)<${Number(__ENV.P99_MS || 500)}`] }),
};

export function setup() {
  const run = runId();
  const accounts = createAccounts(run);
  const transfers = accounts.slice(1).map((w, i) => transferBody(`${run}-fund${i}`, accounts[0], w, FUNDING));
  const r = setupPost('/v1/transfers/batch', { transfers, atomic: true }, 'fund the wallets');
  const failed = (r.json('results') || []).filter((x) => x.result === 'failed');
  if (failed.length > 0) throw new Error(`setup: funding failed: ${JSON.stringify(failed[0])}`);
  // Reads pass the funding's log index as `min_index` (read your writes): a follower that has not
  // applied it yet waits for it instead of answering 404 for a wallet it does not know.
  return { run, accounts, index: r.json('index') };
}

// Index (1..=ACCOUNTS) of a random wallet.
function walletIndex() {
  return 1 + Math.floor(Math.random() * ACCOUNTS);
}

export default function (data) {
  if (Math.random() * 100 < READ_PERCENT) {
    const r = http.get(`${GATEWAY}/v1/accounts/${data.accounts[walletIndex()]}?min_index=${data.index}`, getParams({
      tags: { op: 'read' },
    }));
    check(r, { 'balance read (200)': (x) => x.status === 200 });
    return;
  }
  const a = walletIndex();
  // Another wallet: a step of 1..ACCOUNTS-1 around the ring, so never the same one.
  const b = 1 + ((a - 1 + 1 + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
  const [from, to] = [data.accounts[a], data.accounts[b]];
  const id = `${data.run}-v${exec.vu.idInTest}-${exec.vu.iterationInInstance}`;
  const amount = 1 + Math.floor(Math.random() * AMOUNT_MAX);
  const r = http.post(`${GATEWAY}/v1/transfers`, JSON.stringify(transferBody(id, from, to, amount)), Object.assign({ tags: { op: 'transfer' } }, JSON_PARAMS));
  check(r, { 'transfer created (201)': (x) => x.status === 201 });
}

export function teardown(data) {
  checkConservation(data.accounts);
}
