//! Consumer groups end to end: real lognode processes, real gateways (issue 6's Tests section).
//!
//! Every loop is bounded in count and time; everything runs on 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::LedgerBackend;
use serde_json::{Value, json};

use crate::support::{Cluster, SERIAL, TestGateway, gateway_static, request, wait_for, wait_for_voters};

/// Most fetch rounds one consumption loop makes.
const FETCH_ROUNDS_MAX: usize = 200;
/// Most time one consumption loop takes.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(40);
/// Records per fetch in the tests.
const MAX_RECORDS: u32 = 50;

/// (topic, partition) → offset.
type Offsets = BTreeMap<(String, u32), u64>;

/// One delivered record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    topic: String,
    partition: u32,
    offset: u64,
}

/// A member as the client sees it.
#[derive(Clone, Debug)]
struct Member {
    id: String,
    generation: u64,
    assignments: BTreeSet<(String, u32)>,
}

fn parse_assignments(v: &Value) -> BTreeSet<(String, u32)> {
    v.as_array()
        .expect("assignments")
        .iter()
        .map(|a| {
            let t = a["topic"].as_str().expect("topic").to_owned();
            let p = u32::try_from(a["partition"].as_u64().expect("partition")).expect("u32");
            (t, p)
        })
        .collect()
}

async fn join(addr: SocketAddr, group: &str, body: Value) -> Member {
    let r = request(addr, "POST", &format!("/v1/groups/{group}/members"), Some(&body)).await.expect(201, "join");
    assert!(r.index() > 0);
    let v = r.json();
    assert!(v["heartbeat_interval_ms"].as_u64().is_some_and(|h| h > 0), "{v}");
    Member {
        id: v["member_id"].as_str().expect("member_id").to_owned(),
        generation: v["generation"].as_u64().expect("generation"),
        assignments: parse_assignments(&v["assignments"]),
    }
}

/// Heartbeats; updates the member's generation and assignments.
async fn heartbeat(addr: SocketAddr, group: &str, m: &mut Member) {
    let r = request(addr, "POST", &format!("/v1/groups/{group}/members/{}/heartbeat", m.id), None).await;
    let v = r.expect(200, "heartbeat").json();
    m.generation = v["generation"].as_u64().expect("generation");
    m.assignments = parse_assignments(&v["assignments"]);
}

/// One fetch; the records and the generation.
async fn fetch(addr: SocketAddr, group: &str, m: &str, wait_ms: u64) -> (u64, Vec<Got>) {
    let path = format!("/v1/groups/{group}/members/{m}/records?max_records={MAX_RECORDS}&wait_ms={wait_ms}");
    let v = request(addr, "GET", &path, None).await.expect(200, "fetch").json();
    let recs = v["records"].as_array().expect("records");
    assert!(recs.len() <= MAX_RECORDS as usize, "max_records exceeded");
    let got = recs
        .iter()
        .map(|r| {
            assert!(r["value"].is_object() && r["timestamp"].as_u64().is_some(), "{r}");
            Got {
                topic: r["topic"].as_str().expect("topic").to_owned(),
                partition: u32::try_from(r["partition"].as_u64().expect("partition")).expect("u32"),
                offset: r["offset"].as_u64().expect("offset"),
            }
        })
        .collect();
    (v["generation"].as_u64().expect("generation"), got)
}

async fn commit(addr: SocketAddr, group: &str, m: &Member, offsets: &Offsets) -> crate::support::Resp {
    let offs: Vec<Value> = offsets.iter().map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o})).collect();
    let body = json!({"generation": m.generation, "offsets": offs});
    request(addr, "POST", &format!("/v1/groups/{group}/members/{}/offsets", m.id), Some(&body)).await
}

/// Produces `n` keyed records to `topic`; the end offset of every partition afterwards.
async fn produce(gw: &TestGateway, topic: &str, first: usize, n: usize) -> Offsets {
    let records: Vec<Value> = (first..first + n).map(|i| json!({"key": format!("k{i}"), "value": {"n": i}})).collect();
    gw.post(&format!("/v1/topics/{topic}/records"), &json!({"records": records})).await.expect(200, "produce");
    end_offsets(gw, topic).await
}

/// End offsets of every partition of `topic`, read through a group-less fetch of each partition.
async fn end_offsets(gw: &TestGateway, topic: &str) -> Offsets {
    let mut out = Offsets::new();
    for p in 0..4u32 {
        let path = format!("/v1/topics/{topic}/partitions/{p}/records?limit=1&consistency=strong");
        let v = gw.get(&path).await.expect(200, "partition end").json();
        out.insert((topic.to_owned(), p), v["end_offset"].as_u64().expect("end_offset"));
    }
    out
}

