//! `projector webhooks`: delivers the `ledger` topic's events to the webhook subscriptions the
//! log holds (docs/WEBHOOKS.md), at least once, in order per account.
//!
//! **One consumer group per subscription** (`webhook-<id>-<created_index>`, so a subscription
//! deleted and made again under its id starts afresh): its committed offsets are where delivery
//! resumes after a restart, and its generation fences a second deliverer. A member delivers only
//! while it holds all of `ledger`'s partitions (per-account order needs them all), so a deliverer
//! joins only a group without members, and one whose member gets a share leaves and stands by.
//!
//! **A cycle** of one subscription:
//! 1. `GET /v1/webhook-subscriptions` (linearizable): the subscription (gone: the task ends) and
//!    the cut `C`, an applied index at or past the commit index at that moment, so every event of
//!    an entry at or below `C` is readable by any later strong read;
//! 2. each partition is read (strong reads) from where delivery stands until an event past `C`
//!    or its end, at most [`BUFFER_EVENTS_MAX`] events held;
//! 3. the events at or below the bound (`C`, and below the last index read of any partition not
//!    read to its end) are put in order ([`order::order`]) and delivered one by one;
//! 4. finished deliveries (delivered or dead) are recorded in the log, then the partitions'
//!    offsets committed: at most every [`FLUSH_EVERY`] deliveries or [`FLUSH_INTERVAL`]. A crash
//!    before a commit delivers those events again (at least once; `Ledger-Delivery-Id` lets a
//!    subscriber drop repeats).

pub mod order;
pub mod send;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ledger_client::{Client, Delivery, JoinGroup, PartitionOffset, Subscription};
use ledger_events::TOPIC;
use ledger_shutdown::Shutdown;
use order::Pending;

use crate::run::Backoff;

/// Partitions of the `ledger` topic (lognode's `TOPIC_LEDGER_PARTITIONS`).
pub const LEDGER_PARTITIONS: u32 = 8;
/// Events one subscription's deliverer holds at most: one entry (an atomic batch of up to 8190
/// transfers) always fits.
pub const BUFFER_EVENTS_MAX: usize = 16_384;
/// Records one partition read asks for.
pub const READ_RECORDS: u32 = 1_000;
/// Finished deliveries recorded (and offsets committed) at once at most.
pub const FLUSH_EVERY: usize = 100;
/// Longest time finished deliveries wait to be recorded.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Pause of a cycle that found nothing to deliver.
pub const IDLE_PAUSE: Duration = Duration::from_millis(200);
/// Pause of a deliverer that found a subscription's group served by another, before it looks
/// again; up to as much again is added at random (see [`standby_pause`]).
pub const STANDBY_PAUSE: Duration = Duration::from_secs(5);

/// [`STANDBY_PAUSE`] plus up to as much again, drawn from the clock and the process id: two
/// deliverers that looked together (after the one serving died) do not join together again, each
/// getting a share of the partitions and leaving, round after round.
pub fn standby_pause() -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let seed = u64::from(nanos) ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let spread = u64::try_from(STANDBY_PAUSE.as_millis()).unwrap_or(u64::MAX).max(1);
    STANDBY_PAUSE + Duration::from_millis(seed.wrapping_mul(0xbf58_476d_1ce4_e5b9) % spread)
}
/// How long a stopping deliverer waits for its subscriptions' tasks to record what they finished
/// and leave their groups (all of them together); then it exits.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Session timeout the deliverer asks for when it joins a subscription's group.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct Config {
    /// Attempts per event before it is a dead letter (`--max-attempts`).
    pub attempts_max: u32,
    /// Delay after the first failed attempt, doubling (`--backoff-min-ms`).
    pub backoff_min: Duration,
    /// Longest delay between attempts (`--backoff-max-ms`).
    pub backoff_max: Duration,
    /// Time one attempt may take, connection to answer (`--timeout-ms`).
    pub timeout: Duration,
    /// How often the list of subscriptions is read (`--refresh-ms`).
    pub refresh: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            attempts_max: 8,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            refresh: Duration::from_secs(1),
        }
    }
}

/// A subscription being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
    /// Log index of its creation: events of later entries are delivered.
    pub created_index: u64,
}

