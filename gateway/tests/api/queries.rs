//! Issue 17 in process: `GET /v1/transfers` (creation order, filters, cursors, pages pinned to a
//! log index), statements and reversals.

use serde_json::{Value, json};

use crate::support::{TestServer, assert_problem, start_default};

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let r = s.post(path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text());
    r.json()
}

fn ids(v: &Value) -> Vec<String> {
    v["transfers"].as_array().expect("transfers").iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect()
}

async fn list(s: &TestServer, query: &str) -> Value {
    let r = s.get(&format!("/v1/transfers?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn transfers_are_listed_filtered_and_paged_as_of_one_index() {
    let s = start_default().await;
    for (id, overdraft) in [("eq", true), ("a", false), ("b", false)] {
        post(&s, "/v1/accounts", json!({"id": id, "currency": "USD", "allow_overdraft": overdraft})).await;
    }
    let t = |id: &str, debit: &str, credit: &str, amount: u64| json!({"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": "USD"});
    let mut t1 = t("t1", "eq", "a", 10);
    t1["metadata"] = json!({"order": "o-1", "n": 2});
    let t1 = post(&s, "/v1/transfers", t1).await;
    let mut t2 = t("t2", "eq", "b", 20);
    t2["pending"] = json!(true);
    let t2 = post(&s, "/v1/transfers", t2).await;
    let t3 = post(&s, "/v1/transfers", t("t3", "a", "b", 3)).await;

    let first = list(&s, "limit=2").await;
    assert_eq!(ids(&first), ["t1", "t2"]);
    let (next, at) = (first["next"].as_u64().expect("next"), first["at_index"].as_u64().expect("at_index"));
    assert_eq!(first["transfers"][0]["metadata"], json!({"n": 2, "order": "o-1"}));

    // Writes after the first page: t2 posted, a new transfer. Pinned pages ignore both.
    post(&s, "/v1/transfers/t2/post", json!({})).await;
    post(&s, "/v1/transfers", t("t4", "eq", "a", 1)).await;
    let second = list(&s, &format!("limit=2&after={next}&at_index={at}")).await;
    assert_eq!(ids(&second), ["t3"], "{second}");
    assert!(second["next"].is_null(), "{second}");
    let pinned = list(&s, &format!("at_index={at}&status=pending")).await;
    assert_eq!(ids(&pinned), ["t2"]);
    assert!(pinned["transfers"][0]["resolution"].is_null(), "not posted yet as of {at}: {pinned}");
    let now = list(&s, "").await;
    assert_eq!(ids(&now), ["t1", "t2", "t3", "t4"]);
    assert_eq!(now["transfers"][1]["status"], "posted");

    let (i2, i3) = (t2["index"].as_u64().expect("index"), t3["index"].as_u64().expect("index"));
    let ms3 = t3["timestamp_ms"].as_u64().expect("timestamp_ms");
    let ms1 = t1["timestamp_ms"].as_u64().expect("timestamp_ms");
    for (query, want) in [
        ("status=posted", vec!["t1", "t2", "t3", "t4"]),
        ("status=pending", vec![]),
        ("account_id=b", vec!["t2", "t3"]),
        ("account_id=a&limit=1000", vec!["t1", "t3", "t4"]),
        (&format!("from_index={i2}&to_index={i3}"), vec!["t2", "t3"]),
        (&format!("account_id=b&from_index={i3}"), vec!["t3"]),
        (&format!("to_ms={ms1}"), vec!["t1"]),
        (&format!("from_ms={ms3}&account_id=a"), vec!["t3", "t4"]),
        ("metadata_key=order&metadata_value=o-1", vec!["t1"]),
        ("metadata_key=n&metadata_value=2", vec!["t1"]),
        ("metadata_key=order&metadata_value=o-2", vec![]),
    ] {
        assert_eq!(ids(&list(&s, query).await), want, "{query}");
    }

    // An account's pages: the cursor is a version of the account (b's history also holds t2's post).
    let b1 = list(&s, "account_id=b&limit=1").await;
    assert_eq!(ids(&b1), ["t2"]);
    let b2 = list(&s, &format!("account_id=b&limit=1&after={}", b1["next"])).await;
    assert_eq!(ids(&b2), ["t3"]);

    for bad in ["limit=0", "limit=1001", "status=lost", "metadata_key=order", "from_index=5&to_index=4", "sort=id"] {
        assert_problem(&s.get(&format!("/v1/transfers?{bad}")).await, 400, "invalid_query", bad);
    }
    assert_problem(&s.get("/v1/transfers?account_id=nobody").await, 404, "account_not_found", "unknown account");
    let r = s.get(&format!("/v1/transfers?at_index={}", u64::MAX / 2)).await;
    assert_eq!(r.status, 422, "{}", r.text());
}

/// `GET /v1/accounts/{id}/balances`: opening and closing balances and the changes between, paged.
#[tokio::test]
async fn statements_give_opening_changes_and_closing_balances() {
    let s = start_default().await;
    for (id, overdraft) in [("eq", true), ("a", false)] {
        post(&s, "/v1/accounts", json!({"id": id, "currency": "USD", "allow_overdraft": overdraft})).await;
    }
    let mut index = Vec::new();
    for (k, amount) in [10u64, 20, 30, 40].iter().enumerate() {
        let t = json!({"id": format!("s{k}"), "debit_account_id": "eq", "credit_account_id": "a", "amount": amount, "currency": "USD"});
        index.push(post(&s, "/v1/transfers", t).await["index"].as_u64().expect("index"));
    }
    let get = |q: String| {
        let s = &s;
        async move {
            let r = s.get(&format!("/v1/accounts/a/balances?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.json()
        }
    };
    let amounts = |v: &Value| -> Vec<i64> {
        v["entries"].as_array().expect("entries").iter().map(|e| e["balance"].as_i64().expect("balance")).collect()
    };
    // s1 and s2: opening 10, then 30 and 60.
    let st = get(format!("from_index={}&to_index={}", index[1], index[2])).await;
    assert_eq!((st["opening"]["balance"].clone(), st["closing"]["balance"].clone()), (json!(10), json!(60)), "{st}");
    assert_eq!(amounts(&st), [30, 60]);
    assert!(st["next"].is_null(), "{st}");
    // Page by page, one change each.
    let p1 = get(format!("from_index={}&to_index={}&limit=1", index[1], index[2])).await;
    assert_eq!(amounts(&p1), [30]);
    let p2 = get(format!("from_index={}&to_index={}&limit=1&after={}", index[1], index[2], p1["next"])).await;
    assert_eq!(amounts(&p2), [60]);
    assert!(p2["next"].is_null(), "{p2}");
    // The whole life: no opening, every change, closing = now.
    let all = get(String::new()).await;
    assert!(all["opening"].is_null(), "{all}");
    assert_eq!((amounts(&all), all["closing"]["balance"].clone()), (vec![10, 30, 60, 100], json!(100)));
    assert_eq!(all["to_index"], json!(index[3]));

    for bad in ["limit=0", "from_index=0", "from_index=5&to_index=4", "to=3"] {
        assert_problem(&s.get(&format!("/v1/accounts/a/balances?{bad}")).await, 400, "invalid_query", bad);
    }
    assert_problem(&s.get("/v1/accounts/nobody/balances").await, 404, "account_not_found", "unknown account");
    let r = s.get("/v1/accounts/a/balances?to_index=1").await;
    assert_problem(&r, 422, "out_of_range", "before the account existed");
}

/// `POST /v1/transfers/{id}/revert`: once, exactly the posted amount back, never an overdraft.
#[tokio::test]
async fn a_posted_transfer_is_reverted_once_and_never_overdraws() {
    let s = start_default().await;
    for (id, overdraft) in [("eq", true), ("a", false), ("b", false)] {
        post(&s, "/v1/accounts", json!({"id": id, "currency": "USD", "allow_overdraft": overdraft})).await;
    }
    let t = |id: &str, debit: &str, credit: &str, amount: u64| json!({"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": "USD"});
    post(&s, "/v1/transfers", t("t1", "eq", "a", 100)).await;
    let balance = |id: &'static str| {
        let s = &s;
        async move { s.get(&format!("/v1/accounts/{id}?consistency=strong")).await.json()["balance"].clone() }
    };

    let r = s.post("/v1/transfers/t1/revert", &json!(null)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rev = r.json();
    assert!(rev["id"].as_str().is_some_and(|i| i.starts_with("rev-")), "{rev}");
    assert_eq!(
        (rev["debit_account_id"].clone(), rev["credit_account_id"].clone(), rev["amount"].clone()),
        (json!("a"), json!("eq"), json!(100))
    );
    assert_eq!(rev["metadata"], json!({"reverses": "t1"}));
    assert_eq!(balance("a").await, json!(0));
    // Again: the same reversal, replayed; nothing moves twice.
    let again = s.post("/v1/transfers/t1/revert", &json!(null)).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")), "{}", again.text());
    assert_eq!(again.json()["id"], rev["id"]);
    assert_eq!(balance("a").await, json!(0));

    // A partly posted pending transfer is reverted by what was posted.
    let mut p = t("p1", "eq", "a", 50);
    p["pending"] = json!(true);
    post(&s, "/v1/transfers", p).await;
    let r = s.post("/v1/transfers/p1/revert", &json!(null)).await;
    assert_problem(&r, 409, "not_posted", "a pending transfer is voided, not reverted");
    post(&s, "/v1/transfers/p1/post", json!({"amount": 30})).await;
    let rev = s.post("/v1/transfers/p1/revert", &json!(null)).await;
    assert_eq!((rev.status, rev.json()["amount"].clone()), (201, json!(30)), "{}", rev.text());

    // a spent what t2 brought: reverting t2 would overdraw it, so nothing moves.
    post(&s, "/v1/transfers", t("t2", "eq", "a", 40)).await;
    post(&s, "/v1/transfers", t("t3", "a", "b", 40)).await;
    let r = s.post("/v1/transfers/t2/revert", &json!(null)).await;
    assert_problem(&r, 422, "insufficient_funds", "a reversal that would overdraw");
    assert_eq!((balance("a").await, balance("b").await), (json!(0), json!(40)));
    assert_problem(&s.post("/v1/transfers/nope/revert", &json!(null)).await, 404, "transfer_not_found", "unknown");
}