/// Checks that a member's deliveries of each partition never skip: each offset is at most one
/// past the highest offset delivered before (a redelivery may go back, never jump ahead), and
/// the first one is `start` (or below it).
fn assert_no_gaps(who: &str, got: &[Got], start: &Offsets) {
    let mut last: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for g in got {
        let key = (g.topic.clone(), g.partition);
        let allowed = match last.get(&key) {
            Some(l) => l + 1,
            None => start.get(&key).copied().unwrap_or(0),
        };
        assert!(
            g.offset <= allowed,
            "{who}: {}/{} jumped to {} (expected at most {allowed})",
            g.topic,
            g.partition,
            g.offset
        );
        let e = last.entry(key).or_insert(g.offset);
        *e = (*e).max(g.offset);
    }
}

/// Fetches (heartbeating on the way) until every partition the member owns is read up to `ends`.
async fn consume_until(
    addrs: &[SocketAddr],
    group: &str,
    m: &mut Member,
    ends: &Offsets,
    out: &mut Vec<Got>,
) -> Offsets {
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut next: Offsets = Offsets::new();
    for round in 0..FETCH_ROUNDS_MAX {
        let addr = addrs[round % addrs.len()];
        let (generation, got) = fetch(addr, group, &m.id, 200).await;
        if generation != m.generation {
            heartbeat(addr, group, m).await;
        }
        for g in &got {
            next.insert((g.topic.clone(), g.partition), g.offset + 1);
        }
        out.extend(got);
        let done = m.assignments.iter().all(|tp| {
            let end = ends.get(tp).copied().unwrap_or(0);
            end == 0 || next.get(tp).is_some_and(|n| *n >= end)
        });
        if done {
            return next;
        }
        assert!(Instant::now() < deadline, "{}: not consumed within {CONSUME_TIMEOUT:?}: {next:?} vs {ends:?}", m.id);
    }
    panic!("{}: not consumed within {FETCH_ROUNDS_MAX} fetches: {next:?} vs {ends:?}", m.id);
}

/// Every offset below `ends` appears in `got`.
fn assert_covers(got: &[Got], ends: &Offsets) {
    let seen: BTreeSet<(String, u32, u64)> = got.iter().map(|g| (g.topic.clone(), g.partition, g.offset)).collect();
    for ((t, p), end) in ends {
        for o in 0..*end {
            assert!(seen.contains(&(t.clone(), *p, o)), "{t}/{p} offset {o} was never delivered");
        }
    }
}

async fn describe(gw: &TestGateway, group: &str) -> Value {
    gw.get(&format!("/v1/groups/{group}")).await.expect(200, "describe").json()
}

/// Two members share a group over a 4-partition topic: 2 partitions each; one leaves and the
/// other gets all 4. Nothing is lost or skipped: the union of both covers every produced offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_share_four_partitions_and_the_survivor_of_a_leave_gets_all() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "orders", "partitions": 4})).await.expect(201, "topic");
    let ends = produce(&gw, "orders", 0, 200).await;
    let addrs = [gw.addr];
    let body = json!({"topics": ["orders"], "auto_offset_reset": "earliest"});
    let mut a = join(gw.addr, "billing", body.clone()).await;
    assert_eq!((a.generation, a.assignments.len()), (1, 4));
    let mut b = join(gw.addr, "billing", body).await;
    assert_eq!((b.generation, b.assignments.len()), (2, 2));
    heartbeat(gw.addr, "billing", &mut a).await;
    assert_eq!((a.generation, a.assignments.len()), (2, 2), "sticky and balanced");
    assert!(a.assignments.is_disjoint(&b.assignments));
    assert_eq!(a.assignments.union(&b.assignments).count(), 4);

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let next_a = consume_until(&addrs, "billing", &mut a, &ends, &mut got_a).await;
    consume_until(&addrs, "billing", &mut b, &ends, &mut got_b).await;
    assert!(got_a.iter().all(|g| a.assignments.contains(&(g.topic.clone(), g.partition))), "a read a partition of b");
    commit(gw.addr, "billing", &a, &next_a).await.expect(204, "a commits");

    // More records, then b leaves without committing: a gets all 4 and reads b's partitions
    // from the start (nothing committed there), its own from its commits.
    let ends = produce(&gw, "orders", 200, 100).await;
    gw.delete(&format!("/v1/groups/billing/members/{}", b.id)).await.expect(204, "b leaves");
    gw.delete(&format!("/v1/groups/billing/members/{}", b.id)).await.expect(404, "b is gone");
    heartbeat(gw.addr, "billing", &mut a).await;
    assert_eq!((a.generation, a.assignments.len()), (3, 4));
    let mut after = Vec::new();
    consume_until(&addrs, "billing", &mut a, &ends, &mut after).await;
    assert_no_gaps("a after the leave", &after, &next_a);
    got_a.extend(after);
    assert_no_gaps("b", &got_b, &Offsets::new());
    let mut all = got_a;
    all.extend(got_b);
    assert_covers(&all, &ends);
    let d = describe(&gw, "billing").await;
    assert_eq!(d["generation"], 3, "{d}");
    assert_eq!(d["members"].as_array().map(Vec::len), Some(1), "{d}");
    let list = gw.get("/v1/groups").await.expect(200, "list").json();
    assert_eq!(list["groups"], json!([{"group": "billing", "generation": 3, "members": 1}]));
    let metrics = String::from_utf8(gw.get("/metrics").await.expect(200, "metrics").body).expect("utf8");
    assert!(metrics.contains("ledger_group_rebalances_total{group=\"billing\"} 3"), "{metrics}");
    assert!(metrics.contains("ledger_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"}"), "{metrics}");
}

