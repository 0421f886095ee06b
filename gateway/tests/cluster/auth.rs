//! API keys against real processes (issue 16): three lognodes bootstrapped with an admin key
//! (`--admin-key-file`), two `gateway` binaries with `--auth keys` (the default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Cluster, GatewayProc, SERIAL};

/// The bootstrap admin key's secret (at least 32 characters, as lognode asks).
const ADMIN: &str = "lk_cluster_admin_secret_0123456789abcdef0123";
/// How long a revoked key may still pass at another gateway (issue 16: 1 s).
const REVOCATION_MAX: Duration = Duration::from_secs(1);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

async fn call(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<&Value>) -> testkit::http::Resp {
    crate::auth_walk::call(addr, method, path, Some(key), body).await
}

/// A new key with `scopes` (and `prefix`) made through `gw`, once `also` knows it too (it
/// reloads the keys every 250 ms); its secret.
async fn new_key(gw: SocketAddr, also: SocketAddr, scopes: &[&str], prefix: &str) -> String {
    let r = call(gw, "POST", "/v1/keys", ADMIN, Some(&json!({"scopes": scopes, "account_prefix": prefix}))).await;
    assert_eq!(r.status, 201, "create key {scopes:?}: {}", r.text());
    let secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let known = until(also, "/v1/cluster", &secret, Duration::from_secs(5), |s| s != 401).await;
    assert!(known.is_some(), "{also} never knew a key made at {gw}");
    secret
}

