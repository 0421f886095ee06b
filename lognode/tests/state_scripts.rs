//! Data-driven scripts for lognode's pure replicated `State` (`store::state_machine::State`):
//! topics, produce, ledger and group commands, events-log records, snapshots and the apply-path
//! assertions, one script per concern under `lognode/testdata/state/` (format and commands in
//! `lognode/testdata/state/README.md`). A fresh `State::initial()` per script; after every entry
//! the runner checks `State::check_invariants` and prints `INVARIANT VIOLATED` if one breaks.
//!
//! `REWRITE=1 cargo test -p lognode --test state_scripts` rewrites the expected outputs (review the
//! diff with git before committing).

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use group_core::{GroupCommand, OffsetReset, Reply, ResetTo, TopicPartition};
use ledger_core::{Command, NewAccount, NewTransfer, Outcome};
use lognode::store::state_machine::{EventBatch, State, TOPIC_LEDGER, key_hash};
use lognode::types::{
    ApiKeyRecord, DeliveryRecord, Entry, KeyCommand, KeyQuota, LogId, ProduceItem, RecordData, Request, Response,
    TypeConfig, WebhookCommand, WebhookRecord, decode,
};
use openraft::{CommittedLeaderId, EntryPayload};
use testkit::datadriven::{self, Args, Case};

struct Runner {
    state: State,
    /// Every entry applied so far (for `replay`).
    entries: Vec<(LogId, EntryPayload<TypeConfig>)>,
    next_index: u64,
    time_ms: u64,
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn records(n: u64, key: &str) -> Vec<RecordData> {
    (0..n)
        .map(|i| RecordData { key: key.as_bytes().to_vec(), value: i.to_be_bytes().to_vec(), headers: vec![] })
        .collect()
}

fn tps(v: &[TopicPartition]) -> String {
    v.iter().map(|tp| format!("{}/{}", tp.topic, tp.partition)).collect::<Vec<_>>().join(",")
}

fn fmt_response(r: &Response) -> String {
    match r {
        Response::None => "ok\n".into(),
        Response::Produced { base_offset, count } => format!("produced base={base_offset} count={count}\n"),
        Response::TopicCreated => "topic created\n".into(),
        Response::TopicDeleted => "topic deleted\n".into(),
        Response::NodeRemoved => "node removed\n".into(),
        Response::KeyCreated => "key created\n".into(),
        Response::KeyRevoked => "key revoked\n".into(),
        Response::WebhookDone => "webhook ok\n".into(),
        Response::Rejected(e) => format!("rejected: {e}\n"),
        Response::ProducedMany(rs) => {
            let mut s = "produced-many\n".to_owned();
            for (i, r) in rs.iter().enumerate() {
                write!(s, "  [{i}] {}", fmt_response(r)).expect("fmt");
            }
            s
        }
        Response::Ledger(o) => match o {
            Outcome::Account(a) => format!("account {}\n", a.code),
            Outcome::Transfer(t) => match t.decision {
                Some(d) => format!("transfer {} status={} amount={}\n", t.code, d.status.as_str(), d.amount),
                None => format!("transfer {}\n", t.code),
            },
            Outcome::Batch(b) => format!("batch {} results={}\n", b.code, b.results.len()),
            Outcome::Expire(e) => format!("expired n={} more_due={}\n", e.expired, e.more_due),
        },
        Response::Group(o) => {
            let mut s = format!("group {}", o.code);
            match &o.reply {
                Reply::None => {}
                Reply::Member(m) => {
                    write!(s, " member={} generation={} assigned={}", m.member_id, m.generation, tps(&m.assignments))
                        .expect("fmt");
                }
                Reply::Expired(e) => {
                    let ids: Vec<String> = e.expired.iter().map(|(g, m)| format!("{g}/{m}")).collect();
                    write!(s, " expired={} more_due={}", ids.join(","), e.more_due).expect("fmt");
                }
                Reply::Committed(n) => write!(s, " committed={n}").expect("fmt"),
                Reply::Reset(v) => {
                    let offs: Vec<String> =
                        v.iter().map(|(tp, o)| format!("{}/{}:{o}", tp.topic, tp.partition)).collect();
                    write!(s, " reset={}", offs.join(",")).expect("fmt");
                }
                Reply::Deleted(d) => {
                    write!(s, " deleted={} more_due={}", d.deleted.join(","), d.more_due).expect("fmt")
                }
            }
            s.push('\n');
            for r in &o.rebalances {
                writeln!(
                    s,
                    "  rebalance group={} generation={} members={} moved={} reason={}",
                    r.group,
                    r.generation,
                    r.members,
                    r.moved,
                    r.reason.as_str()
                )
                .expect("fmt");
            }
            s
        }
    }
}

fn new_transfer(a: &Args) -> NewTransfer {
    NewTransfer {
        flags: Default::default(),
        id: a.str("id"),
        debit_account_id: a.str("from"),
        credit_account_id: a.str("to"),
        amount: a.u64("amount"),
        currency: a.str_or("cur", "USD"),
        metadata: "{}".into(),
        pending: a.flag("pending"),
        timeout_ms: a.opt_u64("timeout"),
    }
}

/// `t/0:5,t/1:7` as (topic, partition, offset) triples.
fn offsets(v: &str) -> Vec<(String, u32, u64)> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (tp, o) = s.split_once(':').expect("topic/partition:offset");
            let (t, p) = tp.split_once('/').expect("topic/partition");
            (t.to_owned(), p.parse().expect("partition"), o.parse().expect("offset"))
        })
        .collect()
}

