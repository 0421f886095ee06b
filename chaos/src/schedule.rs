//! The nemesis's schedule: which fault, when and for how long, drawn from a seed. Pure: the same
//! seed, duration and kinds give the same schedule (which node is "the leader" is only known when
//! the fault is applied).

use std::time::Duration;

use serde::Serialize;

/// A family of faults, as named on the command line (`--nemesis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Network partitions between lognodes (blackhole routes).
    Partition,
    /// SIGSTOP of a lognode for longer than the election timeout, then SIGCONT.
    Pause,
    /// `kill -9` of a lognode or the gateway, then a restart on the same data.
    Kill,
    /// Lossy and slow links. This kernel has no netem: random loss is iptables' `statistic`
    /// match, a slow congested link `tc`'s token bucket; fixed delay, jitter, reordering and
    /// duplication are not built yet.
    Netem,
    /// A full disk (ENOSPC) on one node; a crash that loses what was not synced.
    Disk,
    /// A voter replaced under load: a new node joins as a learner, the voter is removed, the
    /// leader promotes the learner.
    Membership,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [Kind::Partition, Kind::Pause, Kind::Kill, Kind::Netem, Kind::Disk, Kind::Membership];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Netem => "netem",
            Kind::Disk => "disk",
            Kind::Membership => "membership",
        }
    }

    /// Parses a comma-separated list (`partition,pause`); an unknown name is an error naming it.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown nemesis {name:?}: expected some of {}", names.join(","))
            })?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            return Err("no nemesis given".to_owned());
        }
        Ok(out)
    }
}

/// One fault. With 3 lognodes a majority always stays connected: each fault touches one node, or
/// the links of one node pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The leader cut off from every other lognode, both ways.
    IsolateLeader,
    /// One follower cut off from every other lognode, both ways.
    IsolateFollower,
    /// Two lognodes cannot reach each other; a third, the bridge, reaches both.
    Bridge,
    /// The followers cannot send to the leader, which still reaches them (one-way loss).
    OneWayToLeader,
    /// SIGSTOP of the leader.
    PauseLeader,
    /// SIGSTOP of a follower.
    PauseFollower,
    /// `kill -9` of the leader, restarted when the fault ends.
    KillLeader,
    /// `kill -9` of a follower, restarted when the fault ends.
    KillFollower,
    /// `kill -9` of the gateway, restarted when the fault ends.
    KillGateway,
    /// The leader's links to the other lognodes lose packets at random, both ways.
    LossyLeader,
    /// A follower's links to the other lognodes lose packets at random, both ways.
    LossyFollower,
    /// The leader's outgoing link is slow and congested (a token bucket: delay under load, then
    /// loss).
    SlowLeader,
    /// A follower's outgoing link likewise.
    SlowFollower,
    /// The disk of the node whose data is on a small filesystem of its own fills up (ENOSPC).
    DiskFull,
    /// The leader killed, and every log file of it cut back to what its last sync made durable
    /// (a power loss), restarted when the fault ends.
    LoseUnsyncedLeader,
    /// A follower likewise.
    LoseUnsyncedFollower,
    /// `kill -9` of the projector (when the run has one), restarted when the fault ends.
    KillProjector,
    /// A follower replaced: a new node added (a learner), the follower removed and stopped.
    ReplaceFollower,
    /// The leader replaced likewise: it removes itself from the voters and steps down.
    ReplaceLeader,
}

impl Fault {
    /// Its kind.
    pub fn kind(self) -> Kind {
        match self {
            Fault::IsolateLeader | Fault::IsolateFollower | Fault::Bridge | Fault::OneWayToLeader => Kind::Partition,
            Fault::PauseLeader | Fault::PauseFollower => Kind::Pause,
            Fault::KillLeader | Fault::KillFollower | Fault::KillGateway | Fault::KillProjector => Kind::Kill,
            Fault::LossyLeader | Fault::LossyFollower | Fault::SlowLeader | Fault::SlowFollower => Kind::Netem,
            Fault::DiskFull | Fault::LoseUnsyncedLeader | Fault::LoseUnsyncedFollower => Kind::Disk,
            Fault::ReplaceFollower | Fault::ReplaceLeader => Kind::Membership,
        }
    }

    /// The faults of `kind` (with `projector`, a run with a projector: it may be killed too).
    pub fn of(kind: Kind, projector: bool) -> &'static [Fault] {
        match kind {
            Kind::Kill if projector => {
                &[Fault::KillLeader, Fault::KillFollower, Fault::KillGateway, Fault::KillProjector]
            }
            Kind::Partition => &[Fault::IsolateLeader, Fault::IsolateFollower, Fault::Bridge, Fault::OneWayToLeader],
            Kind::Pause => &[Fault::PauseLeader, Fault::PauseFollower],
            Kind::Kill => &[Fault::KillLeader, Fault::KillFollower, Fault::KillGateway],
            Kind::Netem => &[Fault::LossyLeader, Fault::LossyFollower, Fault::SlowLeader, Fault::SlowFollower],
            Kind::Disk => &[Fault::DiskFull, Fault::LoseUnsyncedLeader, Fault::LoseUnsyncedFollower],
            Kind::Membership => &[Fault::ReplaceFollower, Fault::ReplaceLeader],
        }
    }

    /// Whether it takes the leader away (the figure "time to a new leader" is measured on these).
    pub fn removes_leader(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader
                | Fault::OneWayToLeader
                | Fault::PauseLeader
                | Fault::KillLeader
                | Fault::ReplaceLeader
                | Fault::LoseUnsyncedLeader
        )
    }
}