impl From<Subscription> for Hook {
    fn from(s: Subscription) -> Self {
        Hook { id: s.id, url: s.url, events: s.events, secret: s.secret, created_index: s.created_index }
    }
}

/// The consumer group of a subscription: its id and creation index.
pub fn group_of(hook: &Hook) -> String {
    format!("webhook-{}-{}", hook.id, hook.created_index)
}

/// Serves every subscription until the stop: one task each, started and ended as subscriptions
/// come and go.
pub async fn run(client: Client, http: reqwest::Client, cfg: Config, stop: Shutdown) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let mut tasks: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut backoff = Backoff::default();
    while !stop.is_stopping() {
        match client.webhook_subscriptions().await {
            Ok((subs, _)) => {
                backoff.reset();
                tasks.retain(|id, t| {
                    let keep = subs.iter().any(|s| &s.id == id) && !t.is_finished();
                    if !keep {
                        t.abort();
                    }
                    keep
                });
                for s in subs {
                    if !tasks.contains_key(&s.id) {
                        tracing::info!(webhook = %s.id, url = %s.url, "serving webhook");
                        let (id, hook) = (s.id.clone(), Hook::from(s));
                        let t = tokio::spawn(serve(client.clone(), http.clone(), Arc::clone(&cfg), hook, stop.clone()));
                        tasks.insert(id, t);
                    }
                }
                if stop.sleep(cfg.refresh).await {
                    break;
                }
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "cannot list webhook subscriptions");
                if stop.sleep(d).await {
                    break;
                }
            }
        }
    }
    // Each task records what it finished and leaves its group, all within one grace period (not
    // one per task: 64 stuck tasks would otherwise hold the stop for minutes).
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for (_, t) in tasks {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    Ok(())
}

/// Why a membership ended.
enum End {
    /// The subscription is gone, or the process stops.
    Done,
    /// Join again (expired, fenced, or the partitions moved).
    Rejoin,
}

/// Serves one subscription until it is deleted or the process stops.
async fn serve(client: Client, http: reqwest::Client, cfg: Arc<Config>, hook: Hook, stop: Shutdown) {
    let group = group_of(&hook);
    let mut backoff = Backoff::default();
    while !stop.is_stopping() {
        match membership(&client, &http, &cfg, &hook, &group, &stop).await {
            Ok(End::Done) => return,
            Ok(End::Rejoin) => backoff.reset(),
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(webhook = %hook.id, error = %e, retry_in = ?d, "webhook deliverer");
                if stop.sleep(d).await {
                    return;
                }
            }
        }
    }
}

/// Heartbeats in the background; `lost` is set when the member is gone or the partitions moved.
fn heartbeats(
    client: Client,
    group: String,
    member: String,
    every: Duration,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match client.heartbeat(&group, &member).await {
                Ok(h) if h.assignments.iter().filter(|a| a.topic == TOPIC).count() == LEDGER_PARTITIONS as usize => {}
                Ok(_) => {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) if e.is_retryable() => {}
                Err(_) => {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    })
}