fn reset(a: &Args) -> Option<OffsetReset> {
    match a.str_or("reset", "").as_str() {
        "" => None,
        "earliest" => Some(OffsetReset::Earliest),
        "latest" => Some(OffsetReset::Latest),
        other => panic!("reset={other}: earliest or latest"),
    }
}

fn group_command(name: &str, a: &Args) -> GroupCommand {
    let group = a.str("group");
    match name {
        "join" => GroupCommand::Join {
            group,
            topics: a.list("topics"),
            session_timeout_ms: a.opt_u64("session"),
            auto_offset_reset: reset(a),
        },
        "heartbeat" => GroupCommand::Heartbeat { group, member_id: a.str("member") },
        "leave" => GroupCommand::Leave { group, member_id: a.str("member") },
        "expire-members" => GroupCommand::ExpireMembers { group, member_ids: a.list("members") },
        "commit" => GroupCommand::Commit {
            group,
            member_id: a.str("member"),
            generation: a.u64("gen"),
            offsets: offsets(&a.str("offsets")),
        },
        "reset-offsets" => GroupCommand::ResetOffsets {
            group,
            topic: a.str("topic"),
            partition: a.opt_u64("partition").map(|p| u32::try_from(p).expect("partition")),
            to: match a.str("to").as_str() {
                "earliest" => ResetTo::Earliest,
                "latest" => ResetTo::Latest,
                n => ResetTo::Offset(n.parse().expect("earliest, latest or an offset")),
            },
        },
        "delete-group" => GroupCommand::Delete { group },
        other => panic!("unknown group command {other}"),
    }
}

impl Runner {
    fn new() -> Runner {
        Runner { state: State::initial(), entries: Vec::new(), next_index: 1, time_ms: 0 }
    }

    /// Applies one entry at the next index (or `index=N`): its response, one line per events-log
    /// record it derived, and a line if an invariant broke. A panic (an apply-path assertion) is
    /// printed as `panic: ...`: in the node it aborts the process.
    fn entry(&mut self, a: &Args, payload: EntryPayload<TypeConfig>) -> String {
        let index = a.opt_u64("index").unwrap_or(self.next_index);
        let id = log_id(index);
        let mut events = Vec::new();
        let state = &mut self.state;
        let applied = catch_unwind(AssertUnwindSafe(|| state.apply_entry(id, payload.clone(), &mut events)));
        let r = match applied {
            Ok(r) => r,
            Err(p) => {
                let msg =
                    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
                return format!("panic: {}\n", msg.unwrap_or_default());
            }
        };
        self.next_index = index + 1;
        self.entries.push((id, payload));
        let mut out = fmt_response(&r);
        let parts = self.state.topics[TOPIC_LEDGER].partitions.len() as u64;
        let first_seq = self.state.next_event_seq - events.len() as u64;
        for (i, bytes) in events.iter().enumerate() {
            let b: EventBatch = decode(bytes).expect("decode an events-log record");
            // Stored compact, without the key: what a reader gets back.
            let keys: Vec<Vec<u8>> = b
                .records
                .iter()
                .map(|r| ledger_events::stored_to_json(r.key.clone(), r.value.clone()).expect("a stored event").0)
                .collect();
            let p = key_hash(&keys[0]) % parts;
            let keys: Vec<String> = keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
            writeln!(
                out,
                "  events-log seq={} entry={} ts={} partition={p} keys={}",
                first_seq + i as u64,
                b.log_index,
                b.timestamp_ms,
                keys.join(",")
            )
            .expect("fmt");
        }
        if let Err(e) = self.state.check_invariants() {
            writeln!(out, "INVARIANT VIOLATED: {e}").expect("fmt");
        }
        out
    }

