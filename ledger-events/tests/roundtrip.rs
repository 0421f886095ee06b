//! Round trips of real ledger-core events and the golden file pinning the
//! JSON format (`tests/golden.jsonl`, one event per line).
//!
//! Set `REWRITE=1` to rewrite the golden file from the actual output (then
//! review the diff: users' services parse this format).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use ledger_core::limits::BALANCE_MAX;
use ledger_core::{
    AccountState, ApplyContext, Balances, Command, Ledger, LedgerEvent, NewAccount, NewTransfer, TransferEvent,
    TransferEventKind, TransferFlags, TransferStatus,
};
use ledger_events::{EventJson, decode, encode, partition_key};

struct L {
    l: Ledger,
    index: u64,
    events: Vec<LedgerEvent>,
}

impl L {
    fn new() -> Self {
        L { l: Ledger::default(), index: 0, events: Vec::new() }
    }
    fn apply(&mut self, cmd: Command, ts: u64) {
        self.index += 1;
        let (_, ev) = self.l.apply(&cmd, ApplyContext { index: self.index, timestamp_ms: ts });
        self.l.check_invariants().unwrap();
        self.events.extend(ev);
    }
}

fn account(id: &str, overdraft: bool, metadata: &str) -> Command {
    Command::CreateAccount(NewAccount {
        credits_must_not_exceed_debits: false,
        id: id.into(),
        currency: "USD".into(),
        allow_overdraft: overdraft,
        metadata: metadata.into(),
    })
}

fn transfer(id: &str, d: &str, c: &str, amount: u64, pending: bool, timeout_ms: Option<u64>) -> NewTransfer {
    NewTransfer {
        flags: Default::default(),
        id: id.into(),
        debit_account_id: d.into(),
        credit_account_id: c.into(),
        amount,
        currency: "USD".into(),
        metadata: r#"{"invoice":"INV-7","n":[1,2.5,null]}"#.into(),
        pending,
        timeout_ms,
    }
}

