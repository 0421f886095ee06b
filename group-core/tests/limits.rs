//! Rule 12: every limit is enforced with a code, exactly at its boundary;
//! rule 11: the apply index must strictly increase.

use group_core::{ApplyContext, GroupCode, GroupCommand, GroupOutcome, Groups, MemCatalog, Reply, limits};

struct W {
    groups: Groups,
    catalog: MemCatalog,
    index: u64,
}

impl W {
    fn new() -> W {
        let mut catalog = MemCatalog::default();
        catalog.set_topic("t", 1, 0, 10);
        W { groups: Groups::default(), catalog, index: 0 }
    }
    fn apply(&mut self, cmd: &GroupCommand) -> GroupOutcome {
        self.index += 1;
        self.groups.apply(cmd, ApplyContext { index: self.index, timestamp_ms: 1_000 }, &self.catalog)
    }
    fn join(&mut self, group: &str, topics: &[&str], session: Option<u64>) -> GroupOutcome {
        self.apply(&GroupCommand::Join {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: session,
            auto_offset_reset: None,
        })
    }
}

fn member_id(o: &GroupOutcome) -> String {
    match &o.reply {
        Reply::Member(m) => m.member_id.clone(),
        other => panic!("no member in {other:?}"),
    }
}

/// Rule 12: group id length and charset.
#[test]
fn rule12_group_id() {
    let mut w = W::new();
    let max = "g".repeat(limits::GROUP_ID_BYTES_MAX);
    assert_eq!(w.join(&max, &["t"], None).code, GroupCode::Ok);
    let over = "g".repeat(limits::GROUP_ID_BYTES_MAX + 1);
    assert_eq!(w.join(&over, &["t"], None).code, GroupCode::InvalidGroupId);
    for bad in ["", "a b", "a/b", "é", "a\n"] {
        assert_eq!(w.join(bad, &["t"], None).code, GroupCode::InvalidGroupId, "{bad:?}");
    }
    let long_topic = "t".repeat(limits::TOPIC_NAME_BYTES_MAX + 1);
    assert_eq!(w.join("g", &[&long_topic], None).code, GroupCode::InvalidRequest);
}

/// Rule 12: session timeout bounds, default and heartbeat interval.
#[test]
fn rule12_session_timeout() {
    let mut w = W::new();
    assert_eq!(w.join("g", &["t"], Some(limits::SESSION_TIMEOUT_MS_MIN - 1)).code, GroupCode::InvalidSessionTimeout);
    assert_eq!(w.join("g", &["t"], Some(limits::SESSION_TIMEOUT_MS_MAX + 1)).code, GroupCode::InvalidSessionTimeout);
    for s in [limits::SESSION_TIMEOUT_MS_MIN, limits::SESSION_TIMEOUT_MS_MAX] {
        let Reply::Member(m) = w.join("g", &["t"], Some(s)).reply else { panic!("join") };
        assert_eq!((m.session_timeout_ms, m.heartbeat_interval_ms), (s, s / 3));
    }
    let Reply::Member(m) = w.join("g", &["t"], None).reply else { panic!("join") };
    assert_eq!(m.session_timeout_ms, limits::SESSION_TIMEOUT_MS_DEFAULT);
    assert_eq!(m.heartbeat_interval_ms, limits::heartbeat_interval_ms(limits::SESSION_TIMEOUT_MS_DEFAULT));
}

