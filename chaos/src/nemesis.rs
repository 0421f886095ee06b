//! The nemesis: applies each scheduled fault to the world, holds it, heals it, and logs it.

use std::time::{Duration, Instant};

use ledger_client::Client;
use serde::Serialize;

use crate::check::Anomaly;
use crate::history::Recorder;
use crate::schedule::{Fault, Kind, Step};
use crate::world::{DISK_NODE, NODES, World, host as h};

/// Longest wait for the gateway to name a leader before a fault that needs one.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two leader lookups.
const LEADER_POLL: Duration = Duration::from_millis(200);
/// Packet loss of a lossy link: from, to.
pub const LOSS: (f64, f64) = (0.10, 0.35);
/// Lines of a stopped node's log searched for its reason.
const DISK_LOG_LINES: usize = 40;
/// Deadline of one leader lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// When it began (ms from the run's start).
    pub t_ms: u64,
    /// When it was healed.
    pub healed_ms: u64,
    /// Its kind.
    pub kind: Kind,
    /// The fault.
    pub fault: Fault,
    /// Which nodes, in words (`leader n2 cut off from n1, n3`).
    pub detail: String,
}

/// The leader's id as the gateway sees it, waiting at most [`LEADER_TIMEOUT`].
pub async fn leader(client: &Client) -> Option<u64> {
    let give_up = Instant::now() + LEADER_TIMEOUT;
    while Instant::now() < give_up {
        if let Ok(Ok(c)) = tokio::time::timeout(LOOKUP_TIMEOUT, client.cluster()).await
            && let Some(l) = c.leader_id
            && (1..=NODES).contains(&l)
        {
            return Some(l);
        }
        tokio::time::sleep(LEADER_POLL).await;
    }
    None
}

/// Applies `step`'s fault, holds it, heals everything; what happened and what was wrong.
/// `None` when it needed a leader and none was known (the caller counts it as skipped).
pub async fn inject(
    world: &mut World,
    client: &Client,
    rec: &Recorder,
    step: &Step,
    rng: &mut fastrand::Rng,
) -> Option<(Entry, Vec<Anomaly>)> {
    let leader = match step.fault {
        Fault::KillGateway => 1,
        _ => leader(client).await?,
    };
    let followers: Vec<u64> = (1..=NODES).filter(|n| *n != leader).collect();
    let follower = followers[rng.usize(0..followers.len())];
    let detail = match step.fault {
        Fault::IsolateLeader => {
            for f in &followers {
                world.cut(&h(leader), &h(*f));
                world.cut(&h(*f), &h(leader));
            }
            format!("leader {} cut off from {}", h(leader), names(&followers))
        }
        Fault::IsolateFollower => {
            for other in (1..=NODES).filter(|n| *n != follower) {
                world.cut(&h(follower), &h(other));
                world.cut(&h(other), &h(follower));
            }
            format!("follower {} cut off from the others (leader {})", h(follower), h(leader))
        }
        Fault::Bridge => {
            let mut pair: Vec<u64> = (1..=NODES).collect();
            rng.shuffle(&mut pair);
            world.cut(&h(pair[0]), &h(pair[1]));
            world.cut(&h(pair[1]), &h(pair[0]));
            format!(
                "{} and {} cannot reach each other, {} reaches both (leader {})",
                h(pair[0]),
                h(pair[1]),
                h(pair[2]),
                h(leader)
            )
        }
        Fault::OneWayToLeader => {
            for f in &followers {
                world.cut(&h(*f), &h(leader));
            }
            format!("{} cannot send to leader {} (it still reaches them)", names(&followers), h(leader))
        }
        Fault::PauseLeader => {
            world.pause(leader);
            format!("leader {} paused (SIGSTOP)", h(leader))
        }
        Fault::PauseFollower => {
            world.pause(follower);
            format!("follower {} paused (SIGSTOP)", h(follower))
        }
        Fault::KillLeader => {
            world.kill(leader);
            format!("leader {} killed (SIGKILL), restarted at the heal", h(leader))
        }
        Fault::KillFollower => {
            world.kill(follower);
            format!("follower {} killed (SIGKILL), restarted at the heal", h(follower))
        }
        Fault::KillGateway => {
            world.kill_gateway();
            "gateway g1 killed (SIGKILL), restarted at the heal".to_owned()
        }
        Fault::LossyLeader | Fault::LossyFollower => {
            let node = if step.fault == Fault::LossyLeader { leader } else { follower };
            let p = LOSS.0 + rng.f64() * (LOSS.1 - LOSS.0);
            for other in (1..=NODES).filter(|n| *n != node) {
                world.lossy(&h(node), &h(other), p);
                world.lossy(&h(other), &h(node), p);
            }
            let role = if node == leader { "leader" } else { "follower" };
            format!("{role} {}'s links lose {:.0} % of packets, both ways", h(node), p * 100.0)
        }
        Fault::DiskFull => match world.fill_disk() {
            Ok(bytes) => {
                let role = if DISK_NODE == leader { "leader" } else { "follower" };
                format!("{role} {}'s disk full ({} MiB filled)", h(DISK_NODE), bytes >> 20)
            }
            Err(e) => format!("{}'s disk could not be filled: {e:#}", h(DISK_NODE)),
        },
    };
    // The fault is wholly in place from here.
    let t_ms = rec.now_ms();
    tokio::time::sleep(step.hold).await;
    let mut found = Vec::new();
    let mut detail = detail;
    if step.fault == Fault::DiskFull {
        if world.running(DISK_NODE) {
            detail.push_str("; it kept running");
        } else {
            let tail = world.log_tail(DISK_NODE, DISK_LOG_LINES);
            let clear = tail.lines().rev().find(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("no space left")
                    || l.contains("enospc")
                    || l.contains("disk full")
                    || l.contains("disk is full")
            });
            match clear {
                Some(line) => detail.push_str(&format!("; it stopped saying: {}", line.trim())),
                None => found.push(Anomaly::new(
                    "unclear_disk_full",
                    format!("{} stopped when its disk filled, without saying so; its log ends:\n{tail}", h(DISK_NODE)),
                    Vec::new(),
                )),
            }
        }
    }
    world.heal();
    Some((Entry { t_ms, healed_ms: rec.now_ms(), kind: step.fault.kind(), fault: step.fault, detail }, found))
}

fn names(ids: &[u64]) -> String {
    ids.iter().map(|i| h(*i)).collect::<Vec<_>>().join(", ")
}
