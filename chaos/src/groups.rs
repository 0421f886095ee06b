//! The topics-and-groups workload: producers appending records with unique values to a topic,
//! and the members of one consumer group fetching, committing, leaving and joining again (so the
//! group rebalances under the faults). After each rebalance a member sends one commit with the
//! generation it had: the group must refuse it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use ledger_client::{Client, Error, JoinGroup, NewRecord, PartitionOffset};

use crate::check::groups::value_of;
use crate::history::{Op, Outcome, Recorder, What};
use crate::workload::{ATTEMPT_TIMEOUT, RETRY_PAUSE, Stop, THINK};

/// The topic.
pub const TOPIC: &str = "chaos";
/// Its partitions.
pub const PARTITIONS: u32 = 4;
/// The consumer group.
pub const GROUP: &str = "chaos-group";
/// The members' session timeout (a member silent this long leaves the group).
const SESSION_TIMEOUT_MS: u64 = 6_000;
/// Most records one fetch returns.
const FETCH_MAX: u32 = 200;
/// A fetch's long poll.
const FETCH_WAIT_MS: u64 = 300;
/// A member leaves and joins again after a time drawn from this range.
const REJOIN_EVERY: (Duration, Duration) = (Duration::from_secs(4), Duration::from_secs(10));

/// Creates the topic, retried until `within` passes.
pub async fn setup(client: &Client, within: Duration) -> anyhow::Result<()> {
    let give_up = Instant::now() + within;
    loop {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, client.create_topic(TOPIC, PARTITIONS)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.code() == Some("topic_exists") => return Ok(()),
            Ok(Err(e)) if !e.is_retryable() => bail!("creating topic {TOPIC}: {e}"),
            _ if Instant::now() >= give_up => bail!("topic {TOPIC} not created within {within:?}"),
            _ => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// The outcome of a write that is sent once.
fn outcome_of<T>(r: &Result<Result<T, Error>, tokio::time::error::Elapsed>) -> Outcome {
    match r {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(e)) if crate::workload::refused(e).is_some() => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

/// Producer `who`: one record per request, values `{"r":"r-<who>-<n>"}`, until told to stop.
pub async fn producer(client: Client, rec: Recorder, who: usize, stop: Stop) {
    let mut seq = 0u64;
    while !stop.no_new.load(Ordering::Relaxed) && !rec.full() {
        let id = format!("r-{who}-{seq}");
        seq += 1;
        let record = NewRecord { key: None, value: value_of(&id), headers: None };
        let start_ms = rec.now_ms();
        let r = tokio::time::timeout(ATTEMPT_TIMEOUT, client.produce(TOPIC, std::slice::from_ref(&record))).await;
        let end = rec.now_ms();
        let outcome = outcome_of(&r);
        rec.attempt(start_ms, end, outcome != Outcome::Unknown, true);
        let at = match &r {
            Ok(Ok(p)) => p.offsets.first().map(|o| (o.partition, o.offset)),
            _ => None,
        };
        let end_ms = (outcome != Outcome::Unknown).then_some(end);
        let what = What::Produce { id, partition: at.map(|a| a.0), offset: at.map(|a| a.1) };
        rec.op(Op { client: who, start_ms, end_ms, outcome, attempts: 1, what });
        tokio::time::sleep(if outcome == Outcome::Unknown { RETRY_PAUSE } else { THINK }).await;
    }
}

struct Member {
    id: String,
    generation: u64,
    heartbeat_every: Duration,
    next_heartbeat: Instant,
}

/// Consumer `who` of the group, until `done` is set.
pub async fn consumer(client: Client, rec: Recorder, who: usize, seed: u64, done: Arc<AtomicBool>, stop: Stop) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (who as u64).wrapping_mul(0xc2b2_ae35));
    let rejoin_after = |rng: &mut fastrand::Rng| {
        let span = u64::try_from((REJOIN_EVERY.1 - REJOIN_EVERY.0).as_millis()).unwrap_or(0);
        Instant::now() + REJOIN_EVERY.0 + Duration::from_millis(rng.u64(0..=span))
    };
    let mut member: Option<Member> = None;
    // Next offset per partition consumed in the member's current generation.
    let mut positions: BTreeMap<u32, u64> = BTreeMap::new();
    let mut rejoin_at = rejoin_after(&mut rng);
    while !done.load(Ordering::Relaxed) {
        let Some(m) = member.as_mut() else {
            let join = JoinGroup {
                topics: vec![TOPIC.to_owned()],
                session_timeout_ms: Some(SESSION_TIMEOUT_MS),
                auto_offset_reset: Some("earliest".to_owned()),
            };
            match tokio::time::timeout(ATTEMPT_TIMEOUT, client.join_group(GROUP, &join)).await {
                Ok(Ok(j)) => {
                    let every = Duration::from_millis(j.heartbeat_interval_ms.max(100));
                    member = Some(Member {
                        id: j.member_id,
                        generation: j.generation,
                        heartbeat_every: every,
                        next_heartbeat: Instant::now() + every,
                    });
                    positions.clear();
                }
                _ => tokio::time::sleep(RETRY_PAUSE).await,
            }
            continue;
        };
        if Instant::now() >= m.next_heartbeat {
            m.next_heartbeat = Instant::now() + m.heartbeat_every;
            match tokio::time::timeout(ATTEMPT_TIMEOUT, client.heartbeat(GROUP, &m.id)).await {
                Ok(Ok(hb)) if hb.generation != m.generation => {
                    if !positions.is_empty() {
                        let old = m.generation;
                        commit(&client, &rec, who, &m.id, old, &positions, true).await;
                    }
                    m.generation = hb.generation;
                    positions.clear();
                }
                Ok(Err(e)) if e.code() == Some("unknown_member") => {
                    member = None;
                    continue;
                }
                _ => {}
            }
        }
        // Positions kept client-side (`from=`): an answer lost on its way back is harmless for
        // those partitions; for the others the member rejoins after a lost answer (a new member
        // starts at the committed offsets), as docs/CONSUMER_GROUPS.md asks.
        let from: Vec<PartitionOffset> = positions
            .iter()
            .map(|(p, o)| PartitionOffset { topic: TOPIC.to_owned(), partition: *p, offset: *o })
            .collect();
        let fetch = client.group_records_from(GROUP, &m.id, Some(FETCH_MAX), Some(FETCH_WAIT_MS), &from);
        let fetched = tokio::time::timeout(ATTEMPT_TIMEOUT, fetch).await;
        let mut got: BTreeMap<u32, u64> = BTreeMap::new();
        match fetched {
            Ok(Ok(batch)) => {
                if batch.generation != m.generation {
                    // A rebalance: the old generation's commit must now be refused.
                    if !positions.is_empty() {
                        let (id, old) = (m.id.clone(), m.generation);
                        commit(&client, &rec, who, &id, old, &positions, true).await;
                    }
                    m.generation = batch.generation;
                    positions.clear();
                }
                for r in batch.records.iter().filter(|r| r.topic == TOPIC) {
                    rec.delivered(r.partition, r.offset);
                    let next = got.entry(r.partition).or_default();
                    *next = (*next).max(r.offset + 1);
                }
            }
            Ok(Err(e)) if e.code() == Some("unknown_member") => {
                member = None;
                continue;
            }
            Ok(Err(e)) if e.code() == Some("stale_generation") => m.next_heartbeat = Instant::now(),
            Ok(Err(Error::Problem(p))) if p.status < 500 => tokio::time::sleep(RETRY_PAUSE).await,
            // No answer: what it held may have moved the leader's positions.
            _ => {
                let id = m.id.clone();
                member = None;
                let _ = tokio::time::timeout(ATTEMPT_TIMEOUT, client.leave_group(GROUP, &id)).await;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        }
        if !got.is_empty() {
            for (p, o) in &got {
                let pos = positions.entry(*p).or_default();
                *pos = (*pos).max(*o);
            }
            let (id, generation) = (m.id.clone(), m.generation);
            let outcome = commit(&client, &rec, who, &id, generation, &got, false).await;
            if outcome == Outcome::Failed
                && let Some(m) = member.as_mut()
            {
                m.next_heartbeat = Instant::now();
            }
        }
        if Instant::now() >= rejoin_at && !stop.no_new.load(Ordering::Relaxed) {
            rejoin_at = rejoin_after(&mut rng);
            if let Some(m) = member.take() {
                let _ = tokio::time::timeout(ATTEMPT_TIMEOUT, client.leave_group(GROUP, &m.id)).await;
            }
        }
    }
    if let Some(m) = member {
        let _ = tokio::time::timeout(ATTEMPT_TIMEOUT, client.leave_group(GROUP, &m.id)).await;
    }
}

/// Commits `offsets` with `generation` (once) and records it.
async fn commit(
    client: &Client,
    rec: &Recorder,
    who: usize,
    member: &str,
    generation: u64,
    offsets: &BTreeMap<u32, u64>,
    stale: bool,
) -> Outcome {
    let body: Vec<PartitionOffset> =
        offsets.iter().map(|(p, o)| PartitionOffset { topic: TOPIC.to_owned(), partition: *p, offset: *o }).collect();
    let start_ms = rec.now_ms();
    let r = tokio::time::timeout(ATTEMPT_TIMEOUT, client.commit_offsets(GROUP, member, generation, &body)).await;
    let end = rec.now_ms();
    let outcome = outcome_of(&r);
    let end_ms = (outcome != Outcome::Unknown).then_some(end);
    let what = What::Commit {
        member: member.to_owned(),
        generation,
        offsets: offsets.iter().map(|(p, o)| (*p, *o)).collect(),
        stale,
    };
    rec.op(Op { client: who, start_ms, end_ms, outcome, attempts: 1, what });
    outcome
}

/// Waits until the group's committed offsets reach every partition's end, at most `within`;
/// whether they did.
pub async fn wait_caught_up(client: &Client, within: Duration) -> bool {
    let give_up = Instant::now() + within;
    while Instant::now() < give_up {
        if let Ok(Ok(g)) = tokio::time::timeout(ATTEMPT_TIMEOUT, client.group(GROUP)).await
            && g.partitions.len() == PARTITIONS as usize
            && g.partitions.iter().all(|p| p.committed_offset.unwrap_or(0) >= p.end_offset)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
