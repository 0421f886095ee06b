//! API keys and scopes (issue 16) over the in-process backend: every operation of the OpenAPI
//! document asks for its scope, prefixes fence tenants, revocation takes effect.

use std::time::Duration;

use gateway::GatewayConfig;
use gateway::auth::AuthMode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_problem, start};

pub(crate) const ADMIN: &str = "lk_admin_secret_for_tests_0123456789abcdef";
/// Grants only reading a topic no test uses.
const WEAK: &str = "lk_weak_secret_for_tests_0123456789abcdef";
pub(crate) const TENANT: &str = "lk_tenant_secret_for_tests_0123456789abcde";
/// How long a test waits for the gateway to load keys (its refresh interval is 250 ms).
const LOAD_WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn keyed() -> TestServer {
    let srv = start(GatewayConfig { auth: AuthMode::Keys, ..GatewayConfig::default() }).await;
    srv.backend.add_key("admin", ADMIN, &["admin"], "");
    srv.backend.add_key("weak", WEAK, &["topics:read:unused-topic"], "");
    srv.backend.add_key(
        "tenant",
        TENANT,
        &["accounts:read", "accounts:write", "transfers:read", "transfers:write"],
        "t1-",
    );
    let deadline = tokio::time::Instant::now() + LOAD_WAIT;
    while call(&srv, "GET", "/v1/keys", Some(ADMIN), None).await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the gateway never loaded the keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv
}

async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> testkit::http::Resp {
    crate::auth_walk::call(srv.addr, method, path, key, body).await
}

/// Walks the served OpenAPI document (`auth_walk`): every operation asks for its scope.
#[tokio::test]
async fn every_operation_asks_for_its_scope() {
    let srv = keyed().await;
    let protected = crate::auth_walk::walk(srv.addr, ADMIN, WEAK).await;
    assert!(protected >= 25, "only {protected} protected operations found");
}

