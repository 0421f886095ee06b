//! The Raft transport's client side: openraft's `RaftNetwork` over gRPC (tonic).

use std::future::Future;
use std::time::Duration;

use ledger_proto::raft::raft_client::RaftClient;
use ledger_proto::raft::{RaftReply, SnapshotChunk, raft_reply};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, SnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Snapshot, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::hedge::{Lanes, RpcKind};
use crate::limits::{
    CONNECT_TIMEOUT, HEDGE_LANES, PEER_PING_INTERVAL, PEER_PING_TIMEOUT, RAFT_MESSAGE_MAX, RPC_TIMEOUT,
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNKS_IN_FLIGHT, SNAPSHOT_RATE_MIN, SNAPSHOT_TIMEOUT,
};
use crate::store::state_machine::SnapshotFile;
use crate::types::{Node, TypeConfig, decode, encode};

/// This process's mutual TLS as a caller (`--tls-*`), set once at start; plaintext when unset.
static TLS: std::sync::OnceLock<tonic::transport::ClientTlsConfig> = std::sync::OnceLock::new();

/// Makes every channel of this process use mutual TLS with `tls` (once per process: a second,
/// different setting is refused, since channels are shared by everything in the process).
pub fn use_tls(tls: tonic::transport::ClientTlsConfig) -> Result<(), String> {
    let set = TLS.get_or_init(|| tls.clone());
    if format!("{set:?}") != format!("{tls:?}") {
        return Err("one process runs one TLS configuration".to_owned());
    }
    Ok(())
}

/// The endpoint of `addr`: `https` with this process's TLS, else `http`.
fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let ep = Endpoint::from_shared(ledger_proto::tls::endpoint_uri(addr, TLS.get().is_some()))?;
    match TLS.get() {
        Some(tls) => ep.tls_config(tls.clone()),
        None => Ok(ep),
    }
}

/// Creates a lazily connecting gRPC channel to `addr` (`host:port`).
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(endpoint(addr)?.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).connect_lazy())
}

/// Creates a lazily connecting channel to peer `addr` for Raft RPCs: like [`channel`], and while a
/// call is open and nothing has been read for [`PEER_PING_INTERVAL`], an HTTP/2 PING is sent. The
/// ping (and the peer's answer to it) follows the request (and its answer) on the same TCP
/// connection, so a lost segment of either is found by the selective acknowledgements of what
/// follows and sent again within a round trip, instead of after TCP's retransmission timeout
/// (at least 200 ms): with one request in flight nothing else would follow it. See `hedge`.
/// Its connections also get a LAN's retransmission timeout (`tcp::tune`).
pub fn peer_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    tuned_channel(addr, true)
}

/// A lazily connecting channel to peer `addr` whose connection gets a LAN's retransmission timeout
/// (`tcp::tune`), with PINGs behind open calls when `pings` (see [`peer_channel`]).
fn tuned_channel(addr: &str, pings: bool) -> Result<Channel, tonic::transport::Error> {
    let target = addr.to_owned();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let target = target.clone();
        async move {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&target))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connecting to {target}")))??;
            crate::tcp::tune(&stream);
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let endpoint = endpoint(addr)?;
    let endpoint = if pings {
        endpoint.http2_keep_alive_interval(PEER_PING_INTERVAL).keep_alive_timeout(PEER_PING_TIMEOUT)
    } else {
        endpoint
    };
    Ok(endpoint.keep_alive_while_idle(false).connect_with_connector_lazy(connector))
}

/// Builds Raft clients to peers.
#[derive(Debug, Clone)]
pub struct Network {
    /// While this leader has lost its quorum it sends no AppendEntries (see `election`).
    pub liveness: std::sync::Arc<crate::election::Liveness>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Node) -> PeerClient {
        // Each lane is a channel of its own, so a TCP connection of its own (see `hedge`).
        let clients: Option<Vec<_>> =
            (0..HEDGE_LANES).map(|_| peer_channel(&node.addr).ok().map(raft_client)).collect();
        PeerClient {
            target,
            addr: node.addr.clone(),
            lanes: clients.map(Lanes::new),
            liveness: std::sync::Arc::clone(&self.liveness),
        }
    }
}

fn raft_client(c: Channel) -> RaftClient<Channel> {
    RaftClient::new(c).max_decoding_message_size(RAFT_MESSAGE_MAX).max_encoding_message_size(RAFT_MESSAGE_MAX)
}

/// A Raft client to one peer.
#[derive(Debug)]
pub struct PeerClient {
    target: u64,
    addr: String,
    /// `None` when the peer's address is not a valid URI.
    lanes: Option<Lanes>,
    liveness: std::sync::Arc<crate::election::Liveness>,
}

/// A transport failure: unreachable (connection-level) or another network error.
enum Failure {
    Unreachable(Unreachable),
    Network(NetworkError),
}

impl Failure {
    fn from_status(s: &tonic::Status) -> Failure {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled => Failure::Unreachable(Unreachable::new(s)),
            _ => Failure::Network(NetworkError::new(s)),
        }
    }
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, Node, E> {
        match self {
            Failure::Unreachable(u) => RPCError::Unreachable(u),
            Failure::Network(n) => RPCError::Network(n),
        }
    }
}

fn other(msg: impl Into<String>) -> Failure {
    Failure::Network(NetworkError::new(&std::io::Error::other(msg.into())))
}

impl PeerClient {
    fn bad_address(&self) -> Failure {
        other(format!("bad peer address {:?}", self.addr))
    }

