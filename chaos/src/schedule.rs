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
    /// match, a slow congested link `tc`'s token bucket. Fixed delay and jitter are [`Kind::Latency`].
    Netem,
    /// A full disk (ENOSPC) on one node; a crash that loses what was not synced.
    Disk,
    /// A voter replaced under load: a new node joins as a learner, the voter is removed, the
    /// leader promotes the learner.
    Membership,
    /// Delayed links with jitter (a delaying proxy, [`crate::delay`]), reordered packets (a
    /// slow `htb` lane a random share of packets is sent to) and duplicated packets (iptables'
    /// `TEE`): what netem's `delay`, `reorder` and `duplicate` make, without netem.
    Latency,
    /// A lognode's wall clock jumps forward or back (lognode's hidden `--fault-clock-file`),
    /// and back to the true time at the heal.
    Clock,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 8] = [
        Kind::Partition,
        Kind::Pause,
        Kind::Kill,
        Kind::Netem,
        Kind::Disk,
        Kind::Membership,
        Kind::Latency,
        Kind::Clock,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Netem => "netem",
            Kind::Disk => "disk",
            Kind::Membership => "membership",
            Kind::Latency => "latency",
            Kind::Clock => "clock",
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

/// One fault. A majority always stays connected and running: with 3 lognodes each fault touches
/// one node, or the links of one node pair; with 5, [`Fault::SplitMinority`] and
/// [`Fault::KillMinority`] take two nodes away at once.
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
    /// The leader's links to the other lognodes delayed, both ways, with jitter.
    DelayLeader,
    /// A follower's links to the other lognodes likewise.
    DelayFollower,
    /// A random share of the leader's outgoing packets held back in a slow lane, so that later
    /// ones overtake them.
    ReorderLeader,
    /// A follower's likewise.
    ReorderFollower,
    /// A random share of the packets between the leader and the other lognodes sent twice, both
    /// ways.
    DuplicateLeader,
    /// A follower's likewise.
    DuplicateFollower,
    /// The disk of the node whose data is on a small filesystem of its own fills up (ENOSPC).
    DiskFull,
    /// The leader killed, and every log file of it cut back to what its last sync made durable
    /// (a power loss), restarted when the fault ends.
    LoseUnsyncedLeader,
    /// A follower likewise.
    LoseUnsyncedFollower,
    /// `kill -9` of the projector (when the run has one), restarted when the fault ends.
    KillProjector,
    /// A majority/minority split: the leader and as many followers as leave a majority on the
    /// other side (one of 5) cut off from that majority, both ways. Only with 5 or more voters.
    SplitMinority,
    /// `kill -9` of a minority at once, the leader among them (the leader and one follower of 5),
    /// restarted when the fault ends. Only with 5 or more voters.
    KillMinority,
    /// A follower replaced: a new node added (a learner), the follower removed and stopped.
    ReplaceFollower,
    /// The leader replaced likewise: it removes itself from the voters and steps down.
    ReplaceLeader,
    /// The leader's wall clock jumps (forward or back), and back to the true time at the heal.
    ClockJumpLeader,
    /// A follower's wall clock likewise (it stamps entries once it leads).
    ClockJumpFollower,
}

impl Fault {
    /// Its kind.
    pub fn kind(self) -> Kind {
        match self {
            Fault::IsolateLeader
            | Fault::IsolateFollower
            | Fault::Bridge
            | Fault::OneWayToLeader
            | Fault::SplitMinority => Kind::Partition,
            Fault::PauseLeader | Fault::PauseFollower => Kind::Pause,
            Fault::KillLeader
            | Fault::KillFollower
            | Fault::KillGateway
            | Fault::KillProjector
            | Fault::KillMinority => Kind::Kill,
            Fault::LossyLeader | Fault::LossyFollower | Fault::SlowLeader | Fault::SlowFollower => Kind::Netem,
            Fault::DelayLeader
            | Fault::DelayFollower
            | Fault::ReorderLeader
            | Fault::ReorderFollower
            | Fault::DuplicateLeader
            | Fault::DuplicateFollower => Kind::Latency,
            Fault::DiskFull | Fault::LoseUnsyncedLeader | Fault::LoseUnsyncedFollower => Kind::Disk,
            Fault::ReplaceFollower | Fault::ReplaceLeader => Kind::Membership,
            Fault::ClockJumpLeader | Fault::ClockJumpFollower => Kind::Clock,
        }
    }

