//! `ledger tail`: prints a topic's records and follows new ones until Ctrl-C or
//! `--max-records`.
//!
//! Without `--group` every partition is read by its own long-polling task, from the start (or
//! from the end with `--from-end`); nothing is committed. With `--group` the CLI is one member of
//! that consumer group: it joins, heartbeats, prints the records of the partitions it owns and
//! commits what it printed, then leaves the group on exit (at-least-once, as for any member).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ledger_client::{Client, Error, JoinGroup, PartitionOffset};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Failure;
use crate::output::{Out, note};

/// Longest long poll of one fetch.
pub const TAIL_WAIT_MS: u64 = 5_000;
/// Records asked for by one fetch.
pub const TAIL_FETCH_RECORDS: u32 = 500;
/// Records in flight between the partition readers and the printer.
pub const TAIL_CHANNEL_RECORDS: usize = 1024;
/// Consecutive retryable failures (gateway restarting, election) tolerated before giving up.
pub const TAIL_RETRIES_MAX: u32 = 30;
/// Pause between retries.
pub const TAIL_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Consecutive re-joins of the group (after being expired) before giving up.
pub const TAIL_REJOINS_MAX: u32 = 10;

/// One record ready to print.
struct Line {
    topic: String,
    partition: u32,
    offset: u64,
    key: Option<String>,
    value: Value,
    timestamp: u64,
}

/// Runs `ledger tail`.
pub async fn run(
    client: &Client,
    out: &Out,
    topic: &str,
    group: Option<&str>,
    from_end: bool,
    max_records: Option<u64>,
) -> Result<(), Failure> {
    if max_records == Some(0) {
        return Err(Failure::usage("--max-records must be at least 1"));
    }
    match group {
        None => partitions(client, out, topic, from_end, max_records).await,
        Some(g) => member(client, out, topic, g, from_end, max_records).await,
    }
}

fn print(out: &Out, l: &Line) {
    if out.json {
        out.json_line(&json!({
            "topic": l.topic, "partition": l.partition, "offset": l.offset,
            "key": l.key, "value": l.value, "timestamp": l.timestamp,
        }));
    } else {
        // A key is one field on one line: even TAB and LF are escaped (a key cannot fake lines).
        let key = l.key.as_deref().map(|k| format!("  key={}", crate::output::escape_field(k))).unwrap_or_default();
        out.text(&format!("{}/{}@{}{key}  {}", l.topic, l.partition, l.offset, l.value));
    }
}

/// Retries `f` while it fails with a retryable error, at most `TAIL_RETRIES_MAX` times.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && tries < TAIL_RETRIES_MAX => {
                tries += 1;
                tokio::time::sleep(TAIL_RETRY_PAUSE).await;
            }
            r => return r,
        }
    }
}

