//! Data-driven tests: every file under `testdata/` is a script of group
//! commands with the expected output of each (raft-rs `datadriven` style).
//! See `testdata/README.md` for the format. A fresh state and catalog per
//! file; after every log entry the runner also checks all invariants.
//!
//! Set `REWRITE=1` to rewrite the expected outputs from the actual ones
//! (then review the diff with git before committing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use testkit::datadriven::{self, Args, Case};

use group_core::{
    ApplyContext, GroupCommand, GroupOutcome, Groups, MemCatalog, MemberReply, OffsetReset, Rebalance, Reply, ResetTo,
    TopicPartition,
};

fn tps(v: &[TopicPartition]) -> String {
    if v.is_empty() { "-".into() } else { v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",") }
}

fn policy(s: &str) -> OffsetReset {
    match s {
        "earliest" => OffsetReset::Earliest,
        "latest" => OffsetReset::Latest,
        other => panic!("bad reset {other}"),
    }
}

fn fmt_member(m: &MemberReply) -> String {
    format!(
        "member={} generation={} interval={} assigned={}",
        m.member_id,
        m.generation,
        m.heartbeat_interval_ms,
        tps(&m.assignments)
    )
}

/// One line per new generation.
fn write_rebalances(out: &mut String, rebalances: &[Rebalance]) {
    for r in rebalances {
        writeln!(
            out,
            "rebalance group={} generation={} members={} moved={} reason={}",
            r.group,
            r.generation,
            r.members,
            r.moved,
            r.reason.as_str()
        )
        .expect("fmt");
    }
}

struct Runner {
    groups: Groups,
    catalog: MemCatalog,
    next_index: u64,
    time_ms: u64,
}

impl Runner {
    fn apply(&mut self, cmd: GroupCommand, a: &Args) -> String {
        let ts = a.opt_u64("ts").unwrap_or(self.time_ms);
        let ctx = ApplyContext { index: self.next_index, timestamp_ms: ts };
        self.next_index += 1;
        let before = self.groups.clone();
        let GroupOutcome { code, reply, rebalances } = self.groups.apply(&cmd, ctx, &self.catalog);
        let mut out = String::new();
        match &reply {
            Reply::None => writeln!(out, "{code}"),
            Reply::Member(m) => writeln!(out, "{code} {}", fmt_member(m)),
            Reply::Expired(e) => {
                let ex: Vec<String> = e.expired.iter().map(|(g, m)| format!("{g}/{m}")).collect();
                write!(out, "{code} expired={}", if ex.is_empty() { "-".into() } else { ex.join(",") }).expect("fmt");
                if !e.skipped.is_empty() {
                    write!(out, " skipped={}", e.skipped.join(",")).expect("fmt");
                }
                writeln!(out, " more_due={}", e.more_due)
            }
            Reply::Committed(n) => writeln!(out, "{code} committed={n}"),
            Reply::Reset(v) => {
                let s: Vec<String> = v.iter().map(|(tp, o)| format!("{tp}={o}")).collect();
                writeln!(out, "{code} reset={}", s.join(","))
            }
            Reply::Deleted(d) => {
                let deleted = if d.deleted.is_empty() { "-".into() } else { d.deleted.join(",") };
                writeln!(out, "{code} deleted={deleted} more_due={}", d.more_due)
            }
        }
        .expect("fmt");
        write_rebalances(&mut out, &rebalances);
        if !code.is_ok() {
            // Rule 11: a rejected command changes nothing but the index and clock.
            if describe_all(&before, &self.catalog) != describe_all(&self.groups, &self.catalog)
                || before.next_expiry_ms() != self.groups.next_expiry_ms()
                || before.next_empty_expiry_ms(0) != self.groups.next_empty_expiry_ms(0)
            {
                writeln!(out, "STATE CHANGED BY A REJECTED COMMAND").expect("fmt");
            }
        }
        if let Err(v) = self.groups.check_invariants() {
            writeln!(out, "INVARIANT VIOLATED: {v}").expect("fmt");
        }
        out
    }