/// Aborts the heartbeat task when the membership ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One membership of the subscription's group: join, deliver until something ends it.
async fn membership(
    client: &Client,
    http: &reqwest::Client,
    cfg: &Config,
    hook: &Hook,
    group: &str,
    stop: &Shutdown,
) -> anyhow::Result<End> {
    // While the group has a member, another deliverer (or this one before a crash, until its
    // session expires) serves the subscription: joining would split the partitions and pause both.
    let standby = match client.group(group).await {
        Ok(d) => !d.members.is_empty(),
        Err(e) if e.code() == Some("unknown_group") => false,
        Err(e) => return Err(e.into()),
    };
    if standby {
        tracing::debug!(webhook = %hook.id, "the webhook's group has a member; standing by");
        return Ok(if stop.sleep(standby_pause()).await { End::Done } else { End::Rejoin });
    }
    let join = JoinGroup {
        topics: vec![TOPIC.to_owned()],
        session_timeout_ms: Some(SESSION_TIMEOUT.as_millis() as u64),
        // A new subscription gets the events from its creation on, not the ledger's history.
        auto_offset_reset: Some("latest".to_owned()),
    };
    let m = client.join_group(group, &join).await?;
    let mine = m.assignments.iter().filter(|a| a.topic == TOPIC).count();
    if mine != LEDGER_PARTITIONS as usize {
        tracing::info!(webhook = %hook.id, partitions = mine, "another deliverer serves this webhook; standing by");
        let _ = client.leave_group(group, &m.member_id).await;
        return Ok(if stop.sleep(standby_pause()).await { End::Done } else { End::Rejoin });
    }
    let lost = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(m.heartbeat_interval_ms.clamp(100, 3_000));
    let _hb = AbortOnDrop(heartbeats(client.clone(), group.to_owned(), m.member_id.clone(), every, Arc::clone(&lost)));
    // Where delivery stands: the committed offsets, else (a new subscription) the first event of
    // an entry after the subscription's creation, committed at once.
    let desc = client.group(group).await?;
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut fresh = false;
    for p in desc.partitions.iter().filter(|p| p.topic == TOPIC) {
        let at = match p.committed_offset {
            Some(o) => o,
            None => first_after(client, p.partition, p.end_offset, hook.created_index).await?,
        };
        next.insert(p.partition, at);
        fresh |= p.committed_offset.is_none();
    }
    if next.len() != LEDGER_PARTITIONS as usize {
        anyhow::bail!("group {group} describes {} partitions of {TOPIC}, not {LEDGER_PARTITIONS}", next.len());
    }
    let mut w = Worker {
        client,
        group,
        member: &m.member_id,
        generation: m.generation,
        committed: if fresh { BTreeMap::new() } else { next.clone() },
        next,
        done: Vec::new(),
    };
    if fresh {
        w.flush(hook).await?;
    }
    let mut bufs: BTreeMap<u32, VecDeque<Pending>> = (0..LEDGER_PARTITIONS).map(|p| (p, VecDeque::new())).collect();
    let mut read_to: BTreeMap<u32, u64> = w.next.clone();
    let mut last_flush = Instant::now();
    // The cut at which every partition was last read to its end with nothing left to deliver:
    // while the cut stays there, nothing new exists at or below it, and nothing is read.
    let mut quiet_at: Option<u64> = None;
    loop {
        if stop.is_stopping() {
            w.flush(hook).await?;
            let _ = client.leave_group(group, w.member).await;
            return Ok(End::Done);
        }
        if lost.load(Ordering::Relaxed) {
            w.flush(hook).await.ok();
            return Ok(End::Rejoin);
        }
        let (subs, cut) = client.webhook_subscriptions().await?;
        if !subs.iter().any(|s| s.id == hook.id) {
            tracing::info!(webhook = %hook.id, "webhook deleted; its deliverer stops");
            let _ = client.leave_group(group, w.member).await;
            return Ok(End::Done);
        }
        if quiet_at == Some(cut) {
            stop.sleep(IDLE_PAUSE).await;
            continue;
        }
        let (bound, all_read) = fill(client, &mut bufs, &mut read_to, cut).await?;
        let mut ready = Vec::new();
        for b in bufs.values_mut() {
            while b.front().is_some_and(|e| e.index <= bound) {
                ready.extend(b.pop_front());
            }
        }
        if ready.is_empty() {
            w.flush(hook).await?;
            last_flush = Instant::now();
            if all_read && bufs.values().all(VecDeque::is_empty) {
                quiet_at = Some(cut);
            }
            stop.sleep(IDLE_PAUSE).await;
            continue;
        }
        quiet_at = None;
        for ev in order::order(ready) {
            if order::subscribed(&hook.events, &ev.event_type) {
                match send::deliver(http, cfg, hook, &ev, stop).await {
                    Some(d) => w.done.push(d),
                    // Stopping: this event and the ones after it are delivered after a restart.
                    None => break,
                }
            }
            w.next.insert(ev.partition, ev.offset + 1);
            if w.done.len() >= FLUSH_EVERY || last_flush.elapsed() >= FLUSH_INTERVAL {
                w.flush(hook).await?;
                last_flush = Instant::now();
            }
            if lost.load(Ordering::Relaxed) || stop.is_stopping() {
                break;
            }
        }
        // What was not delivered (stop, lost membership) is read again from `next`.
        if lost.load(Ordering::Relaxed) || stop.is_stopping() {
            for b in bufs.values_mut() {
                b.clear();
            }
            read_to.clone_from(&w.next);
        }
    }
}

