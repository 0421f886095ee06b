//! The one place that spells `lognode`'s command-line flags for the programs that start lognodes:
//! `ledger dev` (cli) and the test kit. It has no dependencies, so the CLI can use it without
//! pulling in lognode (and openraft). lognode's own test `tests/args.rs` parses what this builder
//! produces with lognode's clap `Config`, so the two cannot drift apart.
//!
//! ```
//! let args = lognode_args::LognodeArgs::new(1, "/tmp/n1", "127.0.0.1:7001", "127.0.0.1:7101")
//!     .bootstrap()
//!     .to_args();
//! assert_eq!(args[0], "--id");
//! ```

use std::path::PathBuf;

#[cfg(feature = "certs")]
pub mod certs;

/// `lognode --fsync`: whether the log is synced before an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Sync every append (the default, and the only safe setting).
    Always,
    /// Never sync (UNSAFE: benchmarks and tests only).
    Never,
}

impl Fsync {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Never => "never",
        }
    }
}

/// The arguments of one `lognode` process. Every local start (tests, `ledger dev`) uses the
/// `local` gossip profile: all members share one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LognodeArgs {
    /// `--id`: the node id, unique in the cluster (not 0).
    pub id: u64,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--grpc-addr` (host:port).
    pub grpc_addr: String,
    /// `--gossip-addr` (host:port).
    pub gossip_addr: String,
    /// `--join`: gossip addresses of members to join through (none for the first node).
    pub join: Vec<String>,
    /// `--bootstrap`: initialize a brand-new cluster with this node as its only voter.
    pub bootstrap: bool,
    /// `--voters`, when not lognode's default.
    pub voters: Option<usize>,
    /// `--fsync`.
    pub fsync: Fsync,
    /// Further flags, appended as they are (e.g. `--snapshot-every 50`).
    pub extra: Vec<String>,
}

impl LognodeArgs {
    /// A node with fsync on, the `local` gossip profile, no join address and no bootstrap.
    pub fn new(id: u64, data_dir: impl Into<PathBuf>, grpc_addr: &str, gossip_addr: &str) -> LognodeArgs {
        LognodeArgs {
            id,
            data_dir: data_dir.into(),
            grpc_addr: grpc_addr.to_owned(),
            gossip_addr: gossip_addr.to_owned(),
            join: Vec::new(),
            bootstrap: false,
            voters: None,
            fsync: Fsync::Always,
            extra: Vec::new(),
        }
    }

    /// Bootstraps a new cluster.
    pub fn bootstrap(mut self) -> LognodeArgs {
        self.bootstrap = true;
        self
    }

    /// Joins through the member at `gossip_addr`.
    pub fn join(mut self, gossip_addr: &str) -> LognodeArgs {
        self.join.push(gossip_addr.to_owned());
        self
    }

    /// The leader promotes learners up to `n` voters.
    pub fn voters(mut self, n: usize) -> LognodeArgs {
        self.voters = Some(n);
        self
    }

    /// Appends further flags as they are.
    pub fn extra<S: AsRef<str>>(mut self, flags: &[S]) -> LognodeArgs {
        self.extra.extend(flags.iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The command line (without the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--id".to_owned(),
            self.id.to_string(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
            "--grpc-addr".to_owned(),
            self.grpc_addr.clone(),
            "--gossip-addr".to_owned(),
            self.gossip_addr.clone(),
            "--gossip-profile".to_owned(),
            "local".to_owned(),
            "--fsync".to_owned(),
            self.fsync.as_str().to_owned(),
        ];
        if let Some(v) = self.voters {
            args.extend(["--voters".to_owned(), v.to_string()]);
        }
        if !self.join.is_empty() {
            args.extend(["--join".to_owned(), self.join.join(",")]);
        }
        if self.bootstrap {
            args.push("--bootstrap".to_owned());
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_order() {
        let a =
            LognodeArgs::new(2, "/d/n2", "127.0.0.1:1", "127.0.0.1:2").join("127.0.0.1:3").voters(5).extra(&["--x"]);
        assert_eq!(
            a.to_args().join(" "),
            "--id 2 --data-dir /d/n2 --grpc-addr 127.0.0.1:1 --gossip-addr 127.0.0.1:2 --gossip-profile local \
             --fsync always --voters 5 --join 127.0.0.1:3 --x"
        );
    }
}
