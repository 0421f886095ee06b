//! Discovery: who is out there. A small trait of ours ([`Discovery`]) with a gossip implementation
//! on memberlist ([`Gossip`]); neither lognode nor the gateway ever sees memberlist.
//!
//! Every member gossips its metadata ([`MemberMeta`]): kind (lognode or gateway), node id, gRPC
//! address and role. Gateways join the same gossip as [`MemberKind::Gateway`] members (they hold
//! no data and never become Raft members). This crate knows nothing of openraft.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist::agnostic::tokio::TokioRuntime;
use memberlist::bytes::Bytes;
use memberlist::delegate::{CompositeDelegate, NodeDelegate};
use memberlist::net::{NetTransport, NetTransportOptions};
use memberlist::proto::{MaybeResolvedAddress, Meta, State};
use memberlist::tokio::{TokioSocketAddrResolver, TokioTcp};
use memberlist::{Memberlist, Options};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tracing::{debug, info, warn};

/// A gossip encryption key: 32 bytes (AES-256-GCM) every member shares, from a file only its
/// owner may read ([`GossipKey::load`]). With one, memberlist encrypts and authenticates every
/// gossip packet and stream, and refuses those it cannot decrypt: a process without the key can
/// neither read the gossip nor join it.
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey([u8; 32]);

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(..)")
    }
}

impl GossipKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> GossipKey {
        GossipKey(bytes)
    }

    /// The key derived from the cluster CA's certificate (`lognode --tls-*` without a gossip key
    /// file): every holder of that certificate derives the same key, so the gossip keeps out
    /// processes that were not given the cluster's CA. The certificate is not a secret the way a
    /// key file is: give `--gossip-key-file` where that matters (docs/SECURITY.md).
    /// Only the first certificate of the file counts, without its line breaks, so that members
    /// whose CA files differ in formatting, or list further certificates after it, agree.
    pub fn derive_from_ca(ca_pem: &[u8]) -> GossipKey {
        use sha2::Digest as _;
        let text = String::from_utf8_lossy(ca_pem);
        let (begin, end) = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----");
        let first =
            text.split_once(begin).and_then(|(_, rest)| rest.split_once(end)).map_or(text.as_ref(), |(body, _)| body);
        let body: String = first.chars().filter(|c| !c.is_whitespace()).collect();
        let mut h = sha2::Sha256::new();
        h.update(b"ledger gossip key v1\0");
        h.update(body.as_bytes());
        GossipKey(h.finalize().into())
    }

    /// The key as the file holds it: 64 hex digits and a newline.
    pub fn to_file_text(&self) -> String {
        let mut s: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        s.push('\n');
        s
    }

    /// Reads a key file: 64 hex digits (surrounding whitespace ignored), readable by its owner
    /// only (mode 0600). The error names the file and what is wrong.
    pub fn load(path: &std::path::Path) -> Result<GossipKey, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let shown = path.display();
        let mode = std::fs::metadata(path).map_err(|e| format!("gossip key file {shown}: {e}"))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "gossip key file {shown}: readable by others (mode {:o}); it holds a secret: chmod 600 it",
                mode & 0o777
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("gossip key file {shown}: {e}"))?;
        Self::parse(text.trim()).map_err(|e| format!("gossip key file {shown}: {e}"))
    }

    /// Parses 64 hex digits.
    pub fn parse(hex: &str) -> Result<GossipKey, String> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a gossip key is 64 hex digits (32 bytes), not {} characters", hex.chars().count()));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(GossipKey(key))
    }
}

/// Gossip timing profile (memberlist's presets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GossipProfile {
    /// A LAN: probe every 500 ms, 1 s probe timeout.
    Lan,
    /// One machine (tests, dev): 200 ms probe timeout, gossip every 100 ms.
    Local,
}

/// The format byte before member metadata: 2, postcard (lognode's codec format 2). Members of
/// before 2026-12-06 gossiped bincode without one; their metadata does not decode, and they are
/// not listed (a cluster moves to the new build all at once).
const META_FORMAT: u8 = 2;