/// Rule 12: topics per subscription (duplicates count once).
#[test]
fn rule12_topics_per_subscription() {
    let mut w = W::new();
    let names: Vec<String> = (0..=limits::TOPICS_PER_SUBSCRIPTION_MAX).map(|i| format!("t{i}")).collect();
    for n in &names {
        w.catalog.set_topic(n, 1, 0, 0);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let max = &refs[..limits::TOPICS_PER_SUBSCRIPTION_MAX];
    let mut dup = max.to_vec();
    dup.push(max[0]);
    assert_eq!(w.join("g", &dup, None).code, GroupCode::Ok);
    assert_eq!(w.join("g", &refs, None).code, GroupCode::LimitExceeded);
}

/// Rule 12: partitions per group (union of subscriptions, at join).
#[test]
fn rule12_partitions_per_group() {
    let mut w = W::new();
    let max = u32::try_from(limits::PARTITIONS_PER_GROUP_MAX).expect("u32");
    w.catalog.set_topic("big", max - 1, 0, 0);
    let o = w.join("g", &["big"], None);
    assert_eq!(o.code, GroupCode::Ok);
    // "t" has 1 partition: the union reaches exactly the limit
    assert_eq!(w.join("g", &["t"], None).code, GroupCode::Ok);
    w.catalog.set_topic("one", 1, 0, 0);
    assert_eq!(w.join("g", &["one"], None).code, GroupCode::LimitExceeded);
    // a member subscribing to already-counted topics is fine
    assert_eq!(w.join("g", &["big", "t"], None).code, GroupCode::Ok);
    w.groups.check_invariants().expect("invariants");
}

/// Rule 12: offsets per commit.
#[test]
fn rule12_offsets_per_commit() {
    let mut w = W::new();
    let max = u32::try_from(limits::OFFSETS_PER_COMMIT_MAX).expect("u32");
    w.catalog.set_topic("big", max, 0, 5);
    let id = member_id(&w.join("g", &["big"], None));
    let offsets: Vec<(String, u32, u64)> = (0..max).map(|p| ("big".to_string(), p, 5)).collect();
    let commit = |offsets: Vec<(String, u32, u64)>| GroupCommand::Commit {
        group: "g".into(),
        member_id: id.clone(),
        generation: 1,
        offsets,
    };
    assert_eq!(w.apply(&commit(offsets.clone())).code, GroupCode::Ok);
    let mut over = offsets;
    over.push(("big".into(), 0, 5));
    assert_eq!(w.apply(&commit(over)).code, GroupCode::LimitExceeded);
}

/// Rule 12: members per group, and the cost of a rebalance at the limit.
#[test]
fn rule12_members_per_group() {
    let mut w = W::new();
    w.catalog.set_topic("t", 64, 0, 0);
    for _ in 0..limits::MEMBERS_PER_GROUP_MAX {
        assert_eq!(w.join("g", &["t"], None).code, GroupCode::Ok);
    }
    assert_eq!(w.join("g", &["t"], None).code, GroupCode::LimitExceeded);
    // another group is unaffected
    assert_eq!(w.join("h", &["t"], None).code, GroupCode::Ok);
    w.groups.check_invariants().expect("invariants");
}

/// Rule 12: number of groups.
#[test]
fn rule12_groups() {
    let mut w = W::new();
    for i in 0..limits::GROUPS_MAX {
        assert_eq!(w.join(&format!("g{i}"), &["t"], None).code, GroupCode::Ok);
    }
    assert_eq!(w.join("one-more", &["t"], None).code, GroupCode::LimitExceeded);
    // joining an existing group still works
    assert_eq!(w.join("g0", &["t"], None).code, GroupCode::Ok);
}

/// Rule 5/12: `ExpireDue` expires at most `EXPIRE_PER_ENTRY_MAX` members per
/// entry and says when more are due.
#[test]
fn rule12_expire_per_entry() {
    let mut w = W::new();
    let n = limits::EXPIRE_PER_ENTRY_MAX + 5;
    for i in 0..n {
        assert_eq!(w.join(&format!("g{}", i % 3), &["t"], Some(1_000)).code, GroupCode::Ok);
    }
    let due = GroupCommand::ExpireDue { now_ms: 1_000_000 };
    let o = w.apply(&due);
    let Reply::Expired(e) = &o.reply else { panic!("expire") };
    assert_eq!((e.expired.len(), e.more_due), (limits::EXPIRE_PER_ENTRY_MAX, true));
    // one new generation per affected group, not per member
    assert_eq!(o.rebalances.len(), 3);
    let o = w.apply(&due);
    let Reply::Expired(e) = &o.reply else { panic!("expire") };
    assert_eq!((e.expired.len(), e.more_due), (5, false));
    assert_eq!(w.groups.next_expiry_ms(), None);
    w.groups.check_invariants().expect("invariants");
}

/// Rule 11: a non-increasing apply index panics (it would fork replicas).
#[test]
#[should_panic(expected = "does not follow")]
fn rule11_index_must_increase() {
    let mut w = W::new();
    w.join("g", &["t"], None);
    w.index -= 1;
    w.join("g", &["t"], None);
}
