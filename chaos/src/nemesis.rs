//! The nemesis: applies each scheduled fault to the world, holds it, heals it, and logs it.

use std::time::{Duration, Instant};

use ledger_client::Client;
use serde::Serialize;

use crate::check::Anomaly;
use crate::history::Recorder;
use crate::schedule::{Fault, Kind, Step};
use crate::world::{DISK_NODE, World};

/// Longest wait for the gateway to name a leader before a fault that needs one.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two leader lookups.
const LEADER_POLL: Duration = Duration::from_millis(200);
/// Rate of a slow link, kbit/s: from, to.
pub const SLOW_KBIT: (u32, u32) = (256, 4096);
/// How long a slow link queues a packet before dropping it, ms: from, to.
pub const SLOW_QUEUE_MS: (u32, u32) = (100, 800);
/// Fixed delay of a delayed link, each way, ms: from, to (the jitter is up to half of it).
pub const DELAY_MS: (u64, u64) = (20, 300);
/// Share of packets reordered or duplicated: from, to.
pub const JUMBLE: (f64, f64) = (0.05, 0.30);
/// Rate of the slow lane that reordered packets wait in, kbit/s: from, to.
pub const REORDER_KBIT: (u32, u32) = (128, 1024);
/// Size of a clock jump, ms, either way: from, to.
pub const CLOCK_JUMP_MS: (i64, i64) = (1_000, 15 * 60 * 1_000);
/// Packet loss of a lossy link: from, to.
pub const LOSS: (f64, f64) = (0.10, 0.35);
/// Longest wait for each step of a membership change (the new node seen, the removal
/// committed, the voters back).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a stopped node's log searched for its reason.
const DISK_LOG_LINES: usize = 40;
/// Lines of a node's log searched for its clock's move.
const CLOCK_LOG_LINES: usize = 400;
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
    let members = world.member_ids();
    let leader = match step.fault {
        Fault::KillGateway | Fault::KillProjector => members[0],
        _ => leader(client).await?,
    };
    if !members.contains(&leader) {
        return None;
    }
    let hosts: std::collections::BTreeMap<u64, String> = members.iter().map(|id| (*id, world.host_of(*id))).collect();
    let h = |id: u64| hosts.get(&id).cloned().unwrap_or_else(|| "?".to_owned());
    let names = |ids: &[u64]| ids.iter().map(|i| h(*i)).collect::<Vec<_>>().join(", ");
    let followers: Vec<u64> = members.iter().copied().filter(|n| *n != leader).collect();
    let follower = followers[rng.usize(0..followers.len())];
    // The node a fault on "the leader or a follower" hits, and its role.
    let (node, role) = if step.fault.hits_leader() { (leader, "leader") } else { (follower, "follower") };
    let mut found = Vec::new();
    // The node and offset of a clock jump, checked in its log at the heal.
    let mut jumped = None;
    // The hosts whose packets are duplicated or held back, counted at the heal.
    let mut mangled: Vec<String> = Vec::new();
    let detail = match step.fault {
        Fault::IsolateLeader => {
            for f in &followers {
                world.cut(&h(leader), &h(*f));
                world.cut(&h(*f), &h(leader));
            }
            format!("leader {} cut off from {}", h(leader), names(&followers))
        }
        Fault::IsolateFollower => {
            for other in members.iter().copied().filter(|n| *n != follower) {
                world.cut(&h(follower), &h(other));
                world.cut(&h(other), &h(follower));
            }
            format!("follower {} cut off from the others (leader {})", h(follower), h(leader))
        }
        Fault::Bridge => {
            let mut pair = members.clone();
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
        Fault::SplitMinority => {
            let (minority, majority) = minority_with_leader(leader, &followers, rng);
            for a in &minority {
                for b in &majority {
                    world.cut(&h(*a), &h(*b));
                    world.cut(&h(*b), &h(*a));
                }
            }
            format!("minority {} (with the leader) cut off from majority {}", names(&minority), names(&majority))
        }
        Fault::KillMinority => {
            let (minority, _) = minority_with_leader(leader, &followers, rng);
            for id in &minority {
                world.kill(*id);
            }
            format!("minority {} (with the leader) killed at once (SIGKILL), restarted at the heal", names(&minority))
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
        Fault::KillProjector => {
            world.kill_projector();
            "projector killed (SIGKILL), restarted at the heal".to_owned()
        }
        Fault::LossyLeader | Fault::LossyFollower => {
            let p = LOSS.0 + rng.f64() * (LOSS.1 - LOSS.0);
            for other in members.iter().copied().filter(|n| *n != node) {
                world.lossy(&h(node), &h(other), p);
                world.lossy(&h(other), &h(node), p);
            }
            format!("{role} {}'s links lose {:.0} % of packets, both ways", h(node), p * 100.0)
        }
        Fault::DelayLeader | Fault::DelayFollower => {
            let base = Duration::from_millis(rng.u64(DELAY_MS.0..=DELAY_MS.1));
            let jitter = Duration::from_millis(rng.u64(0..=base.as_millis() as u64 / 2));
            let others: Vec<u64> = members.iter().copied().filter(|n| *n != node).collect();
            match world.delay(node, &others, crate::delay::Delay { base, jitter }, rng.u64(..)) {
                Ok(()) => format!(
                    "{role} {}'s links to {} delayed {} ms ± {} ms each way",
                    h(node),
                    names(&others),
                    base.as_millis(),
                    jitter.as_millis()
                ),
                Err(e) => {
                    found.push(not_injected(step.fault, &e));
                    format!("{role} {}'s links could not be delayed: {e:#}", h(node))
                }
            }
        }
        Fault::ReorderLeader | Fault::ReorderFollower => {
            let p = JUMBLE.0 + rng.f64() * (JUMBLE.1 - JUMBLE.0);
            let kbit = rng.u32(REORDER_KBIT.0..=REORDER_KBIT.1);
            world.reorder(&h(node), p, kbit);
            mangled.push(h(node));
            format!("{role} {} holds back {:.0} % of its outgoing packets in a {kbit} kbit/s lane", h(node), p * 100.0)
        }
        Fault::DuplicateLeader | Fault::DuplicateFollower => {
            let p = JUMBLE.0 + rng.f64() * (JUMBLE.1 - JUMBLE.0);
            for other in members.iter().copied().filter(|n| *n != node) {
                world.duplicate(&h(node), &h(other), p);
                world.duplicate(&h(other), &h(node), p);
                mangled.push(h(other));
            }
            mangled.push(h(node));
            format!(
                "{role} {}'s packets to and from the other lognodes sent twice, {:.0} % of them",
                h(node),
                p * 100.0
            )
        }
        Fault::ClockJumpLeader | Fault::ClockJumpFollower => {
            let size = rng.i64(CLOCK_JUMP_MS.0..=CLOCK_JUMP_MS.1);
            let offset = if rng.bool() { size } else { -size };
            match world.jump_clock(node, offset) {
                Ok(()) => {
                    jumped = Some((node, offset));
                    format!(
                        "{role} {}'s wall clock jumped {} by {:.1} s (back to the true time at the heal)",
                        h(node),
                        if offset > 0 { "forward" } else { "back" },
                        size as f64 / 1e3
                    )
                }
                Err(e) => {
                    found.push(not_injected(step.fault, &e));
                    format!("{role} {}'s clock could not be moved: {e:#}", h(node))
                }
            }
        }
        Fault::ReplaceFollower | Fault::ReplaceLeader => {
            let (out, role) =
                if step.fault == Fault::ReplaceLeader { (leader, "leader") } else { (follower, "follower") };
            let host = h(out);
            match replace(world, client, out).await {
                Ok(new) => format!("{role} {out} on {host} removed; node {new} on {} added", world.host_of(new)),
                Err(e) => {
                    found.push(Anomaly::new("membership_stuck", format!("replacing {role} {out}: {e}"), Vec::new()));
                    format!("replacing {role} {out} on {host} failed: {e}")
                }
            }
        }
        Fault::SlowLeader | Fault::SlowFollower => {
            let rate = rng.u32(SLOW_KBIT.0..=SLOW_KBIT.1);
            let latency = rng.u32(SLOW_QUEUE_MS.0..=SLOW_QUEUE_MS.1);
            world.slow(&h(node), rate, latency);
            format!("{role} {}'s outgoing link slowed to {rate} kbit/s, queueing up to {latency} ms", h(node))
        }
        Fault::LoseUnsyncedLeader | Fault::LoseUnsyncedFollower => match world.lose_unsynced(node) {
            Ok((files, bytes)) => format!(
                "{role} {} killed and its unsynced writes lost ({bytes} bytes cut from {files} files), restarted at \
                     the heal",
                h(node)
            ),
            Err(e) => format!("{role} {} killed; cutting its unsynced writes failed: {e:#}", h(node)),
        },
        Fault::DiskFull if !members.contains(&DISK_NODE) => {
            format!("{DISK_NODE} was replaced: no node's data is on the small disk any more, nothing filled")
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
    let mut detail = detail;
    if step.fault == Fault::DiskFull && members.contains(&DISK_NODE) {
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
    if matches!(step.fault, Fault::DelayLeader | Fault::DelayFollower) && !detail.contains("could not") {
        match world.delayed_connections() {
            0 => found.push(Anomaly::new(
                "fault_not_injected",
                format!("{:?}: no connection went through the delaying proxies", step.fault),
                Vec::new(),
            )),
            n => detail.push_str(&format!("; {n} connections went through the delaying proxies")),
        }
    }
    if !mangled.is_empty() {
        match mangled.iter().map(|h| world.mangled_packets(h)).sum::<u64>() {
            0 => found.push(Anomaly::new(
                "fault_not_injected",
                format!("{:?}: no packet was duplicated or held back", step.fault),
                Vec::new(),
            )),
            n => detail.push_str(&format!("; {n} packets in all")),
        }
    }
    if let Some((node, offset)) = jumped
        && world.running(node)
        && !world.log_tail(node, CLOCK_LOG_LINES).contains(&format!("offset_ms={offset}"))
    {
        found.push(Anomaly::new(
            "fault_not_injected",
            format!("{:?}: {} never said its clock moved by {offset} ms", step.fault, h(node)),
            Vec::new(),
        ));
    }
    world.heal();
    if step.fault.kind() == Kind::Membership
        && let Err(e) = voters_back(client, world.voters()).await
    {
        found.push(Anomaly::new("membership_stuck", e, Vec::new()));
    }
    Some((Entry { t_ms, healed_ms: rec.now_ms(), kind: step.fault.kind(), fault: step.fault, detail }, found))
}

/// The largest minority of the voters that holds `leader` (the leader and drawn followers), and
/// the majority left.
fn minority_with_leader(leader: u64, followers: &[u64], rng: &mut fastrand::Rng) -> (Vec<u64>, Vec<u64>) {
    let mut rest = followers.to_vec();
    rng.shuffle(&mut rest);
    // A minority of n voters is at most (n - 1) / 2 of them, and n - 1 are followers.
    let size = followers.len() / 2;
    let mut minority = vec![leader];
    minority.extend(rest.drain(..size.saturating_sub(1)));
    rest.sort_unstable();
    (minority, rest)
}

/// A fault the harness could not put in place: the run must not pass as if it had been.
fn not_injected(fault: Fault, e: &anyhow::Error) -> Anomaly {
    Anomaly::new("fault_not_injected", format!("{fault:?} could not be put in place: {e:#}"), Vec::new())
}

/// Replaces lognode `out`: a new node started (it joins as a learner), `out` removed from the
/// cluster by the admin API (the leader then promotes the learner), then killed. The new id.
async fn replace(world: &mut World, client: &Client, out: u64) -> Result<u64, String> {
    let new = world.add_node().map_err(|e| format!("{e:#}"))?;
    let give_up = Instant::now() + MEMBERSHIP_TIMEOUT;
    loop {
        if let Ok(Ok(c)) = tokio::time::timeout(LOOKUP_TIMEOUT, client.cluster()).await
            && c.nodes.iter().any(|n| n.id == new)
        {
            break;
        }
        if Instant::now() >= give_up {
            // Out of the cluster for good (it may still be found by gossip later), then stopped.
            let _ = tokio::time::timeout(LOOKUP_TIMEOUT, client.remove_node(new)).await;
            world.retire(new);
            return Err(format!("node {new} did not join as a learner within {MEMBERSHIP_TIMEOUT:?}"));
        }
        tokio::time::sleep(LEADER_POLL).await;
    }
    loop {
        match tokio::time::timeout(MEMBERSHIP_TIMEOUT, client.remove_node(out)).await {
            Ok(Ok(_)) => break,
            Ok(Err(e)) if e.status() == Some(404) => break,
            r if Instant::now() >= give_up => return Err(format!("removing node {out} failed: {r:?}")),
            _ => tokio::time::sleep(LEADER_POLL).await,
        }
    }
    world.retire(out);
    Ok(new)
}

/// Waits until the cluster has `n` live voters and a leader again.
async fn voters_back(client: &Client, n: u64) -> Result<(), String> {
    let give_up = Instant::now() + MEMBERSHIP_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < give_up {
        if let Ok(Ok(c)) = tokio::time::timeout(LOOKUP_TIMEOUT, client.cluster()).await {
            let voters = c.nodes.iter().filter(|n| n.alive && n.role != "learner").count();
            if c.leader_id.is_some() && voters as u64 >= n {
                return Ok(());
            }
            last = format!("{:?}", c.nodes.iter().map(|n| (n.id, n.role.clone(), n.alive)).collect::<Vec<_>>());
        }
        tokio::time::sleep(LEADER_POLL).await;
    }
    Err(format!("the cluster was not back to {n} live voters within {MEMBERSHIP_TIMEOUT:?}: {last}"))
}