/// Encodes member metadata: [`META_FORMAT`], then postcard.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![META_FORMAT]).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, postcard::Error> {
    match bytes.split_first() {
        Some((&META_FORMAT, rest)) => postcard::from_bytes(rest),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// How often the member list is copied out of memberlist for [`Discovery::members`].
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// How long leaving the gossip may take on shutdown.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a join attempt to the seed addresses may take.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most peer addresses remembered (in memory and in the peers file of
/// [`Gossip::start_remembering`]); the oldest are forgotten first.
pub const KNOWN_PEERS_MAX: usize = 64;
/// Refreshes in a row with no other member online, while peers are known, after which the node
/// joins again through its seeds and the peers it remembers (5 s at [`REFRESH_INTERVAL`]).
pub const ALONE_REFRESHES_MAX: u32 = 25;
/// Remembered peers tried in one join attempt, besides the seeds (the newest first).
pub const JOIN_PEERS_PER_ATTEMPT: usize = 8;
/// Join attempts before giving up (a retry every [`JOIN_RETRY_PAUSE`]).
pub const JOIN_ATTEMPTS_MAX: u32 = 120;
/// Pause between join attempts.
pub const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What kind of process a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberKind {
    /// A storage node (runs Raft).
    Lognode,
    /// A stateless gateway (no Raft).
    Gateway,
}

impl MemberKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Lognode => "lognode",
            MemberKind::Gateway => "gateway",
        }
    }
}

/// The metadata each member gossips (postcard-encoded, far below memberlist's 512-byte limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// Kind of member.
    pub kind: MemberKind,
    /// Node id (unique among lognodes).
    pub node_id: u64,
    /// gRPC address (`host:port`).
    pub grpc_addr: String,
    /// Raft role as last published ("leader", "follower", "learner", ...).
    pub role: String,
}

/// A member as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its metadata.
    pub meta: MemberMeta,
    /// Alive (or suspected) according to gossip; false once gossip declares it dead or left.
    pub alive: bool,
}

/// Finds the other members of the cluster.
pub trait Discovery: Send + Sync + 'static {
    /// The members known (including this node), from the last refresh.
    fn members(&self) -> Vec<Member>;
    /// Publishes this node's role (best effort, asynchronously).
    fn set_role(&self, role: &str);
    /// Leaves the gossip and stops.
    fn shutdown(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

#[derive(Clone)]
struct MetaDelegate {
    meta: Arc<Mutex<MemberMeta>>,
}

impl NodeDelegate for MetaDelegate {
    async fn node_meta(&self, limit: usize) -> Meta {
        let bytes = encode(&*self.meta.lock().unwrap_or_else(|e| e.into_inner()));
        if bytes.len() > limit {
            warn!(len = bytes.len(), limit, "gossip metadata too large");
            return Meta::empty();
        }
        Meta::try_from(Bytes::from(bytes)).unwrap_or_else(|_| Meta::empty())
    }
}

type Delegate = CompositeDelegate<
    SmolStr,
    SocketAddr,
    memberlist::delegate::VoidDelegate<SmolStr, SocketAddr>,
    memberlist::delegate::VoidDelegate<SmolStr, SocketAddr>,
    memberlist::delegate::VoidDelegate<SmolStr, SocketAddr>,
    memberlist::delegate::VoidDelegate<SmolStr, SocketAddr>,
    MetaDelegate,
>;
type Transport = NetTransport<SmolStr, TokioSocketAddrResolver, TokioTcp, TokioRuntime>;
type List = Memberlist<Transport, Delegate>;

/// Gossip discovery on memberlist (SWIM over UDP + TCP).
pub struct Gossip {
    list: List,
    meta: Arc<Mutex<MemberMeta>>,
    cache: Arc<Mutex<Vec<Member>>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip").finish_non_exhaustive()
    }
}

impl Gossip {
    /// Starts a gossip member bound to `bind` and, in the background, joins the cluster through
    /// `seeds` (retrying until one answers, at most [`JOIN_ATTEMPTS_MAX`] times). Unencrypted:
    /// see [`Gossip::start_with`].
    pub async fn start(
        bind: SocketAddr,
        meta: MemberMeta,
        seeds: Vec<SocketAddr>,
        profile: GossipProfile,
    ) -> Result<Arc<Gossip>, String> {
        Self::start_with(bind, meta, seeds, profile, None).await
    }

