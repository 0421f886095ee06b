//! The one builder of lognode's flags (`lognode-args`, used by `ledger dev` and the test kit) is
//! parsed here with lognode's own clap `Config`, so the builder and the flags cannot drift apart.

use clap::Parser as _;
use lognode::config::{Config, GossipProfile};
use lognode_args::{Fsync, LognodeArgs};

fn parse(a: &LognodeArgs) -> Config {
    let argv = std::iter::once("lognode".to_owned()).chain(a.to_args());
    Config::try_parse_from(argv).unwrap_or_else(|e| panic!("lognode rejects {:?}: {e}", a.to_args()))
}

#[test]
fn a_bootstrapping_node_parses_field_by_field() {
    let a = LognodeArgs::new(1, "/data/n1", "127.0.0.1:7001", "127.0.0.1:7101").bootstrap().voters(5);
    let c = parse(&a);
    assert_eq!(c.id, 1);
    assert_eq!(c.data_dir, std::path::PathBuf::from("/data/n1"));
    assert_eq!(c.grpc_addr, "127.0.0.1:7001");
    assert_eq!(c.gossip_addr, "127.0.0.1:7101");
    assert!(c.bootstrap);
    assert!(c.join.is_empty());
    assert_eq!(c.voters, 5);
    assert_eq!(c.gossip_profile, GossipProfile::Local);
    assert_eq!(c.fsync, logstore::FsyncMode::Always);
}

#[test]
fn a_joining_node_with_extra_flags_parses() {
    let mut a = LognodeArgs::new(3, "/data/n3", "127.0.0.1:7003", "127.0.0.1:7103")
        .join("127.0.0.1:7101")
        .join("127.0.0.1:7102")
        .extra(&["--snapshot-every", "50", "--retention-entries", "10"]);
    a.fsync = Fsync::Never;
    let c = parse(&a);
    assert!(!c.bootstrap);
    assert_eq!(c.join, vec!["127.0.0.1:7101".to_owned(), "127.0.0.1:7102".to_owned()]);
    assert_eq!(c.voters, lognode::config::VOTERS_DEFAULT);
    assert_eq!(c.snapshot_every, Some(50));
    assert_eq!(c.snapshot_log_bytes, lognode::config::SNAPSHOT_LOG_BYTES_DEFAULT);
    assert_eq!(c.snapshot_log_percent, lognode::config::SNAPSHOT_LOG_PERCENT_DEFAULT);
    assert_eq!(c.retention_entries, Some(10));
    assert_eq!(c.fsync, logstore::FsyncMode::Never);
}