async fn partitions(
    client: &Client,
    out: &Out,
    topic: &str,
    from_end: bool,
    max_records: Option<u64>,
) -> Result<(), Failure> {
    let topics = client.topics().await?;
    let Some(t) = topics.iter().find(|t| t.name == topic) else {
        return Err(Failure::failed(format!(
            "unknown_topic: no topic named {topic:?} (`ledger topic list` shows them)"
        )));
    };
    let (tx, mut rx) = mpsc::channel::<Result<Line, Error>>(TAIL_CHANNEL_RECORDS);
    let mut readers = tokio::task::JoinSet::new();
    for partition in 0..t.partitions {
        let (client, tx, topic) = (client.clone(), tx.clone(), topic.to_owned());
        readers.spawn(async move {
            let mut offset = 0;
            if from_end {
                match retrying(|| client.fetch(&topic, partition, 0, Some(1), None)).await {
                    Ok(f) => offset = f.end_offset,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            loop {
                let f = match retrying(|| {
                    client.fetch(&topic, partition, offset, Some(TAIL_FETCH_RECORDS), Some(TAIL_WAIT_MS))
                })
                .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for r in f.records {
                    let line = Line {
                        topic: topic.clone(),
                        partition,
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                        timestamp: r.timestamp,
                    };
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                offset = offset.max(f.next_offset);
            }
        });
    }
    drop(tx);
    let stop = stop_signal()?;
    let mut printed = 0u64;
    let result = loop {
        tokio::select! {
            () = stop.stopping() => break Ok(()),
            msg = rx.recv() => match msg {
                Some(Ok(line)) => {
                    print(out, &line);
                    printed += 1;
                    if max_records.is_some_and(|m| printed >= m) {
                        break Ok(());
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
        }
    };
    readers.abort_all();
    result
}

/// Ctrl-C (or SIGTERM) ends a tail cleanly: a group member leaves its group.
fn stop_signal() -> Result<ledger_shutdown::Shutdown, Failure> {
    ledger_shutdown::Shutdown::on_signals().map_err(|e| Failure::failed(format!("cannot catch SIGINT/SIGTERM: {e}")))
}

/// The state of this CLI as a group member.
struct Member {
    id: String,
    generation: u64,
    heartbeat_every: Duration,
    last_heartbeat: Instant,
}

async fn join(client: &Client, group: &str, topic: &str, from_end: bool) -> Result<Member, Failure> {
    let j = JoinGroup {
        topics: vec![topic.to_owned()],
        session_timeout_ms: None,
        auto_offset_reset: Some(if from_end { "latest" } else { "earliest" }.to_owned()),
    };
    let m = retrying(|| client.join_group(group, &j)).await?;
    note(&format!(
        "joined group {group} as {} (generation {}, {} partition(s))",
        m.member_id,
        m.generation,
        m.assignments.len()
    ));
    Ok(Member {
        id: m.member_id,
        generation: m.generation,
        heartbeat_every: Duration::from_millis(m.heartbeat_interval_ms.max(100)),
        last_heartbeat: Instant::now(),
    })
}

async fn member(
    client: &Client,
    out: &Out,
    topic: &str,
    group: &str,
    from_end: bool,
    max_records: Option<u64>,
) -> Result<(), Failure> {
    let mut m = join(client, group, topic, from_end).await?;
    let stop = stop_signal()?;
    let mut printed = 0u64;
    let mut rejoins = 0u32;
    let result: Result<(), Failure> = loop {
        if m.last_heartbeat.elapsed() >= m.heartbeat_every {
            match client.heartbeat(group, &m.id).await {
                Ok(h) => {
                    m.generation = h.generation;
                    m.last_heartbeat = Instant::now();
                }
                Err(e) if e.code() == Some("unknown_member") && rejoins < TAIL_REJOINS_MAX => {
                    rejoins += 1;
                    m = join(client, group, topic, from_end).await?;
                    continue;
                }
                Err(e) if e.is_retryable() => tokio::time::sleep(TAIL_RETRY_PAUSE).await,
                Err(e) => break Err(e.into()),
            }
        }
        let wait_ms = TAIL_WAIT_MS.min(m.heartbeat_every.as_millis() as u64);
        let want =
            max_records.map_or(u64::from(TAIL_FETCH_RECORDS), |mx| (mx - printed).min(u64::from(TAIL_FETCH_RECORDS)));
        let fetched = tokio::select! {
            () = stop.stopping() => break Ok(()),
            r = client.group_records(group, &m.id, Some(want as u32), Some(wait_ms)) => r,
        };
        let recs = match fetched {
            Ok(r) => r,
            Err(e) if e.code() == Some("unknown_member") && rejoins < TAIL_REJOINS_MAX => {
                rejoins += 1;
                m = join(client, group, topic, from_end).await?;
                continue;
            }
            // The answer may have been lost on its way back with the coordinator's position
            // already past it: a new member starts at the committed offsets (everything printed
            // is committed), so nothing is skipped.
            Err(e) if e.is_retryable() && rejoins < TAIL_REJOINS_MAX => {
                tokio::time::sleep(TAIL_RETRY_PAUSE).await;
                rejoins += 1;
                let _ = client.leave_group(group, &m.id).await;
                m = join(client, group, topic, from_end).await?;
                continue;
            }
            Err(e) => break Err(e.into()),
        };
        rejoins = 0;
        let mut next: BTreeMap<(String, u32), u64> = BTreeMap::new();
        let mut done = false;
        for r in recs.records {
            let e = next.entry((r.topic.clone(), r.partition)).or_insert(0);
            *e = (*e).max(r.offset + 1);
            print(
                out,
                &Line {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                },
            );
            printed += 1;
            if max_records.is_some_and(|mx| printed >= mx) {
                done = true;
                break;
            }
        }
        if !next.is_empty() {
            let offsets: Vec<PartitionOffset> = next
                .into_iter()
                .map(|((topic, partition), offset)| PartitionOffset { topic, partition, offset })
                .collect();
            match client.commit_offsets(group, &m.id, recs.generation, &offsets).await {
                Ok(()) => {}
                // A rebalance moved a partition away: another member re-reads from the last
                // commit (at-least-once), so this is not an error.
                Err(e) if e.status() == Some(409) || e.is_retryable() => {
                    note(&format!("commit not applied ({e}); the group rebalanced"));
                }
                Err(e) if e.code() == Some("unknown_member") => {}
                Err(e) => break Err(e.into()),
            }
        }
        if done {
            break Ok(());
        }
    };
    // Leave at once so the partitions move to the other members without waiting for expiry.
    if let Err(e) = client.leave_group(group, &m.id).await {
        note(&format!("could not leave group {group} ({e}); the member expires after its session timeout"));
    }
    result
}
