//! `node::start` fails with a typed `StartError` that names what is wrong, before serving anything.

use lognode::config::{Config, GossipProfile};
use lognode::node::{StartError, start};

fn config(dir: &std::path::Path) -> Config {
    Config {
        id: 1,
        data_dir: dir.to_path_buf(),
        grpc_addr: "127.0.0.1:0".into(),
        gossip_addr: "127.0.0.1:0".into(),
        join: vec![],
        bootstrap: false,
        voters: 3,
        retention_entries: None,
        retention_bytes: None,
        retention_lag_bytes: lognode::config::RETENTION_LAG_BYTES_DEFAULT,
        snapshot_log_bytes: lognode::config::SNAPSHOT_LOG_BYTES_DEFAULT,
        snapshot_log_percent: lognode::config::SNAPSHOT_LOG_PERCENT_DEFAULT,
        snapshot_every: None,
        group_retention_ms: group_core::limits::GROUP_RETENTION_MS_DEFAULT,
        fsync: logstore::FsyncMode::Never,
        fault_synced_map: None,
        fault_clock_file: None,
        gossip_profile: GossipProfile::Local,
        state_store: lognode::config::StateStoreKind::Disk,
        state_cache_bytes: lognode::config::STATE_CACHE_BYTES_MIN,
        admin_key_file: None,
        gossip_key_file: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
    }
}

async fn start_err(cfg: Config) -> StartError {
    match start(cfg).await {
        Ok(node) => {
            node.shutdown().await;
            panic!("the node started")
        }
        Err(e) => e,
    }
}

#[tokio::test]
async fn id_zero_and_bad_addresses_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = start_err(Config { id: 0, ..config(dir.path()) }).await;
    assert!(matches!(e, StartError::ZeroId), "{e:?}");

    let e = start_err(Config { grpc_addr: "no-port".into(), ..config(dir.path()) }).await;
    assert!(matches!(e, StartError::Address { flag: "--grpc-addr", .. }), "{e:?}");
    assert!(e.to_string().starts_with("--grpc-addr: "), "{e}");

    let e = start_err(Config { join: vec!["127.0.0.1:1".into(), "bad:port".into()], ..config(dir.path()) }).await;
    assert!(matches!(e, StartError::Address { flag: "--join", .. }), "{e:?}");
    // Nothing was opened: the checks come before any storage.
    assert!(!dir.path().join("log").exists());
}

#[tokio::test]
async fn an_unopenable_log_names_the_log_and_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A regular file where the Raft log's directory should be.
    std::fs::write(dir.path().join("log"), b"not a directory").expect("write");
    let e = start_err(config(dir.path())).await;
    let StartError::OpenLog { what, dir: log_dir, .. } = &e else { panic!("not OpenLog: {e:?}") };
    assert_eq!((*what, log_dir.as_path()), ("Raft log", dir.path().join("log").as_path()));
    assert!(e.to_string().contains("open the Raft log in "), "{e}");
}

#[tokio::test]
async fn a_taken_grpc_port_is_a_bind_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let e = start_err(Config { grpc_addr: addr.to_string(), ..config(dir.path()) }).await;
    assert!(matches!(&e, StartError::Bind { addr: a, .. } if *a == addr), "{e:?}");
}

#[tokio::test]
async fn an_unusable_gossip_key_file_is_named_before_anything_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("gossip.key");
    let e = start_err(Config { gossip_key_file: Some(missing), ..config(dir.path()) }).await;
    assert!(matches!(e, StartError::GossipKey(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("--gossip-key-file: gossip key file ") && e.to_string().contains("gossip.key"),
        "{e}"
    );
    let short = dir.path().join("short.key");
    std::fs::write(&short, "abcd\n").expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let e = start_err(Config { gossip_key_file: Some(short), ..config(dir.path()) }).await;
    assert!(e.to_string().contains("64 hex digits"), "{e}");
    assert!(!dir.path().join("log").exists(), "nothing was opened");
}
