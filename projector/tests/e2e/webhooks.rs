//! `projector webhooks` end to end: a real cluster, a deliverer process and a local HTTP server
//! that fails, times out and restarts; the deliverer is killed with `kill -9` mid-way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use ledger_client::{NewAccount, NewPosting, NewTransaction, NewTransfer, NewWebhook};
use ledger_events::EventJson;
use projector::webhooks::order::signature;
use testkit::Proc;

use crate::support::{Cluster, SERIAL, transfer};

const SECRET: &str = "whsec_e2e_0123456789abcdef";
const WITHIN: Duration = Duration::from_secs(120);

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    delivery_id: String,
    event_type: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    /// What the receiver answered (0: it did not answer in time).
    status: u16,
}

/// What the receiver does with the next requests, and what it got.
#[derive(Default)]
struct Inbox {
    /// Answer 500 to this many requests.
    fail_next: usize,
    /// Answer this many requests only after 3 s (past the deliverer's 1 s timeout).
    slow_next: usize,
    got: Vec<Got>,
}

type Shared = Arc<Mutex<Inbox>>;

fn header(req: &hyper::Request<hyper::body::Incoming>, name: &str) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Serves on `addr` until the handle is aborted (connections with it).
async fn receiver(inbox: Shared, addr: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let inbox = Arc::clone(&inbox);
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let inbox = Arc::clone(&inbox);
                async move {
                    let mut got = Got {
                        path: req.uri().path().to_owned(),
                        delivery_id: header(&req, "ledger-delivery-id"),
                        event_type: header(&req, "ledger-event-type"),
                        timestamp: header(&req, "ledger-timestamp"),
                        signature: header(&req, "ledger-signature"),
                        body: Vec::new(),
                        status: 200,
                    };
                    got.body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    let (fail, slow) = {
                        let mut i = inbox.lock().unwrap();
                        let fail = i.fail_next > 0;
                        i.fail_next = i.fail_next.saturating_sub(1);
                        let slow = !fail && i.slow_next > 0;
                        if slow {
                            i.slow_next -= 1;
                        }
                        (fail, slow)
                    };
                    if slow {
                        got.status = 0;
                        inbox.lock().unwrap().got.push(got);
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    } else {
                        got.status = if fail { 500 } else { 200 };
                        inbox.lock().unwrap().got.push(got);
                    }
                    hyper::Response::builder()
                        .status(if fail { 500 } else { 200 })
                        .body(Full::new(Bytes::from_static(b"ok")))
                }
            });
            conns.spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                let _ = conn.await;
            });
        }
    });
    (bound, task)
}

fn deliverer(c: &Cluster, name: &str) -> Proc {
    let mut cmd = testkit::process::hermetic(Path::new(env!("CARGO_BIN_EXE_projector")));
    cmd.args(["webhooks", "--gateway", &c.url])
        .args(["--max-attempts", "8", "--backoff-min-ms", "100", "--backoff-max-ms", "1000"])
        .args(["--timeout-ms", "1000", "--refresh-ms", "200"])
        .env("RUST_LOG", "info");
    Proc::spawn(name, cmd, &c.path("webhooks.log"))
}

/// The (type, key) of an event: the transfer id or the account id.
fn what(ev: &EventJson) -> (String, String) {
    match ev {
        EventJson::AccountCreated(a) => ("account.created".to_owned(), a.id.clone()),
        EventJson::Transfer(t) => (format!("transfer.{}", t.kind.as_str()), t.transfer_id.clone()),
    }
}

