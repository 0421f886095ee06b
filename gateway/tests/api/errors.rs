//! Every error code, driven by a table of bad requests.

use serde_json::json;

use crate::support::{TestServer, assert_problem, check_problem, start_default};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn post(name: &'static str, path: &'static str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    Case { name, method: "POST", path, content_type: Some("application/json"), body: body.into(), status, code }
}

fn get(name: &'static str, path: &'static str, status: u16, code: &'static str) -> Case {
    Case { name, method: "GET", path, content_type: None, body: Vec::new(), status, code }
}

fn transfer(amount: &str) -> String {
    format!(r#"{{"id":"tx","debit_account_id":"alice","credit_account_id":"bob","amount":{amount},"currency":"USD"}}"#)
}

fn tr(id: &str, d: &str, c: &str, amount: u64, currency: &str) -> Vec<u8> {
    json!({"id": id, "debit_account_id": d, "credit_account_id": c, "amount": amount, "currency": currency})
        .to_string()
        .into_bytes()
}

async fn setup(s: &TestServer) {
    for (id, cur, od) in
        [("equity", "USD", true), ("alice", "USD", false), ("bob", "USD", false), ("eur", "EUR", false)]
    {
        let r = s.post("/v1/accounts", &json!({"id": id, "currency": cur, "allow_overdraft": od})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let ok = |r: crate::support::Resp| assert!(r.status < 300, "{}", r.text());
    ok(s.post_raw("/v1/transfers", &tr("fund", "equity", "alice", 1000, "USD")).await);
    for (id, timeout) in [("pposted", None), ("pvoided", None), ("pexpiring", Some(1))] {
        let mut b = json!({"id": id, "debit_account_id": "equity", "credit_account_id": "bob", "amount": 50,
                           "currency": "USD", "pending": true});
        if let Some(t) = timeout {
            b["timeout_ms"] = json!(t);
        }
        ok(s.post("/v1/transfers", &b).await);
    }
    ok(s.post("/v1/transfers/pposted/post", &json!({"amount": 20})).await);
    ok(s.post("/v1/transfers/pvoided/void", &json!({})).await);
    ok(s.post("/v1/topics", &json!({"name": "orders", "partitions": 2})).await);
}

#[tokio::test]
async fn every_bad_request_gets_its_status_and_code_as_problem_json() {
    let s = start_default().await;
    setup(&s).await;
    let long_id = "x".repeat(129);
    let big_meta = json!({"id": "m1", "currency": "USD", "metadata": {"k": "v".repeat(5000)}}).to_string();
    let huge_body = format!(r#"{{"id":"big","currency":"USD","metadata":{{"k":"{}"}}}}"#, "v".repeat(1_100_000));
    let one = r#"{"id":"b","debit_account_id":"equity","credit_account_id":"alice","amount":1,"currency":"USD"}"#;
    let too_many = format!(r#"{{"transfers":[{}]}}"#, vec![one; 8191].join(","));
    let big_record = json!({"records": [{"value": "r".repeat(70_000)}]}).to_string();
    let many_records = json!({"records": vec![json!({"value": 1}); 1001]}).to_string();
    let long_key = json!({"records": [{"key": "k".repeat(2000), "value": 1}]}).to_string();

    let cases = vec![
        // request shape
        post("malformed json", "/v1/transfers", r#"{"id":"#, 400, "malformed_json"),
        post("not json at all", "/v1/accounts", "hello", 400, "malformed_json"),
        post("empty body", "/v1/accounts", "", 400, "malformed_json"),
        post("unknown field", "/v1/accounts", r#"{"id":"u","currency":"USD","color":"red"}"#, 422, "unknown_field"),
        post("missing field", "/v1/accounts", r#"{"id":"u"}"#, 422, "missing_field"),
        post("wrong type", "/v1/transfers", transfer(r#""10""#), 422, "invalid_type"),
        post(
            "wrong type bool",
            "/v1/accounts",
            r#"{"id":"u","currency":"USD","allow_overdraft":"yes"}"#,
            422,
            "invalid_type",
        ),
        post("body is an array", "/v1/accounts", "[]", 422, "invalid_type"),
        post("body is a positional array", "/v1/accounts", r#"["u","USD",false,null]"#, 422, "invalid_type"),
        post("body is a string", "/v1/accounts", r#""u""#, 422, "invalid_type"),
        post(
            "deeply nested metadata",
            "/v1/accounts",
            format!(r#"{{"id":"u","currency":"USD","metadata":{{"k":{}{}}}}}"#, "[".repeat(300), "]".repeat(300)),
            400,
            "malformed_json",
        ),
        post("trailing garbage", "/v1/accounts", r#"{"id":"u","currency":"USD"} x"#, 400, "malformed_json"),
        Case {
            content_type: Some("text/plain"),
            ..post(
                "wrong content type",
                "/v1/accounts",
                r#"{"id":"u","currency":"USD"}"#,
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: None,
            ..post("no content type", "/v1/accounts", r#"{"id":"u","currency":"USD"}"#, 415, "unsupported_media_type")
        },
        post("oversized body", "/v1/accounts", huge_body, 413, "body_too_large"),
        // amounts
        post("negative amount", "/v1/transfers", transfer("-5"), 422, "invalid_amount"),
        post("zero amount", "/v1/transfers", transfer("0"), 422, "invalid_amount"),
        post("fractional amount", "/v1/transfers", transfer("1.5"), 422, "invalid_amount"),
        post("exponent amount", "/v1/transfers", transfer("1e3"), 422, "invalid_amount"),
        post("amount 2^63", "/v1/transfers", transfer("9223372036854775808"), 422, "invalid_amount"),
        post("amount 2^64", "/v1/transfers", transfer("18446744073709551616"), 422, "invalid_amount"),
        post("amount 1e30", "/v1/transfers", transfer("1000000000000000000000000000000"), 422, "invalid_amount"),
        // fields
        post("bad id charset", "/v1/accounts", r#"{"id":"has space","currency":"USD"}"#, 422, "invalid_id"),
        post("empty id", "/v1/accounts", r#"{"id":"","currency":"USD"}"#, 422, "invalid_id"),
        post("too long id", "/v1/accounts", format!(r#"{{"id":"{long_id}","currency":"USD"}}"#), 422, "invalid_id"),
        post("bad debit id", "/v1/transfers", tr("t", "a/b", "bob", 1, "USD"), 422, "invalid_id"),
        post("bad currency", "/v1/accounts", r#"{"id":"u","currency":"usd"}"#, 422, "invalid_currency"),
        post(
            "metadata not an object",
            "/v1/accounts",
            r#"{"id":"u","currency":"USD","metadata":[1]}"#,
            422,
            "invalid_metadata",
        ),
        post("oversized metadata", "/v1/accounts", big_meta, 422, "metadata_too_large"),
        post(
            "timeout on a posted transfer",
            "/v1/transfers",
            r#"{"id":"t","debit_account_id":"equity","credit_account_id":"bob","amount":1,"currency":"USD","timeout_ms":5}"#,
            422,
            "invalid_timeout",
        ),
        post(
            "zero timeout",
            "/v1/transfers",
            r#"{"id":"t","debit_account_id":"equity","credit_account_id":"bob","amount":1,"currency":"USD","pending":true,"timeout_ms":0}"#,
            422,
            "invalid_timeout",
        ),
        // ledger rules
        post("unknown account", "/v1/transfers", tr("t", "alice", "nobody", 1, "USD"), 422, "account_not_found"),
        post("insufficient funds", "/v1/transfers", tr("t", "bob", "alice", 10_000, "USD"), 422, "insufficient_funds"),
        post("same account", "/v1/transfers", tr("t", "alice", "alice", 1, "USD"), 422, "same_account"),
        post("currency mismatch", "/v1/transfers", tr("t", "alice", "eur", 1, "USD"), 422, "currency_mismatch"),
        post("transfer id conflict", "/v1/transfers", tr("fund", "equity", "alice", 999, "USD"), 409, "id_conflict"),
        post("account id conflict", "/v1/accounts", r#"{"id":"alice","currency":"EUR"}"#, 409, "id_conflict"),
        // batches
        post(
            "batch item is a positional array",
            "/v1/transfers/batch",
            r#"{"transfers":[["t","equity","bob",1,"USD",false,null,null]]}"#,
            422,
            "invalid_type",
        ),
        post(
            "record is a positional array",
            "/v1/topics/orders/records",
            r#"{"records":[[null,1,null]]}"#,
            422,
            "invalid_type",
        ),
        post("empty batch", "/v1/transfers/batch", r#"{"transfers":[]}"#, 422, "batch_empty"),
        post("batch too large", "/v1/transfers/batch", too_many, 422, "batch_too_large"),
        post(
            "batch with a bad item",
            "/v1/transfers/batch",
            format!(
                r#"{{"transfers":[{},{}]}}"#,
                String::from_utf8_lossy(&tr("ok1", "equity", "alice", 1, "USD")),
                transfer("0")
            ),
            422,
            "invalid_amount",
        ),
        // two-phase
        post("post a voided transfer", "/v1/transfers/pvoided/post", "{}", 422, "already_voided"),
        post("void a posted transfer", "/v1/transfers/pposted/void", "", 422, "already_posted"),
        post("post again with another amount", "/v1/transfers/pposted/post", r#"{"amount":30}"#, 422, "already_posted"),
        post("post a non-pending transfer", "/v1/transfers/fund/post", "", 422, "not_pending"),
        post("post an expired transfer", "/v1/transfers/pexpiring/post", "", 422, "pending_expired"),
        post("post an unknown transfer", "/v1/transfers/ghost/post", "", 404, "transfer_not_found"),
        post("post zero", "/v1/transfers/pposted/post", r#"{"amount":0}"#, 422, "invalid_amount"),
        post("post with unknown field", "/v1/transfers/pposted/post", r#"{"amont":1}"#, 422, "unknown_field"),
        post("void with unknown field", "/v1/transfers/pvoided/void", r#"{"x":1}"#, 422, "unknown_field"),
        // reads
        get("unknown account", "/v1/accounts/nobody", 404, "account_not_found"),
        get("unknown account history", "/v1/accounts/nobody/transfers", 404, "account_not_found"),
        get("unknown transfer", "/v1/transfers/ghost", 404, "transfer_not_found"),
        get("bad id in path", "/v1/accounts/a%20b", 422, "invalid_id"),
        get("unknown query parameter", "/v1/accounts/alice?colour=red", 400, "invalid_query"),
        get("bad consistency", "/v1/accounts/alice?consistency=eventual", 400, "invalid_query"),
        get("negative min_index", "/v1/accounts/alice?min_index=-1", 400, "invalid_query"),
        get("history limit 0", "/v1/accounts/alice/transfers?limit=0", 400, "invalid_query"),
        get("history limit too big", "/v1/accounts/alice/transfers?limit=1001", 400, "invalid_query"),
        get("as_of_index in the future", "/v1/accounts/alice?as_of_index=999999", 422, "out_of_range"),
        // topics
        post("bad topic name", "/v1/topics", r#"{"name":"a b","partitions":1}"#, 422, "invalid_topic_name"),
        post("zero partitions", "/v1/topics", r#"{"name":"t0","partitions":0}"#, 422, "invalid_partitions"),
        post("too many partitions", "/v1/topics", r#"{"name":"t0","partitions":100000}"#, 422, "invalid_partitions"),
        post("negative partitions", "/v1/topics", r#"{"name":"t0","partitions":-1}"#, 422, "invalid_type"),
        post(
            "topic exists with other partitions",
            "/v1/topics",
            r#"{"name":"orders","partitions":3}"#,
            409,
            "topic_exists",
        ),
        post(
            "produce to unknown topic",
            "/v1/topics/nope/records",
            r#"{"records":[{"value":1}]}"#,
            404,
            "topic_not_found",
        ),
        post("produce no records", "/v1/topics/orders/records", r#"{"records":[]}"#, 422, "too_many_records"),
        post("produce too many records", "/v1/topics/orders/records", many_records, 413, "too_many_records"),
        post("record too large", "/v1/topics/orders/records", big_record, 413, "record_too_large"),
        post("record key too long", "/v1/topics/orders/records", long_key, 413, "record_too_large"),
        post(
            "produce unknown record field",
            "/v1/topics/orders/records",
            r#"{"records":[{"val":1}]}"#,
            422,
            "unknown_field",
        ),
        get("fetch unknown topic", "/v1/topics/nope/partitions/0/records", 404, "topic_not_found"),
        get("fetch bad partition", "/v1/topics/orders/partitions/9/records", 404, "partition_not_found"),
        get("fetch non-numeric partition", "/v1/topics/orders/partitions/abc/records", 400, "invalid_path"),
        get("fetch offset past the end", "/v1/topics/orders/partitions/0/records?offset=50", 422, "out_of_range"),
        get("fetch wait too long", "/v1/topics/orders/partitions/0/records?wait_ms=3600000", 400, "invalid_query"),
        get("fetch limit too big", "/v1/topics/orders/partitions/0/records?limit=5000", 400, "invalid_query"),
        // routing
        get("unknown route", "/v2/nothing", 404, "not_found"),
        Case { method: "DELETE", ..get("wrong method", "/v1/accounts", 405, "method_not_allowed") },
        post("non-numeric node id", "/v1/cluster/nodes/abc/remove", "", 400, "invalid_path"),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let mut headers = Vec::new();
        if let Some(ct) = c.content_type {
            headers.push(("content-type", ct));
        }
        let r = s.request(c.method, c.path, &headers, c.body.clone()).await;
        if let Err(e) = check_problem(&r, c.status, c.code) {
            failures.push(format!("{}: {e}; body {}", c.name, r.text().chars().take(300).collect::<String>()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // Nothing was written by any of them.
    let alice = s.get("/v1/accounts/alice").await.json();
    assert_eq!(alice["balance"], 1000, "a rejected request changed a balance: {alice}");
    assert_eq!(alice["currency"], "USD");
    let r = s.get("/v1/transfers/ok1").await;
    assert_problem(&r, 404, "transfer_not_found", "the valid item of a rejected batch was not applied");
    assert_problem(&s.get("/v1/accounts/u").await, 404, "account_not_found", "no partial account");
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let s = crate::support::start(gateway::GatewayConfig { max_body_bytes: 100, ..Default::default() }).await;
    let r = s.post("/v1/accounts", &json!({"id": "a", "currency": "USD", "metadata": {"k": "v".repeat(200)}})).await;
    assert_problem(&r, 413, "body_too_large", "body over a 100-byte limit");
    let ok = s.post("/v1/accounts", &json!({"id": "a", "currency": "USD"})).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
}

/// A tiny deterministic PRNG (xorshift64*), so the mutation test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[tokio::test]
async fn mutated_bodies_never_get_a_5xx_or_a_non_problem_error() {
    let s = start_default().await;
    setup(&s).await;
    let seeds: [(&str, String); 3] = [
        ("/v1/transfers", String::from_utf8_lossy(&tr("fz", "equity", "alice", 5, "USD")).into_owned()),
        (
            "/v1/accounts",
            r#"{"id":"fa","currency":"USD","allow_overdraft":false,"metadata":{"a":[1,2.5,"x"]}}"#.to_owned(),
        ),
        (
            "/v1/transfers/batch",
            format!(
                r#"{{"atomic":true,"transfers":[{}]}}"#,
                String::from_utf8_lossy(&tr("fb", "equity", "bob", 1, "USD"))
            ),
        ),
    ];
    let tokens: [&[u8]; 14] = [
        b"-",
        b".5",
        b"e99",
        b"null",
        b"\"",
        b"{",
        b"[",
        b"}",
        b"]",
        b",",
        b"99999999999999999999999",
        b"\\u0000",
        b"true",
        b":",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..300 {
        let (path, seed) = &seeds[i % seeds.len()];
        let mut body = seed.as_bytes().to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(body.len());
            match rng.below(3) {
                0 => {
                    body.remove(at);
                }
                1 => body.splice(at..at, tokens[rng.below(tokens.len())].iter().copied()).for_each(drop),
                _ => body[at] = (rng.next() & 0x7f) as u8,
            }
        }
        let r = s.post_raw(path, &body).await;
        *statuses.entry(r.status).or_insert(0) += 1;
        assert!(r.status < 500, "{path} {:?} -> {} {}", String::from_utf8_lossy(&body), r.status, r.text());
        if r.status >= 400 {
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            let p = r.json();
            assert!(p["code"].as_str().and_then(gateway::error::ErrorCode::parse).is_some(), "{p}");
        }
    }
    assert!(statuses.keys().any(|&k| k >= 400), "no mutation was rejected: {statuses:?}");
    let alice = s.get("/v1/accounts/alice").await.json();
    assert!(alice["balance"].as_i64().is_some_and(|b| b >= 995), "{alice}");
}
