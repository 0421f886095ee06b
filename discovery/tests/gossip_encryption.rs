//! Gossip encryption (docs/SECURITY.md): members sharing a key find each other; a member with
//! another key, or none, is never admitted (its packets are refused) and never sees the others.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_discovery::{Discovery, Gossip, GossipKey, GossipProfile, MemberKind, MemberMeta};

/// How long members sharing a key may take to see each other.
const CONVERGE_MAX: Duration = Duration::from_secs(15);
/// How long the outsiders are watched (several gossip and probe rounds of the local profile).
const WATCH: Duration = Duration::from_secs(3);

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

async fn member(id: u64, seeds: Vec<SocketAddr>, key: Option<GossipKey>) -> (Arc<Gossip>, SocketAddr) {
    let bind = free_addr();
    let meta = MemberMeta {
        kind: MemberKind::Lognode,
        node_id: id,
        grpc_addr: format!("127.0.0.1:{id}"),
        role: "follower".into(),
    };
    (Gossip::start_with(bind, meta, seeds, GossipProfile::Local, key).await.expect("start gossip"), bind)
}

fn sees(g: &Gossip, id: u64) -> bool {
    g.members().iter().any(|m| m.meta.node_id == id && m.alive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_with_the_key_gossip_together() {
    let key = GossipKey::from_bytes([7; 32]);
    let (a, seed) = member(1, vec![], Some(key.clone())).await;
    let (b, _) = member(2, vec![seed], Some(key)).await;
    let (c, _) = member(3, vec![seed], Some(GossipKey::from_bytes([8; 32]))).await;
    let (d, _) = member(4, vec![seed], None).await;

    let t0 = Instant::now();
    while !(sees(&a, 2) && sees(&b, 1)) {
        assert!(t0.elapsed() < CONVERGE_MAX, "members sharing a key never met: {:?}", a.members());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t1 = Instant::now();
    while t1.elapsed() < WATCH {
        for (who, g) in [("a", &a), ("b", &b)] {
            assert!(!sees(g, 3) && !sees(g, 4), "{who} admitted an outsider: {:?}", g.members());
        }
        for (who, g) in [("other key", &c), ("no key", &d)] {
            assert!(!sees(g, 1) && !sees(g, 2), "the member with {who} sees the cluster: {:?}", g.members());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for g in [a, b, c, d] {
        g.shutdown().await;
    }
}

#[test]
fn key_files_are_private_hex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gossip.key");
    let key = GossipKey::from_bytes([0xab; 32]);
    std::fs::write(&path, key.to_file_text()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(GossipKey::load(&path).expect("load"), key);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(GossipKey::load(&path).expect_err("group-readable").contains("readable by others"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for bad in ["abcd\n", &"zz".repeat(32), &"ab".repeat(33)] {
        std::fs::write(&path, bad).expect("write");
        let e = GossipKey::load(&path).expect_err(bad);
        assert!(e.contains("64 hex digits") && e.contains("gossip.key"), "{e}");
    }
    assert!(GossipKey::load(&dir.path().join("missing")).expect_err("missing").contains("missing"));
    assert!(!format!("{key:?}").contains("ab"), "Debug shows no key bytes");
}

/// The key derived from a CA file depends on its first certificate only: not on line breaks,
/// nor on certificates listed after it (a CA file holding the old and the new CA).
#[test]
fn a_derived_key_follows_the_first_certificate_only() {
    let a = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n";
    let b = "-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----\n";
    let k = GossipKey::derive_from_ca(a.as_bytes());
    assert_eq!(GossipKey::derive_from_ca(a.replace('\n', "\r\n").as_bytes()), k);
    assert_eq!(GossipKey::derive_from_ca(format!("{a}{b}").as_bytes()), k);
    assert_ne!(GossipKey::derive_from_ca(b.as_bytes()), k);
    assert_ne!(GossipKey::derive_from_ca(format!("{b}{a}").as_bytes()), k);
}
