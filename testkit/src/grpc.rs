//! lognode's gRPC API for tests: a client, the leader as a node sees it, whole-partition reads.

use std::time::{Duration, Instant};

use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::ledger::{ClusterStatusRequest, ConsumeRequest, ReadOptions, Role};
use tonic::transport::Channel;

/// Connect timeout of [`client`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Per-call timeout of [`client`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest message [`client`] decodes (a whole fetch of large records).
pub const DECODING_MESSAGE_MAX: usize = 16 * 1024 * 1024;
/// Longest [`read_all`] retries a node that refuses connections (it is restarting).
pub const UNAVAILABLE_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most fetches of one [`read_all`].
pub const READ_ALL_FETCHES_MAX: usize = 100_000;

/// A client of the node at `addr` (connects lazily: never fails here).
pub fn client(addr: &str) -> LedgerClient<Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("bad address {addr}: {e}"))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    LedgerClient::new(ch).max_decoding_message_size(DECODING_MESSAGE_MAX)
}

/// The leader's `(id, gRPC address)` as the node at `addr` sees it, once it sees one and at least
/// `expect_voters` voters; `None` otherwise (also when the node does not answer).
pub async fn leader_of(addr: &str, expect_voters: usize) -> Option<(u64, String)> {
    let mut c = client(addr);
    let mut req = tonic::Request::new(ClusterStatusRequest { local_only: false });
    req.set_timeout(Duration::from_secs(2));
    let s = c.cluster_status(req).await.ok()?.into_inner();
    let voters = s.nodes.iter().filter(|n| n.voter).count();
    let leader_seen = s.nodes.iter().any(|n| n.role == Role::Leader as i32);
    // Not while a node still holds a joint configuration: a leader lost then (a test pausing it)
    // could be replaced only with a majority of the old voters too, and the old ones may be too few.
    let changing = s.nodes.iter().any(|n| n.membership_changing);
    (s.leader_id != 0 && leader_seen && voters >= expect_voters && !changing).then_some((s.leader_id, s.leader_addr))
}

/// A whole partition read from `addr` (after the node applied `min_index`): `(offset, value)`.
pub async fn read_all(addr: &str, topic: &str, partition: u32, min_index: u64) -> Vec<(u64, Vec<u8>)> {
    read_from(addr, topic, partition, 0, min_index).await
}

/// A partition read from offset `from` to its end (after the node applied `min_index`), e.g. from
/// its start offset once retention purged what came before: `(offset, value)`.
pub async fn read_from(addr: &str, topic: &str, partition: u32, from: u64, min_index: u64) -> Vec<(u64, Vec<u8>)> {
    let mut c = client(addr);
    let mut out = Vec::new();
    let mut offset = from;
    for _ in 0..READ_ALL_FETCHES_MAX {
        let read = ReadOptions { linearizable: false, min_index, wait_ms: 20_000 };
        let req = ConsumeRequest { topic: topic.into(), partition, offset, max_records: 1000, read: Some(read) };
        // A node that is (re)starting refuses connections for a while: retry, bounded.
        let deadline = Instant::now() + UNAVAILABLE_RETRY_TIMEOUT;
        let r = loop {
            match c.consume(req.clone()).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("consume {topic}/{partition}@{offset} on {addr}: {e}"),
            }
        };
        if r.records.is_empty() {
            break;
        }
        out.extend(r.records.into_iter().map(|rec| (rec.offset, rec.value)));
        offset = r.next_offset;
    }
    out
}
