//! Happy paths of every ledger, topic and ops route.

use serde_json::{Value, json};

use crate::support::{TestServer, assert_problem, ledger_index, start_default};

async fn account(s: &TestServer, id: &str, currency: &str, overdraft: bool) -> Value {
    let r = s.post("/v1/accounts", &json!({"id": id, "currency": currency, "allow_overdraft": overdraft})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

async fn transfer(s: &TestServer, body: Value) -> Value {
    let r = s.post("/v1/transfers", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn account_create_replay_and_get() {
    let s = start_default().await;
    let body = json!({"id": "alice", "currency": "USD", "metadata": {"b": 1, "a": {"y": 2, "x": 1}}});
    let r = s.post("/v1/accounts", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("idempotent-replayed").is_none());
    let a = r.json();
    let ix = ledger_index(&r);
    assert_eq!(a["index"], ix);
    assert_eq!(a["created_index"], ix);
    assert_eq!(a["balance"], 0);
    assert_eq!(a["allow_overdraft"], false);
    assert_eq!(a["metadata"], json!({"a": {"x": 1, "y": 2}, "b": 1}));

    // Identical replay, keys in another order: metadata is canonicalized.
    let replay = json!({"id": "alice", "currency": "USD", "metadata": {"a": {"x": 1, "y": 2}, "b": 1}});
    let r2 = s.post("/v1/accounts", &replay).await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    assert!(ledger_index(&r2) > ix);
    assert_eq!(r2.json()["created_index"], ix);

    let charset = s
        .request(
            "POST",
            "/v1/accounts",
            &[("content-type", "application/json; charset=utf-8")],
            br#"{"id":"alice2","currency":"USD"}"#.to_vec(),
        )
        .await;
    assert_eq!(charset.status, 201, "{}", charset.text());

    let g = s.get("/v1/accounts/alice").await;
    assert_eq!(g.status, 200, "{}", g.text());
    let v = g.json();
    for f in ["debits_posted", "credits_posted", "debits_pending", "credits_pending", "balance", "available", "index"] {
        assert!(v[f].is_u64() || v[f].is_i64(), "field {f} in {v}");
    }
    assert_eq!(v["currency"], "USD");
}

/// `GET /v1/accounts`: creation order, filters, cursors, and pages pinned to one log index.
#[tokio::test]
async fn accounts_are_listed_filtered_and_paged_as_of_one_index() {
    let s = start_default().await;
    account(&s, "eq", "USD", true).await;
    for (id, currency, tier) in [("a-1", "USD", "gold"), ("a-2", "EUR", "gold"), ("b-1", "USD", "silver")] {
        let body = json!({"id": id, "currency": currency, "metadata": {"tier": tier, "n": 3}});
        assert_eq!(s.post("/v1/accounts", &body).await.status, 201);
    }
    let ids = |v: &Value| -> Vec<String> {
        v["accounts"].as_array().expect("accounts").iter().map(|a| a["id"].as_str().expect("id").to_owned()).collect()
    };
    let first = s.get("/v1/accounts?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let p1 = first.json();
    assert_eq!(ids(&p1), ["eq", "a-1"]);
    let (next, at) = (p1["next"].as_u64().expect("next"), p1["at_index"].as_u64().expect("at_index"));
    assert_eq!(p1["accounts"][1]["metadata"], json!({"n": 3, "tier": "gold"}));

    // Writes after the first page: a new account and a transfer. Pinned pages ignore both.
    account(&s, "a-3", "USD", false).await;
    transfer(
        &s,
        json!({"id": "t1", "debit_account_id": "eq", "credit_account_id": "b-1", "amount": 7, "currency": "USD"}),
    )
    .await;
    let p2 = s.get(&format!("/v1/accounts?limit=2&after={next}&at_index={at}")).await.json();
    assert_eq!(ids(&p2), ["a-2", "b-1"], "{p2}");
    assert_eq!(p2["accounts"][1]["balance"], 0, "the balance as of the first page's index");
    assert!(p2["next"].is_null(), "{p2}");
    let now = s.get("/v1/accounts").await.json();
    assert_eq!(ids(&now), ["eq", "a-1", "a-2", "b-1", "a-3"]);
    assert_eq!(now["accounts"][3]["balance"], 7);

    for (query, want) in [
        ("prefix=a-", vec!["a-1", "a-2", "a-3"]),
        ("currency=EUR", vec!["a-2"]),
        ("prefix=a-&currency=USD", vec!["a-1", "a-3"]),
        ("metadata_key=tier&metadata_value=gold", vec!["a-1", "a-2"]),
        ("metadata_key=n&metadata_value=3&prefix=b", vec!["b-1"]),
        ("currency=JPY", vec![]),
    ] {
        let r = s.get(&format!("/v1/accounts?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(ids(&r.json()), want, "{query}");
    }
    for bad in ["limit=0", "limit=1001", "metadata_key=tier", "after=-1", "sort=id"] {
        assert_problem(&s.get(&format!("/v1/accounts?{bad}")).await, 400, "invalid_query", bad);
    }
    let r = s.get(&format!("/v1/accounts?at_index={}", u64::MAX / 2)).await;
    assert_eq!(r.status, 422, "{}", r.text());
}

#[tokio::test]
async fn transfer_moves_money_and_history_pages_with_a_cursor() {
    let s = start_default().await;
    account(&s, "equity", "USD", true).await;
    account(&s, "alice", "USD", false).await;
    let before = s.backend.last_index();
    let t1 = transfer(
        &s,
        json!({"id": "t1", "debit_account_id": "equity", "credit_account_id": "alice", "amount": 500,
               "currency": "USD", "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(t1["status"], "posted");
    assert_eq!(t1["amount"], 500);
    assert_eq!(t1["metadata"], json!({"k": "v"}));
    let t1_index = t1["index"].as_u64().expect("index");
    transfer(&s, json!({"id": "t2", "debit_account_id": "alice", "credit_account_id": "equity", "amount": 120, "currency": "USD"}))
        .await;

    // Replay of t1: 200, original result, header.
    let r = s
        .post(
            "/v1/transfers",
            &json!({"id": "t1", "debit_account_id": "equity", "credit_account_id": "alice",
               "amount": 500, "currency": "USD", "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.json()["index"], t1_index);

    let a = s.get("/v1/accounts/alice").await.json();
    assert_eq!(a["balance"], 380);
    assert_eq!(a["available"], 380);
    assert_eq!(a["credits_posted"], 500);
    assert_eq!(a["debits_posted"], 120);

    let old = s.get(&format!("/v1/accounts/alice?as_of_index={before}")).await;
    assert_eq!(old.status, 200, "{}", old.text());
    assert_eq!(old.json()["balance"], 0);

    let t = s.get("/v1/transfers/t1").await;
    assert_eq!(t.status, 200);
    assert_eq!(t.json()["debit_account_id"], "equity");

    let p1 = s.get("/v1/accounts/alice/transfers?limit=1").await;
    assert_eq!(p1.status, 200, "{}", p1.text());
    let p1 = p1.json();
    assert_eq!(p1["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(p1["entries"][0]["transfer_id"], "t1");
    assert_eq!(p1["entries"][0]["kind"], "created");
    let next = p1["next"].as_u64().expect("a next cursor");
    let p2 = s.get(&format!("/v1/accounts/alice/transfers?after={next}&limit=10")).await.json();
    assert_eq!(p2["entries"][0]["transfer_id"], "t2");
    assert_eq!(p2["entries"][0]["balance"], 380);
    assert!(p2["next"].is_null());
}

#[tokio::test]
async fn pending_transfers_post_partially_void_and_replay() {
    let s = start_default().await;
    account(&s, "equity", "USD", true).await;
    account(&s, "bob", "USD", false).await;
    let p = transfer(
        &s,
        json!({"id": "p1", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 100,
               "currency": "USD", "pending": true, "timeout_ms": 3600000}),
    )
    .await;
    assert_eq!(p["status"], "pending");
    assert!(p["expires_at_ms"].is_u64());
    let bob = s.get("/v1/accounts/bob").await.json();
    assert_eq!(bob["credits_pending"], 100);
    assert_eq!(bob["balance"], 0);

    let r = s.post("/v1/transfers/p1/post", &json!({"amount": 60})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let res = r.json();
    assert_eq!(res["status"], "posted");
    assert_eq!(res["amount"], 60);
    assert_eq!(res["index"], ledger_index(&r));
    let again = s.post("/v1/transfers/p1/post", &json!({"amount": 60})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.get("/v1/accounts/bob").await.json()["balance"], 60);
    let t = s.get("/v1/transfers/p1").await.json();
    assert_eq!(t["status"], "posted");
    assert_eq!(t["resolution"]["amount"], 60);

    transfer(
        &s,
        json!({"id": "p2", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 7,
                        "currency": "USD", "pending": true}),
    )
    .await;
    // Void without a body: refused without a JSON content type (cross-site safety), accepted with it.
    let v = s.request("POST", "/v1/transfers/p2/void", &[], Vec::new()).await;
    assert_problem(&v, 415, "unsupported_media_type", "void without a content type");
    let v = s.request("POST", "/v1/transfers/p2/void", &[("content-type", "application/json")], Vec::new()).await;
    assert_eq!(v.status, 200, "{}", v.text());
    assert_eq!(v.json()["status"], "voided");
    let v2 = s.post("/v1/transfers/p2/void", &json!({})).await;
    assert_eq!(v2.status, 200, "{}", v2.text());
    assert_eq!(v2.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.get("/v1/accounts/bob").await.json()["credits_pending"], 0);

    // Post of the full amount with no body.
    transfer(
        &s,
        json!({"id": "p3", "debit_account_id": "equity", "credit_account_id": "bob", "amount": 5,
                        "currency": "USD", "pending": true}),
    )
    .await;
    let full = s.request("POST", "/v1/transfers/p3/post", &[("content-type", "application/json")], Vec::new()).await;
    assert_eq!(full.status, 200, "{}", full.text());
    assert_eq!(full.json()["amount"], 5);
}

#[tokio::test]
async fn batches_report_one_result_per_item_and_atomic_batches_roll_back() {
    let s = start_default().await;
    account(&s, "equity", "USD", true).await;
    account(&s, "a", "USD", false).await;
    account(&s, "b", "USD", false).await;
    let item = |id: &str, d: &str, c: &str, amount: u64| json!({"id": id, "debit_account_id": d, "credit_account_id": c, "amount": amount, "currency": "USD"});
    let r = s
        .post("/v1/transfers/batch", &json!({"transfers": [item("x1", "equity", "a", 10), item("x2", "b", "a", 5)]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["index"], ledger_index(&r));
    assert_eq!(body["results"][0]["id"], "x1");
    assert_eq!(body["results"][0]["result"], "created");
    assert_eq!(body["results"][0]["transfer"]["amount"], 10);
    assert_eq!(body["results"][1]["result"], "failed");
    assert_eq!(body["results"][1]["code"], "insufficient_funds");
    assert!(body["results"][1].get("transfer").is_none());

    let r = s
        .post(
            "/v1/transfers/batch",
            &json!({"atomic": true, "transfers": [item("x1", "equity", "a", 10), item("y1", "equity", "b", 3), item("y2", "a", "b", 1000)]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["results"][0]["result"], "failed");
    assert_eq!(body["results"][0]["code"], "linked_event_failed");
    assert_eq!(body["results"][1]["code"], "linked_event_failed");
    assert_eq!(body["results"][2]["code"], "insufficient_funds");
    assert_eq!(s.get("/v1/accounts/b").await.json()["balance"], 0, "the atomic batch was rolled back");
    assert_problem(&s.get("/v1/transfers/y1").await, 404, "transfer_not_found", "rolled back item");

    let r = s.post("/v1/transfers/batch", &json!({"atomic": true, "transfers": [item("x1", "equity", "a", 10)]})).await;
    assert_eq!(r.json()["results"][0]["result"], "exists");
}

#[tokio::test]
async fn reads_accept_consistency_and_min_index() {
    let s = start_default().await;
    let r = account(&s, "c1", "EUR", false).await;
    let ix = r["index"].as_u64().expect("index");
    let strong = s.get("/v1/accounts/c1?consistency=strong").await;
    assert_eq!(strong.status, 200);
    assert!(ledger_index(&strong) >= ix);
    let ryw = s.get(&format!("/v1/accounts/c1?min_index={ix}")).await;
    assert_eq!(ryw.status, 200);
    let follower = s.get("/v1/transfers/nope?consistency=follower").await;
    assert_problem(&follower, 404, "transfer_not_found", "follower read");
    // An index no write has produced: 422 at once, with the current index (never "no leader").
    let future = s.get(&format!("/v1/accounts/c1?min_index={}", ix + 1000)).await;
    assert_problem(&future, 422, "index_not_reached", "min_index past the end of the log");
    assert_eq!(future.json()["current_index"], ix);
    assert_eq!(future.json()["retryable"], false);
}

#[tokio::test]
async fn topics_create_list_produce_and_fetch() {
    let s = start_default().await;
    let r = s.post("/v1/topics", &json!({"name": "orders", "partitions": 2})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["index"], ledger_index(&r));
    let again = s.post("/v1/topics", &json!({"name": "orders", "partitions": 2})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    s.post("/v1/topics", &json!({"name": "audit", "partitions": 1})).await;
    let list = s.get("/v1/topics").await.json();
    assert_eq!(list["topics"], json!([{"name": "audit", "partitions": 1}, {"name": "orders", "partitions": 2}]));

    let records = json!({"records": [
        {"key": "k1", "value": {"n": 1}, "headers": {"h": "x"}},
        {"key": "k1", "value": [1, "two", null]},
        {"key": "k1", "value": "text"}
    ]});
    let r = s.post("/v1/topics/orders/records", &records).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["index"], ledger_index(&r));
    let offsets = body["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 3);
    let p = offsets[0]["partition"].as_u64().expect("partition");
    assert!(offsets.iter().all(|o| o["partition"] == p), "same key, same partition");
    assert_eq!(offsets.iter().map(|o| o["offset"].as_u64()).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);

    let f = s.get(&format!("/v1/topics/orders/partitions/{p}/records?offset=1&limit=5")).await;
    assert_eq!(f.status, 200, "{}", f.text());
    let f = f.json();
    assert_eq!(f["records"][0]["offset"], 1);
    assert_eq!(f["records"][0]["value"], json!([1, "two", null]));
    assert_eq!(f["records"][1]["value"], "text");
    assert_eq!(f["records"][0]["key"], "k1");
    assert!(f["records"][0]["timestamp"].is_u64());
    assert_eq!(f["next_offset"], 3);
    assert_eq!(f["end_offset"], 3);
    let f0 = s.get(&format!("/v1/topics/orders/partitions/{p}/records")).await.json();
    assert_eq!(f0["records"][0]["headers"], json!({"h": "x"}));

    // A short long-poll with nothing new returns empty at the end.
    let empty = s.get(&format!("/v1/topics/orders/partitions/{p}/records?offset=3&wait_ms=50")).await.json();
    assert_eq!(empty["records"], json!([]));
    assert_eq!(empty["next_offset"], 3);
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_record_arrives() {
    let s = std::sync::Arc::new(start_default().await);
    s.post("/v1/topics", &json!({"name": "events", "partitions": 1})).await;
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.get("/v1/topics/events/partitions/0/records?offset=0&wait_ms=15000").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let r = s.post("/v1/topics/events/records", &json!({"records": [{"value": {"hello": "world"}}]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = waiter.await.expect("join");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["records"][0]["value"], json!({"hello": "world"}));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the long poll waited for its deadline");
}

#[tokio::test]
async fn cluster_status_and_admin_node_removal() {
    let s = start_default().await;
    let c = s.get("/v1/cluster").await;
    assert_eq!(c.status, 200, "{}", c.text());
    let c = c.json();
    assert_eq!(c["leader_id"], 1);
    assert_eq!(c["nodes"][0]["role"], "leader");
    assert_eq!(c["nodes"][1]["role"], "follower");
    for f in [
        "id",
        "grpc_addr",
        "role",
        "alive",
        "last_applied",
        "snapshot_index",
        "log_first_index",
        "log_bytes_since_snapshot",
    ] {
        assert!(c["nodes"][0].get(f).is_some(), "{f}");
    }
    let ct = ("content-type", "application/json");
    let unauth = s.request("POST", "/v1/cluster/nodes/3/remove", &[ct], Vec::new()).await;
    assert_problem(&unauth, 401, "unauthorized", "no token");
    let wrong =
        s.request("POST", "/v1/cluster/nodes/3/remove", &[ct, ("authorization", "Bearer nope")], Vec::new()).await;
    assert_problem(&wrong, 401, "unauthorized", "wrong token");
    let ok =
        s.request("POST", "/v1/cluster/nodes/3/remove", &[ct, ("authorization", "Bearer s3cret")], Vec::new()).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["removed"], 3);
    assert_eq!(ok.json()["index"], ledger_index(&ok));
    assert_eq!(s.get("/v1/cluster").await.json()["nodes"].as_array().map(Vec::len), Some(2));
    let gone =
        s.request("POST", "/v1/cluster/nodes/3/remove", &[ct, ("authorization", "Bearer s3cret")], Vec::new()).await;
    assert_problem(&gone, 404, "node_not_found", "removed twice");
    let leader =
        s.request("POST", "/v1/cluster/nodes/1/remove", &[ct, ("authorization", "Bearer s3cret")], Vec::new()).await;
    assert_problem(&leader, 422, "invalid_argument", "remove the leader");

    let no_admin = crate::support::start(gateway::GatewayConfig::default()).await;
    let r =
        no_admin.request("POST", "/v1/cluster/nodes/2/remove", &[ct, ("authorization", "Bearer x")], Vec::new()).await;
    assert_problem(&r, 403, "admin_disabled", "no admin token configured");
}

#[tokio::test]
async fn health_readiness_and_leader_loss() {
    let s = start_default().await;
    let h = s.get("/healthz").await;
    assert_eq!((h.status, h.json()["status"].clone()), (200, json!("ok")));
    let r = s.get("/readyz").await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ready")));

    s.backend.set_unavailable(true);
    let r = s.get("/readyz").await;
    assert_problem(&r, 503, "unavailable", "readyz without a leader");
    assert_eq!(r.header("retry-after"), Some("2"));
    let w = s.post("/v1/accounts", &json!({"id": "z", "currency": "USD"})).await;
    assert_problem(&w, 503, "unavailable", "write without a leader");
    assert!(w.header("retry-after").is_some());
    assert_eq!(s.get("/healthz").await.status, 200, "liveness does not depend on the leader");
    s.backend.set_unavailable(false);
    assert_eq!(s.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn openapi_and_swagger_ui_are_served() {
    let s = start_default().await;
    let o = s.get("/openapi.json").await;
    assert_eq!(o.status, 200);
    assert_eq!(o.text(), gateway::openapi::spec_json());
    assert!(o.json()["paths"]["/v1/transfers"]["post"].is_object());
    let redirect = s.get("/docs").await;
    assert!((300..400).contains(&redirect.status), "{}", redirect.status);
    let ui = s.get("/docs/").await;
    assert_eq!(ui.status, 200);
    assert!(ui.text().to_lowercase().contains("swagger"), "{}", ui.text());
    let init = s.get("/docs/swagger-initializer.js").await;
    assert_eq!(init.status, 200);
    assert!(init.text().contains("/openapi.json"), "{}", init.text());
    let css = s.get("/docs/swagger-ui.css").await;
    assert_eq!(css.status, 200, "vendored assets are served offline");
}