/// A member that stops heartbeating is expired after its session timeout; its partitions move
/// to the other member, and its own requests get 404 `unknown_member`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_member_expires_and_its_partitions_move_to_the_other() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "events", "partitions": 4})).await.expect(201, "topic");
    let session_ms = 2_000u64;
    let body = json!({"topics": ["events"], "session_timeout_ms": session_ms});
    let silent = join(gw.addr, "g", body.clone()).await;
    let mut alive = join(gw.addr, "g", body).await;
    let silent_since = Instant::now();
    assert_eq!(alive.assignments.len(), 2);
    let moved = wait_for("the silent member's expiry", Duration::from_secs(20), || {
        let addr = gw.addr;
        let mut m = alive.clone();
        async move {
            heartbeat(addr, "g", &mut m).await;
            (m.assignments.len() == 4).then_some(m)
        }
    })
    .await;
    alive = moved;
    let waited = silent_since.elapsed();
    assert!(waited >= Duration::from_millis(session_ms), "expired after {waited:?}, before the session timeout");
    assert_eq!(alive.generation, 3);
    let r = gw.post(&format!("/v1/groups/g/members/{}/heartbeat", silent.id), &json!({})).await;
    let p = r.expect(404, "expired member heartbeats").json();
    assert_eq!(p["code"], "unknown_member");
    let r = gw.get(&format!("/v1/groups/g/members/{}/records", silent.id)).await;
    assert_eq!(r.expect(404, "expired member fetches").json()["code"], "unknown_member");
    // The survivor, kept alive by heartbeats, is not expired.
    tokio::time::sleep(Duration::from_millis(session_ms / 2)).await;
    heartbeat(gw.addr, "g", &mut alive).await;
    tokio::time::sleep(Duration::from_millis(session_ms / 2)).await;
    heartbeat(gw.addr, "g", &mut alive).await;
    assert_eq!((alive.generation, alive.assignments.len()), (3, 4));
}