    fn request(&mut self, a: &Args, req: Request) -> String {
        self.entry(a, EntryPayload::Normal(req))
    }

    fn ts(&self, a: &Args) -> u64 {
        a.opt_u64("ts").unwrap_or(self.time_ms)
    }

    fn ledger(&mut self, a: &Args, command: Command) -> String {
        let timestamp_ms = self.ts(a);
        self.request(a, Request::Ledger { timestamp_ms, command })
    }

    fn run(&mut self, case: &Case) -> String {
        let words = case.words();
        let a = case.args();
        let ts_i64 = |r: &Runner| i64::try_from(r.ts(&a)).expect("ts");
        match words[0] {
            "time" => {
                self.time_ms = a.u64("ts");
                "ok\n".into()
            }
            "blank" => self.entry(&a, EntryPayload::Blank),
            "topic" => self.request(&a, Request::CreateTopic { name: a.str("name"), partitions: a.u32("partitions") }),
            "remove-node" => self.request(&a, Request::RemoveNode { node_id: a.u64("id") }),
            "produce" => {
                let req = Request::Produce {
                    topic: a.str("topic"),
                    partition: a.u32("partition"),
                    timestamp_ms: ts_i64(self),
                    records: records(a.u64("n"), &a.str_or("key", "")),
                };
                self.request(&a, req)
            }
            "produce-many" => {
                let items = case.input[1..]
                    .iter()
                    .map(|l| {
                        let i = Args::parse_line(l);
                        ProduceItem {
                            topic: i.str("topic"),
                            partition: i.u32("partition"),
                            records: records(i.u64("n"), ""),
                        }
                    })
                    .collect();
                let req = Request::ProduceMany { timestamp_ms: ts_i64(self), items };
                self.request(&a, req)
            }
            "account" => {
                let cmd = Command::CreateAccount(NewAccount {
                    credits_must_not_exceed_debits: false,
                    id: a.str("id"),
                    currency: a.str_or("cur", "USD"),
                    allow_overdraft: a.flag("overdraft"),
                    metadata: "{}".into(),
                });
                self.ledger(&a, cmd)
            }
            "transfer" => self.ledger(&a, Command::CreateTransfer(new_transfer(&a))),
            "batch" => {
                let transfers = case.input[1..].iter().map(|l| new_transfer(&Args::parse_line(l))).collect();
                self.ledger(&a, Command::CreateTransfers { transfers, atomic: a.flag("atomic") })
            }
            "post" => self.ledger(&a, Command::PostPending { pending_id: a.str("id"), amount: a.opt_u64("amount") }),
            "void" => self.ledger(&a, Command::VoidPending { pending_id: a.str("id") }),
            "expire" => self.ledger(&a, Command::ExpirePending { now_ms: a.u64("now") }),
            g @ ("join" | "heartbeat" | "leave" | "expire-members" | "commit" | "reset-offsets" | "delete-group") => {
                let command = group_command(g, &a);
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Group { timestamp_ms, command })
            }
            "expire-empty" => {
                let command = GroupCommand::ExpireEmpty { now_ms: a.u64("now"), retention_ms: a.u64("retention") };
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Group { timestamp_ms, command })
            }
            "expire-due" => {
                let command = GroupCommand::ExpireDue { now_ms: a.u64("now") };
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Group { timestamp_ms, command })
            }
            k @ ("key-create" | "key-bootstrap") => {
                // secret=N stands for a secret whose hash is N repeated (distinct secrets per N).
                let secret = u8::try_from(a.u64("secret")).expect("secret=0..=255");
                let key = ApiKeyRecord {
                    id: a.str("id"),
                    secret_hash: [secret; 32],
                    scopes: a.list("scopes"),
                    account_prefix: a.str_or("prefix", ""),
                    created_ms: 0,
                    created_by: a.str_or("by", "admin"),
                    quota: KeyQuota::default(),
                };
                let command = if k == "key-create" { KeyCommand::Create(key) } else { KeyCommand::Bootstrap(key) };
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Keys { timestamp_ms, command })
            }
            "key-revoke" => {
                let command = KeyCommand::Revoke { id: a.str("id"), by: a.str_or("by", "admin") };
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Keys { timestamp_ms, command })
            }
            "audited" => {
                // audited by=K <command> ...: the admin action <command> as key K asked it.
                let inner = words[1..].iter().find(|w| !w.contains('=')).expect("audited by=K <command>");
                let request = match *inner {
                    "remove-node" => Request::RemoveNode { node_id: a.u64("id") },
                    "delete-topic" => Request::DeleteTopic { name: a.str("name") },
                    g @ ("reset-offsets" | "delete-group") => {
                        Request::Group { timestamp_ms: self.ts(&a), command: group_command(g, &a) }
                    }
                    "produce" => Request::Produce {
                        topic: a.str("topic"),
                        partition: a.u32("partition"),
                        timestamp_ms: ts_i64(self),
                        records: records(a.u64("n"), ""),
                    },
                    other => panic!("audited {other}: remove-node, delete-topic, reset-offsets, delete-group, produce"),
                };
                let req = Request::Audited { timestamp_ms: self.ts(&a), by: a.str("by"), request: Box::new(request) };
                self.request(&a, req)
            }
            "show-audit" => {
                let audit = &self.state.audit;
                let mut s = format!("total={}\n", audit.total);
                for r in audit.after(a.opt_u64("after").unwrap_or(0), usize::MAX) {
                    writeln!(
                        s,
                        "{} {} {} {} by={} -> {}",
                        r.index, r.timestamp_ms, r.action, r.target, r.by, r.outcome
                    )
                    .expect("fmt");
                }
                s
            }
            "webhook-create" => {
                let hook = WebhookRecord {
                    id: a.str("id"),
                    url: a.str("url"),
                    events: a.list("events"),
                    secret: a.str_or("secret", "0123456789abcdef"),
                    created_ms: 0,
                    created_index: 0,
                    created_by: a.str_or("by", "admin"),
                };
                let timestamp_ms = self.ts(&a);
                self.request(&a, Request::Webhooks { timestamp_ms, command: WebhookCommand::Create(hook) })
            }
            "webhook-delete" => {
                let timestamp_ms = self.ts(&a);
                self.request(
                    &a,
                    Request::Webhooks { timestamp_ms, command: WebhookCommand::Delete { id: a.str("id") } },
                )
            }
            "webhook-record" => {
                // deliveries=P:O:delivered|dead,... (attempts 1 when delivered, 5 when dead).
                let deliveries = a
                    .list("deliveries")
                    .iter()
                    .map(|d| {
                        let f: Vec<&str> = d.split(':').collect();
                        let delivered = f[2] == "delivered";
                        DeliveryRecord {
                            partition: f[0].parse().expect("partition"),
                            offset: f[1].parse().expect("offset"),
                            event_index: 0,
                            event_type: "transfer.created".to_owned(),
                            delivered,
                            attempts: if delivered { 1 } else { 5 },
                            http_status: if delivered { 200 } else { 503 },
                            error: if delivered { String::new() } else { "HTTP 503".to_owned() },
                            first_attempt_ms: 1,
                            last_attempt_ms: 2,
                        }
                    })
                    .collect();
                let timestamp_ms = self.ts(&a);
                let command = WebhookCommand::Record { id: a.str("id"), deliveries };
                self.request(&a, Request::Webhooks { timestamp_ms, command })
            }
            "show-webhooks" => {
                let mut s = String::new();
                for w in self.state.webhooks.live.values() {
                    let r = &w.record;
                    let list = |q: &std::collections::VecDeque<DeliveryRecord>| {
                        q.iter().map(|d| format!("{}:{}", d.partition, d.offset)).collect::<Vec<_>>().join(",")
                    };
                    writeln!(
                        s,
                        "{} url={} events={} by={} at={} index={} delivered={}[{}] dead={}[{}]",
                        r.id,
                        r.url,
                        r.events.join(","),
                        r.created_by,
                        r.created_ms,
                        r.created_index,
                        w.delivered_total,
                        list(&w.delivered),
                        w.dead_total,
                        list(&w.dead)
                    )
                    .expect("fmt");
                }
                s
            }
            "show-keys" => {
                let keys = &self.state.keys;
                let mut s = format!("created={}\n", keys.created);
                for k in keys.live.values() {
                    writeln!(
                        s,
                        "{} scopes={} prefix={:?} by={} at={} secret={}",
                        k.id,
                        k.scopes.join(","),
                        k.account_prefix,
                        k.created_by,
                        k.created_ms,
                        k.secret_hash[0]
                    )
                    .expect("fmt");
                }
                s
            }
            "show-topic" => {
                let name = a.str("name");
                let Some(t) = self.state.topics.get(&name) else { return "not found\n".into() };
                let mut s = String::new();
                for (i, p) in t.partitions.iter().enumerate() {
                    if p.end_offset == 0 && a.flag("nonempty") {
                        continue;
                    }
                    let runs: Vec<String> = p
                        .runs
                        .iter()
                        .map(|r| format!("{}+{}@{}.{}", r.first_offset, r.count, r.log_index, r.item))
                        .collect();
                    writeln!(s, "{name}/{i} end={} runs={}", p.end_offset, runs.join(" ")).expect("fmt");
                }
                s
            }
            "show-account" => match self.state.ledger.account(&a.str("id")) {
                Some(v) => format!("{} balance={} v={} idx={}\n", v.id, v.balance, v.version, v.index),
                None => "not found\n".into(),
            },
            "show-member" => match self.state.groups.member(&a.str("group"), &a.str("member")) {
                Ok(m) => format!("{} generation={} assigned={}\n", m.member_id, m.generation, tps(&m.assignments)),
                Err(c) => format!("{c}\n"),
            },
            "show-committed" => {
                format!("{:?}\n", self.state.groups.committed(&a.str("group"), &a.str("topic"), a.u32("partition")))
            }
            "show-state" => {
                let s = &self.state;
                format!(
                    "applied={} next_event_seq={} topics={} removed_nodes={:?}\n",
                    s.last_applied.map_or(0, |l| l.index),
                    s.next_event_seq,
                    s.topics.keys().cloned().collect::<Vec<_>>().join(","),
                    s.removed_nodes
                )
            }
            "snapshot" => {
                // What a snapshot holds: the versioned header and the state, bincode-encoded. It
                // must round-trip to an equal state with stable bytes; the run continues on the
                // restored copy.
                let bytes = self.state.to_snapshot_bytes();
                let restored = State::from_snapshot_bytes(&bytes).expect("decode the snapshot");
                assert!(restored == self.state, "the snapshot restores a different state");
                assert_eq!(restored.to_snapshot_bytes(), bytes, "snapshot bytes are not stable");
                if let Err(e) = restored.check_invariants() {
                    return format!("INVARIANT VIOLATED: {e}\n");
                }
                self.state = restored;
                "ok\n".into()
            }
            "replay" => {
                // Every entry so far, applied again to a fresh state: byte-identical state and
                // events (determinism: every replica and every restart derives the same).
                let mut fresh = State::initial();
                let (mut a_ev, mut b_ev) = (Vec::new(), Vec::new());
                for (id, p) in &self.entries {
                    fresh.apply_entry(*id, p.clone(), &mut a_ev);
                }
                let mut again = State::initial();
                for (id, p) in &self.entries {
                    again.apply_entry(*id, p.clone(), &mut b_ev);
                }
                let same = fresh.to_snapshot_bytes() == self.state.to_snapshot_bytes() && a_ev == b_ev;
                format!("{} entries={}\n", if same { "identical" } else { "DIFFERENT" }, self.entries.len())
            }
            "corrupt-run" => {
                // Test hook: breaks a partition's offset map, to show the invariant check fails.
                let t = self.state.topics.get_mut(&a.str("topic")).expect("topic");
                let p = &mut t.partitions[a.u32("partition") as usize];
                p.end_offset += 1;
                match self.state.check_invariants() {
                    Ok(()) => "ok\n".into(),
                    Err(e) => format!("INVARIANT VIOLATED: {e}\n"),
                }
            }
            other => panic!("unknown command {other}"),
        }
    }
}

#[test]
fn state_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/state");
    datadriven::run_dir(&dir, || {
        let mut r = Runner::new();
        move |c: &Case| r.run(c)
    });
}

/// `Entry` is what openraft hands to apply; the scripts build payloads directly. Keep the two in
/// step: an entry's payload and log id are exactly what `apply_entry` takes.
#[test]
fn apply_entry_takes_an_entrys_parts() {
    let e = Entry { log_id: log_id(3), payload: EntryPayload::Blank };
    let mut s = State::initial();
    assert_eq!(s.apply_entry(e.log_id, e.payload, &mut Vec::new()), Response::None);
    assert_eq!(s.last_applied, Some(log_id(3)));
}
