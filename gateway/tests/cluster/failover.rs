//! `kill -9` of the leader while 16 clients write through the gateway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use gateway::LedgerBackend;

use crate::support::{Cluster, Resp, SERIAL, TestGateway, gateway_static, request, wait_for, wait_for_voters};

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Load before the kill.
const BEFORE_KILL: Duration = Duration::from_millis(1500);
/// Load after the kill (covers the election and some writes on the new leader).
const AFTER_KILL: Duration = Duration::from_secs(6);
/// Most requests one client sends (bounds the loop besides the time).
const REQUESTS_PER_CLIENT_MAX: usize = 2000;

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Values acknowledged with 200.
    acked: Vec<String>,
    /// Acknowledged after the kill.
    acked_after_kill: usize,
    /// 503s (each with Retry-After).
    unavailable: usize,
}

fn check_answer(r: &Resp, what: &str) {
    if r.status == 503 {
        assert!(r.header("retry-after").is_some(), "{what}: 503 without Retry-After");
    } else {
        assert_eq!(r.status, 200, "{what}: {}", String::from_utf8_lossy(&r.body));
    }
}

/// Every value in a partition of `topic`, read through the gateway at `min_index` (bounded).
async fn read_partition(gw: &TestGateway, topic: &str, partition: u32, min_index: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for _ in 0..1000 {
        let r = gw
            .get(&format!(
                "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&limit=1000&min_index={min_index}"
            ))
            .await
            .expect(200, "fetch");
        let body = r.json();
        let recs = body["records"].as_array().expect("records").clone();
        if recs.is_empty() {
            break;
        }
        out.extend(recs.iter().map(|r| r["value"].as_str().unwrap_or_default().to_owned()));
        offset = body["next_offset"].as_u64().expect("next_offset");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_under_load_produce() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start();
    let gw = Arc::new(gateway_static(cluster.grpc_addrs()).await);
    let leader = wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    gw.post("/v1/topics", &json!({"name": "load", "partitions": 2})).await.expect(201, "topic");

    let killed = Arc::new(AtomicBool::new(false));
    let stop_at = Instant::now() + BEFORE_KILL + AFTER_KILL;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (gw, killed) = (Arc::clone(&gw), Arc::clone(&killed));
        clients.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            for i in 0..REQUESTS_PER_CLIENT_MAX {
                if Instant::now() >= stop_at {
                    break;
                }
                let value = format!("c{c}-{i}");
                let after = killed.load(Ordering::SeqCst);
                let body = json!({"records": [{"key": format!("client-{c}"), "value": value}]});
                let r = request(gw.addr, "POST", "/v1/topics/load/records", Some(&body)).await;
                check_answer(&r, &value);
                if r.status == 200 {
                    seen.acked.push(value);
                    seen.acked_after_kill += usize::from(after);
                } else {
                    seen.unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            seen
        }));
    }
    tokio::time::sleep(BEFORE_KILL).await;
    cluster.proc_mut(leader).kill9();
    killed.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for c in clients {
        all.push(c.await.expect("client panicked"));
    }
    let acked: usize = all.iter().map(|s| s.acked.len()).sum();
    let after: usize = all.iter().map(|s| s.acked_after_kill).sum();
    let unavailable: usize = all.iter().map(|s| s.unavailable).sum();
    assert!(after > 0, "no write succeeded after the kill ({acked} acked, {unavailable} 503s)\n{}", cluster.logs());
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || async {
        gw.backend.leader().filter(|(l, _)| *l != leader).map(|(l, _)| l)
    })
    .await;
    assert!(gw.backend.stats().leader_changes >= 1);

    // Every acknowledged record is in the log exactly once; nothing appears twice (the gateway
    // never re-sends a produce whose outcome it does not know).
    let index = gw.post("/v1/topics/load/records", &json!({"records": [{"value": "end"}]})).await.expect(200, "end");
    let index = index.index();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in 0..2 {
        for v in read_partition(&gw, "load", p, index).await {
            *count.entry(v).or_default() += 1;
        }
    }
    let dups: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "records applied twice: {dups:?}");
    for s in &all {
        for v in &s.acked {
            assert_eq!(count.get(v), Some(&1), "acknowledged {v} missing");
        }
    }
    eprintln!("failover: leader {leader} -> {new_leader}; {acked} acked ({after} after the kill), {unavailable} 503s");
}