/// How long until `ok` holds for `gw`'s answer to `GET path` with `key`, polled every 10 ms for
/// at most `max`; `None` if it never did.
async fn until(gw: SocketAddr, path: &str, key: &str, max: Duration, ok: impl Fn(u16) -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() <= max {
        // The gateway process may not listen yet.
        if tokio::net::TcpStream::connect(gw).await.is_ok() && ok(call(gw, "GET", path, key, None).await.status) {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_in_the_log_hold_at_every_gateway() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = crate::support::write_admin_key(dir.path(), ADMIN);
    let key_path = key_file.to_str().expect("utf-8 path");
    let mut cluster = Cluster::builder().extra(&["--admin-key-file", key_path]).start();
    let gws = [
        GatewayProc::start_static_with(&cluster.grpc_addrs(), &["--auth", "keys"]),
        GatewayProc::start_static_with(&cluster.grpc_addrs(), &["--auth", "keys"]),
    ];
    let (a, b) = (gws[0].addr, gws[1].addr);
    for gw in [a, b] {
        let t = until(gw, "/v1/cluster", ADMIN, READY_TIMEOUT, |s| s == 200).await;
        assert!(t.is_some(), "the bootstrap admin key never worked at {gw}:\n{}", cluster.logs());
    }

    // Every route asks for its scope, at a real gateway over the real cluster.
    let weak = new_key(a, b, &["topics:read:unused-topic"], "").await;
    let protected = crate::auth_walk::walk(a, ADMIN, &weak).await;
    assert!(protected >= 25, "{protected}");

    // A key made at one gateway works at the other; revoked at one, refused by both within 1 s.
    let r = call(a, "POST", "/v1/keys", ADMIN, Some(&json!({"scopes": ["cluster:read"]}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    let (id, secret) = (made["id"].as_str().expect("id"), made["secret"].as_str().expect("secret"));
    let seen = until(b, "/v1/cluster", secret, Duration::from_secs(5), |s| s == 200).await;
    assert!(seen.is_some(), "gateway b never accepted a key made at a");
    let r = call(a, "DELETE", &format!("/v1/keys/{id}"), ADMIN, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (gw, proc) in [(a, &gws[0]), (b, &gws[1])] {
        let t = until(gw, "/v1/cluster", secret, Duration::from_secs(5), |s| s == 401).await;
        let t = t.unwrap_or_else(|| panic!("{gw} still accepts a revoked key after 5 s"));
        eprintln!("{gw} refused the revoked key after {t:?}");
        assert!(t <= REVOCATION_MAX, "{gw} accepted a revoked key for {t:?}; its log:\n{}", proc.log());
    }
    let listed = call(b, "GET", "/v1/keys", ADMIN, None).await.json();
    let ids: Vec<&str> = listed["keys"].as_array().expect("keys").iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(ids.contains(&"admin") && !ids.contains(&id), "{listed}");
    assert!(!listed.to_string().contains(ADMIN), "a listing shows no secret");

    // Only a key with groups:consume:projector joins the projector group.
    let other = new_key(a, b, &["groups:consume:billing", "topics:read:ledger"], "").await;
    let projector = new_key(a, b, &["groups:consume:projector", "topics:read:ledger"], "").await;
    let join = json!({"topics": ["ledger"]});
    let r = call(b, "POST", "/v1/groups/projector/members", &other, Some(&join)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(b, "POST", "/v1/groups/projector/members", &projector, Some(&join)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let member = r.json()["member_id"].as_str().expect("member_id").to_owned();
    let r = call(b, "DELETE", &format!("/v1/groups/projector/members/{member}"), &projector, None).await;
    assert!(r.status < 300, "{}", r.text());

    // A tenant's key reads and debits only its accounts.
    for id in ["t1-a", "t2-b"] {
        let r = call(
            a,
            "POST",
            "/v1/accounts",
            ADMIN,
            Some(&json!({"id": id, "currency": "USD", "allow_overdraft": true})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let tenant = new_key(a, b, &["accounts:read", "transfers:write"], "t1-").await;
    let r = call(b, "GET", "/v1/accounts/t1-a?consistency=strong", &tenant, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(b, "GET", "/v1/accounts/t2-b", &tenant, None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let debit = |from: &str, to: &str, id: &str| json!({"id": id, "debit_account_id": from, "credit_account_id": to, "amount": 3, "currency": "USD"});
    let r = call(b, "POST", "/v1/transfers", &tenant, Some(&debit("t2-b", "t1-a", "steal"))).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(b, "POST", "/v1/transfers", &tenant, Some(&debit("t1-a", "t2-b", "pay"))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(a, "GET", "/v1/accounts/t2-b?consistency=strong", ADMIN, None).await;
    assert_eq!(r.json()["balance"], json!(3), "{}", r.text());

    // A key over its quota gets 429 with Retry-After at a real gateway; the admin key does not.
    let body = json!({"scopes": ["cluster:read"], "rate_per_sec": 1, "burst": 2});
    let r = call(a, "POST", "/v1/keys", ADMIN, Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let slow = r.json()["secret"].as_str().expect("secret").to_owned();
    let known = until(a, "/v1/cluster", &slow, Duration::from_secs(5), |s| s != 401).await;
    assert!(known.is_some(), "{a} never knew the quota key");
    let mut throttled = None;
    for _ in 0..5 {
        let r = call(a, "GET", "/v1/cluster", &slow, None).await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("five quick requests past a burst of 2 at 1/s were never throttled");
    assert_eq!(r.json()["code"], "rate_limited", "{}", r.text());
    assert!(r.header("retry-after").is_some(), "429 without Retry-After");
    for _ in 0..5 {
        assert_eq!(call(a, "GET", "/v1/cluster", ADMIN, None).await.status, 200, "the admin key was throttled too");
    }

    // The bootstrap key, revoked by another admin, stays revoked when every node restarts (each
    // runs the bootstrap task again with the same file; the log refuses a second bootstrap).
    let ops = new_key(a, b, &["admin"], "").await;
    let r = call(a, "DELETE", "/v1/keys/admin", &ops, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let gone = until(b, "/v1/cluster", ADMIN, Duration::from_secs(5), |s| s == 401).await;
    assert!(gone.is_some(), "the revoked bootstrap key still works at {b}");
    for id in 1..=3 {
        cluster.restart(id);
    }
    let back = until(b, "/v1/keys", &ops, READY_TIMEOUT, |s| s == 200).await;
    assert!(back.is_some(), "the cluster never served the ops key again:\n{}", cluster.logs());
    // Give the bootstrap tasks twice lognode's ADMIN_KEY_RETRY_PAUSE (1 s) to try: admin must
    // still be refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = call(b, "GET", "/v1/keys", &ops, None).await;
    let listed = r.json();
    let ids: Vec<&str> = listed["keys"].as_array().expect("keys").iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(!ids.contains(&"admin"), "the revoked bootstrap key came back: {listed}");
    assert_eq!(call(a, "GET", "/v1/cluster", ADMIN, None).await.status, 401);

    // The audit trail, replicated and restarted with the rest: one bootstrap, then every key
    // change with the key that made it.
    let r = call(a, "GET", "/v1/audit?limit=1000", &ops, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let trail = r.json();
    let rows: Vec<String> = trail["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|a| format!("{} {} by={} -> {}", a["action"], a["target"], a["by"], a["outcome"]).replace('"', ""))
        .collect();
    assert_eq!(rows.iter().filter(|r| r.starts_with("key.bootstrap")).count(), 1, "{rows:#?}");
    assert_eq!(rows[0], "key.bootstrap admin by=bootstrap -> ok", "{rows:#?}");
    assert!(rows.contains(&format!("key.revoke {id} by=admin -> ok")), "{rows:#?}");
    // The last key made was `ops`, and it revoked admin.
    let ops_id = rows.iter().rev().find_map(|r| r.strip_prefix("key.create ")?.split(' ').next()).expect("ops");
    let want = format!("key.revoke admin by={ops_id} -> ok");
    assert_eq!(rows.last(), Some(&want), "{rows:#?}");
}
