// Single transfers: each iteration POSTs one 1-unit transfer from the run's overdraft source to
// one of its 100 accounts. Thresholds on p99 and the error rate; teardown checks conservation.
//   k6 run --vus 64 --duration 30s loadtest/k6/transfers.js   (GATEWAY=http://host:port)
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { ACCOUNTS, GATEWAY, JSON_PARAMS, checkConservation, createAccounts, runId, thresholds, transferBody } from './lib.js';

const transfersCreated = new Counter('transfers_created');

export const options = { vus: 16, duration: '30s', thresholds: thresholds() };

export function setup() {
  const run = runId();
  return { run, accounts: createAccounts(run) };
}

export default function (data) {
  const n = exec.vu.iterationInInstance;
  const id = `${data.run}-v${exec.vu.idInTest}-${n}`;
  const dst = data.accounts[1 + ((n * 7 + exec.vu.idInTest) % ACCOUNTS)];
  const r = http.post(`${GATEWAY}/v1/transfers`, JSON.stringify(transferBody(id, data.accounts[0], dst, 1)), JSON_PARAMS);
  if (check(r, { 'transfer created (201)': (x) => x.status === 201 })) transfersCreated.add(1);
}

export function teardown(data) {
  checkConservation(data.accounts);
}