/// Fencing: a commit with an old generation, or for a partition the member does not own, gets
/// 409 and changes nothing. Lag is `end_offset - committed_offset`. Bad input gets clear 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fencing_lag_and_bad_input() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "orders", "partitions": 4})).await.expect(201, "topic");
    let ends = produce(&gw, "orders", 0, 100).await;
    let body = json!({"topics": ["orders"], "auto_offset_reset": "earliest"});
    let mut a = join(gw.addr, "fence", body.clone()).await;
    let half: Offsets = ends.iter().map(|(k, e)| (k.clone(), e / 2)).collect();
    commit(gw.addr, "fence", &a, &half).await.expect(204, "commit in generation 1");
    let old = a.clone();
    let b = join(gw.addr, "fence", body).await;
    heartbeat(gw.addr, "fence", &mut a).await;
    assert_eq!(a.generation, 2);

    // Stale generation: 409, nothing changes.
    let full: Offsets = ends.clone();
    let r = commit(gw.addr, "fence", &old, &full).await;
    assert_eq!(r.expect(409, "stale generation").json()["code"], "stale_generation");
    // A partition b owns: 409 not_owner, nothing changes (all or nothing, with one of a's own).
    let theirs = b.assignments.iter().next().expect("b owns something").clone();
    let mine = a.assignments.iter().next().expect("a owns something").clone();
    let mixed: Offsets = [(mine.clone(), ends[&mine]), (theirs.clone(), ends[&theirs])].into_iter().collect();
    let r = commit(gw.addr, "fence", &a, &mixed).await;
    assert_eq!(r.expect(409, "not owner").json()["code"], "not_owner");
    // Backwards: 409 offset_regression.
    let back: Offsets = [(mine.clone(), 0)].into_iter().collect();
    assert_eq!(commit(gw.addr, "fence", &a, &back).await.expect(409, "regression").json()["code"], "offset_regression");

    // Nothing moved; lag = end - committed for every partition.
    let d = describe(&gw, "fence").await;
    let parts = d["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 4, "{d}");
    for p in parts {
        let key = (
            p["topic"].as_str().expect("topic").to_owned(),
            u32::try_from(p["partition"].as_u64().expect("p")).expect("u32"),
        );
        assert_eq!(p["committed_offset"].as_u64(), Some(half[&key]), "{d}");
        assert_eq!(p["end_offset"].as_u64(), Some(ends[&key]), "{d}");
        assert_eq!(p["lag"].as_u64(), Some(ends[&key] - half[&key]), "lag is end - committed: {d}");
        assert!(p["owner"].is_string(), "{d}");
    }
    let members = d["members"].as_array().expect("members");
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m["last_heartbeat"].as_u64().is_some_and(|t| t > 1_700_000_000_000)), "{d}");
    // A commit in the current generation moves it and the lag follows.
    let to_end: Offsets = [(mine.clone(), ends[&mine])].into_iter().collect();
    commit(gw.addr, "fence", &a, &to_end).await.expect(204, "commit to the end");
    let d = describe(&gw, "fence").await;
    let p = d["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["topic"] == mine.0 && p["partition"] == mine.1)
        .cloned()
        .expect("partition");
    assert_eq!((p["committed_offset"].as_u64(), p["lag"].as_u64()), (Some(ends[&mine]), Some(0)), "{d}");

    // Bad input: each a clear 4xx with a stable code.
    let m = &a.id;
    let gen_now = a.generation;
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        ("GET", "/v1/groups/nope".into(), None, 404, "unknown_group"),
        ("POST", "/v1/groups/nope/members/nope-1/heartbeat".into(), None, 404, "unknown_group"),
        ("POST", "/v1/groups/fence/members/fence-99/heartbeat".into(), None, 404, "unknown_member"),
        ("GET", "/v1/groups/fence/members/fence-99/records".into(), None, 404, "unknown_member"),
        ("DELETE", "/v1/groups/fence/members/fence-99".into(), None, 404, "unknown_member"),
        ("GET", "/v1/groups/bad%20id".into(), None, 400, "invalid_group_id"),
        ("POST", "/v1/groups/fence/members".into(), Some(json!({"topics": ["nope"]})), 404, "unknown_topic"),
        ("POST", "/v1/groups/fence/members".into(), Some(json!({"topics": []})), 400, "invalid_request"),
        (
            "POST",
            "/v1/groups/fence/members".into(),
            Some(json!({"topics": ["orders"], "session_timeout_ms": 5})),
            400,
            "invalid_session_timeout",
        ),
        (
            "POST",
            "/v1/groups/fence/members".into(),
            Some(json!({"topics": ["orders"], "auto_offset_reset": "middle"})),
            422,
            "invalid_body",
        ),
        ("POST", "/v1/groups/fence/members".into(), Some(json!({"topic": ["orders"]})), 422, "unknown_field"),
        (
            "POST",
            format!("/v1/groups/fence/members/{m}/offsets"),
            Some(json!({"generation": gen_now, "offsets": [{"topic": "orders", "partition": mine.1, "offset": -1}]})),
            422,
            "invalid_type",
        ),
        (
            "POST",
            format!("/v1/groups/fence/members/{m}/offsets"),
            Some(
                json!({"generation": gen_now, "offsets": [{"topic": "orders", "partition": mine.1, "offset": ends[&mine] + 1}]}),
            ),
            400,
            "offset_out_of_range",
        ),
        (
            "POST",
            format!("/v1/groups/fence/members/{m}/offsets"),
            Some(json!({"generation": gen_now, "offsets": [{"topic": "nope", "partition": 0, "offset": 0}]})),
            404,
            "unknown_topic",
        ),
        (
            "POST",
            format!("/v1/groups/fence/members/{m}/offsets"),
            Some(json!({"generation": gen_now, "offsets": [{"topic": "orders", "partition": 9, "offset": 0}]})),
            404,
            "unknown_partition",
        ),
        (
            "POST",
            format!("/v1/groups/fence/members/{m}/offsets"),
            Some(json!({"generation": gen_now})),
            422,
            "missing_field",
        ),
        ("GET", format!("/v1/groups/fence/members/{m}/records?max_records=0"), None, 400, "invalid_query"),
        ("GET", format!("/v1/groups/fence/members/{m}/records?wait_ms=999999"), None, 400, "invalid_query"),
        (
            "POST",
            "/v1/groups/fence/offsets/reset".into(),
            Some(json!({"topic": "orders", "to": "earliest"})),
            409,
            "group_not_empty",
        ),
        (
            "POST",
            "/v1/groups/fence/offsets/reset".into(),
            Some(json!({"topic": "orders", "to": "sideways"})),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/groups/nope/offsets/reset".into(),
            Some(json!({"topic": "orders", "to": {"offset": 1}})),
            404,
            "unknown_group",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let r = request(gw.addr, method, &path, body.as_ref()).await;
        assert_eq!(r.status, status, "{method} {path} {body:?}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{method} {path}");
        assert_eq!(r.json()["code"], code, "{method} {path} {body:?}");
    }
    // A malformed body.
    let r = crate::support::request_raw_admin(gw.addr, "POST", "/v1/groups/fence/members", b"{not json").await;
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!("malformed_json")));
    // Nothing above changed the offsets.
    let d2 = describe(&gw, "fence").await;
    assert_eq!(d2["partitions"], d["partitions"], "bad input changed the group");

    // Admin reset of an empty group: both members leave, then reset to earliest / an offset.
    gw.delete(&format!("/v1/groups/fence/members/{}", a.id)).await.expect(204, "a leaves");
    gw.delete(&format!("/v1/groups/fence/members/{}", b.id)).await.expect(204, "b leaves");
    let r = gw.post("/v1/groups/fence/offsets/reset", &json!({"topic": "orders", "to": "earliest"})).await;
    let v = r.expect(200, "reset").json();
    assert_eq!(v["offsets"].as_array().map(Vec::len), Some(4), "{v}");
    assert!(v["offsets"].as_array().expect("offsets").iter().all(|o| o["offset"] == 0), "{v}");
    let r = gw
        .post("/v1/groups/fence/offsets/reset", &json!({"topic": "orders", "partition": 1, "to": {"offset": 3}}))
        .await
        .expect(200, "reset to an offset")
        .json();
    assert_eq!(r["offsets"], json!([{"topic": "orders", "partition": 1, "offset": 3}]));
    let r = gw
        .post("/v1/groups/fence/offsets/reset", &json!({"topic": "orders", "to": {"timestamp": 0}}))
        .await
        .expect(200, "reset to a timestamp")
        .json();
    assert!(r["offsets"].as_array().expect("offsets").iter().all(|o| o["offset"] == 0), "{r}");
    let r = gw
        .post(
            "/v1/groups/fence/offsets/reset",
            &json!({"topic": "orders", "partition": 0, "to": {"offset": ends[&("orders".to_owned(), 0)] + 1}}),
        )
        .await;
    assert_eq!(r.expect(400, "reset past the end").json()["code"], "offset_out_of_range");
}

