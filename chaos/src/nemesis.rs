//! The nemesis: applies each scheduled fault to the world, holds it, heals it, and logs it.

use std::time::{Duration, Instant};

use ledger_client::Client;
use serde::Serialize;

use crate::history::Recorder;
use crate::schedule::{Fault, Kind, Step};
use crate::world::{NODES, World, host as h};

/// Longest wait for the gateway to name a leader before a fault that needs one.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two leader lookups.
const LEADER_POLL: Duration = Duration::from_millis(200);
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

/// Applies `step`'s fault, holds it, heals everything; `None` when it needed a leader and none
/// was known (the fault is skipped and logged as such by the caller).
pub async fn inject(
    world: &mut World,
    client: &Client,
    rec: &Recorder,
    step: &Step,
    rng: &mut fastrand::Rng,
) -> Option<Entry> {
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
    };
    // The fault is wholly in place from here.
    let t_ms = rec.now_ms();
    tokio::time::sleep(step.hold).await;
    world.heal();
    Some(Entry { t_ms, healed_ms: rec.now_ms(), kind: step.fault.kind(), fault: step.fault, detail })
}

fn names(ids: &[u64]) -> String {
    ids.iter().map(|i| h(*i)).collect::<Vec<_>>().join(", ")
}
