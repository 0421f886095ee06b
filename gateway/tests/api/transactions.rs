//! Issue 17 in process: `POST /v1/transactions` (several postings, all or none, idempotent),
//! `GET /v1/transactions/{id}` and `POST /v1/transactions/{id}/revert`.

use serde_json::{Value, json};

use crate::support::{TestServer, assert_problem, start_default};

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let r = s.post(path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text());
    r.json()
}

async fn balance(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/v1/accounts/{id}?consistency=strong")).await.json()["balance"].clone()
}

async fn balances(s: &TestServer, ids: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(balance(s, id).await);
    }
    out
}

fn p(debit: &str, credit: &str, amount: u64) -> Value {
    json!({"debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": "USD"})
}

async fn accounts(s: &TestServer) {
    for (id, overdraft) in [("eq", true), ("alice", false), ("shop", false), ("fees", false)] {
        post(s, "/v1/accounts", json!({"id": id, "currency": "USD", "allow_overdraft": overdraft})).await;
    }
    post(s, "/v1/transfers", json!({"id": "fund", "debit_account_id": "eq", "credit_account_id": "alice", "amount": 1000, "currency": "USD"})).await;
}

/// A payment with a fee: two postings under one id, the second spending what the first moved.
#[tokio::test]
async fn a_transaction_applies_its_postings_together_once() {
    let s = start_default().await;
    accounts(&s).await;
    let body = json!({"id": "pay-7", "postings": [p("alice", "shop", 100), p("shop", "fees", 3)],
        "metadata": {"order": "o-17", "a": 1}});
    let r = s.post("/v1/transactions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tx = r.json();
    assert_eq!(tx["id"], "pay-7");
    assert_eq!(tx["metadata"], json!({"a": 1, "order": "o-17"}));
    let posting_ids: Vec<&str> =
        tx["postings"].as_array().expect("postings").iter().filter_map(|p| p["transfer_id"].as_str()).collect();
    assert_eq!(posting_ids, ["pay-7:0", "pay-7:1"]);
    assert_eq!(r.header("ledger-index").and_then(|i| i.parse::<u64>().ok()), tx["index"].as_u64());
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(900), json!(97), json!(3)]);

    // An identical replay (keys in another order) answers the original; nothing moves again.
    let replay = json!({"metadata": {"order": "o-17", "a": 1}, "postings": [p("alice", "shop", 100), p("shop", "fees", 3)], "id": "pay-7"});
    let again = s.post("/v1/transactions", &replay).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")), "{}", again.text());
    assert_eq!(again.json()["index"], tx["index"]);
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(900), json!(97), json!(3)]);
    // Any other body under the id is a conflict: an amount, the metadata, one posting more or less.
    for other in [
        json!({"id": "pay-7", "postings": [p("alice", "shop", 100), p("shop", "fees", 4)], "metadata": {"order": "o-17", "a": 1}}),
        json!({"id": "pay-7", "postings": [p("alice", "shop", 100), p("shop", "fees", 3)]}),
        json!({"id": "pay-7", "postings": [p("alice", "shop", 100)], "metadata": {"order": "o-17", "a": 1}}),
        json!({"id": "pay-7", "postings": [p("alice", "shop", 100), p("shop", "fees", 3), p("shop", "fees", 1)], "metadata": {"order": "o-17", "a": 1}}),
    ] {
        assert_problem(&s.post("/v1/transactions", &other).await, 409, "id_conflict", &other.to_string());
    }
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(900), json!(97), json!(3)]);

    // Read back, also from the posting transfers and the transfer query by transaction id.
    let got = s.get("/v1/transactions/pay-7?consistency=strong").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = got.json();
    assert_eq!(
        (got["postings"].clone(), got["metadata"].clone(), got["index"].clone()),
        (tx["postings"].clone(), tx["metadata"].clone(), tx["index"].clone())
    );
    let t1 = s.get("/v1/transfers/pay-7:1").await.json();
    assert_eq!(t1["metadata"], json!({"posting": 1, "transaction": "pay-7"}));
    let listed = s.get("/v1/transfers?metadata_key=transaction&metadata_value=pay-7").await.json();
    assert_eq!(listed["transfers"].as_array().map(Vec::len), Some(2), "{listed}");
    assert_problem(&s.get("/v1/transactions/nope").await, 404, "transaction_not_found", "unknown");
    // A plain transfer whose id looks like a posting is not a transaction.
    post(&s, "/v1/transfers", json!({"id": "plain:0", "debit_account_id": "eq", "credit_account_id": "alice", "amount": 1, "currency": "USD"})).await;
    assert_problem(&s.get("/v1/transactions/plain").await, 404, "transaction_not_found", "not a transaction");
}

