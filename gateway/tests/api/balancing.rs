//! Issue 17 in process: the account limit flags, balancing and closing transfers (rules 10, 11).

use serde_json::{Value, json};

use crate::support::{TestServer, assert_problem, start_default};

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let r = s.post(path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text());
    r.json()
}

async fn account(s: &TestServer, id: &str) -> Value {
    let r = s.get(&format!("/v1/accounts/{id}?consistency=strong")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn t(id: &str, debit: &str, credit: &str, amount: u64) -> Value {
    json!({"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": "USD"})
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Rule 10: a liability-side account is limited by its debits; a balancing transfer moves what
/// the limits allow, and says so in its `amount`.
#[tokio::test]
async fn credit_limits_and_balancing_transfers() {
    let s = start_default().await;
    post(&s, "/v1/accounts", json!({"id": "bank", "currency": "USD", "allow_overdraft": true})).await;
    post(&s, "/v1/accounts", json!({"id": "alice", "currency": "USD"})).await;
    let card = post(
        &s,
        "/v1/accounts",
        json!({"id": "card", "currency": "USD", "allow_overdraft": true, "credits_must_not_exceed_debits": true}),
    )
    .await;
    assert_eq!((card["credits_must_not_exceed_debits"].clone(), card["closed"].clone()), (json!(true), json!(false)));
    let r =
        s.post("/v1/accounts", &json!({"id": "both", "currency": "USD", "credits_must_not_exceed_debits": true})).await;
    assert_problem(&r, 422, "flags_are_mutually_exclusive", "a limit on both sides");

    assert_problem(&s.post("/v1/transfers", &t("t1", "bank", "card", 1)).await, 422, "exceeds_debits", "no debits yet");
    post(&s, "/v1/transfers", t("t2", "card", "alice", 100)).await;
    let b = post(&s, "/v1/transfers", with(t("b1", "bank", "card", 500), json!({"balancing_credit": true}))).await;
    assert_eq!((b["amount"].clone(), b["balancing_credit"].clone()), (json!(100), json!(true)), "{b}");
    let r = s.post("/v1/transfers", &with(t("b2", "bank", "card", 5), json!({"balancing_credit": true}))).await;
    assert_problem(&r, 422, "exceeds_debits", "nothing left to credit");

    // Sweep alice: everything she has, whatever the amount asked.
    let sweep = with(t("sweep", "alice", "bank", 1_000_000), json!({"balancing_debit": true}));
    let b = post(&s, "/v1/transfers", sweep.clone()).await;
    assert_eq!(b["amount"], 100, "{b}");
    assert_eq!(account(&s, "alice").await["balance"], 0);
    // A replay answers what moved; nothing moves twice.
    let again = s.post("/v1/transfers", &sweep).await;
    assert_eq!((again.status, again.json()["amount"].clone()), (200, json!(100)), "{}", again.text());
    assert_eq!(s.get("/v1/transfers/sweep").await.json()["amount"], 100);
    let r = s.post("/v1/transfers", &with(t("sweep2", "alice", "bank", 5), json!({"balancing_debit": true}))).await;
    assert_problem(&r, 422, "insufficient_funds", "nothing to sweep");
    assert!(r.text().contains("nothing available"), "{}", r.text());
}

/// Rule 11: a pending closing transfer closes an account; its void reopens it; its post closes
/// it for good. In batches too.
#[tokio::test]
async fn closing_transfers_close_and_a_void_reopens() {
    let s = start_default().await;
    post(&s, "/v1/accounts", json!({"id": "bank", "currency": "USD", "allow_overdraft": true})).await;
    post(&s, "/v1/accounts", json!({"id": "alice", "currency": "USD"})).await;
    post(&s, "/v1/transfers", t("f1", "bank", "alice", 40)).await;

    let r = s.post("/v1/transfers", &with(t("c0", "alice", "bank", 1), json!({"closing_debit": true}))).await;
    assert_problem(&r, 422, "closing_transfer_must_be_pending", "a posted closing transfer");
    let close =
        with(t("c1", "alice", "bank", 1000), json!({"pending": true, "balancing_debit": true, "closing_debit": true}));
    let c = post(&s, "/v1/transfers", close).await;
    assert_eq!(
        (c["amount"].clone(), c["closing_debit"].clone(), c["status"].clone()),
        (json!(40), json!(true), json!("pending"))
    );
    assert_eq!(account(&s, "alice").await["closed"], true);
    assert_problem(
        &s.post("/v1/transfers", &t("in", "bank", "alice", 1)).await,
        422,
        "credit_account_closed",
        "closed",
    );
    let batch = json!({"atomic": false, "transfers": [t("x1", "alice", "bank", 1), t("x2", "bank", "alice", 1)]});
    let b = post(&s, "/v1/transfers/batch", batch).await;
    assert_eq!(
        (b["results"][0]["code"].clone(), b["results"][1]["code"].clone()),
        (json!("debit_account_closed"), json!("credit_account_closed")),
        "{b}"
    );

    post(&s, "/v1/transfers/c1/void", json!({})).await;
    let a = account(&s, "alice").await;
    assert_eq!((a["closed"].clone(), a["balance"].clone()), (json!(false), json!(40)), "{a}");
    post(&s, "/v1/transfers", t("in", "bank", "alice", 1)).await;

    let close =
        with(t("c2", "alice", "bank", 1000), json!({"pending": true, "balancing_debit": true, "closing_debit": true}));
    post(&s, "/v1/transfers", close).await;
    post(&s, "/v1/transfers/c2/post", json!({})).await;
    let a = account(&s, "alice").await;
    assert_eq!((a["closed"].clone(), a["balance"].clone()), (json!(true), json!(0)), "{a}");
    assert_problem(
        &s.post("/v1/transfers", &t("in2", "bank", "alice", 1)).await,
        422,
        "credit_account_closed",
        "for good",
    );
}
