//! The chaos harness (issue 15): a real cluster on hosts made of network namespaces, a seeded
//! nemesis, clients that record every operation, and checkers that read the history. See
//! `docs/FAULTS.md` for what it injects and checks, and `chaos --help` for how to run it.
//!
//! - [`schedule`]: the faults' schedule from a seed (pure);
//! - [`world`]: the hosts and processes, and the faults applied to them (needs root);
//! - [`nemesis`]: each fault applied, held, healed and logged;
//! - [`workload`]: the clients (transfers with retried ids, strong reads);
//! - [`netns`]: threads inside a host's namespace (the clients, the delaying proxies);
//! - [`delay`]: the delaying TCP proxy (delay and jitter without netem);
//! - [`history`]: what the clients did;
//! - [`check`]: the checkers (pure): transfers exactly once and conserved, linearizable reads;
//! - [`report`]: the JSON report and its summary;
//! - [`run`]: one run, start to end.

pub mod check;
pub mod delay;
pub mod groups;
pub mod history;
pub mod nemesis;
pub mod netns;
pub mod report;
pub mod run;
pub mod schedule;
pub mod workload;
pub mod world;