    fn run(&mut self, input: &str) -> String {
        let words: Vec<&str> = input.split_whitespace().collect();
        let a = Args::parse(&words[1..]);
        match words[0] {
            "time" => {
                self.time_ms = a.u64("ts");
                "ok\n".into()
            }
            "topic" => {
                self.catalog.set_topic(
                    &a.str("name"),
                    a.u32("partitions"),
                    a.opt_u64("start").unwrap_or(0),
                    a.opt_u64("end").unwrap_or(0),
                );
                "ok\n".into()
            }
            "topic-delete" => {
                self.catalog.remove_topic(&a.str("name"));
                "ok\n".into()
            }
            // Rule 14: the node tells the groups a topic was created or deleted (same entry).
            "topic-changed" => {
                let rebalances = self.groups.topic_changed(&a.str("name"), &self.catalog);
                let mut out = String::from("ok\n");
                write_rebalances(&mut out, &rebalances);
                if let Err(v) = self.groups.check_invariants() {
                    writeln!(out, "INVARIANT VIOLATED: {v}").expect("fmt");
                }
                out
            }
            "offsets" => {
                let done = self.catalog.set_offsets(&a.str("topic"), a.u32("partition"), a.u64("start"), a.u64("end"));
                format!("{}\n", if done { "ok" } else { "no such partition" })
            }
            "join" => self.apply(
                GroupCommand::Join {
                    group: a.str("group"),
                    topics: a.list("topics"),
                    session_timeout_ms: a.opt_u64("session"),
                    auto_offset_reset: a.get("reset").map(policy),
                },
                &a,
            ),
            "heartbeat" => {
                self.apply(GroupCommand::Heartbeat { group: a.str("group"), member_id: a.str("member") }, &a)
            }
            "leave" => self.apply(GroupCommand::Leave { group: a.str("group"), member_id: a.str("member") }, &a),
            "expire" => {
                self.apply(GroupCommand::ExpireMembers { group: a.str("group"), member_ids: a.list("members") }, &a)
            }
            "rebalance" => self.apply(GroupCommand::Rebalance { group: a.str("group") }, &a),
            "delete" => self.apply(GroupCommand::Delete { group: a.str("group") }, &a),
            "expire-empty" => {
                self.apply(GroupCommand::ExpireEmpty { now_ms: a.u64("now"), retention_ms: a.u64("retention") }, &a)
            }
            "expire-due" => self.apply(GroupCommand::ExpireDue { now_ms: a.u64("now") }, &a),
            "commit" => {
                // offsets=topic/partition=offset,...
                let offsets = a
                    .list("offsets")
                    .iter()
                    .map(|s| {
                        let (tp, o) = s.rsplit_once(':').expect("topic/partition:offset");
                        let (t, p) = tp.rsplit_once('/').expect("topic/partition");
                        (t.to_string(), p.parse().expect("partition"), o.parse().expect("offset"))
                    })
                    .collect();
                self.apply(
                    GroupCommand::Commit {
                        group: a.str("group"),
                        member_id: a.str("member"),
                        generation: a.u64("gen"),
                        offsets,
                    },
                    &a,
                )
            }
            "reset" => {
                // to=earliest | latest | N | ts:MS:P:O/P:O
                let to = a.str("to");
                let to = match to.as_str() {
                    "earliest" => ResetTo::Earliest,
                    "latest" => ResetTo::Latest,
                    s if s.starts_with("ts:") => {
                        let mut parts = s.splitn(3, ':').skip(1);
                        let timestamp_ms = parts.next().expect("ts").parse().expect("ts");
                        let offsets = parts
                            .next()
                            .unwrap_or("")
                            .split('/')
                            .filter(|x| !x.is_empty())
                            .map(|po| {
                                let (p, o) = po.split_once(':').expect("p:o");
                                (p.parse().expect("p"), o.parse().expect("o"))
                            })
                            .collect();
                        ResetTo::Timestamp { timestamp_ms, offsets }
                    }
                    n => ResetTo::Offset(n.parse().expect("offset")),
                };
                self.apply(
                    GroupCommand::ResetOffsets {
                        group: a.str("group"),
                        topic: a.str("topic"),
                        partition: a.opt_u64("partition").map(|p| u32::try_from(p).expect("u32")),
                        to,
                    },
                    &a,
                )
            }
            "describe" => match self.groups.describe(&a.str("group"), &self.catalog) {
                Some(v) => describe_text(&v),
                None => "unknown_group\n".into(),
            },
            "member" => match self.groups.member(&a.str("group"), &a.str("member")) {
                Ok(m) => format!("{}\n", fmt_member(&m)),
                Err(c) => format!("{c}\n"),
            },
            "list" => {
                let mut s = String::new();
                for g in self.groups.list_groups() {
                    writeln!(s, "{} generation={} members={}", g.group, g.generation, g.members).expect("fmt");
                }
                if s.is_empty() { "no groups\n".into() } else { s }
            }
            "fetch-start" => match self.groups.fetch_start(
                &a.str("group"),
                &a.str("member"),
                &a.str("topic"),
                a.u32("partition"),
                a.opt_u64("position"),
                &self.catalog,
            ) {
                Ok(o) => format!("{o}\n"),
                Err(c) => format!("{c}\n"),
            },
            "due" => {
                // seen=group/member:ms,...
                let seen: BTreeMap<(String, String), u64> = a
                    .get("seen")
                    .map(|s| {
                        s.split(',')
                            .filter(|x| !x.is_empty())
                            .map(|x| {
                                let (gm, ms) = x.rsplit_once(':').expect("group/member:ms");
                                let (g, m) = gm.split_once('/').expect("group/member");
                                ((g.to_string(), m.to_string()), ms.parse().expect("ms"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let floor = a.opt_u64("takeover");
                let due = self.groups.due_for_expiry(a.u64("now"), |g, m| {
                    let s = seen.get(&(g.to_string(), m.to_string())).copied();
                    match (s, floor) {
                        (Some(s), Some(f)) => Some(s.max(f)),
                        (s, f) => s.or(f),
                    }
                });
                let v: Vec<String> = due.iter().map(|(g, m)| format!("{g}/{m}")).collect();
                format!("{}\n", if v.is_empty() { "none".into() } else { v.join(",") })
            }
            "next-expiry" => format!("{:?}\n", self.groups.next_expiry_ms()),
            "next-empty-expiry" => format!("{:?}\n", self.groups.next_empty_expiry_ms(a.u64("retention"))),
            "snapshot-roundtrip" => {
                let bytes = bincode::serialize(&self.groups).expect("serialize");
                let restored: Groups = bincode::deserialize(&bytes).expect("deserialize");
                assert!(restored == self.groups, "snapshot differs");
                assert_eq!(bytes, bincode::serialize(&restored).expect("serialize"), "snapshot bytes not stable");
                self.groups = restored;
                "ok\n".into()
            }
            other => panic!("unknown command {other}"),
        }
    }
}

fn describe_all(g: &Groups, catalog: &MemCatalog) -> String {
    g.list_groups().iter().filter_map(|s| g.describe(&s.group, catalog)).map(|v| describe_text(&v)).collect()
}

fn describe_text(v: &group_core::GroupView) -> String {
    let mut s = format!("group={} generation={} members={}\n", v.group, v.generation, v.members.len());
    for m in &v.members {
        writeln!(
            s,
            "  member {} topics={} reset={} hb={} session={} assigned={}",
            m.member_id,
            m.topics.join(","),
            m.auto_offset_reset.as_str(),
            m.last_heartbeat_ms,
            m.session_timeout_ms,
            tps(&m.assignments)
        )
        .expect("fmt");
    }
    for p in &v.partitions {
        let committed = p.committed_offset.map_or("-".to_string(), |c| c.to_string());
        writeln!(
            s,
            "  partition {}/{} owner={} committed={} end={} lag={}",
            p.topic,
            p.partition,
            p.owner.as_deref().unwrap_or("-"),
            committed,
            p.end_offset,
            p.lag
        )
        .expect("fmt");
    }
    s
}

#[test]
fn datadriven() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    datadriven::run_dir(&dir, || {
        let mut r = Runner { groups: Groups::default(), catalog: MemCatalog::default(), next_index: 1, time_ms: 0 };
        move |case: &Case| {
            assert_eq!(case.input.len(), 1, "line {}: a group command is one line", case.line);
            r.run(&case.input[0])
        }
    });
}