/// When faults start and how long they last.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The first fault starts after this much quiet.
    pub warmup: Duration,
    /// Quiet between a heal and the next fault: from, to.
    pub quiet: (Duration, Duration),
    /// How long a fault lasts: from, to. Longer than the election timeout (700 ms), so that a
    /// paused or cut-off leader is replaced.
    pub hold: (Duration, Duration),
}

impl Timing {
    /// The default: 3 s of warm-up, 2–5 s of quiet, faults of 2–6 s.
    pub const DEFAULT: Timing = Timing {
        warmup: Duration::from_secs(3),
        quiet: (Duration::from_secs(2), Duration::from_secs(5)),
        hold: (Duration::from_secs(2), Duration::from_secs(6)),
    };
}

/// One scheduled fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// When it starts, from the run's start.
    pub at: Duration,
    /// What.
    pub fault: Fault,
    /// How long it lasts before it is healed.
    pub hold: Duration,
}

/// The schedule of a run of `duration` with faults of `kinds`: every fault healed by `duration`.
/// The kinds take turns (in an order drawn anew for each round, so each kind gets its share);
/// within a kind the fault is drawn.
pub fn plan(seed: u64, duration: Duration, kinds: &[Kind], timing: Timing) -> Vec<Step> {
    plan_for(seed, duration, kinds, timing, false)
}

/// [`plan`] for a run with a projector when `projector` (the kill faults include it).
pub fn plan_for(seed: u64, duration: Duration, kinds: &[Kind], timing: Timing, projector: bool) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let draw = |rng: &mut fastrand::Rng, (lo, hi): (Duration, Duration)| {
        let span = u64::try_from(hi.saturating_sub(lo).as_millis()).unwrap_or(u64::MAX);
        lo + Duration::from_millis(rng.u64(0..=span))
    };
    let kinds: Vec<Kind> = kinds.iter().copied().filter(|k| !Fault::of(*k, projector).is_empty()).collect();
    let mut steps = Vec::new();
    let mut round: Vec<Kind> = Vec::new();
    let mut at = timing.warmup;
    while !kinds.is_empty() {
        if round.is_empty() {
            round.clone_from(&kinds);
            rng.shuffle(&mut round);
        }
        let kind = round.pop().unwrap_or(Kind::Partition);
        let faults = Fault::of(kind, projector);
        let fault = faults[rng.usize(0..faults.len())];
        let hold = draw(&mut rng, timing.hold);
        if at + hold > duration {
            break;
        }
        steps.push(Step { at, fault, hold });
        at += hold + draw(&mut rng, timing.quiet);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_and_every_kind_gets_its_turn() {
        let kinds = [Kind::Partition, Kind::Pause, Kind::Kill];
        let a = plan(7, Duration::from_secs(120), &kinds, Timing::DEFAULT);
        assert_eq!(a, plan(7, Duration::from_secs(120), &kinds, Timing::DEFAULT));
        assert_ne!(a, plan(8, Duration::from_secs(120), &kinds, Timing::DEFAULT));
        for k in kinds {
            assert!(a.iter().take(3).any(|s| s.fault.kind() == k), "{k:?} missing from the first round: {a:?}");
        }
        for w in a.windows(2) {
            assert!(w[0].at + w[0].hold + Timing::DEFAULT.quiet.0 <= w[1].at, "faults overlap: {w:?}");
        }
        let last = a.last().expect("steps");
        assert!(last.at + last.hold <= Duration::from_secs(120));
        assert!(a.iter().all(|s| s.hold >= Timing::DEFAULT.hold.0 && s.hold <= Timing::DEFAULT.hold.1));
    }

    #[test]
    fn too_short_a_run_has_no_fault_and_kinds_parse_by_name() {
        assert!(plan(1, Duration::from_secs(4), &[Kind::Kill], Timing::DEFAULT).is_empty());
        assert_eq!(Kind::parse_list("kill, pause,kill"), Ok(vec![Kind::Kill, Kind::Pause]));
        assert_eq!(Kind::parse_list("membership,disk"), Ok(vec![Kind::Membership, Kind::Disk]));
        assert!(Kind::parse_list("flood").is_err_and(|e| e.contains("unknown nemesis \"flood\"")));
        assert!(Kind::parse_list("").is_err());
    }
}