/// One member alternates its requests between two gateways and consumes every record in order;
/// then every gateway restarts and the Raft leader is killed: the member (same id) resumes from
/// its committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_then_restarts_and_leader_kill_resume_from_committed_offsets() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start();
    let gw1 = gateway_static(cluster.grpc_addrs()).await;
    let gw2 = gateway_static(cluster.grpc_addrs()).await;
    let leader = wait_for_voters(&gw1.backend, 3, Duration::from_secs(30)).await;
    gw1.post("/v1/topics", &json!({"name": "orders", "partitions": 4})).await.expect(201, "topic");
    let ends = produce(&gw1, "orders", 0, 400).await;
    let body = json!({"topics": ["orders"], "auto_offset_reset": "earliest", "session_timeout_ms": 30000});
    let mut m = join(gw2.addr, "svc", body).await;
    assert_eq!(m.assignments.len(), 4);

    // Alternating gateways: every record exactly once, in offset order per partition.
    let mut got = Vec::new();
    let next = consume_until(&[gw1.addr, gw2.addr], "svc", &mut m, &ends, &mut got).await;
    let mut per: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for g in &got {
        per.entry((g.topic.clone(), g.partition)).or_default().push(g.offset);
    }
    for (tp, offs) in &per {
        let want: Vec<u64> = (0..ends[tp]).collect();
        assert_eq!(offs, &want, "{tp:?}: not every record once and in order");
    }
    assert_eq!(next, ends);
    // Commit about half of each partition, and keep reading past it (positions move on).
    let committed: Offsets = ends.iter().map(|(k, e)| (k.clone(), e / 2)).collect();
    commit(gw1.addr, "svc", &m, &committed).await.expect(204, "commit half");
    let (_, nothing) = fetch(gw2.addr, "svc", &m.id, 0).await;
    assert!(nothing.is_empty(), "the position is past every record: {nothing:?}");

    // Restart every gateway, then kill the leader.
    drop(gw1);
    drop(gw2);
    let gw1 = gateway_static(cluster.grpc_addrs()).await;
    let gw2 = gateway_static(cluster.grpc_addrs()).await;
    cluster.proc_mut(leader).kill9();
    wait_for("a new leader", Duration::from_secs(30), || async {
        let c = gw1.backend.cluster_status().await.ok()?;
        c.leader_id.filter(|l| *l != leader)
    })
    .await;
    // The member is still a member (its session restarted at the takeover), same generation.
    let r = wait_for("a heartbeat through the new leader", Duration::from_secs(20), || {
        let (addr, id) = (gw2.addr, m.id.clone());
        async move {
            let r = request(addr, "POST", &format!("/v1/groups/svc/members/{id}/heartbeat"), None).await;
            (r.status != 503).then_some(r)
        }
    })
    .await;
    let v = r.expect(200, "heartbeat after the failover").json();
    assert_eq!(v["generation"].as_u64(), Some(m.generation));
    // Resume: each partition restarts at its committed offset (at least once, nothing skipped).
    let mut again = Vec::new();
    consume_until(&[gw2.addr, gw1.addr], "svc", &mut m, &ends, &mut again).await;
    let mut first: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for g in &again {
        first.entry((g.topic.clone(), g.partition)).or_insert(g.offset);
    }
    assert_eq!(first, committed, "resumed elsewhere than at the committed offsets");
    assert_no_gaps("after the failover", &again, &committed);
    let d = describe(&gw1, "svc").await;
    assert_eq!(d["members"][0]["member_id"], m.id.as_str(), "{d}");
}

