//! The `ledger` client commands against a running cluster (one lognode and a gateway, started
//! by `ledger dev --nodes 1 --no-projector` on free ports): output asserted as tables and as
//! JSON, and error exits for bad input.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Dev, ledger};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The cells of the row starting with `first` in a table.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"))
}

#[test]
fn client_commands_print_tables_and_json_and_reject_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Dev::start(&tmp.path().join("data"), 1, &["--no-projector"], &[]);

    // cluster: a table with the leader and the applied index.
    let out = dev.ledger(&["cluster"]).ok().to_owned();
    assert!(out.starts_with("leader: node 1\n"), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["NODE", "ADDRESS", "ROLE", "ALIVE", "APPLIED", "SNAPSHOT", "LOG", "FROM"])
    );
    let r = row(&out, "1");
    assert_eq!((r[2], r[3]), ("leader", "yes"), "{out}");
    let c = json(dev.ledger(&["--json", "cluster"]).ok());
    assert_eq!(c["leader_id"], 1);
    assert_eq!(c["nodes"].as_array().unwrap().len(), 1);

    // API keys: made with the admin key (the secret shown once), listed without secrets, a key
    // refused what its scopes lack, revoked.
    let k = json(dev.ledger(&["--json", "key", "create", "--scopes", "cluster:read"]).ok());
    let (id, secret) = (k["id"].as_str().unwrap().to_owned(), k["secret"].as_str().unwrap().to_owned());
    let list = dev.ledger(&["key", "list"]).ok().to_owned();
    assert_eq!(row(&list, &id)[1], "cluster:read", "{list}");
    assert!(row(&list, "admin")[1] == "admin" && !list.contains(&secret), "{list}");
    ledger(&dev.gateway, &["--api-key", &secret, "cluster"]).ok();
    ledger(&dev.gateway, &["--api-key", &secret, "account", "show", "x"]).fails(1, "forbidden");
    ledger(&dev.gateway, &["cluster"]).fails(1, "unauthorized");
    let out = dev.ledger(&["key", "revoke", &id]).ok().to_owned();
    assert!(out.starts_with(&format!("revoked key {id}")), "{out}");
    ledger(&dev.gateway, &["--api-key", &secret, "cluster"]).fails(1, "unauthorized");
    dev.ledger(&["key", "create", "--scopes", "root"]).fails(1, "invalid_scope");
    let q = json(
        dev.ledger(&[
            "--json",
            "key",
            "create",
            "--scopes",
            "cluster:read",
            "--rate-per-sec",
            "50",
            "--max-in-flight",
            "4",
        ])
        .ok(),
    );
    assert_eq!((q["quota"]["rate_per_sec"].as_u64(), q["quota"]["max_in_flight"].as_u64()), (Some(50), Some(4)), "{q}");
    // Rotation: a new key with the same scopes and quotas, the old one revoked.
    let r = json(dev.ledger(&["--json", "key", "rotate", q["id"].as_str().unwrap()]).ok());
    assert_eq!(
        (r["new"]["scopes"].clone(), r["new"]["quota"].clone()),
        (q["scopes"].clone(), q["quota"].clone()),
        "{r}"
    );
    assert_ne!(r["new"]["secret"], q["secret"], "{r}");
    let list = dev.ledger(&["key", "list"]).ok().to_owned();
    assert!(!list.contains(q["id"].as_str().unwrap()) && list.contains(r["new"]["id"].as_str().unwrap()), "{list}");
    ledger(&dev.gateway, &["--api-key", r["new"]["secret"].as_str().unwrap(), "cluster"]).ok();
    dev.ledger(&["key", "rotate", "no-such-key"]).fails(1, "no live key");

    // Webhooks: a made secret printed once, listed and shown without it, refusals by code.
    let made = dev.ledger(&["webhook", "create", "http://127.0.0.1:9/hook", "--id", "wh-1"]).ok().to_owned();
    assert!(made.contains("secret") && made.contains("whsec_") && made.contains("shown only now"), "{made}");
    let w = json(
        dev.ledger(&[
            "--json",
            "webhook",
            "create",
            "https://example.com/x",
            "--events",
            "transfer.posted,transfer.voided",
            "--secret",
            "0123456789abcdef",
        ])
        .ok(),
    );
    assert!(w["secret"].is_null() && w["id"].as_str().is_some_and(|i| i.starts_with("wh-")), "{w}");
    let list = dev.ledger(&["webhook", "list"]).ok().to_owned();
    assert_eq!(row(&list, "wh-1")[1..3], ["http://127.0.0.1:9/hook", "*"], "{list}");
    assert!(!list.contains("whsec_"), "{list}");
    let shown = dev.ledger(&["webhook", "show", "wh-1"]).ok().to_owned();
    assert!(shown.contains("http://127.0.0.1:9/hook") && !shown.contains("secret"), "{shown}");
    let d = json(dev.ledger(&["--json", "webhook", "deliveries", "wh-1", "--status", "dead"]).ok());
    assert_eq!(d["deliveries"], serde_json::json!([]), "{d}");
    dev.ledger(&["webhook", "create", "ftp://x"]).fails(1, "invalid_body");
    dev.ledger(&["webhook", "create", "http://x", "--events", "transfer.deleted"]).fails(1, "unknown event type");
    dev.ledger(&["webhook", "create", "http://x", "--id", "wh-1"]).fails(1, "webhook_exists");
    let out = dev.ledger(&["webhook", "delete", "wh-1"]).ok().to_owned();
    assert!(out.starts_with("deleted webhook wh-1"), "{out}");
    dev.ledger(&["webhook", "delete", "wh-1"]).fails(1, "webhook_not_found");
    dev.ledger(&["webhook", "show", "wh-1"]).fails(1, "webhook_not_found");

    // The audit trail: the bootstrap key, then each change with the key that made it.
    let out = dev.ledger(&["audit"]).ok().to_owned();
    assert!(
        out.lines().next().unwrap().split_whitespace().eq(["INDEX", "TIME", "MS", "BY", "ACTION", "TARGET", "OUTCOME"])
    );
    let actions: Vec<(&str, &str, &str)> =
        out.lines().skip(1).map(|l| l.split_whitespace().collect::<Vec<_>>()).map(|r| (r[2], r[3], r[4])).collect();
    assert_eq!(
        actions,
        [
            ("bootstrap", "key.bootstrap", "admin"),
            ("admin", "key.create", id.as_str()),
            ("admin", "key.revoke", id.as_str()),
            ("admin", "key.create", q["id"].as_str().unwrap()),
            ("admin", "key.create", r["new"]["id"].as_str().unwrap()),
            ("admin", "key.revoke", q["id"].as_str().unwrap()),
        ],
        "{out}"
    );
    let page = json(dev.ledger(&["--json", "audit", "--limit", "1"]).ok());
    assert_eq!(
        (page["total"].as_u64(), page["next"].as_u64()),
        (Some(6), page["records"][0]["index"].as_u64()),
        "{page}"
    );
    dev.ledger(&["audit", "--limit", "0"]).fails(1, "invalid_query");
    ledger(&dev.gateway, &["--api-key", &secret, "audit"]).fails(1, "unauthorized");

    // accounts.
    let out = dev.ledger(&["account", "create", "equity", "--currency", "USD", "--allow-overdraft"]).ok().to_owned();
    assert!(out.starts_with("account equity created at log index "), "{out}");
    assert!(out.contains("overdraft    allowed"), "{out}");
    dev.ledger(&["account", "create", "alice", "--currency", "USD", "--metadata", r#"{"kyc":true}"#]).ok();
    let again = dev.ledger(&["account", "create", "alice", "--currency", "USD", "--metadata", r#"{"kyc":true}"#]);
    assert!(again.ok().contains("already existed (idempotent replay)"), "{again:?}");
    let out = dev.ledger(&["account", "list", "--limit", "1"]).ok().to_owned();
    assert!(out.lines().next().unwrap().split_whitespace().eq(["ID", "CURRENCY", "BALANCE", "AVAILABLE"]), "{out}");
    assert_eq!(row(&out, "equity")[1], "USD", "{out}");
    assert!(out.contains("more: ledger account list --after 0 --at-index "), "{out}");
    let l = json(dev.ledger(&["--json", "account", "list", "--metadata", "kyc=true"]).ok());
    assert_eq!(
        l["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["alice"]
    );
    dev.ledger(&["account", "list", "--metadata", "kyc"]).fails(2, "KEY=VALUE");

    // transfers: created, replayed with the same id, pending then posted, pending then voided.
    let out = dev.ledger(&["transfer", "equity", "alice", "1000", "--currency", "USD", "--id", "t1"]).ok().to_owned();
    assert!(out.starts_with("transfer t1 created at log index "), "{out}");
    assert!(out.contains("amount    1000 USD") && out.contains("status    posted"), "{out}");
    let out = dev.ledger(&["transfer", "equity", "alice", "1000", "--currency", "USD", "--id", "t1"]).ok().to_owned();
    assert!(out.contains("already existed (idempotent replay: nothing moved twice)"), "{out}");
    let p = json(
        dev.ledger(&[
            "--json",
            "transfer",
            "alice",
            "equity",
            "300",
            "--currency",
            "USD",
            "--pending",
            "--timeout",
            "1h",
            "--id",
            "p1",
        ])
        .ok(),
    );
    assert_eq!((p["status"].as_str(), p["timeout_ms"].as_u64()), (Some("pending"), Some(3_600_000)));
    let out = dev.ledger(&["transfer", "post", "p1", "--amount", "100"]).ok().to_owned();
    assert!(out.starts_with("transfer p1 posted"), "{out}");
    assert!(out.contains("amount    100"), "{out}");
    dev.ledger(&["transfer", "alice", "equity", "50", "--currency", "USD", "--pending", "--id", "p2"]).ok();
    assert!(dev.ledger(&["transfer", "void", "p2"]).ok().starts_with("transfer p2 voided"));
    dev.ledger(&["transfer", "post", "p2"]).fails(1, "already_voided");
    let shown = json(dev.ledger(&["--json", "transfer", "show", "p1"]).ok());
    assert_eq!(shown["resolution"]["amount"], 100);

    // transfer list: every transfer, or one account's, filtered, a page at a time.
    let out = dev.ledger(&["transfer", "list", "--limit", "2"]).ok().to_owned();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "DEBIT", "CREDIT", "AMOUNT", "CURRENCY", "STATUS", "INDEX"], "{out}");
    assert_eq!(row(&out, "t1")[1..6], ["equity", "alice", "1000", "USD", "posted"], "{out}");
    assert!(out.contains("more: ledger transfer list --after 1 --at-index "), "{out}");
    let l = json(dev.ledger(&["--json", "transfers", "list", "--account", "alice", "--status", "voided"]).ok());
    assert_eq!(
        l["transfers"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["p2"]
    );
    dev.ledger(&["transfer", "list", "--status", "lost"]).fails(2, "lost");
    dev.ledger(&["transfer", "list", "--account", "nobody"]).fails(1, "account_not_found");

    // account show: 1000 in, 100 posted out.
    let out = dev.ledger(&["account", "show", "alice"]).ok().to_owned();
    assert!(out.contains("balance      900\n") && out.contains("available    900\n"), "{out}");
    assert!(out.contains(r#"metadata     {"kyc":true}"#), "{out}");
    let a = json(dev.ledger(&["--json", "account", "show", "alice"]).ok());
    assert_eq!(
        (a["balance"].as_i64(), a["credits_posted"].as_u64(), a["debits_posted"].as_u64()),
        (Some(900), Some(1000), Some(100))
    );

    // statement: opening and closing balances around the changes of a range.
    let out = dev.ledger(&["statement", "alice"]).ok().to_owned();
    assert!(out.starts_with("statement of alice from log index 1 to "), "{out}");
    assert!(out.contains("opening balance 0\n") && out.contains("closing balance 900\n"), "{out}");
    let t1: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.get(1) == Some(&"t1"))
        .unwrap_or_default();
    assert_eq!(t1.get(2..), Some(&["created", "1000", "1000"][..]), "{out}");
    let st = json(dev.ledger(&["--json", "statement", "alice", "--limit", "1"]).ok());
    assert_eq!((st["entries"].as_array().map(Vec::len), st["closing"]["balance"].as_i64()), (Some(1), Some(900)));
    dev.ledger(&["statement", "nobody"]).fails(1, "account_not_found");

    // history: one row per balance change, oldest first.
    let out = dev.ledger(&["history", "alice"]).ok().to_owned();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["INDEX", "TRANSFER", "KIND", "DEBITS", "CREDITS", "PENDING_DR", "PENDING_CR", "BALANCE", "AVAILABLE"]
    );
    let kinds: Vec<(&str, &str, &str)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[1], c[2], c[7])
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("t1", "created", "1000"),
            ("p1", "created", "1000"),
            ("p1", "posted", "900"),
            ("p2", "created", "900"),
            ("p2", "voided", "900")
        ],
        "{out}"
    );
    let h = json(dev.ledger(&["--json", "history", "alice", "--limit", "2"]).ok());
    assert_eq!(h["entries"].as_array().unwrap().len(), 2);

    // topics, produce, tail.
    assert!(
        dev.ledger(&["topic", "create", "orders", "--partitions", "3"])
            .ok()
            .starts_with("topic orders created with 3 partitions")
    );
    let out = dev.ledger(&["topic", "list"]).ok().to_owned();
    assert_eq!(row(&out, "orders"), ["orders", "3"]);
    assert_eq!(row(&out, "TOPIC"), ["TOPIC", "PARTITIONS"]);
    let out = dev.ledger(&["produce", "orders", r#"{"n":1}"#, "--key", "k"]).ok().to_owned();
    assert!(out.starts_with("produced to orders partition "), "{out}");
    dev.ledger(&["produce", "orders", r#"{"n":2}"#, "--key", "k"]).ok();
    let out = dev.ledger(&["tail", "orders", "--max-records", "2"]).ok().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with(r#"@0  key=k  {"n":1}"#) && lines[1].ends_with(r#"@1  key=k  {"n":2}"#), "{out}");
    let out = dev.ledger(&["--json", "tail", "orders", "--max-records", "2"]).ok().to_owned();
    let recs: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(
        (recs[1]["value"]["n"].as_u64(), recs[1]["key"].as_str(), recs[1]["offset"].as_u64()),
        (Some(2), Some("k"), Some(1))
    );
    // The ledger topic carries the events of what was done above.
    let out = dev.ledger(&["--json", "tail", "ledger", "--max-records", "1"]).ok().to_owned();
    assert!(json(out.trim())["value"]["type"].is_string(), "{out}");

    // A consumer group: tail as a member commits what it printed; `groups` shows the lag.
    let out = dev.ledger(&["tail", "orders", "--group", "g", "--max-records", "2"]).ok().to_owned();
    assert_eq!(out.lines().count(), 2, "{out}");
    dev.ledger(&["produce", "orders", r#"{"n":3}"#, "--key", "k"]).ok();
    let out = dev.ledger(&["groups"]).ok().to_owned();
    assert_eq!(row(&out, "GROUP"), ["GROUP", "GENERATION", "MEMBERS", "PARTITIONS", "LAG"]);
    let g = row(&out, "g");
    assert_eq!((g[2], g[4]), ("0", "1"), "no member left, lag 1: {out}");
    let out = dev.ledger(&["groups", "g"]).ok().to_owned();
    assert!(out.contains("total lag: 1\n"), "{out}");
    let d = json(dev.ledger(&["--json", "groups", "g"]).ok());
    let lagging: Vec<&Value> = d["partitions"].as_array().unwrap().iter().filter(|p| p["lag"] == 1).collect();
    assert_eq!(lagging.len(), 1, "{d}");
    assert_eq!((lagging[0]["committed_offset"].as_u64(), lagging[0]["end_offset"].as_u64()), (Some(2), Some(3)));
    let out = dev.ledger(&["tail", "orders", "--group", "g", "--max-records", "1"]).ok().to_owned();
    assert!(out.trim_end().ends_with(r#"@2  key=k  {"n":3}"#), "resumes after the commit: {out}");
    dev.ledger(&["groups", "no-such-group"]).fails(1, "unknown_group");

    // Errors: one `error:` line naming the problem, and the exit code.
    dev.ledger(&["account", "show", "nobody"]).fails(1, "account_not_found");
    dev.ledger(&["transfer", "alice", "equity", "5000", "--currency", "USD"]).fails(1, "insufficient_funds");
    dev.ledger(&["transfer", "nobody", "alice", "5", "--currency", "USD"]).fails(1, "account_not_found");
    for (bad, why) in [
        ("-5", "negative"),
        ("0", "zero"),
        ("1.5", "fraction"),
        ("9223372036854775808", "too large"),
        ("ten", "whole number"),
    ] {
        dev.ledger(&["transfer", "equity", "alice", bad, "--currency", "USD"]).fails(2, why);
    }
    dev.ledger(&["transfer", "equity", "alice", "5", "--currency", "USD", "--timeout", "5s"]).fails(2, "--pending");
    dev.ledger(&["produce", "orders", "{not json"]).fails(2, "not valid JSON");
    dev.ledger(&["tail", "no-such-topic"]).fails(1, "unknown_topic");
    dev.ledger(&["account", "create", "x", "--currency", "USD", "--metadata", "[1]"]).fails(2, "JSON object");
    // Nothing moved by the rejected commands.
    let a = json(dev.ledger(&["--json", "account", "show", "alice"]).ok());
    assert_eq!(a["balance"].as_i64(), Some(900));

    // revert: the posted part of p1 (100 from alice) back to alice, once.
    let out = dev.ledger(&["revert", "p1"]).ok().to_owned();
    assert!(out.starts_with("transfer p1 reverted by rev-"), "{out}");
    assert!(dev.ledger(&["revert", "p1"]).ok().starts_with("transfer p1 already reverted by rev-"));
    dev.ledger(&["revert", "p2"]).fails(1, "not_posted");
    let a = json(dev.ledger(&["--json", "account", "show", "alice"]).ok());
    assert_eq!(a["balance"].as_i64(), Some(1000));

    // tx: two postings under one id (the second spends what the first moved), once; shown; reverted.
    dev.ledger(&["account", "create", "shop", "--currency", "USD"]).ok();
    let create = ["tx", "create", "pay-1", "--posting", "alice,shop,100,USD", "--posting", "shop,equity,10,USD"];
    let out = dev.ledger(&create).ok().to_owned();
    assert!(out.starts_with("transaction pay-1 created at log index"), "{out}");
    assert!(out.contains("pay-1:1"), "{out}");
    let again = dev.ledger(&create).ok().to_owned();
    assert!(again.starts_with("transaction pay-1 already created"), "{again}");
    let t = json(dev.ledger(&["--json", "tx", "show", "pay-1"]).ok());
    assert_eq!(
        (t["postings"][1]["transfer_id"].as_str(), t["postings"][1]["amount"].as_u64()),
        (Some("pay-1:1"), Some(10))
    );
    dev.ledger(&["tx", "create", "pay-2", "--posting", "alice,shop,100"]).fails(2, "DEBIT,CREDIT,AMOUNT,CURRENCY");
    dev.ledger(&["tx", "create", "pay-2", "--posting", "alice,shop,5000,USD"]).fails(1, "insufficient_funds");
    dev.ledger(&["tx", "show", "pay-2"]).fails(1, "transaction_not_found");
    let out = dev.ledger(&["tx", "revert", "pay-1"]).ok().to_owned();
    assert!(out.starts_with("transaction pay-1 reverted by rev-"), "{out}");
    let a = json(dev.ledger(&["--json", "account", "show", "alice"]).ok());
    assert_eq!(a["balance"].as_i64(), Some(1000));

    // Rules 10 and 11: a credit-limited account; sweep and close shop, refuse, reopen by a void.
    let out = dev.ledger(&[
        "account",
        "create",
        "card",
        "--currency",
        "USD",
        "--allow-overdraft",
        "--credits-must-not-exceed-debits",
    ]);
    assert!(out.ok().starts_with("account card created"), "{}", out.ok());
    dev.ledger(&["account", "create", "x2", "--currency", "USD", "--credits-must-not-exceed-debits"])
        .fails(2, "--allow-overdraft");
    dev.ledger(&["transfer", "equity", "card", "5", "--currency", "USD"]).fails(1, "exceeds_debits");
    dev.ledger(&["transfer", "equity", "shop", "30", "--currency", "USD"]).ok();
    let close = [
        "transfer",
        "shop",
        "equity",
        "1000000",
        "--currency",
        "USD",
        "--id",
        "close-shop",
        "--pending",
        "--balancing-debit",
        "--closing-debit",
    ];
    let out = dev.ledger(&close).ok().to_owned();
    assert!(out.contains("balancing_debit, closing_debit") && out.contains("30 USD"), "{out}");
    let shop = dev.ledger(&["account", "show", "shop"]).ok().to_owned();
    assert!(shop.contains("refuses new transfers"), "{shop}");
    dev.ledger(&["transfer", "alice", "shop", "1", "--currency", "USD"]).fails(1, "credit_account_closed");
    dev.ledger(&["transfer", "void", "close-shop"]).ok();
    let shop = json(dev.ledger(&["--json", "account", "show", "shop"]).ok());
    assert_eq!((shop["closed"].as_bool(), shop["balance"].as_i64()), (Some(false), Some(30)));

    // An unreachable gateway: exit 3.
    let refused = testkit::ports::RefusedAddr::new();
    ledger(&format!("http://{}", refused.addr()), &["cluster"]).fails(3, "cannot reach the gateway");
    ledger("not-a-url", &["cluster"]).fails(2, "invalid gateway URL");
}
