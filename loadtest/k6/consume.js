// A consumer-group member loop on the `ledger` topic (the route contract of issue 6): each VU
// joins the run's group (auto_offset_reset latest), and each iteration posts one transfer (so
// ledger events flow), fetches records (long poll), commits the next offsets, heartbeats when
// its interval has passed, and every LEAVE_EVERY iterations leaves and joins again (a
// rebalance). Thresholds on p99 and the error rate; teardown removes the members left and checks
// conservation of the money moved.
//   k6 run --vus 4 --duration 30s loadtest/k6/consume.js
import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { ACCOUNTS, GATEWAY, JSON_PARAMS, checkConservation, createAccounts, getParams, runId, thresholds, transferBody } from './lib.js';

const TOPIC = 'ledger';
const SESSION_TIMEOUT_MS = 10000;
const MAX_RECORDS = 100;
const WAIT_MS = 100;
// Iterations between a member's leave and its next join.
const LEAVE_EVERY = 25;
// Pause after a failed join.
const JOIN_RETRY_PAUSE_S = 0.2;
// Members removed in teardown, at most.
const TEARDOWN_MEMBERS_MAX = 1000;

const recordsConsumed = new Counter('records_consumed');
const commitsFenced = new Counter('commits_fenced');

// Answers that are the protocol working, not failures: a commit fenced by a rebalance (409), a
// heartbeat or fetch of a member that was expired (404: join again).
const COMMIT_ANSWERS = http.expectedStatuses(204, 409);
const MEMBER_ANSWERS = http.expectedStatuses(200, 404);

export const options = {
  vus: 4,
  duration: '30s',
  thresholds: thresholds({ records_consumed: ['count>0'] }),
};

const joinBody = JSON.stringify({ topics: [TOPIC], session_timeout_ms: SESSION_TIMEOUT_MS, auto_offset_reset: 'latest' });

// This VU's membership: { id, generation, every_ms, last_hb, iterations, commit: {"topic/partition": next} }.
let member = null;

function groupPath(data) {
  return `${GATEWAY}/v1/groups/${data.group}`;
}

export function setup() {
  const run = runId();
  const group = `${run}-group`;
  // Probe the group routes once, so a gateway without them fails with one clear message.
  const r = http.post(`${GATEWAY}/v1/groups/${group}/members`, joinBody, JSON_PARAMS);
  if (r.status === 404 && (r.json('code') || '') === 'not_found') {
    throw new Error('the gateway has no consumer-group routes: POST /v1/groups/{group}/members answered 404 not_found (issue 6)');
  }
  if (r.status !== 201) throw new Error(`setup: join failed: ${r.status} ${r.body}`);
  http.del(`${GATEWAY}/v1/groups/${group}/members/${r.json('member_id')}`, null, JSON_PARAMS);
  return { run, group, accounts: createAccounts(run) };
}

function join(data) {
  const r = http.post(`${groupPath(data)}/members`, joinBody, Object.assign({ tags: { op: 'join' } }, JSON_PARAMS));
  if (!check(r, { 'joined (201)': (x) => x.status === 201 })) {
    sleep(JOIN_RETRY_PAUSE_S);
    return;
  }
  const b = r.json();
  member = {
    id: b.member_id,
    generation: b.generation,
    every_ms: b.heartbeat_interval_ms || SESSION_TIMEOUT_MS / 3,
    last_hb: Date.now(),
    iterations: 0,
    commit: {},
  };
}

function heartbeat(data) {
  const r = http.post(`${groupPath(data)}/members/${member.id}/heartbeat`, null, Object.assign({ tags: { op: 'heartbeat' }, responseCallback: MEMBER_ANSWERS }, JSON_PARAMS));
  if (r.status === 404) {
    member = null; // expired: join again next iteration
    return;
  }
  if (check(r, { 'heartbeat (200)': (x) => x.status === 200 })) {
    member.generation = r.json('generation');
    member.last_hb = Date.now();
    // Offsets of partitions that moved are the new owner's to commit (ours would be fenced).
    const owned = new Set((r.json('assignments') || []).map((a) => `${a.topic}/${a.partition}`));
    for (const key of Object.keys(member.commit)) if (!owned.has(key)) delete member.commit[key];
  }
}

export default function (data) {
  if (member === null) {
    join(data);
    if (member === null) return;
  }
  member.iterations++;
  const n = exec.vu.iterationInInstance;
  const id = `${data.run}-v${exec.vu.idInTest}-${n}`;
  const dst = data.accounts[1 + ((n * 7 + exec.vu.idInTest) % ACCOUNTS)];
  const t = http.post(`${GATEWAY}/v1/transfers`, JSON.stringify(transferBody(id, data.accounts[0], dst, 1)), Object.assign({ tags: { op: 'transfer' } }, JSON_PARAMS));
  check(t, { 'transfer created (201)': (x) => x.status === 201 });

  const f = http.get(`${groupPath(data)}/members/${member.id}/records?max_records=${MAX_RECORDS}&wait_ms=${WAIT_MS}`, getParams({ tags: { op: 'fetch' }, responseCallback: MEMBER_ANSWERS }));
  if (f.status === 404) {
    member = null;
    return;
  }
  if (check(f, { 'fetched (200)': (x) => x.status === 200 })) {
    const body = f.json();
    recordsConsumed.add(body.records.length);
    for (const rec of body.records) {
      const key = `${rec.topic}/${rec.partition}`;
      member.commit[key] = Math.max(member.commit[key] || 0, rec.offset + 1);
    }
    if (body.generation !== member.generation) heartbeat(data);
  }
  if (member !== null && Object.keys(member.commit).length > 0) {
    const offsets = Object.entries(member.commit).map(([key, offset]) => {
      const [topic, partition] = key.split('/');
      return { topic, partition: Number(partition), offset };
    });
    member.commit = {};
    const c = http.post(`${groupPath(data)}/members/${member.id}/offsets`, JSON.stringify({ generation: member.generation, offsets }), Object.assign({ tags: { op: 'commit' }, responseCallback: COMMIT_ANSWERS }, JSON_PARAMS));
    // 409 = fenced by a rebalance this member has not heard of yet: learn it.
    if (c.status === 409) {
      commitsFenced.add(1);
      heartbeat(data);
    } else check(c, { 'committed (204)': (x) => x.status === 204 });
  }
  if (member !== null && Date.now() - member.last_hb >= member.every_ms) heartbeat(data);
  if (member !== null && member.iterations >= LEAVE_EVERY) {
    const l = http.del(`${groupPath(data)}/members/${member.id}`, null, Object.assign({ tags: { op: 'leave' } }, JSON_PARAMS));
    check(l, { 'left (204)': (x) => x.status === 204 });
    member = null;
  }
}

export function teardown(data) {
  // VUs cannot run code at their end: remove the members still in the group.
  const g = http.get(`${GATEWAY}/v1/groups/${data.group}`, getParams());
  if (g.status === 200) {
    for (const m of (g.json('members') || []).slice(0, TEARDOWN_MEMBERS_MAX)) {
      http.del(`${GATEWAY}/v1/groups/${data.group}/members/${m.member_id}`, null, JSON_PARAMS);
    }
  }
  checkConservation(data.accounts);
}