    /// [`Gossip::start`], with every packet and stream encrypted with `key` when given; then
    /// nothing unencrypted, or encrypted with another key, is accepted.
    pub async fn start_with(
        bind: SocketAddr,
        meta: MemberMeta,
        seeds: Vec<SocketAddr>,
        profile: GossipProfile,
        key: Option<GossipKey>,
    ) -> Result<Arc<Gossip>, String> {
        Self::start_remembering(bind, meta, seeds, profile, key, None).await
    }

    /// [`Gossip::start_with`], remembering the addresses of the members it sees (at most
    /// [`KNOWN_PEERS_MAX`]) in `peers_file` (one address per line; written, not synced: a hint),
    /// and joining through them too: at start (so a restart finds the cluster even when every
    /// seed it was given has since been replaced), and whenever it has been alone for
    /// [`ALONE_REFRESHES_MAX`] refreshes while it knows peers.
    pub async fn start_remembering(
        bind: SocketAddr,
        meta: MemberMeta,
        seeds: Vec<SocketAddr>,
        profile: GossipProfile,
        key: Option<GossipKey>,
        peers_file: Option<std::path::PathBuf>,
    ) -> Result<Arc<Gossip>, String> {
        let id = SmolStr::new(format!("{}-{}", meta.kind.as_str(), meta.node_id));
        let mut topts = NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(id);
        topts.add_bind_address(bind);
        let meta = Arc::new(Mutex::new(meta));
        let delegate = CompositeDelegate::new().with_node_delegate(MetaDelegate { meta: Arc::clone(&meta) });
        let options = match profile {
            GossipProfile::Lan => Options::lan(),
            GossipProfile::Local => Options::local(),
        };
        let options = match key {
            Some(GossipKey(k)) => options
                .with_primary_key(memberlist::proto::SecretKey::Aes256(k))
                .with_encryption_algo(memberlist::proto::EncryptionAlgorithm::NoPadding)
                .with_gossip_verify_incoming(true)
                .with_gossip_verify_outgoing(true),
            None => options,
        };
        let list =
            List::with_delegate(delegate, topts, options).await.map_err(|e| format!("start gossip on {bind}: {e}"))?;
        let cache = Arc::new(Mutex::new(Vec::new()));
        let refresher = {
            let list = list.clone();
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let mut known = Peers::load(peers_file, bind);
                let mut joined = seeds.is_empty() && known.is_empty();
                let mut attempts = 0u32;
                let mut alone = 0u32;
                let mut tick = tokio::time::interval(REFRESH_INTERVAL);
                let mut next_join = tokio::time::Instant::now();
                loop {
                    tick.tick().await;
                    if !joined && attempts < JOIN_ATTEMPTS_MAX && tokio::time::Instant::now() >= next_join {
                        attempts += 1;
                        let newest = known.addrs.iter().rev().take(JOIN_PEERS_PER_ATTEMPT);
                        let targets: Vec<SocketAddr> =
                            seeds.iter().chain(newest).copied().filter(|a| *a != bind).collect();
                        for seed in &targets {
                            let join = list.join(MaybeResolvedAddress::Resolved(*seed));
                            match tokio::time::timeout(JOIN_TIMEOUT, join).await {
                                Ok(Ok(addr)) => {
                                    info!(%addr, "joined gossip");
                                    joined = true;
                                    break;
                                }
                                Ok(Err(e)) => debug!(%seed, error = %e, "gossip join failed; retrying"),
                                Err(_) => debug!(%seed, "gossip join timed out; retrying"),
                            }
                        }
                        next_join = tokio::time::Instant::now() + JOIN_RETRY_PAUSE;
                    }
                    let members = list.members().await;
                    // memberlist 0.8.5 does not update the state inside a member's snapshot when
                    // it leaves gracefully (it stays `Alive` there): `online_members` (not dead,
                    // not left) is the authority on liveness.
                    let online: Vec<SmolStr> = list.online_members().await.iter().map(|m| m.id().clone()).collect();
                    let local = list.local_id().clone();
                    known.remember(
                        members.iter().filter(|m| *m.id() != local && online.contains(m.id())).map(|m| *m.address()),
                    );
                    if online.iter().any(|id| *id != local) || known.is_empty() && seeds.is_empty() {
                        alone = 0;
                    } else {
                        alone += 1;
                        if alone >= ALONE_REFRESHES_MAX && (joined || attempts >= JOIN_ATTEMPTS_MAX) {
                            info!("alone in the gossip: joining again through the seeds and the peers known");
                            (joined, attempts, alone) = (false, 0, 0);
                        }
                    }
                    let mut out = Vec::with_capacity(members.len());
                    for m in members.iter() {
                        let Ok(meta) = decode::<MemberMeta>(m.meta()) else { continue };
                        let alive = matches!(m.state(), State::Alive | State::Suspect) && online.contains(m.id());
                        out.push(Member { meta, alive });
                    }
                    *cache.lock().unwrap_or_else(|e| e.into_inner()) = out;
                }
            })
        };
        Ok(Arc::new(Gossip { list, meta, cache, refresher }))
    }
}