/// A fetch answer lost on its way back: fetching again with the client's own positions
/// (`from=`) returns the same records, so nothing is skipped; bad positions get a 400 code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_positions_make_a_lost_fetch_answer_harmless() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "lost", "partitions": 4})).await.expect(201, "topic");
    let ends = produce(&gw, "lost", 0, 40).await;
    let m = join(gw.addr, "lossy", json!({"topics": ["lost"], "auto_offset_reset": "earliest"})).await;
    assert_eq!(m.assignments.len(), 4);

    // The first answer is "lost": the client never processes it.
    let (_, first) = fetch(gw.addr, "lossy", &m.id, 0).await;
    assert_eq!(first.len(), 40, "all 40 records fit in one answer of {MAX_RECORDS}");
    // Without positions the coordinator continues after what it sent: those would be skipped.
    let (_, again) = fetch(gw.addr, "lossy", &m.id, 0).await;
    assert!(again.is_empty(), "the coordinator's position moved past the lost answer: {again:?}");
    // With the client's own positions (it processed nothing: offset 0 everywhere) they come again.
    let from: Vec<String> = m.assignments.iter().map(|(t, p)| format!("{t}:{p}:0")).collect();
    let path = format!("/v1/groups/lossy/members/{}/records?max_records={MAX_RECORDS}&from={}", m.id, from.join(","));
    let v = gw.get(&path).await.expect(200, "fetch from client positions").json();
    let mut redelivered: Vec<(String, u32, u64)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let p = u32::try_from(r["partition"].as_u64().expect("partition")).expect("u32");
            (r["topic"].as_str().expect("topic").to_owned(), p, r["offset"].as_u64().expect("offset"))
        })
        .collect();
    redelivered.sort();
    let mut expected: Vec<(String, u32, u64)> =
        first.iter().map(|g| (g.topic.clone(), g.partition, g.offset)).collect();
    expected.sort();
    assert_eq!(redelivered, expected, "the lost records, again");
    // A position in the middle resumes exactly there.
    let (tp, end) = ends.iter().find(|(_, e)| **e >= 2).expect("a partition with two records");
    let path = format!("/v1/groups/lossy/members/{}/records?from={}:{}:{}", m.id, tp.0, tp.1, end - 1);
    let v = gw.get(&path).await.expect(200, "fetch from the middle").json();
    let offs: Vec<u64> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["partition"].as_u64() == Some(u64::from(tp.1)))
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offs, vec![end - 1], "starts exactly at the client's position");

    // Bad positions: a clear 400 code each, never a 5xx.
    let past = format!("lost:{}:{}", tp.1, end + 1);
    for (from, code) in [
        ("nope", "invalid_query"),
        ("lost:x:1", "invalid_query"),
        ("lost:0:-1", "invalid_query"),
        ("bad topic!:0:1", "invalid_query"),
        ("lost:0:1,lost:0:2", "invalid_query"),
        (past.as_str(), "offset_out_of_range"),
    ] {
        let path =
            format!("/v1/groups/lossy/members/{}/records?from={}", m.id, from.replace(' ', "%20").replace('!', "%21"));
        let r = gw.get(&path).await;
        assert_eq!(r.expect(400, from).json()["code"], code, "from={from}");
    }
}

