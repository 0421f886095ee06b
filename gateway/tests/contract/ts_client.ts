// Drives the TypeScript client generated from openapi/ledger.v1.json (openapi-typescript types +
// openapi-fetch) against a real cluster. gateway/tests/cluster/contract.rs generates
// `schema.d.ts` next to this file, type-checks it with `tsc --strict` (a spec change that breaks
// this code fails there) and runs it:  node ts_client.js <base-url> <admin-token>
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

// Node's globals, declared here so the test needs no @types/node.
declare const process: { argv: string[]; exit(code: number): never };

const [baseUrl, token] = process.argv.slice(2);
const run = Math.random().toString(16).slice(2, 10);
const tid = (name: string): string => `${name}-${run}`;
// Writes without a body (void, heartbeat, leave, remove) must still say it is JSON.
const client = createClient<paths>({
  baseUrl,
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
});

function check(cond: boolean, what: string, detail?: unknown): asserts cond {
  if (!cond) throw new Error(`${what}: ${JSON.stringify(detail)}`);
}

async function main(): Promise<void> {
  // Accounts.
  for (const [acct, overdraft] of [["equity", true], ["alice", false], ["bob", false]] as const) {
    const r = await client.POST("/v1/accounts", { body: { id: tid(acct), currency: "USD", allow_overdraft: overdraft } });
    check(r.response.status === 201, `create ${acct}`, r.error);
  }

  // A transfer, its identical replay, a conflicting replay.
  const t1 = { id: tid("t1"), debit_account_id: tid("equity"), credit_account_id: tid("alice"), amount: 1000, currency: "USD" };
  const created = await client.POST("/v1/transfers", { body: t1 });
  check(created.response.status === 201 && created.data?.status === "posted", "transfer", created.error);
  const replay = await client.POST("/v1/transfers", { body: t1 });
  check(replay.response.status === 200, "replay", replay.error);
  check(replay.response.headers.get("Idempotent-Replayed") === "true", "replay header");
  const conflict = await client.POST("/v1/transfers", { body: { ...t1, amount: 999 } });
  check(conflict.response.status === 409 && conflict.error?.code === "id_conflict", "conflicting replay", conflict.error);

  // An overdraft.
  const over = await client.POST("/v1/transfers", {
    body: { id: tid("over"), debit_account_id: tid("alice"), credit_account_id: tid("bob"), amount: 1e9, currency: "USD" },
  });
  check(over.response.status === 422 && over.error?.code === "insufficient_funds", "overdraft", over.error);
  check(over.error?.retryable === false, "overdraft is not retryable", over.error);

  // Two-phase: one posted (partially), one voided.
  for (const name of ["p1", "p2"]) {
    const p = await client.POST("/v1/transfers", {
      body: { id: tid(name), debit_account_id: tid("alice"), credit_account_id: tid("bob"), amount: 100, currency: "USD", pending: true },
    });
    check(p.response.status === 201, `pending ${name}`, p.error);
  }
  const posted = await client.POST("/v1/transfers/{id}/post", { params: { path: { id: tid("p1") } }, body: { amount: 60 } });
  check(posted.data?.status === "posted", "post", posted.error);
  const voided = await client.POST("/v1/transfers/{id}/void", { params: { path: { id: tid("p2") } } });
  check(voided.data?.status === "voided", "void", voided.error);

  // A batch.
  const transfers = [0, 1, 2].map((i) => ({
    id: tid(`b${i}`), debit_account_id: tid("equity"), credit_account_id: tid("bob"), amount: 5, currency: "USD",
  }));
  const batch = await client.POST("/v1/transfers/batch", { body: { transfers, atomic: true } });
  check(batch.response.status === 200 && batch.data !== undefined, "batch", batch.error);
  check(batch.data.results.every((r) => r.result === "created"), "batch results", batch.data);

  // Read your writes.
  const bob = await client.GET("/v1/accounts/{id}", { params: { path: { id: tid("bob") }, query: { min_index: batch.data.index } } });
  check(bob.data?.balance === 75, "bob's balance", bob.data ?? bob.error);
  const alice = await client.GET("/v1/accounts/{id}", { params: { path: { id: tid("alice") }, query: { consistency: "strong" } } });
  check(alice.data?.balance === 940, "alice's balance", alice.data ?? alice.error);

  // Produce and fetch records (any JSON value).
  const topic = tid("events");
  const t = await client.POST("/v1/topics", { body: { name: topic, partitions: 1 } });
  check(t.response.status === 201, "topic", t.error);
  const values: unknown[] = [{ n: 1 }, [1, "two"], "text"];
  const produced = await client.POST("/v1/topics/{topic}/records", {
    params: { path: { topic } },
    body: { records: values.map((value, i) => ({ key: `k${i}`, value })) },
  });
  check(produced.data !== undefined, "produce", produced.error);
  const fetched = await client.GET("/v1/topics/{topic}/partitions/{partition}/records", {
    params: { path: { topic, partition: 0 }, query: { min_index: produced.data.index } },
  });
  check(fetched.data !== undefined, "fetch", fetched.error);
  const byOffset = new Map(fetched.data.records.map((r) => [r.offset, r.value]));
  const got = produced.data.offsets.map((o) => byOffset.get(o.offset));
  check(JSON.stringify(got) === JSON.stringify(values), "fetched values", got);

  // A consumer group: join, fetch, commit, leave.
  const group = tid("g");
  const joined = await client.POST("/v1/groups/{group}/members", {
    params: { path: { group } },
    body: { topics: [topic], auto_offset_reset: "earliest" },
  });
  check(joined.response.status === 201 && joined.data !== undefined, "join", joined.error);
  const member = { group, member_id: joined.data.member_id };
  const records = await client.GET("/v1/groups/{group}/members/{member_id}/records", {
    params: { path: member, query: { wait_ms: 2000 } },
  });
  check(records.data?.records.length === 3, "group fetch", records.data ?? records.error);
  const commit = await client.POST("/v1/groups/{group}/members/{member_id}/offsets", {
    params: { path: member },
    body: { generation: joined.data.generation, offsets: [{ topic, partition: 0, offset: 3 }] },
  });
  check(commit.response.status === 204, "commit", commit.error);
  const left = await client.DELETE("/v1/groups/{group}/members/{member_id}", { params: { path: member } });
  check(left.response.status === 204, "leave", left.error);

  // The cluster view.
  const cluster = await client.GET("/v1/cluster");
  check(cluster.data !== undefined && cluster.data.nodes.length >= 3, "cluster", cluster.error);

  console.log("typescript client: every step passed");
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