/// The 2xx deliveries to `path`, first answer per delivery id, in arrival order.
fn delivered(inbox: &Shared, path: &str) -> Vec<Got> {
    let mut seen = BTreeSet::new();
    let i = inbox.lock().unwrap();
    i.got.iter().filter(|g| g.status == 200 && g.path == path && seen.insert(g.delivery_id.clone())).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_at_least_once_in_account_order_through_failures_and_kill9() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start().await;
    c.accounts(4).await;
    c.transfers("pre-", 20, 4).await;
    let inbox: Shared = Arc::default();
    let (addr, server) = receiver(Arc::clone(&inbox), "127.0.0.1:0".parse().unwrap()).await;

    // Subscriptions, and their refusals against the real cluster.
    let hook = |id: &str, url: String, events: &[&str], secret: Option<&str>| NewWebhook {
        id: Some(id.to_owned()),
        url,
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: secret.map(str::to_owned),
    };
    let a = c.client.create_webhook(&hook("hook-a", format!("http://{addr}/a"), &["*"], Some(SECRET))).await.unwrap();
    assert!(a.body.secret.is_none(), "a given secret is never answered");
    assert!(a.body.created_index > 0);
    let dup = c.client.create_webhook(&hook("hook-a", format!("http://{addr}/a"), &["*"], Some(SECRET))).await;
    assert_eq!(dup.unwrap_err().code(), Some("webhook_exists"));
    let closed = testkit::ports::RefusedAddr::new();
    let dead = hook("hook-dead", format!("http://{}/nobody", closed.addr()), &["account.created"], None);
    let made = c.client.create_webhook(&dead).await.unwrap();
    assert!(made.body.secret.as_deref().is_some_and(|s| s.starts_with("whsec_") && s.len() == 70), "{made:?}");
    c.client
        .create_webhook(&hook("hook-posted", format!("http://{addr}/posted"), &["transfer.posted"], Some(SECRET)))
        .await
        .unwrap();
    let listed = c.client.webhooks().await.unwrap();
    assert_eq!(listed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["hook-a", "hook-dead", "hook-posted"]);
    assert!(listed.iter().all(|w| w.secret.is_none()), "listings never show secrets");

    // The receiver fails twice, then times out once.
    {
        let mut i = inbox.lock().unwrap();
        i.fail_next = 2;
        i.slow_next = 1;
    }
    let mut d = deliverer(&c, "webhooks-1");
    c.transfers("a-", 150, 4).await;
    let postings = [("equity", "user-0", 50), ("user-0", "user-1", 30), ("user-1", "user-2", 20)];
    let tx = NewTransaction {
        id: "tx-1".into(),
        postings: postings
            .iter()
            .map(|(d, c, a)| NewPosting {
                debit_account_id: (*d).into(),
                credit_account_id: (*c).into(),
                amount: *a,
                currency: "USD".into(),
            })
            .collect(),
        metadata: None,
    };
    c.client.create_transaction(&tx).await.unwrap();
    for id in ["p-1", "p-2"] {
        c.client.create_transfer(&NewTransfer { pending: true, amount: 7, ..transfer(id, 4, 1) }).await.unwrap();
    }
    c.client.post_pending("p-1", None).await.unwrap();
    c.client.void_pending("p-2").await.unwrap();
    for id in ["late-0", "late-1"] {
        let acc = NewAccount { id: id.into(), currency: "USD".into(), ..NewAccount::default() };
        c.client.create_account(&acc).await.unwrap();
    }
    testkit::wait_for("50 deliveries before the kill", WITHIN, || async {
        (delivered(&inbox, "/a").len() >= 50).then_some(())
    })
    .await;
    d.kill9();
    c.transfers("b-", 100, 4).await;
    // Two deliverers now: one serves each subscription, the other stands by.
    let mut d = deliverer(&c, "webhooks-2");
    let mut d3 = deliverer(&c, "webhooks-3");
    // The receiver goes away for a while, and comes back on the same address.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, server) = receiver(Arc::clone(&inbox), addr).await;

    // Every event after the subscription, and none before it, reaches hook-a.
    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    for (prefix, n) in [("a-", 150), ("b-", 100)] {
        want.extend((0..n).map(|j| ("transfer.created".to_owned(), format!("{prefix}{j}"))));
    }
    want.extend((0..3).map(|n| ("transfer.created".to_owned(), format!("tx-1:{n}"))));
    for (k, id) in [("created", "p-1"), ("posted", "p-1"), ("created", "p-2"), ("voided", "p-2")] {
        want.insert((format!("transfer.{k}"), id.to_owned()));
    }
    want.extend(["late-0", "late-1"].map(|id| ("account.created".to_owned(), id.to_owned())));
    let got = testkit::wait_for("every event delivered to hook-a", WITHIN, || async {
        let got = delivered(&inbox, "/a");
        let have: BTreeSet<(String, String)> =
            got.iter().map(|g| what(&ledger_events::decode(&g.body).unwrap())).collect();
        want.is_subset(&have).then_some(got)
    })
    .await;
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for g in &got {
        let ev = ledger_events::decode(&g.body).unwrap();
        let (ty, key) = what(&ev);
        assert!(!key.starts_with("pre-"), "{key} was made before the subscription");
        assert_eq!(g.event_type, ty);
        assert!(want.contains(&(ty, key.clone())), "unexpected event {key}");
        // Per account, deliveries follow the account's changes.
        let accounts = match &ev {
            EventJson::AccountCreated(a) => vec![(a.id.clone(), 0)],
            EventJson::Transfer(t) => {
                vec![
                    (t.debit_account.id.clone(), t.debit_account.version),
                    (t.credit_account.id.clone(), t.credit_account.version),
                ]
            }
        };
        for (acc, v) in accounts {
            if let Some(prev) = last.insert(acc.clone(), v) {
                assert!(v > prev, "account {acc}: version {v} delivered after {prev} ({key})");
            }
        }
    }
    // Every request was signed over its timestamp and body with the subscription's secret.
    let all: Vec<Got> = inbox.lock().unwrap().got.clone();
    assert!(all.iter().any(|g| g.status == 500) && all.iter().any(|g| g.status == 0), "the failures happened");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for g in &all {
        let ts: u64 = g.timestamp.parse().unwrap();
        assert!(ts.abs_diff(now) < 600, "timestamp {ts}");
        assert_eq!(g.signature, signature(SECRET, ts, &g.body), "signature of {}", g.delivery_id);
    }
    // A filtered subscription gets only its type.
    let posted = testkit::wait_for("hook-posted", WITHIN, || async {
        let p = delivered(&inbox, "/posted");
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert!(posted.iter().all(|g| g.event_type == "transfer.posted"), "{posted:?}");

    // Dead letters: every attempt refused, recorded with the reason.
    let dead = testkit::wait_for("2 dead letters", WITHIN, || async {
        let l = c.client.webhook_deliveries("hook-dead", Some("dead")).await.unwrap().deliveries;
        (l.len() >= 2).then_some(l)
    })
    .await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for x in &dead {
        assert_eq!(
            (x.status.as_str(), x.attempts, x.http_status, x.event_type.as_str()),
            ("dead", 8, 0, "account.created")
        );
        assert!(!x.error.is_empty() && x.last_attempt_ms >= x.first_attempt_ms, "{x:?}");
    }
    assert_eq!(c.client.webhook("hook-dead").await.unwrap().dead_total, 2);
    let a_now = testkit::wait_for("hook-a's records", WITHIN, || async {
        let w = c.client.webhook("hook-a").await.unwrap();
        (w.delivered_total >= want.len() as u64).then_some(w)
    })
    .await;
    assert_eq!(a_now.dead_total, 0);
    let recent = c.client.webhook_deliveries("hook-a", Some("delivered")).await.unwrap().deliveries;
    assert!(!recent.is_empty() && recent.len() <= 100 && recent.iter().all(|x| x.status == "delivered"));

    // A deleted subscription gets nothing more.
    c.client.delete_webhook("hook-a").await.unwrap();
    assert_eq!(c.client.delete_webhook("hook-a").await.unwrap_err().code(), Some("webhook_not_found"));
    assert_eq!(c.client.webhook("hook-a").await.unwrap_err().code(), Some("webhook_not_found"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = delivered(&inbox, "/a").len();
    c.transfers("c-", 10, 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(delivered(&inbox, "/a").len(), before, "deliveries after the delete");

    // Made again under the same id, it starts afresh: the events after its new creation only.
    c.client.create_webhook(&hook("hook-a", format!("http://{addr}/again"), &["*"], Some(SECRET))).await.unwrap();
    c.transfers("d-", 5, 4).await;
    let again = testkit::wait_for("the new hook-a's deliveries", WITHIN, || async {
        let got = delivered(&inbox, "/again");
        (got.len() >= 5).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keys: BTreeSet<String> =
        delivered(&inbox, "/again").iter().map(|g| what(&ledger_events::decode(&g.body).unwrap()).1).collect();
    assert_eq!(keys, (0..5).map(|j| format!("d-{j}")).collect(), "{again:?}");
    d.kill9();
    d3.kill9();
    server.abort();
}