    /// A client on a connection of its own, without pings, for a snapshot stream (long, and read
    /// only at its end: pings would go out every few milliseconds all along).
    fn snapshot_client(&self) -> Result<RaftClient<Channel>, Failure> {
        tuned_channel(&self.addr, false).map(raft_client).map_err(|_| self.bad_address())
    }

    /// Sends one unary Raft RPC, hedged, and decodes `Result<Resp, Err>` from the reply.
    async fn call<Req, Resp, Err>(
        &mut self,
        kind: RpcKind,
        req: &Req,
        timeout: Duration,
    ) -> Result<Result<Resp, Err>, Failure>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: DeserializeOwned,
    {
        let Some(lanes) = self.lanes.as_mut() else {
            return Err(self.bad_address());
        };
        // A leader that lost its quorum must go silent at once (see `election`): no further copy
        // of an AppendEntries may reach a follower and renew its lease.
        let silence = match kind {
            RpcKind::Append => Some(self.liveness.quorum_lost_watch()),
            RpcKind::Vote => None,
        };
        let reply = lanes.call(kind, encode(req), timeout, silence).await.map_err(|s| Failure::from_status(&s))?;
        decode_reply(reply)
    }
}

fn decode_reply<Resp: DeserializeOwned, Err: DeserializeOwned>(reply: RaftReply) -> Result<Result<Resp, Err>, Failure> {
    match reply.result {
        Some(raft_reply::Result::Ok(b)) => decode(&b).map(Ok).map_err(|e| other(e.to_string())),
        Some(raft_reply::Result::Error(b)) => decode(&b).map(Err).map_err(|e| other(e.to_string())),
        None => Err(other("empty Raft reply")),
    }
}

fn ttl(option: &RPCOption) -> Duration {
    let t = option.hard_ttl();
    if t.is_zero() { RPC_TIMEOUT } else { t }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        // A leader without its quorum goes silent, so that followers that still hear it (a one-way
        // cut) elect another; the next leader deposes it when the partition heals.
        if self.liveness.quorum_lost() {
            let why = std::io::Error::other("this leader lost its quorum: it sends nothing until a leader deposes it");
            return Err(Failure::Unreachable(Unreachable::new(&why)).into_rpc());
        }
        match self.call(RpcKind::Append, &rpc, ttl(&option)).await.map_err(Failure::into_rpc)? {
            Ok(r) => Ok(r),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, Node, RaftError<u64, InstallSnapshotError>>> {
        // Snapshots are sent whole by `full_snapshot` (streamed in chunks); openraft 0.9 never
        // calls this chunk-by-chunk API when `full_snapshot` is implemented.
        Err(other("chunk-by-chunk install_snapshot is not supported: use full_snapshot").into_rpc())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        match self.call(RpcKind::Vote, &rpc, ttl(&option)).await.map_err(Failure::into_rpc)? {
            Ok(r) => Ok(r),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let to_streaming = |f: Failure| match f {
            Failure::Unreachable(u) => StreamingError::Unreachable(u),
            Failure::Network(n) => StreamingError::Network(n),
        };
        let mut client = self.snapshot_client().map_err(to_streaming)?;
        let meta = encode(&(vote, &snapshot.meta));
        // A snapshot of the on-disk store is written out here, not on the state machine's task.
        let mut data = snapshot.snapshot;
        let mut cancel = std::pin::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            r = data.materialize() => r.map_err(|e| to_streaming(Failure::Network(NetworkError::new(&e))))?,
        }
        // Chunks are read from the snapshot file as the stream is sent: at most
        // SNAPSHOT_CHUNKS_IN_FLIGHT chunks are in memory, whatever the snapshot's size.
        let (tx, rx) = tokio::sync::mpsc::channel(SNAPSHOT_CHUNKS_IN_FLIGHT);
        let total_bytes = data.len();
        let reader = tokio::spawn(send_chunks(*data, meta, tx));
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request.set_timeout(snapshot_deadline(total_bytes));
        let reply = tokio::select! {
            closed = &mut cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
            r = client.install_snapshot(request) => r,
        };
        if let Ok(Err(e)) = reader.await {
            // The stream ended short; the receiver refused it, or will.
            return Err(to_streaming(Failure::Network(NetworkError::new(&e))));
        }
        let reply = reply.map_err(|s| to_streaming(Failure::from_status(&s)))?;
        match decode_reply::<SnapshotResponse<u64>, Fatal<u64>>(reply.into_inner()).map_err(to_streaming)? {
            Ok(r) => Ok(r),
            Err(e) => Err(StreamingError::RemoteError(RemoteError::new(self.target, e))),
        }
    }
}

/// Deadline of sending a snapshot of `bytes` and the follower loading it.
fn snapshot_deadline(bytes: u64) -> Duration {
    SNAPSHOT_TIMEOUT + Duration::from_secs(bytes / SNAPSHOT_RATE_MIN)
}

/// Sends the snapshot in `file` as chunks of [`SNAPSHOT_CHUNK_BYTES`] into `tx`: first one with
/// the meta and the total length, then the data. Ends early, without an error, when the receiver
/// is gone.
async fn send_chunks(
    mut file: SnapshotFile,
    meta: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<SnapshotChunk>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let total_bytes = file.len();
    if tx.send(SnapshotChunk { meta, offset: 0, data: Vec::new(), total_bytes }).await.is_err() {
        return Ok(());
    }
    let mut offset = 0u64;
    loop {
        let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let mut filled = 0;
        while filled < data.len() {
            let n = file.file_mut().read(&mut data[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(());
        }
        data.truncate(filled);
        if tx.send(SnapshotChunk { meta: Vec::new(), offset, data, total_bytes: 0 }).await.is_err() {
            return Ok(());
        }
        offset += filled as u64;
    }
}