/// A key with an account prefix creates, reads and debits only its own accounts.
#[tokio::test]
async fn an_account_prefix_fences_a_tenant() {
    let srv = keyed().await;
    for id in ["t1-a", "t2-b"] {
        let r = call(
            &srv,
            "POST",
            "/v1/accounts",
            Some(ADMIN),
            Some(&json!({"id": id, "currency": "USD", "allow_overdraft": true})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = call(&srv, "POST", "/v1/accounts", Some(TENANT), Some(&json!({"id": "t1-c", "currency": "USD"}))).await;
    assert_eq!(r.status, 201, "own account: {}", r.text());
    let r = call(&srv, "POST", "/v1/accounts", Some(TENANT), Some(&json!({"id": "t2-c", "currency": "USD"}))).await;
    assert_problem(&r, 403, "forbidden", "creating another tenant's account");
    assert_eq!(call(&srv, "GET", "/v1/accounts/t1-a", Some(TENANT), None).await.status, 200);
    for path in ["/v1/accounts/t2-b", "/v1/accounts/t2-b/transfers"] {
        let r = call(&srv, "GET", path, Some(TENANT), None).await;
        assert_problem(&r, 403, "forbidden", path);
    }
    let t = |id: &str, from: &str, to: &str| json!({"id": id, "debit_account_id": from, "credit_account_id": to, "amount": 5, "currency": "USD"});
    let r = call(&srv, "POST", "/v1/transfers", Some(TENANT), Some(&t("x1", "t2-b", "t1-a"))).await;
    assert_problem(&r, 403, "forbidden", "debiting another tenant");
    let r = call(
        &srv,
        "POST",
        "/v1/transfers/batch",
        Some(TENANT),
        Some(&json!({"transfers": [t("x2", "t1-a", "t2-b"), t("x3", "t2-b", "t1-a")]})),
    )
    .await;
    assert_problem(&r, 403, "forbidden", "a batch debiting another tenant");
    let r = call(&srv, "POST", "/v1/transfers", Some(TENANT), Some(&t("x4", "t1-a", "t2-b"))).await;
    assert_eq!(r.status, 201, "paying another tenant from its own account: {}", r.text());
    assert_eq!(call(&srv, "GET", "/v1/transfers/x4", Some(TENANT), None).await.status, 200);
    let r = call(
        &srv,
        "POST",
        "/v1/transfers",
        Some(ADMIN),
        Some(&json!({"id": "p1", "debit_account_id": "t2-b",
        "credit_account_id": "t1-a", "amount": 5, "currency": "USD", "pending": true, "timeout_ms": 60000})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(&srv, "GET", "/v1/transfers/p1", Some(TENANT), None).await;
    assert_eq!(r.status, 200, "a transfer to its account is visible: {}", r.text());
    let r = call(&srv, "POST", "/v1/transfers/p1/post", Some(TENANT), Some(&json!({}))).await;
    assert_problem(&r, 403, "forbidden", "posting another tenant's pending debit");
    let r = call(&srv, "POST", "/v1/transfers", Some(ADMIN), Some(&t("x5", "t2-b", "t2-c0"))).await;
    assert!(r.status >= 400, "no such account t2-c0");
    let r = call(&srv, "POST", "/v1/accounts", Some(ADMIN), Some(&json!({"id": "t2-d", "currency": "USD"}))).await;
    assert_eq!(r.status, 201);
    let r = call(&srv, "POST", "/v1/transfers", Some(ADMIN), Some(&t("x6", "t2-b", "t2-d"))).await;
    assert_eq!(r.status, 201);
    let r = call(&srv, "GET", "/v1/transfers/x6", Some(TENANT), None).await;
    assert_problem(&r, 403, "forbidden", "a transfer between another tenant's accounts");

    // Listing: a tenant sees its own accounts only, whatever prefix it asks for.
    let listed = |r: testkit::http::Resp| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .map(|a| a["id"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let own = ["t1-a", "t1-c"];
    assert_eq!(listed(call(&srv, "GET", "/v1/accounts", Some(TENANT), None).await), own);
    assert_eq!(listed(call(&srv, "GET", "/v1/accounts?prefix=t", Some(TENANT), None).await), own);
    assert_eq!(listed(call(&srv, "GET", "/v1/accounts?prefix=t1-c", Some(TENANT), None).await), ["t1-c"]);
    let r = call(&srv, "GET", "/v1/accounts?prefix=t2-", Some(TENANT), None).await;
    assert_problem(&r, 403, "forbidden", "listing another tenant's accounts");
    assert_eq!(listed(call(&srv, "GET", "/v1/accounts?prefix=t2-", Some(ADMIN), None).await), ["t2-b", "t2-d"]);

    // Transfers: a tenant lists those of one of its accounts, and must name it.
    let transfers = |r: testkit::http::Resp| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["transfers"]
            .as_array()
            .expect("transfers")
            .iter()
            .map(|t| t["id"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let r = call(&srv, "GET", "/v1/transfers?account_id=t1-a", Some(TENANT), None).await;
    let own: Vec<String> = transfers(r);
    assert!(own.contains(&"x4".to_owned()) && own.contains(&"p1".to_owned()), "{own:?}");
    let r = call(&srv, "GET", "/v1/transfers", Some(TENANT), None).await;
    assert_problem(&r, 403, "forbidden", "listing every transfer with a tenant key");
    let r = call(&srv, "GET", "/v1/transfers?account_id=t2-b", Some(TENANT), None).await;
    assert_problem(&r, 403, "forbidden", "listing another tenant's account's transfers");
    assert!(transfers(call(&srv, "GET", "/v1/transfers", Some(ADMIN), None).await).contains(&"x6".to_owned()));
}

/// Keys are made, listed without secrets and revoked through the API; a revoked key is refused.
#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let srv = keyed().await;
    let r = call(&srv, "POST", "/v1/keys", Some(ADMIN), Some(&json!({"scopes": ["cluster:read", "topics:produce:*"]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    let (id, secret) = (made["id"].as_str().expect("id"), made["secret"].as_str().expect("secret"));
    assert!(secret.len() >= 64, "{secret}");
    assert_eq!(call(&srv, "GET", "/v1/cluster", Some(secret), None).await.status, 200, "the new key works at once");
    let r = call(&srv, "GET", "/v1/keys", Some(secret), None).await;
    assert_problem(&r, 403, "forbidden", "listing keys without admin");
    let list = call(&srv, "GET", "/v1/keys", Some(ADMIN), None).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(secret), "a listing shows no secret");
    let listed = list.json();
    assert_eq!(listed["keys"].as_array().expect("keys").len(), 4, "{}", list.text());
    let mine = listed["keys"].as_array().expect("keys").iter().find(|k| k["id"] == id).expect("listed").clone();
    assert_eq!(mine["created_by"], "admin");
    assert_eq!(mine["scopes"], json!(["cluster:read", "topics:produce:*"]));
    for bad in [json!({"scopes": []}), json!({"scopes": ["root"]}), json!({"scopes": ["topics:read:a b"]})] {
        let r = call(&srv, "POST", "/v1/keys", Some(ADMIN), Some(&bad)).await;
        assert_problem(&r, 422, "invalid_scope", &bad.to_string());
    }
    let r =
        call(&srv, "POST", "/v1/keys", Some(ADMIN), Some(&json!({"scopes": ["admin"], "account_prefix": "a b"}))).await;
    assert_problem(&r, 422, "invalid_id", "a prefix outside the id alphabet");
    let r = call(&srv, "DELETE", &format!("/v1/keys/{id}"), Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&srv, "GET", "/v1/cluster", Some(secret), None).await;
    assert_problem(&r, 401, "unauthorized", "a revoked key");
    let r = call(&srv, "DELETE", &format!("/v1/keys/{id}"), Some(ADMIN), None).await;
    assert_problem(&r, 404, "key_not_found", "revoking twice");

    // The audit trail names the key behind each admin action, for admins only, page by page.
    let r = call(&srv, "GET", "/v1/audit", Some(secret), None).await;
    assert_problem(&r, 401, "unauthorized", "a revoked key reading the audit trail");
    let r = call(&srv, "GET", "/v1/audit", Some(WEAK), None).await;
    assert_problem(&r, 403, "forbidden", "the audit trail without admin");
    let r = call(&srv, "GET", "/v1/audit", Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let trail = r.json();
    let actions: Vec<(String, String, String)> = trail["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or("?").into(),
                a["target"].as_str().unwrap_or("?").into(),
                a["by"].as_str().unwrap_or("?").into(),
            )
        })
        .collect();
    let want = |a: &str| (a.to_owned(), id.to_owned(), "admin".to_owned());
    assert_eq!(actions, vec![want("key.create"), want("key.revoke")], "{trail}");
    assert_eq!(trail["total"], 2);
    assert!(trail["next"].is_null(), "one page: {trail}");
    let r = call(&srv, "GET", "/v1/audit?limit=1", Some(ADMIN), None).await;
    let first = r.json();
    assert_eq!(first["records"].as_array().map(Vec::len), Some(1), "{first}");
    let next = first["next"].as_u64().expect("a cursor after a full page");
    let r = call(&srv, "GET", &format!("/v1/audit?after={next}"), Some(ADMIN), None).await;
    assert_eq!(r.json()["records"][0]["action"], "key.revoke", "{}", r.text());
    for bad in ["limit=0", "limit=1001", "after=x", "since=1"] {
        let r = call(&srv, "GET", &format!("/v1/audit?{bad}"), Some(ADMIN), None).await;
        assert_problem(&r, 400, "invalid_query", bad);
    }
}

/// A named scope grants its name (or any with `*`) and nothing else; joining a group also needs
/// reading each of its topics.
#[tokio::test]
async fn named_scopes_grant_their_names_only() {
    let srv = keyed().await;
    let r = call(&srv, "POST", "/v1/topics", Some(ADMIN), Some(&json!({"name": "orders", "partitions": 1}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        &srv,
        "POST",
        "/v1/keys",
        Some(ADMIN),
        Some(&json!({"scopes": ["topics:produce:orders", "groups:consume:billing"]})),
    )
    .await;
    let secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let rec = json!({"records": [{"value": "x"}]});
    let r = call(&srv, "POST", "/v1/topics/orders/records", Some(&secret), Some(&rec)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&srv, "POST", "/v1/topics/orders2/records", Some(&secret), Some(&rec)).await;
    assert_problem(&r, 403, "forbidden", "another topic");
    let r = call(&srv, "GET", "/v1/topics/orders/partitions/0/records", Some(&secret), None).await;
    assert_problem(&r, 403, "forbidden", "reading with a produce scope");
    let r = call(&srv, "POST", "/v1/groups/billing/members", Some(&secret), Some(&json!({"topics": ["orders"]}))).await;
    assert_problem(&r, 403, "forbidden", "joining without reading the group's topic");
    let r =
        call(&srv, "POST", "/v1/groups/projector/members", Some(&secret), Some(&json!({"topics": ["orders"]}))).await;
    assert_problem(&r, 403, "forbidden", "joining another group");
}

/// A key over its rate gets 429 `rate_limited` with `Retry-After`; over its requests in flight,
/// 429 `in_flight_exceeded`; other keys are not affected; `/metrics` counts both by key id and
/// never shows a secret.
#[tokio::test]
async fn quotas_throttle_one_key_and_not_the_others() {
    use gateway::backend::Quota;
    let srv = keyed().await;
    const SLOW: &str = "lk_slow_secret_for_tests_0123456789abcdef";
    const NARROW: &str = "lk_narrow_secret_for_tests_0123456789abcd";
    srv.backend.add_key_with_quota(
        "slow",
        SLOW,
        &["cluster:read"],
        "",
        Quota { rate_per_sec: 1, burst: 3, max_in_flight: 0 },
    );
    srv.backend.add_key_with_quota(
        "narrow",
        NARROW,
        &["accounts:read"],
        "",
        Quota { rate_per_sec: 0, burst: 0, max_in_flight: 1 },
    );
    let deadline = tokio::time::Instant::now() + LOAD_WAIT;
    while call(&srv, "GET", "/v1/cluster", Some(SLOW), None).await.status == 401 {
        assert!(tokio::time::Instant::now() < deadline, "the gateway never loaded the quota keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The bucket held 3; one went on the wait above. Within a second at most 2 more pass.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(call(&srv, "GET", "/v1/cluster", Some(SLOW), None).await);
    }
    let throttled: Vec<&testkit::http::Resp> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(!throttled.is_empty(), "no 429 in {:?}", statuses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_problem(throttled[0], 429, "rate_limited", "over the rate");
    let retry: u64 = throttled[0].header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!(retry >= 1, "{retry}");
    assert_eq!(call(&srv, "GET", "/v1/cluster", Some(ADMIN), None).await.status, 200, "another key is not throttled");

    // In flight: a slow backend holds the first request; the second comes once /metrics shows
    // the first in flight.
    srv.backend.set_delay(Duration::from_millis(1500));
    let addr = srv.addr;
    let first = tokio::spawn(async move {
        let auth = format!("Bearer {NARROW}");
        testkit::http::request(addr, "GET", "/v1/accounts/t1-a", &[("authorization", auth.as_str())], Vec::new()).await
    });
    let deadline = tokio::time::Instant::now() + LOAD_WAIT;
    while !call(&srv, "GET", "/metrics", Some(ADMIN), None)
        .await
        .text()
        .contains("gateway_key_in_flight{key=\"narrow\"} 1")
    {
        assert!(tokio::time::Instant::now() < deadline, "the first request never showed in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = call(&srv, "GET", "/v1/accounts/t1-a", Some(NARROW), None).await;
    let a = first.await.expect("first request");
    srv.backend.set_delay(Duration::ZERO);
    assert_ne!(a.status, 429, "the first request: {}", a.text());
    assert_problem(&b, 429, "in_flight_exceeded", "a second request in flight");
    assert!(b.header("retry-after").is_some(), "{b:?}");
    assert_ne!(call(&srv, "GET", "/v1/accounts/t1-a", Some(NARROW), None).await.status, 429, "the slot came back");

    let metrics = call(&srv, "GET", "/metrics", Some(ADMIN), None).await.text();
    for line in [
        "gateway_key_throttled_total{key=\"slow\",reason=\"rate\"}",
        "gateway_key_throttled_total{key=\"narrow\",reason=\"in_flight\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
    for secret in [ADMIN, SLOW, NARROW] {
        assert!(!metrics.contains(secret), "a secret in /metrics");
    }
}