/// The peer addresses a member remembers, newest last, and the file that keeps them.
struct Peers {
    addrs: std::collections::VecDeque<SocketAddr>,
    file: Option<std::path::PathBuf>,
}

impl Peers {
    /// The peers in `file` (none when absent or unreadable), without `own`.
    fn load(file: Option<std::path::PathBuf>, own: SocketAddr) -> Peers {
        let text = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
        let addrs =
            text.lines().filter_map(|l| l.trim().parse().ok()).filter(|a| *a != own).take(KNOWN_PEERS_MAX).collect();
        Peers { addrs, file }
    }

    fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Remembers `seen` (the newest last, at most [`KNOWN_PEERS_MAX`]); rewrites the file when
    /// something changed.
    fn remember(&mut self, seen: impl Iterator<Item = SocketAddr>) {
        let mut changed = false;
        for a in seen {
            if !self.addrs.contains(&a) {
                self.addrs.push_back(a);
                changed = true;
                if self.addrs.len() > KNOWN_PEERS_MAX {
                    self.addrs.pop_front();
                }
            }
        }
        if changed && let Some(f) = &self.file {
            let text: String = self.addrs.iter().map(|a| format!("{a}\n")).collect();
            if let Err(e) = std::fs::write(f, text) {
                debug!(file = %f.display(), error = %e, "cannot write the gossip peers file");
            }
        }
    }
}

impl Discovery for Gossip {
    fn members(&self) -> Vec<Member> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_role(&self, role: &str) {
        {
            let mut m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
            if m.role == role {
                return;
            }
            m.role = role.to_string();
        }
        let list = self.list.clone();
        tokio::spawn(async move {
            if let Err(e) = list.update_node(LEAVE_TIMEOUT).await {
                debug!(error = %e, "gossip metadata update failed");
            }
        });
    }

    fn shutdown(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.refresher.abort();
            if let Err(e) = self.list.leave(LEAVE_TIMEOUT).await {
                debug!(error = %e, "gossip leave failed");
            }
            if let Err(e) = self.list.shutdown().await {
                debug!(error = %e, "gossip shutdown failed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_remembered_newest_last_capped_and_kept_in_their_file() {
        let dir = std::env::temp_dir().join(format!("ledger-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("gossip-peers");
        let own: SocketAddr = "10.0.0.1:7001".parse().expect("addr");
        let addr = |i: usize| -> SocketAddr { format!("10.0.{}.{}:7001", i / 250, i % 250 + 2).parse().expect("addr") };
        let mut p = Peers::load(Some(file.clone()), own);
        assert!(p.is_empty());
        p.remember((0..KNOWN_PEERS_MAX + 5).map(addr));
        assert_eq!(p.addrs.len(), KNOWN_PEERS_MAX);
        assert_eq!(p.addrs.front(), Some(&addr(5)), "the oldest are forgotten");
        p.remember([addr(10)].into_iter());
        assert_eq!(p.addrs.len(), KNOWN_PEERS_MAX, "known ones are not added twice");
        let written = std::fs::read_to_string(&file).expect("peers file");
        assert_eq!(written.lines().count(), KNOWN_PEERS_MAX);
        std::fs::write(&file, format!("{own}\n{}\nnot an address\n", addr(1))).expect("write");
        let again = Peers::load(Some(file.clone()), own);
        assert_eq!(again.addrs.iter().copied().collect::<Vec<_>>(), [addr(1)], "own address and junk skipped");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