/// All or nothing: one refused posting leaves every balance and id as it was.
#[tokio::test]
async fn a_refused_posting_applies_nothing_and_names_itself() {
    let s = start_default().await;
    accounts(&s).await;
    let cases = [
        (json!([p("alice", "shop", 100), p("shop", "fees", 101)]), 422, "insufficient_funds", "postings[1]"),
        (json!([p("alice", "shop", 100), p("shop", "nobody", 1)]), 422, "account_not_found", "postings[1]"),
        (json!([p("alice", "alice", 1)]), 422, "same_account", "postings[0]"),
        (json!([p("alice", "shop", 0)]), 422, "invalid_amount", "postings[0].amount"),
        (
            json!([{"debit_account_id": "alice", "credit_account_id": "shop", "amount": 1, "currency": "usd"}]),
            422,
            "invalid_currency",
            "postings[0].currency",
        ),
        (
            json!([{"debit_account_id": "alice", "credit_account_id": "shop", "amount": 1, "currency": "EUR"}]),
            422,
            "currency_mismatch",
            "postings[0]",
        ),
        (json!([]), 422, "batch_empty", "postings"),
        (
            json!([{"debit_account_id": "alice", "credit_account_id": "shop", "amount": 1, "currency": "USD", "pending": true}]),
            422,
            "unknown_field",
            "pending",
        ),
        (json!([[1, 2]]), 422, "invalid_type", "expected a JSON object"),
    ];
    for (postings, status, code, names) in cases {
        let r = s.post("/v1/transactions", &json!({"id": "tx-bad", "postings": postings})).await;
        assert_problem(&r, status, code, &postings.to_string());
        assert!(r.text().contains(names), "the detail names {names}: {}", r.text());
    }
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(1000), json!(0), json!(0)]);
    assert_problem(&s.get("/v1/transfers/tx-bad:0").await, 404, "transfer_not_found", "nothing applied");
    // The id stays free: the same id with a valid body is then created.
    let r = s.post("/v1/transactions", &json!({"id": "tx-bad", "postings": [p("alice", "shop", 1)]})).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let too_many: Vec<Value> = (0..101).map(|_| p("alice", "shop", 1)).collect();
    let r = s.post("/v1/transactions", &json!({"id": "big", "postings": too_many})).await;
    assert_problem(&r, 422, "batch_too_large", "101 postings");
    let long_id = "t".repeat(125);
    let r = s.post("/v1/transactions", &json!({"id": long_id, "postings": [p("alice", "shop", 1)]})).await;
    assert_problem(&r, 422, "invalid_id", "an id with no room for ':<n>'");
    let big = json!({"k": "x".repeat(4060)});
    let r =
        s.post("/v1/transactions", &json!({"id": "md", "postings": [p("alice", "shop", 1)], "metadata": big})).await;
    assert_problem(&r, 422, "metadata_too_large", "metadata that fits a transfer but not with the transaction's id");
}

/// A reversal undoes the transaction exactly, in the opposite order, once, or not at all.
#[tokio::test]
async fn a_transaction_is_reverted_once_all_or_nothing() {
    let s = start_default().await;
    accounts(&s).await;
    post(&s, "/v1/transactions", json!({"id": "pay-1", "postings": [p("alice", "shop", 100), p("shop", "fees", 3)]}))
        .await;

    let r = s.post("/v1/transactions/pay-1/revert", &json!(null)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rev = r.json();
    let rid = rev["id"].as_str().expect("id").to_owned();
    assert!(rid.starts_with("rev-"), "{rev}");
    assert_eq!(rev["metadata"], json!({"reverses": "pay-1"}));
    // Opposite order: fees pays shop back first, then shop pays alice.
    assert_eq!(rev["postings"][0]["debit_account_id"], "fees");
    assert_eq!(rev["postings"][1]["credit_account_id"], "alice");
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(1000), json!(0), json!(0)]);
    let again = s.post("/v1/transactions/pay-1/revert", &json!(null)).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")), "{}", again.text());
    assert_eq!(again.json()["id"], json!(rid));
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(1000), json!(0), json!(0)]);
    let got = s.get(&format!("/v1/transactions/{rid}")).await;
    assert_eq!((got.status, got.json()["metadata"].clone()), (200, json!({"reverses": "pay-1"})));

    // A posting is reverted with its transaction, never alone.
    let r = s.post("/v1/transfers/pay-1:0/revert", &json!(null)).await;
    assert_problem(&r, 409, "part_of_transaction", "a posting alone");

    // shop spent what pay-2 brought: the reversal would overdraw it, so nothing moves.
    post(&s, "/v1/transactions", json!({"id": "pay-2", "postings": [p("alice", "shop", 50)]})).await;
    post(&s, "/v1/transfers", json!({"id": "spend", "debit_account_id": "shop", "credit_account_id": "fees", "amount": 50, "currency": "USD"})).await;
    let r = s.post("/v1/transactions/pay-2/revert", &json!(null)).await;
    assert_problem(&r, 422, "insufficient_funds", "a reversal that would overdraw");
    assert!(r.text().contains("reverting 'pay-2'"), "{}", r.text());
    assert_eq!(balances(&s, &["alice", "shop", "fees"]).await, [json!(950), json!(0), json!(50)]);
    assert_problem(
        &s.post("/v1/transactions/nope/revert", &json!(null)).await,
        404,
        "transaction_not_found",
        "unknown",
    );
}