/// A scenario producing every event type and kind.
fn scenario() -> Vec<LedgerEvent> {
    let mut l = L::new();
    l.apply(account("equity", true, "{}"), 1_000);
    l.apply(account("alice", false, r#"{"owner":"Alice","tags":["a","b"]}"#), 1_001);
    l.apply(account("bob", false, ""), 1_002);
    l.apply(Command::CreateTransfer(transfer("t1", "equity", "alice", 10_000, false, None)), 1_003);
    l.apply(Command::CreateTransfer(transfer("p1", "alice", "bob", 3_000, true, Some(60_000))), 1_004);
    l.apply(Command::PostPending { pending_id: "p1".into(), amount: Some(2_000) }, 1_005);
    l.apply(Command::CreateTransfer(transfer("p2", "alice", "bob", 500, true, None)), 1_006);
    l.apply(Command::VoidPending { pending_id: "p2".into() }, 1_007);
    l.apply(Command::CreateTransfer(transfer("p3", "alice", "bob", 700, true, Some(1_000))), 1_008);
    l.apply(Command::ExpirePending { now_ms: 5_000 }, 5_000);
    l.apply(
        Command::CreateTransfers {
            transfers: vec![
                transfer("b1", "equity", "bob", 1, false, None),
                transfer("b2", "equity", "bob", i64::MAX as u64, false, None),
            ],
            atomic: true,
        },
        5_001,
    );
    // Rules 10 and 11: a liability-side account, a balancing debit that moves less than asked,
    // a closing credit (pending) and its void, which reopens the account.
    l.apply(
        Command::CreateAccount(NewAccount {
            credits_must_not_exceed_debits: true,
            ..match account("liab", true, "{}") {
                Command::CreateAccount(a) => a,
                _ => unreachable!(),
            }
        }),
        5_002,
    );
    l.apply(
        Command::CreateTransfer(NewTransfer {
            flags: TransferFlags { balancing_debit: true, ..TransferFlags::NONE },
            ..transfer("bal-1", "alice", "bob", 1_000_000, false, None)
        }),
        5_003,
    );
    l.apply(
        Command::CreateTransfer(NewTransfer {
            flags: TransferFlags { closing_credit: true, ..TransferFlags::NONE },
            ..transfer("close-1", "equity", "alice", 1, true, None)
        }),
        5_004,
    );
    l.apply(Command::VoidPending { pending_id: "close-1".into() }, 5_005);
    l.events
}

#[test]
fn every_kind_round_trips() {
    let events = scenario();
    let mut kinds = BTreeSet::new();
    for e in &events {
        let bytes = encode(e);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(&decoded.to_ledger_event(), e, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(decoded.partition_key(), partition_key(e));
        assert_eq!(decoded.index(), e.index());
        // Re-encoding the decoded value gives the same bytes.
        assert_eq!(serde_json::to_vec(&decoded).unwrap(), bytes);
        // serde Deserialize through serde_json works too.
        let via_serde: EventJson = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(via_serde, decoded);
        kinds.insert(match e {
            LedgerEvent::AccountCreated(_) => "account_created".to_owned(),
            LedgerEvent::Transfer(t) => format!("transfer/{}", t.kind.as_str()),
        });
    }
    let want: BTreeSet<String> =
        ["account_created", "transfer/created", "transfer/posted", "transfer/voided", "transfer/expired"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    assert_eq!(kinds, want);
}

#[test]
fn metadata_is_embedded_as_json() {
    let events = scenario();
    let bytes = encode(&events[1]);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["metadata"]["owner"], "Alice");
    // Metadata that is not JSON (ledger-core accepts any text) becomes a string.
    let v: serde_json::Value = serde_json::from_slice(&encode(&events[2])).unwrap();
    assert_eq!(v["metadata"], "");
}

fn state(id: &str, b: Balances, version: u64) -> AccountState {
    AccountState { id: id.into(), balances: b, updated_index: u64::MAX, version, closed: true }
}

#[test]
fn extreme_numbers_round_trip_exactly() {
    // Overdraft account at the bottom (balance = -BALANCE_MAX), the other at
    // the top; pending counters at the ceiling too.
    let low =
        Balances { debits_posted: BALANCE_MAX, credits_posted: 0, debits_pending: 0, credits_pending: BALANCE_MAX };
    let high =
        Balances { debits_posted: 0, credits_posted: BALANCE_MAX, debits_pending: 0, credits_pending: u128::MAX };
    let e = LedgerEvent::Transfer(TransferEvent {
        kind: TransferEventKind::Created,
        index: u64::MAX,
        timestamp_ms: u64::MAX,
        transfer_id: "x".into(),
        debit_account_id: "low".into(),
        credit_account_id: "high".into(),
        currency: "USD".into(),
        amount: i64::MAX as u64,
        event_amount: u64::MAX,
        pending: true,
        expires_at_ms: Some(u64::MAX),
        status: TransferStatus::Pending,
        metadata: "{}".into(),
        debit_account: state("low", low, u64::MAX),
        credit_account: state("high", high, u64::MAX - 1),
        flags: TransferFlags {
            balancing_debit: true,
            balancing_credit: true,
            closing_debit: true,
            closing_credit: true,
        },
    });
    let bytes = encode(&e);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(&format!("\"balance\":{}", -(i128::MAX))), "{text}");
    assert!(text.contains(&format!("\"credits_pending\":{}", u128::MAX)), "{text}");
    let d = decode(&bytes).unwrap();
    assert_eq!(d.to_ledger_event(), e);
    let EventJson::Transfer(t) = d else { panic!("not a transfer") };
    assert_eq!(t.debit_account.balance, -i128::MAX);
    assert_eq!(t.debit_account.available, -i128::MAX);
    assert_eq!(t.credit_account.credits_pending, u128::MAX);
}

#[test]
fn real_balances_near_the_ceiling() {
    let mut l = L::new();
    l.apply(account("equity", true, "{}"), 1);
    l.apply(account("rich", false, "{}"), 2);
    l.l.test_force_move("equity", "rich", BALANCE_MAX - 10).unwrap();
    l.apply(Command::CreateTransfer(transfer("t", "equity", "rich", 10, false, None)), 3);
    let last = l.events.last().unwrap();
    let d = decode(&encode(last)).unwrap();
    let EventJson::Transfer(t) = &d else { panic!("not a transfer") };
    assert_eq!(t.credit_account.credits_posted, BALANCE_MAX);
    assert_eq!(t.credit_account.balance, i128::MAX);
    assert_eq!(t.debit_account.balance, -i128::MAX);
    assert_eq!(&d.to_ledger_event(), last);
}

#[test]
fn decode_errors() {
    assert!(matches!(decode(b"not json"), Err(ledger_events::Error::Json(_))));
    assert!(matches!(decode(br#"{"index":1}"#), Err(ledger_events::Error::Json(_))));
    assert!(matches!(decode(br#"{"type":"nope"}"#), Err(ledger_events::Error::UnknownType(t)) if t == "nope"));
    assert!(matches!(decode(br#"{"type":"transfer","index":1}"#), Err(ledger_events::Error::Json(_))));
    // A negative counter is rejected, not wrapped.
    let events = scenario();
    let text = String::from_utf8(encode(&events[3])).unwrap().replace("\"debits_pending\":0", "\"debits_pending\":-1");
    assert!(decode(text.as_bytes()).is_err());
    // Unknown fields are ignored (forward compatibility).
    let text = String::from_utf8(encode(&events[0])).unwrap().replacen('{', r#"{"future_field":[1,{"a":2}],"#, 1);
    assert_eq!(decode(text.as_bytes()).unwrap().to_ledger_event(), events[0]);
}

#[test]
fn golden_file_pins_the_format() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden.jsonl");
    let mut actual = String::new();
    for e in scenario() {
        actual.push_str(std::str::from_utf8(&encode(&e)).unwrap());
        actual.push('\n');
    }
    if std::env::var_os("REWRITE").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "JSON format changed; REWRITE=1 to accept (and update README.md)");
    // And every golden line decodes.
    for line in expected.lines() {
        decode(line.as_bytes()).unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// The compact at-rest form reads back as exactly the JSON `encode` gives, with the partition key;
/// JSON stored by older nodes passes through; the form is much smaller than the JSON.
#[test]
fn the_compact_form_reads_back_as_the_same_json() {
    let mut events = scenario();
    let mut l = L::new();
    l.apply(account("equity", true, "{}"), 1);
    l.apply(account("rich", false, r#"{"k":"v \"quoted\""}"#), 2);
    l.l.test_force_move("equity", "rich", BALANCE_MAX - 10).unwrap();
    l.apply(Command::CreateTransfer(transfer("t-near-the-ceiling", "equity", "rich", 10, false, None)), 3);
    events.extend(l.events);
    let (mut json_bytes, mut compact_bytes) = (0, 0);
    for e in &events {
        let compact = ledger_events::encode_compact(e);
        assert_eq!(compact[0], ledger_events::COMPACT_TAG);
        assert_eq!(&ledger_events::decode_compact(&compact).unwrap(), e);
        let (key, json) = ledger_events::stored_to_json(Vec::new(), compact.clone()).unwrap();
        assert_eq!(key, partition_key(e).as_bytes());
        assert_eq!(json, encode(e), "the same bytes as encoding the event directly");
        let (key, passed) = ledger_events::stored_to_json(b"k".to_vec(), encode(e)).unwrap();
        assert_eq!((key, passed), (b"k".to_vec(), encode(e)), "JSON passes through as it is");
        if matches!(e, LedgerEvent::Transfer(_)) {
            json_bytes += encode(e).len();
            compact_bytes += compact.len();
        }
    }
    assert!(compact_bytes * 2 < json_bytes, "compact {compact_bytes} B vs JSON {json_bytes} B");
}

#[test]
fn compact_decode_errors() {
    use ledger_events::{Error, decode_compact, encode_compact, stored_to_json};
    assert!(matches!(decode_compact(b""), Err(Error::UnknownForm(0))));
    assert!(matches!(decode_compact(b"\x03abc"), Err(Error::UnknownForm(3))));
    assert!(matches!(stored_to_json(Vec::new(), b"\x07".to_vec()), Err(Error::UnknownForm(7))));
    let compact = encode_compact(&scenario()[3]);
    assert!(matches!(decode_compact(&compact[..compact.len() - 3]), Err(Error::Compact(_))));
}

/// Events logs written before the flags (tag 1) still read: the same events, every flag false.
#[test]
fn the_first_compact_layout_still_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_compact_v1.hex");
    let v1 = std::fs::read_to_string(&path).unwrap();
    let events = scenario();
    assert_eq!(v1.lines().count(), 12);
    for (line, e) in v1.lines().zip(&events) {
        let bytes = unhex(line);
        assert_eq!(bytes[0], ledger_events::COMPACT_TAG_V1);
        assert_eq!(&ledger_events::decode_compact(&bytes).unwrap(), e, "{line}");
        let (_, json) = ledger_events::stored_to_json(Vec::new(), bytes).unwrap();
        assert_eq!(json, encode(e), "served as the same JSON as a new node's");
    }
}

/// The compact bytes are pinned too: events logs on disk hold them, so a change of codec or of
/// `LedgerEvent`'s fields must take a new tag (and keep reading this one), not change these.
#[test]
fn golden_file_pins_the_compact_form() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_compact.hex");
    let mut actual = String::new();
    for e in scenario() {
        actual.push_str(&hex(&ledger_events::encode_compact(&e)));
        actual.push('\n');
    }
    if std::env::var_os("REWRITE").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "compact form changed: stored events logs would not read back; take a new tag");
    for (line, e) in expected.lines().zip(scenario()) {
        assert_eq!(ledger_events::decode_compact(&unhex(line)).unwrap(), e);
    }
}