    /// The faults of `kind` in a world of `voters` lognodes (with `projector`, a run with a
    /// projector: it may be killed too).
    pub fn of(kind: Kind, projector: bool, voters: u64) -> &'static [Fault] {
        match kind {
            Kind::Kill if projector && voters >= 5 => &[
                Fault::KillLeader,
                Fault::KillFollower,
                Fault::KillGateway,
                Fault::KillProjector,
                Fault::KillMinority,
                Fault::KillMinority,
            ],
            Kind::Kill if voters >= 5 => {
                &[Fault::KillLeader, Fault::KillFollower, Fault::KillGateway, Fault::KillMinority, Fault::KillMinority]
            }
            Kind::Partition if voters >= 5 => &[
                Fault::IsolateLeader,
                Fault::IsolateFollower,
                Fault::Bridge,
                Fault::OneWayToLeader,
                Fault::SplitMinority,
                Fault::SplitMinority,
            ],
            Kind::Kill if projector => {
                &[Fault::KillLeader, Fault::KillFollower, Fault::KillGateway, Fault::KillProjector]
            }
            Kind::Partition => &[Fault::IsolateLeader, Fault::IsolateFollower, Fault::Bridge, Fault::OneWayToLeader],
            Kind::Pause => &[Fault::PauseLeader, Fault::PauseFollower],
            Kind::Kill => &[Fault::KillLeader, Fault::KillFollower, Fault::KillGateway],
            Kind::Netem => &[Fault::LossyLeader, Fault::LossyFollower, Fault::SlowLeader, Fault::SlowFollower],
            Kind::Latency => &[
                Fault::DelayLeader,
                Fault::DelayFollower,
                Fault::ReorderLeader,
                Fault::ReorderFollower,
                Fault::DuplicateLeader,
                Fault::DuplicateFollower,
            ],
            Kind::Disk => &[Fault::DiskFull, Fault::LoseUnsyncedLeader, Fault::LoseUnsyncedFollower],
            Kind::Membership => &[Fault::ReplaceFollower, Fault::ReplaceLeader],
            Kind::Clock => &[Fault::ClockJumpLeader, Fault::ClockJumpFollower],
        }
    }

    /// Whether it is the leader's variant of a fault that hits the leader or a follower.
    pub fn hits_leader(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader
                | Fault::OneWayToLeader
                | Fault::PauseLeader
                | Fault::KillLeader
                | Fault::LossyLeader
                | Fault::SlowLeader
                | Fault::DelayLeader
                | Fault::ReorderLeader
                | Fault::DuplicateLeader
                | Fault::ClockJumpLeader
                | Fault::LoseUnsyncedLeader
                | Fault::ReplaceLeader
                | Fault::SplitMinority
                | Fault::KillMinority
        )
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
                | Fault::SplitMinority
                | Fault::KillMinority
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
    plan_for(seed, duration, kinds, timing, false, 3)
}

/// [`plan`] for a run with a projector when `projector` (the kill faults include it), and
/// `voters` lognodes (with 5, faults that take two at once are drawn too).
pub fn plan_for(
    seed: u64,
    duration: Duration,
    kinds: &[Kind],
    timing: Timing,
    projector: bool,
    voters: u64,
) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let draw = |rng: &mut fastrand::Rng, (lo, hi): (Duration, Duration)| {
        let span = u64::try_from(hi.saturating_sub(lo).as_millis()).unwrap_or(u64::MAX);
        lo + Duration::from_millis(rng.u64(0..=span))
    };
    let kinds: Vec<Kind> = kinds.iter().copied().filter(|k| !Fault::of(*k, projector, voters).is_empty()).collect();
    let mut steps = Vec::new();
    let mut round: Vec<Kind> = Vec::new();
    let mut at = timing.warmup;
    while !kinds.is_empty() {
        if round.is_empty() {
            round.clone_from(&kinds);
            rng.shuffle(&mut round);
        }
        let kind = round.pop().unwrap_or(Kind::Partition);
        let faults = Fault::of(kind, projector, voters);
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
    fn five_voters_add_the_faults_that_take_two_nodes_and_three_do_not() {
        let kinds = [Kind::Partition, Kind::Kill];
        let five = plan_for(9, Duration::from_secs(600), &kinds, Timing::DEFAULT, false, 5);
        let three = plan_for(9, Duration::from_secs(600), &kinds, Timing::DEFAULT, false, 3);
        for f in [Fault::SplitMinority, Fault::KillMinority] {
            assert!(five.iter().any(|s| s.fault == f), "{f:?} never drawn: {five:?}");
            assert!(!three.iter().any(|s| s.fault == f), "{f:?} drawn with 3 voters: {three:?}");
            assert!(f.removes_leader());
        }
        assert_eq!(plan(9, Duration::from_secs(600), &kinds, Timing::DEFAULT), three);
    }

    #[test]
    fn too_short_a_run_has_no_fault_and_kinds_parse_by_name() {
        assert!(plan(1, Duration::from_secs(4), &[Kind::Kill], Timing::DEFAULT).is_empty());
        assert_eq!(Kind::parse_list("kill, pause,kill"), Ok(vec![Kind::Kill, Kind::Pause]));
        assert_eq!(Kind::parse_list("membership,disk"), Ok(vec![Kind::Membership, Kind::Disk]));
        assert_eq!(Kind::parse_list("clock,latency"), Ok(vec![Kind::Clock, Kind::Latency]));
        assert!(Kind::parse_list("flood").is_err_and(|e| e.contains("unknown nemesis \"flood\"")));
        assert!(Kind::parse_list("").is_err());
    }
}