/// Deleting consumer groups (issue 21; group-core rule 13). An admin deletes a group only while
/// it has no members (409 `group_not_empty` before), and its committed offsets go with it: gone
/// from the list, describe 404. The same name again is a new group (generation 1, no offsets),
/// and its member ids never repeat the deleted group's, so the old member's id stays 404. With
/// `--group-retention-ms 1500`, a group that became empty is deleted by the cluster on its own
/// after the retention, and a group with a member is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_are_deleted_by_an_admin_or_after_the_retention_and_member_ids_never_repeat() {
    let _serial = SERIAL.lock().await;
    let retention = Duration::from_millis(1_500);
    let cluster = Cluster::builder().nodes(1).extra(&["--group-retention-ms", "1500"]).start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 1, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "t", "partitions": 4})).await.expect(201, "topic");
    let ends = produce(&gw, "t", 0, 20).await;
    let body = json!({"topics": ["t"], "auto_offset_reset": "earliest", "session_timeout_ms": 60000});
    let old = join(gw.addr, "g", body.clone()).await;
    commit(gw.addr, "g", &old, &ends).await.expect(204, "commit");

    // Admin only; refused while the group has members; unknown and malformed ids.
    let r = crate::support::request_raw(gw.addr, "DELETE", "/v1/groups/g", b"").await;
    assert_eq!(r.expect(401, "no token").json()["code"], "unauthorized");
    assert_eq!(gw.delete("/v1/groups/g").await.expect(409, "with a member").json()["code"], "group_not_empty");
    assert_eq!(gw.delete("/v1/groups/nope").await.expect(404, "unknown").json()["code"], "unknown_group");
    assert_eq!(gw.delete("/v1/groups/a%20b").await.expect(400, "malformed").json()["code"], "invalid_group_id");
    let d = describe(&gw, "g").await;
    assert_eq!(d["members"].as_array().map(Vec::len), Some(1), "a refused delete changes nothing: {d}");

    gw.delete(&format!("/v1/groups/g/members/{}", old.id)).await.expect(204, "leave");
    let deleted = gw.delete("/v1/groups/g").await.expect(204, "delete the empty group");
    assert!(deleted.index() > 0, "Ledger-Index of the deletion");
    assert_eq!(gw.get("/v1/groups/g").await.expect(404, "describe").json()["code"], "unknown_group");
    let list = gw.get("/v1/groups").await.expect(200, "list").json();
    assert!(list["groups"].as_array().expect("groups").iter().all(|g| g["group"] != "g"), "{list}");
    assert_eq!(gw.delete("/v1/groups/g").await.expect(404, "again").json()["code"], "unknown_group");

    // The name again: a new group without offsets (earliest reads from 0) and a new member id.
    let new = join(gw.addr, "g", body.clone()).await;
    assert_eq!((new.generation, new.assignments.len()), (1, 4));
    assert_ne!(new.id, old.id, "a member id of the deleted group came back");
    let r = gw.post(&format!("/v1/groups/g/members/{}/heartbeat", old.id), &json!({})).await;
    assert_eq!(r.expect(404, "the deleted group's member").json()["code"], "unknown_member");
    let r = commit(gw.addr, "g", &Member { generation: 1, ..old.clone() }, &ends).await;
    assert_eq!(r.expect(404, "a commit by the deleted group's member").json()["code"], "unknown_member");
    let d = describe(&gw, "g").await;
    let parts = d["partitions"].as_array().expect("partitions");
    assert!(parts.iter().all(|p| p["committed_offset"].is_null()), "offsets outlived the deletion: {d}");
    let (_, got) = fetch(gw.addr, "g", &new.id, 0).await;
    assert!(got.iter().any(|g| g.offset == 0), "earliest starts at 0 again: {got:?}");

    // Retention: "idle" becomes empty and the cluster deletes it; "g" keeps its member and stays.
    let idle = join(gw.addr, "idle", body).await;
    gw.delete(&format!("/v1/groups/idle/members/{}", idle.id)).await.expect(204, "leave idle");
    let emptied = Instant::now();
    let listed =
        |list: &Value, name: &str| list["groups"].as_array().expect("groups").iter().any(|g| g["group"] == name);
    let list = gw.get("/v1/groups").await.expect(200, "list").json();
    assert!(listed(&list, "idle"), "an empty group is listed until its retention passes: {list}");
    wait_for("the empty group's expiry", Duration::from_secs(20), || {
        let gw = &gw;
        async move {
            let list = gw.get("/v1/groups").await.expect(200, "list").json();
            (!listed(&list, "idle")).then_some(())
        }
    })
    .await;
    let waited = emptied.elapsed();
    // The leave's log time is a little before `emptied`; allow for that round trip.
    assert!(waited + Duration::from_millis(300) >= retention, "deleted {waited:?} after emptying");
    let list = gw.get("/v1/groups").await.expect(200, "list").json();
    assert!(listed(&list, "g"), "a group with a member is kept: {list}");
    let mut new = new;
    heartbeat(gw.addr, "g", &mut new).await;
    assert_eq!(new.generation, 1);
    drop(cluster);
}