/// The first offset of `partition` below `end` whose event comes from an entry after
/// `created_index` (`end` if none): a binary search of single-record strong reads (events are in
/// log-index order in a partition). Offsets purged by retention count as older.
async fn first_after(client: &Client, partition: u32, end: u64, created_index: u64) -> anyhow::Result<u64> {
    let (mut lo, mut hi) = (0u64, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let older = match client.fetch_raw(TOPIC, partition, mid, Some(1), ledger_client::Consistency::Strong).await {
            Ok(f) => match f.records.into_iter().next() {
                Some(r) => {
                    Pending::from_record(partition, r.offset, r.value).map_err(anyhow::Error::msg)?.index
                        <= created_index
                }
                None => false,
            },
            Err(e) if e.code() == Some("out_of_range") => true,
            Err(e) => return Err(e.into()),
        };
        if older {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Reads every partition from `read_to` until an event past `cut` or its end (bounded by
/// [`BUFFER_EVENTS_MAX`]); answers the highest log index that may be delivered now (`cut`, and
/// below the last index read of a partition that was not read to its end), and whether every
/// partition was read to its end.
async fn fill(
    client: &Client,
    bufs: &mut BTreeMap<u32, VecDeque<Pending>>,
    read_to: &mut BTreeMap<u32, u64>,
    cut: u64,
) -> anyhow::Result<(u64, bool)> {
    let mut bound = cut;
    let mut all_read = true;
    for p in 0..LEDGER_PARTITIONS {
        let held: usize = bufs.values().map(VecDeque::len).sum();
        let buf = bufs.entry(p).or_default();
        let at = read_to.entry(p).or_insert(0);
        let mut at_end = false;
        // Read while this partition holds less than a read's worth of events that may be at or
        // below the cut; a partition whose events all share one index reads on, so that one
        // entry is never split across a bound.
        let mut room = BUFFER_EVENTS_MAX.saturating_sub(held);
        loop {
            let one_entry = buf.front().zip(buf.back()).is_some_and(|(f, b)| f.index == b.index);
            let wanted = buf.len() < READ_RECORDS as usize && buf.back().is_none_or(|e| e.index <= cut);
            if room == 0 || !(wanted || one_entry) {
                break;
            }
            let limit = READ_RECORDS.min(u32::try_from(room).unwrap_or(u32::MAX));
            let f = client.fetch_raw(TOPIC, p, *at, Some(limit), ledger_client::Consistency::Strong).await?;
            let n = f.records.len();
            for r in f.records {
                *at = r.offset + 1;
                buf.push_back(Pending::from_record(p, r.offset, r.value).map_err(anyhow::Error::msg)?);
            }
            room = room.saturating_sub(n);
            if n == 0 || *at >= f.end_offset {
                at_end = true;
                break;
            }
        }
        if !at_end {
            all_read = false;
            // Unread events of this partition have an index at least its last read one.
            let last = buf.back().map_or(0, |e| e.index);
            bound = bound.min(last.saturating_sub(1));
        }
    }
    Ok((bound, all_read))
}

/// A membership's delivery position and its finished deliveries not yet recorded.
struct Worker<'a> {
    client: &'a Client,
    group: &'a str,
    member: &'a str,
    generation: u64,
    /// Next offset to deliver, per partition.
    next: BTreeMap<u32, u64>,
    /// The position last committed.
    committed: BTreeMap<u32, u64>,
    /// Finished deliveries to record.
    done: Vec<Delivery>,
}

impl Worker<'_> {
    /// Records the finished deliveries, then commits the position (generation-fenced); nothing
    /// when nothing changed.
    async fn flush(&mut self, hook: &Hook) -> anyhow::Result<()> {
        if self.done.is_empty() && self.next == self.committed {
            return Ok(());
        }
        for chunk in self.done.chunks(FLUSH_EVERY) {
            self.client.record_deliveries(&hook.id, chunk).await?;
        }
        self.done.clear();
        let offsets: Vec<PartitionOffset> = self
            .next
            .iter()
            .map(|(&partition, &offset)| PartitionOffset { topic: TOPIC.to_owned(), partition, offset })
            .collect();
        self.client.commit_offsets(self.group, self.member, self.generation, &offsets).await?;
        self.committed.clone_from(&self.next);
        Ok(())
    }
}
