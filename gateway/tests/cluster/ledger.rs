//! Accounts and transfers through the gateway on a real cluster, and a leader kill while 16
//! clients post transfers, reversals and transactions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway::LedgerBackend;
use serde_json::{Value, json};

use crate::support::{Cluster, SERIAL, TestGateway, gateway_static, request, wait_for, wait_for_voters};

async fn account(gw: &TestGateway, id: &str, overdraft: bool) -> Value {
    gw.post("/v1/accounts", &json!({"id": id, "currency": "USD", "allow_overdraft": overdraft}))
        .await
        .expect(201, "create account")
        .json()
}

async fn transfer(gw: &TestGateway, body: Value) -> Value {
    gw.post("/v1/transfers", &body).await.expect(201, "create transfer").json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_transfers_batches_pending_and_history() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    let leader = wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;

    let created = account(&gw, "equity", true).await;
    let replay = gw
        .post("/v1/accounts", &json!({"id": "equity", "currency": "USD", "allow_overdraft": true}))
        .await
        .expect(200, "account replay");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["index"], created["index"]);
    account(&gw, "alice", false).await;
    let t1 = transfer(
        &gw,
        json!({"id": "t1", "debit_account_id": "equity", "credit_account_id": "alice", "amount": 500,
               "currency": "USD", "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(t1["status"], "posted");
    let t1_index = t1["index"].as_u64().expect("index");
    let r = gw
        .post(
            "/v1/transfers",
            &json!({"id": "t2", "debit_account_id": "alice", "credit_account_id": "equity", "amount": 120, "currency": "USD"}),
        )
        .await
        .expect(201, "t2");
    let t2_index = r.index();

    // Read-your-writes on a follower.
    let before = gw.reads();
    let a = gw.get(&format!("/v1/accounts/alice?min_index={t2_index}")).await.expect(200, "ryw");
    assert!(a.index() >= t2_index);
    let a = a.json();
    assert_eq!((a["balance"].clone(), a["credits_posted"].clone()), (json!(380), json!(500)), "{a}");
    let after = gw.reads();
    assert_eq!(after.get(&leader), before.get(&leader), "the min_index read went to the leader");
    let old = gw.get(&format!("/v1/accounts/alice?as_of_index={t1_index}&consistency=strong")).await;
    assert_eq!(old.expect(200, "as_of").json()["balance"], 500);
    let t = gw.get("/v1/transfers/t1?consistency=strong").await.expect(200, "get t1").json();
    assert_eq!(t["metadata"], json!({"k": "v"}));
    gw.get("/v1/transfers/nope").await.expect(404, "unknown transfer");
    gw.get("/v1/accounts/nope").await.expect(404, "unknown account");

    // History pages.
    let p1 = gw.get(&format!("/v1/accounts/alice/transfers?limit=1&min_index={t2_index}")).await;
    let p1 = p1.expect(200, "history").json();
    assert_eq!(p1["entries"][0]["transfer_id"], "t1");
    let next = p1["next"].as_u64().expect("cursor");
    let p2 = gw.get(&format!("/v1/accounts/alice/transfers?after={next}&min_index={t2_index}")).await;
    let p2 = p2.expect(200, "history page 2").json();
    assert_eq!(p2["entries"][0]["transfer_id"], "t2");
    assert_eq!(p2["entries"][0]["balance"], 380);

    // Batch (one failing item) and an atomic batch that rolls back.
    account(&gw, "a", false).await;
    account(&gw, "b", false).await;
    let item = |id: &str, d: &str, c: &str, amount: u64| json!({"id": id, "debit_account_id": d, "credit_account_id": c, "amount": amount, "currency": "USD"});
    let body = gw
        .post("/v1/transfers/batch", &json!({"transfers": [item("x1", "equity", "a", 10), item("x2", "b", "a", 5)]}))
        .await
        .expect(200, "batch")
        .json();
    assert_eq!(body["results"][0]["result"], "created");
    assert_eq!(body["results"][1]["code"], "insufficient_funds");
    let body = gw
        .post(
            "/v1/transfers/batch",
            &json!({"atomic": true, "transfers": [item("y1", "equity", "b", 3), item("y2", "a", "b", 1000)]}),
        )
        .await
        .expect(200, "atomic batch")
        .json();
    assert_eq!(body["results"][0]["code"], "linked_event_failed");
    assert_eq!(gw.get("/v1/accounts/b?consistency=strong").await.expect(200, "b").json()["balance"], 0);

    // Pending: post part, void another.
    account(&gw, "bob", false).await;
    let p = transfer(
        &gw,
        json!({"id": "p1", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 100,
               "currency": "USD", "pending": true, "timeout_ms": 3600000}),
    )
    .await;
    assert_eq!(p["status"], "pending");
    let r = gw.post("/v1/transfers/p1/post", &json!({"amount": 60})).await.expect(200, "post");
    assert_eq!(r.json()["amount"], 60);
    transfer(
        &gw,
        json!({"id": "p2", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 7,
               "currency": "USD", "pending": true}),
    )
    .await;
    let v = gw.post("/v1/transfers/p2/void", &json!({})).await.expect(200, "void");
    assert_eq!(v.json()["status"], "voided");
    let bob = gw.get(&format!("/v1/accounts/bob?min_index={}", v.index())).await.expect(200, "bob").json();
    assert_eq!((bob["balance"].clone(), bob["credits_pending"].clone()), (json!(60), json!(0)), "{bob}");

    // Listing on followers: pages pinned to the first page's index agree while writes go on.
    let ids = |v: &Value| -> Vec<String> {
        v["accounts"].as_array().expect("accounts").iter().map(|a| a["id"].as_str().unwrap_or("?").to_owned()).collect()
    };
    let p1 = gw.get(&format!("/v1/accounts?limit=3&min_index={}", v.index())).await.expect(200, "list").json();
    assert_eq!(ids(&p1), ["equity", "alice", "a"]);
    let (next, at) = (p1["next"].as_u64().expect("next"), p1["at_index"].as_u64().expect("at_index"));
    account(&gw, "late", false).await;
    transfer(&gw, json!({"id": "late-t", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 1, "currency": "USD"}))
        .await;
    let p2 = gw.get(&format!("/v1/accounts?after={next}&at_index={at}")).await.expect(200, "page 2").json();
    assert_eq!(ids(&p2), ["b", "bob"], "{p2}");
    assert_eq!(p2["accounts"][1]["balance"], 60, "bob as of the first page's index");
    assert!(p2["next"].is_null(), "{p2}");
    let all = gw.get("/v1/accounts?prefix=b&consistency=strong").await.expect(200, "strong list").json();
    assert_eq!((ids(&all), all["accounts"][1]["balance"].clone()), (vec!["b".to_owned(), "bob".to_owned()], json!(61)));

    // Transfers of one account, on a follower, pinned: bob's pending p1 (posted), p2 (voided), late-t.
    let tids = |v: &Value| -> Vec<String> {
        v["transfers"]
            .as_array()
            .expect("transfers")
            .iter()
            .map(|t| t["id"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let bob_t = gw.get(&format!("/v1/transfers?account_id=bob&at_index={at}")).await.expect(200, "bob's transfers");
    let bob_t = bob_t.json();
    assert_eq!(tids(&bob_t), ["p1", "p2"], "{bob_t}");
    assert_eq!(
        (bob_t["transfers"][0]["status"].clone(), bob_t["transfers"][1]["status"].clone()),
        (json!("posted"), json!("voided"))
    );
    let now = gw.get("/v1/transfers?account_id=bob&consistency=strong").await.expect(200, "strong").json();
    assert_eq!(tids(&now), ["p1", "p2", "late-t"]);
    let voided = gw.get("/v1/transfers?status=voided&consistency=strong").await.expect(200, "voided").json();
    assert_eq!(tids(&voided), ["p2"]);
    let pages = gw.get("/v1/transfers?limit=2&consistency=strong").await.expect(200, "all").json();
    assert_eq!(tids(&pages), ["t1", "t2"]);
    let rest = gw.get(&format!("/v1/transfers?after={}&at_index={}", pages["next"], pages["at_index"])).await;
    let rest = tids(&rest.expect(200, "rest").json());
    assert_eq!(rest.first().map(String::as_str), Some("x1"), "{rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("late-t"), "{rest:?}");
    gw.get("/v1/transfers?account_id=nobody").await.expect(404, "no such account");
}

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Load before the kill.
const BEFORE_KILL: Duration = Duration::from_millis(1500);
/// New transfers are started for this long after the kill.
const AFTER_KILL: Duration = Duration::from_secs(5);
/// Attempts per transfer (a 503 is retried with the same id).
const ATTEMPTS_MAX: usize = 60;

/// Sends `method path body` until it is answered 200 or 201, waiting after each 503 (the same
/// request again: ids make it happen once); panics on any other answer or after `ATTEMPTS_MAX`.
/// Returns the status and the 503s seen.
async fn until_done(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, u64) {
    let mut unavailable = 0;
    for _ in 0..ATTEMPTS_MAX {
        let r = request(addr, method, path, body).await;
        match r.status {
            201 | 200 => return (r.status, unavailable),
            503 => {
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s => panic!("{method} {path} {body:?}: status {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    panic!("{method} {path} {body:?} never succeeded");
}

/// What one client did.
#[derive(Default)]
struct Done {
    /// Transfers created, created after the kill, 503s seen, replays seen, reversals.
    transfers: u64,
    after: u64,
    unavailable: u64,
    replays: u64,
    reverted: u64,
    /// Transactions created (2 from src to dst, 1 from dst to fee), and those reverted.
    transactions: u64,
    transactions_reverted: u64,
    /// Sweeps: 3 from src to bal, then a balancing transfer of up to 1000 from bal to fee.
    sweeps: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_under_transfer_load() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start();
    let gw = Arc::new(gateway_static(cluster.grpc_addrs()).await);
    let leader = wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    account(&gw, "src", true).await;
    for c in 0..CLIENTS {
        account(&gw, &format!("dst-{c}"), false).await;
        account(&gw, &format!("fee-{c}"), false).await;
        account(&gw, &format!("bal-{c}"), false).await;
    }

    let killed = Arc::new(AtomicBool::new(false));
    let stop_at = Instant::now() + BEFORE_KILL + AFTER_KILL;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (gw, killed) = (Arc::clone(&gw), Arc::clone(&killed));
        clients.push(tokio::spawn(async move {
            let mut d = Done::default();
            for i in 0..10_000u64 {
                if Instant::now() >= stop_at {
                    break;
                }
                let body = json!({"id": format!("c{c}-{i}"), "debit_account_id": "src",
                    "credit_account_id": format!("dst-{c}"), "amount": 1, "currency": "USD"});
                let (status, unavailable) = until_done(gw.addr, "POST", "/v1/transfers", Some(&body)).await;
                d.replays += u64::from(status == 200);
                d.unavailable += unavailable;
                d.transfers += 1;
                d.after += u64::from(killed.load(Ordering::SeqCst));
                // Every fifth transfer is reverted (issue 17), retried with the same request on a
                // 503: the reversal's derived id makes it happen once whatever the retries.
                if i % 5 == 4 {
                    let path = format!("/v1/transfers/c{c}-{i}/revert");
                    d.unavailable += until_done(gw.addr, "POST", &path, None).await.1;
                    d.reverted += 1;
                }
                // Every seventh, a transaction of two postings, the second spending what the first
                // brought (issue 17); every other one of them reverted, all postings at once.
                if i % 7 == 3 {
                    let tx = format!("x{c}-{i}");
                    let body = json!({"id": tx, "postings": [
                        {"debit_account_id": "src", "credit_account_id": format!("dst-{c}"), "amount": 2, "currency": "USD"},
                        {"debit_account_id": format!("dst-{c}"), "credit_account_id": format!("fee-{c}"), "amount": 1, "currency": "USD"},
                    ]});
                    d.unavailable += until_done(gw.addr, "POST", "/v1/transactions", Some(&body)).await.1;
                    d.transactions += 1;
                    if i % 14 == 3 {
                        let path = format!("/v1/transactions/{tx}/revert");
                        d.unavailable += until_done(gw.addr, "POST", &path, None).await.1;
                        d.transactions_reverted += 1;
                    }
                }
                // Every eleventh, a sweep (rule 10): a balancing transfer moves exactly what bal
                // holds, once, whatever the retries.
                if i % 11 == 6 {
                    let fund = json!({"id": format!("f{c}-{i}"), "debit_account_id": "src",
                        "credit_account_id": format!("bal-{c}"), "amount": 3, "currency": "USD"});
                    d.unavailable += until_done(gw.addr, "POST", "/v1/transfers", Some(&fund)).await.1;
                    let sweep = json!({"id": format!("s{c}-{i}"), "debit_account_id": format!("bal-{c}"),
                        "credit_account_id": format!("fee-{c}"), "amount": 1000, "currency": "USD",
                        "balancing_debit": true});
                    d.unavailable += until_done(gw.addr, "POST", "/v1/transfers", Some(&sweep)).await.1;
                    d.sweeps += 1;
                }
            }
            d
        }));
    }
    tokio::time::sleep(BEFORE_KILL).await;
    cluster.proc_mut(leader).kill9();
    killed.store(true, Ordering::SeqCst);
    let mut per_client = Vec::new();
    for c in clients {
        per_client.push(c.await.expect("client panicked"));
    }
    let after: u64 = per_client.iter().map(|d| d.after).sum();
    assert!(after > 0, "nothing succeeded after the kill\n{}", cluster.logs());
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || async {
        gw.backend.leader().filter(|(l, _)| *l != leader).map(|(l, _)| l)
    })
    .await;
    assert!(gw.backend.stats().leader_changes >= 1);

    // Each transfer, reversal and transaction applied once: every destination holds exactly its
    // client's count, on every surviving node (read straight from each node at the last write's
    // index), the source paid for all of it, and no account without overdraft went below zero.
    let last = gw.post("/v1/accounts", &json!({"id": "end", "currency": "USD"})).await.expect(201, "end").index();
    for node in cluster.procs.iter().filter(|p| p.child.is_some()) {
        let single = gateway_static(vec![node.grpc.clone()]).await;
        let mut total = 0i128;
        for (c, d) in per_client.iter().enumerate() {
            let standing = d.transactions - d.transactions_reverted;
            let a = single.get(&format!("/v1/accounts/dst-{c}?min_index={last}")).await.expect(200, "dst").json();
            assert_eq!(a["balance"], json!(d.transfers - d.reverted + standing), "node {} dst-{c}: {a}", node.id);
            let f = single.get(&format!("/v1/accounts/fee-{c}?min_index={last}")).await.expect(200, "fee").json();
            assert_eq!(f["balance"], json!(standing + 3 * d.sweeps), "node {} fee-{c}: {f}", node.id);
            let b = single.get(&format!("/v1/accounts/bal-{c}?min_index={last}")).await.expect(200, "bal").json();
            assert_eq!(b["balance"], json!(0), "node {} bal-{c}: {b}", node.id);
            total += i128::from(d.transfers - d.reverted + 2 * standing + 3 * d.sweeps);
        }
        let src = single.get(&format!("/v1/accounts/src?min_index={last}")).await.expect(200, "src").json();
        assert_eq!(src["balance"], json!(-total), "node {}: {src}", node.id);
    }
    let sum = |f: fn(&Done) -> u64| per_client.iter().map(f).sum::<u64>();
    eprintln!(
        "transfer failover: leader {leader} -> {new_leader}; {} transfers ({after} after the kill), {} 503s, {} \
         replays, {} reversals, {} transactions ({} reverted), {} sweeps",
        sum(|d| d.transfers),
        sum(|d| d.unavailable),
        sum(|d| d.replays),
        sum(|d| d.reverted),
        sum(|d| d.transactions),
        sum(|d| d.transactions_reverted),
        sum(|d| d.sweeps),
    );
}

/// Concurrent single transfers are gathered into shared calls to the leader (issue 14), yet each
/// request gets its own answer, as if sent alone: created, refused for funds, or an idempotent
/// replay of an identical request posted at the same moment; and the balances are exactly those
/// of the created transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_transfers_each_get_their_own_answer() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start();
    let gw = Arc::new(gateway_static(cluster.grpc_addrs()).await);
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    account(&gw, "equity", true).await;
    account(&gw, "rich", false).await;
    account(&gw, "poor", false).await;

    const FUNDED: usize = 200;
    const UNFUNDED: usize = 50;
    const TWINS: usize = 25;
    let body = |id: String, from: &str| json!({"id": id, "debit_account_id": from, "credit_account_id": "rich", "amount": 1, "currency": "USD"});
    let mut bodies: Vec<(&'static str, Value)> = Vec::new();
    bodies.extend((0..FUNDED).map(|i| ("funded", body(format!("g-{i}"), "equity"))));
    bodies.extend((0..UNFUNDED).map(|i| ("unfunded", body(format!("u-{i}"), "poor"))));
    for i in 0..TWINS {
        bodies.push(("twin", body(format!("d-{i}"), "equity")));
        bodies.push(("twin", body(format!("d-{i}"), "equity")));
    }
    let mut tasks = Vec::new();
    for (kind, b) in bodies {
        let gw = Arc::clone(&gw);
        tasks.push(tokio::spawn(async move {
            let r = gw.post("/v1/transfers", &b).await;
            (kind, b["id"].as_str().unwrap_or_default().to_owned(), r)
        }));
    }
    let mut twins: std::collections::BTreeMap<String, Vec<(u16, Option<String>)>> = Default::default();
    for t in tasks {
        let (kind, id, r) = t.await.expect("task");
        match kind {
            "funded" => {
                assert_eq!(r.status, 201, "{id}: {}", r.text());
                assert_eq!(r.json()["id"], id.as_str());
                assert_eq!(r.json()["status"], "posted", "{id}");
            }
            "unfunded" => {
                assert_eq!(r.status, 422, "{id}: {}", r.text());
                assert_eq!(r.json()["code"], "insufficient_funds", "{id}");
            }
            _ => twins.entry(id).or_default().push((r.status, r.header("idempotent-replayed").map(str::to_owned))),
        }
    }
    assert_eq!(twins.len(), TWINS);
    for (id, answers) in &twins {
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "{id}: one created, one replayed: {answers:?}");
        assert!(answers.iter().any(|a| a.0 == 200 && a.1.as_deref() == Some("true")), "{id}: {answers:?}");
    }
    let rich = gw.get("/v1/accounts/rich?consistency=strong").await.expect(200, "rich").json();
    assert_eq!(rich["balance"], json!(FUNDED + TWINS), "{rich}");
    let poor = gw.get("/v1/accounts/poor?consistency=strong").await.expect(200, "poor").json();
    assert_eq!(poor["balance"], json!(0), "{poor}");
}