/// The group cap (issue 21): with `GROUPS_MAX` groups, a join that would create one more gets
/// 422 `limit_exceeded` naming the limit and what frees a slot, and creates nothing; a join of an
/// existing group is still served. Deleting an empty group frees a slot for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_past_the_cap_answer_422_and_a_deletion_frees_a_slot() {
    use group_core::limits::GROUPS_MAX;
    const WRITERS: usize = 32;
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::builder().nodes(1).start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 1, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "t", "partitions": 1})).await.expect(201, "topic");
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let backend = gw.backend.clone();
        writers.spawn(async move {
            for i in (w..GROUPS_MAX).step_by(WRITERS) {
                let r = backend.join_group(&format!("g{i:05}"), vec!["t".into()], Some(300_000), None).await;
                r.map_err(|e| format!("join g{i:05}: {e:?}"))?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r.expect("writer").unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!("{GROUPS_MAX} groups created in {:?}", started.elapsed());

    let body = json!({"topics": ["t"], "session_timeout_ms": 60000});
    let r = gw.post("/v1/groups/one-too-many/members", &body).await.expect(422, "the group past the cap");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["code"], "limit_exceeded", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("GROUPS_MAX") && detail.contains("10000") && detail.contains("DELETE"), "{p}");
    gw.get("/v1/groups/one-too-many").await.expect(404, "nothing created past the cap");
    // An existing group still takes members.
    let m = join(gw.addr, "g00000", body.clone()).await;
    assert_eq!(m.generation, 2);

    // A deletion frees a slot: g00001's only member leaves, the admin deletes it, the new group fits.
    let d = describe(&gw, "g00001").await;
    let member = d["members"][0]["member_id"].as_str().expect("member").to_owned();
    gw.delete(&format!("/v1/groups/g00001/members/{member}")).await.expect(204, "leave");
    gw.delete("/v1/groups/g00001").await.expect(204, "delete");
    let m = join(gw.addr, "one-too-many", body.clone()).await;
    assert_eq!(m.generation, 1);
    let r = gw.post("/v1/groups/and-another/members", &body).await.expect(422, "full again");
    assert_eq!(r.json()["code"], "limit_exceeded");
    drop(cluster);
}
