// Batches: each iteration POSTs 100 transfers in one `POST /v1/transfers/batch` (not atomic),
// from the run's overdraft source to each of its 100 accounts. Every item must be `created`.
// Thresholds on p99 and the error rate; teardown checks conservation.
//   k6 run --vus 64 --duration 30s loadtest/k6/transfers-batch.js
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { ACCOUNTS, GATEWAY, JSON_PARAMS, checkConservation, createAccounts, runId, thresholds, transferBody } from './lib.js';

// Transfers per batch (the gateway allows up to 8190).
const BATCH = 100;
const transfersCreated = new Counter('transfers_created');
const itemsFailed = new Counter('batch_items_failed');

export const options = {
  vus: 16,
  duration: '30s',
  thresholds: thresholds({ batch_items_failed: ['count==0'] }),
};

export function setup() {
  const run = runId();
  return { run, accounts: createAccounts(run) };
}

export default function (data) {
  const base = `${data.run}-v${exec.vu.idInTest}-${exec.vu.iterationInInstance}`;
  const transfers = [];
  for (let k = 0; k < BATCH; k++) {
    transfers.push(transferBody(`${base}-${k}`, data.accounts[0], data.accounts[1 + (k % ACCOUNTS)], 1));
  }
  const r = http.post(`${GATEWAY}/v1/transfers/batch`, JSON.stringify({ transfers, atomic: false }), JSON_PARAMS);
  const ok = check(r, { 'batch answered 200': (x) => x.status === 200 });
  if (!ok) return;
  const results = r.json('results') || [];
  const created = results.filter((x) => x.result === 'created').length;
  transfersCreated.add(created);
  itemsFailed.add(results.length - created);
  check(results, { 'every batch item created': (x) => x.length === BATCH && created === BATCH });
}

export function teardown(data) {
  checkConservation(data.accounts);
}
