//! Hedged Raft RPCs: a lost packet costs a few milliseconds, not a TCP retransmission timeout.
//!
//! openraft 0.9 keeps one AppendEntries in flight per follower and waits for its answer before it
//! sends the next. On a lossy link a lost segment of that one request (or of its answer) is
//! recovered only by TCP's retransmission timeout, at least 200 ms on Linux and doubling on each
//! further loss, because nothing else is in flight to trigger a fast retransmit. Replication then
//! stalls for the whole timeout, and so does every write waiting on it: with 5 % loss between
//! nodes the cluster kept about a third of its quiet throughput, with 20 % a few percent, while
//! etcd, which streams many messages per connection, kept nearly all of it.
//!
//! So each peer is reached over `HEDGE_LANES` TCP connections (lanes). An RPC is sent on one
//! free lane; if no answer has come after twice the recent answer time (within
//! [`HEDGE_DELAY_MIN`]..[`HEDGE_DELAY_MAX`]) plus the time its payload takes to send (at
//! [`HEDGE_BYTES_PER_MS`]), the same request is sent again on another free lane, and so on, and
//! the first answer wins. A lane is busy until its attempt ends (answered, failed or
//! past the deadline), so a connection stuck in retransmission is not used again meanwhile. When a
//! later copy answers first, the first was lost rather than slow (the peer serves its calls in
//! order), and the next [`HEDGE_EAGER_CALLS`] calls go out on two lanes at once (those that take
//! under [`HEDGE_DELAY_MIN`] to send): on a lossy link that halves the chance that a call waits at
//! all, and on a clean one it costs nothing. Without the payload's time, a new leader's first
//! AppendEntries of several MiB went out again every few milliseconds on every lane, and none
//! arrived before the deadline.
//!
//! Two more things shorten what a lost packet costs on a lane itself: while a call is open and
//! nothing was read, the channel sends HTTP/2 PINGs (`network::peer_channel`), whose segments
//! behind a lost one make TCP find and resend it within a round trip; and the connection's
//! retransmission timeout has a LAN's floor (`tcp`).
//!
//! Every Raft RPC sent this way is safe to deliver twice, in any order: an AppendEntries whose
//! entries the follower already holds changes nothing (Raft truncates only on a conflicting term,
//! and one leader never sends two different entries for one index), a commit index only grows,
//! and a vote for the same candidate in the same term is given again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ledger_proto::raft::raft_client::RaftClient;
use ledger_proto::raft::{RaftReply, RaftRequest};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

use crate::limits::{HEDGE_BYTES_PER_MS, HEDGE_DELAY_MAX, HEDGE_DELAY_MIN, HEDGE_EAGER_CALLS};

/// Which unary Raft RPC.
#[derive(Debug, Clone, Copy)]
pub enum RpcKind {
    /// AppendEntries (heartbeats too).
    Append,
    /// Vote.
    Vote,
}

/// One connection to the peer, busy while an attempt on it has not ended.
#[derive(Debug)]
struct Lane {
    client: RaftClient<Channel>,
    busy: Arc<AtomicBool>,
}

/// The lanes to one peer and the recent answer time.
#[derive(Debug)]
pub struct Lanes {
    lanes: Vec<Lane>,
    /// Exponentially weighted mean time of an answered attempt.
    answer_time: Duration,
    /// Lane of the last answer: tried first, since it is known to flow.
    preferred: usize,
    /// Calls still to send on two lanes at once, because a recent one needed a hedge.
    eager_left: u32,
}

impl Lanes {
    /// Lanes over `clients`, one per connection (each `Channel` must be its own connection).
    pub fn new(clients: Vec<RaftClient<Channel>>) -> Lanes {
        assert!(!clients.is_empty(), "a peer needs at least one lane");
        let lanes = clients.into_iter().map(|client| Lane { client, busy: Arc::new(AtomicBool::new(false)) }).collect();
        Lanes { lanes, answer_time: HEDGE_DELAY_MIN, preferred: 0, eager_left: 0 }
    }

    /// How long to wait for an answer before sending a request that takes `transfer` to send
    /// again on another lane.
    pub fn hedge_delay(&self, transfer: Duration) -> Duration {
        (self.answer_time * 2).clamp(HEDGE_DELAY_MIN, HEDGE_DELAY_MAX) + transfer
    }

    /// Claims a free lane, the preferred one first.
    fn claim(&self) -> Option<usize> {
        let n = self.lanes.len();
        (0..n)
            .map(|k| (self.preferred + k) % n)
            .find(|&i| self.lanes[i].busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok())
    }

    /// Sends `payload` as a `kind` RPC, hedged, and returns the first answer. Fails with the last
    /// transport error when every attempt failed, `DEADLINE_EXCEEDED` after `timeout`, or
    /// `UNAVAILABLE` as soon as `silence` (when given) is true: no copy is sent after that.
    pub async fn call(
        &mut self,
        kind: RpcKind,
        payload: Vec<u8>,
        timeout: Duration,
        mut silence: Option<watch::Receiver<bool>>,
    ) -> Result<RaftReply, Status> {
        let deadline = Instant::now() + timeout;
        let (tx, mut rx) = mpsc::channel::<Outcome>(self.lanes.len());
        let mut outstanding = 0usize;
        let mut sent = 0usize;
        let mut last_error: Option<Status> = None;
        let mut next_send = Instant::now();
        let lanes = self.lanes.len();
        let transfer = transfer_time(payload.len());
        // Two copies at once only of calls that are quick to send.
        let eager = self.eager_left > 0 && transfer < HEDGE_DELAY_MIN;
        let mut second_now = eager;
        self.eager_left = self.eager_left.saturating_sub(1);
        let silenced = || Status::unavailable("this node lost its quorum: it sends nothing until a leader deposes it");
        loop {
            if silence.as_ref().is_some_and(|s| *s.borrow()) {
                return Err(silenced());
            }
            if Instant::now() >= next_send && sent < lanes {
                if let Some(i) = self.claim() {
                    spawn_attempt(
                        &self.lanes[i],
                        Attempt { lane: i, nth: sent },
                        kind,
                        payload.clone(),
                        deadline,
                        tx.clone(),
                    );
                    outstanding += 1;
                    sent += 1;
                }
                if second_now && sent == 1 {
                    second_now = false;
                    continue;
                }
                next_send = Instant::now() + self.hedge_delay(transfer);
            }
            if outstanding == 0
                && let Some(e) = last_error.take()
            {
                return Err(e);
            }
            tokio::select! {
                Some((Attempt { lane, nth }, took, result)) = rx.recv() => {
                    outstanding -= 1;
                    match result {
                        Ok(reply) => {
                            // The answer time of the peer, without the payload's own.
                            self.answer_time = (self.answer_time * 7 + took.saturating_sub(transfer)) / 8;
                            // A later copy answered first: the first was lost, not slow.
                            if !eager && nth > 0 {
                                self.eager_left = HEDGE_EAGER_CALLS;
                            }
                            self.preferred = lane;
                            return Ok(reply);
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
                () = tokio::time::sleep_until(next_send), if sent < lanes => {}
                _ = async {
                    match silence.as_mut() {
                        Some(s) => s.wait_for(|lost| *lost).await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => return Err(silenced()),
                () = tokio::time::sleep_until(deadline) => {
                    return Err(last_error.unwrap_or_else(|| {
                        Status::deadline_exceeded(format!("no answer within {} ms", timeout.as_millis()))
                    }));
                }
            }
        }
    }
}

/// How long a payload of `len` bytes is assumed to take to reach the peer ([`HEDGE_BYTES_PER_MS`]).
fn transfer_time(len: usize) -> Duration {
    Duration::from_millis(u64::try_from(len / HEDGE_BYTES_PER_MS).unwrap_or(u64::MAX))
}

/// Which lane an attempt went on, and how many went before it in its call.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    lane: usize,
    nth: usize,
}

/// An attempt's end: how long it took and the answer (or failure).
type Outcome = (Attempt, Duration, Result<RaftReply, Status>);

/// Runs one attempt on `lane` to its end (at the latest `deadline`), then frees the lane and
/// reports to `tx` (if the caller still listens).
fn spawn_attempt(
    lane: &Lane,
    attempt: Attempt,
    kind: RpcKind,
    payload: Vec<u8>,
    deadline: Instant,
    tx: mpsc::Sender<Outcome>,
) {
    let mut client = lane.client.clone();
    let busy = Arc::clone(&lane.busy);
    tokio::spawn(async move {
        let started = Instant::now();
        let mut request = tonic::Request::new(RaftRequest { payload });
        request.set_timeout(deadline.saturating_duration_since(started));
        let call = async {
            match kind {
                RpcKind::Append => client.append_entries(request).await,
                RpcKind::Vote => client.vote(request).await,
            }
        };
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("no answer before the deadline")),
        };
        busy.store(false, Ordering::Release);
        // The caller may have returned with another lane's answer.
        let _ = tx.try_send((attempt, started.elapsed(), result));
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use ledger_proto::raft::raft_server::{Raft, RaftServer};
    use ledger_proto::raft::{PreVoteReply, PreVoteRequest, SnapshotChunk, raft_reply};
    use tonic::{Request, Response};

    use super::*;
    use crate::limits::HEDGE_LANES;

    /// A peer whose AppendEntries answers wait `stall` for the calls `stalled` says, and answer
    /// with their payload (or fail with `fail`) otherwise.
    struct Peer {
        calls: Arc<AtomicUsize>,
        stalled: fn(usize) -> bool,
        stall: Duration,
        fail: Option<tonic::Code>,
    }

    #[tonic::async_trait]
    impl Raft for Peer {
        async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if (self.stalled)(n) {
                tokio::time::sleep(self.stall).await;
            }
            if let Some(code) = self.fail {
                return Err(Status::new(code, "refused"));
            }
            Ok(Response::new(RaftReply { result: Some(raft_reply::Result::Ok(request.into_inner().payload)) }))
        }
        async fn vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            Err(Status::unimplemented("vote"))
        }
        async fn install_snapshot(
            &self,
            _: Request<tonic::Streaming<SnapshotChunk>>,
        ) -> Result<Response<RaftReply>, Status> {
            Err(Status::unimplemented("install_snapshot"))
        }
        async fn pre_vote(&self, _: Request<PreVoteRequest>) -> Result<Response<PreVoteReply>, Status> {
            Err(Status::unimplemented("pre_vote"))
        }
    }

    /// Serves `peer` on a free local port; returns lanes to it and its call counter.
    async fn lanes_to(
        stalled: fn(usize) -> bool,
        stall: Duration,
        fail: Option<tonic::Code>,
    ) -> (Lanes, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let peer = Peer { calls: Arc::clone(&calls), stalled, stall, fail };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftServer::new(peer))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let clients =
            (0..HEDGE_LANES).map(|_| RaftClient::new(crate::network::peer_channel(&addr).expect("channel"))).collect();
        (Lanes::new(clients), calls)
    }

    #[tokio::test]
    async fn a_request_stuck_on_one_connection_is_answered_through_another() {
        let (mut lanes, calls) = lanes_to(|n| n == 0, Duration::from_secs(5), None).await;
        let started = Instant::now();
        let reply =
            lanes.call(RpcKind::Append, b"entries".to_vec(), Duration::from_secs(3), None).await.expect("answer");
        assert_eq!(reply.result, Some(raft_reply::Result::Ok(b"entries".to_vec())));
        // Connecting the second lane is part of it; a TCP retransmission timeout would be 200 ms.
        assert!(started.elapsed() < Duration::from_millis(150), "answered after {:?}", started.elapsed());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one attempt stuck, one hedge answered");
        // The first copy was lost, not slow: the next calls go out twice at once, on free lanes
        // (the stuck one stays busy). A copy more is allowed when a new lane's connection is slow
        // to open on a busy machine (it is then hedged as usual); fewer than two is the failure.
        let mut before = 2;
        for n in 1..=HEDGE_EAGER_CALLS {
            let started = Instant::now();
            lanes.call(RpcKind::Append, b"more".to_vec(), Duration::from_secs(3), None).await.expect("answer");
            assert!(started.elapsed() < Duration::from_millis(100), "answered after {:?}", started.elapsed());
            // Both copies are counted once both arrive.
            for _ in 0..100 {
                if calls.load(Ordering::SeqCst) >= before + 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let now = calls.load(Ordering::SeqCst);
            assert!(now >= before + 2, "call {n} after a loss is sent twice ({} copies)", now - before);
            before = now;
        }
        // Then one copy again, while the first answers in time.
        lanes.call(RpcKind::Append, b"quiet".to_vec(), Duration::from_secs(3), None).await.expect("answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), before + 1, "no hedge when in time");
    }

    #[tokio::test]
    async fn a_large_request_is_sent_again_only_after_its_own_transfer_time() {
        let (mut lanes, calls) = lanes_to(|n| n == 0, Duration::from_secs(5), None).await;
        // Under tonic's default 4 MiB message limit of the test peer.
        const LEN: usize = 3 * 1024 * 1024;
        let transfer = transfer_time(LEN);
        assert_eq!(transfer, Duration::from_millis(48));
        let started = Instant::now();
        let reply = lanes.call(RpcKind::Append, vec![7u8; LEN], Duration::from_secs(3), None).await.expect("answer");
        assert!(matches!(reply.result, Some(raft_reply::Result::Ok(ref p)) if p.len() == LEN));
        let took = started.elapsed();
        assert!(took >= HEDGE_DELAY_MIN + transfer, "the second copy went out after {took:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one attempt stuck, one hedge answered");
        // A copy was lost, but a request this large is not then sent twice at once.
        let started = Instant::now();
        lanes.call(RpcKind::Append, vec![7u8; LEN], Duration::from_secs(3), None).await.expect("answer");
        tokio::time::sleep(Duration::from_millis(50) + started.elapsed()).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one copy of the next large call");
    }

    #[tokio::test]
    async fn a_refusal_is_returned_not_retried_forever() {
        let (mut lanes, calls) = lanes_to(|_| false, Duration::ZERO, Some(tonic::Code::FailedPrecondition)).await;
        let err = lanes.call(RpcKind::Append, Vec::new(), Duration::from_secs(3), None).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal ends the call");
    }

    #[tokio::test]
    async fn a_silent_peer_gets_one_attempt_per_lane_until_the_deadline() {
        let (mut lanes, calls) = lanes_to(|_| true, Duration::from_secs(5), None).await;
        let started = Instant::now();
        let err =
            lanes.call(RpcKind::Append, Vec::new(), Duration::from_millis(400), None).await.expect_err("no answer");
        let took = started.elapsed();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
        assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(900), "gave up after {took:?}");
        assert_eq!(calls.load(Ordering::SeqCst), HEDGE_LANES, "at most one attempt per lane");
        // Every lane was freed at the deadline: the next call is sent at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = lanes.call(RpcKind::Append, Vec::new(), Duration::from_millis(100), None).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2 * HEDGE_LANES);
    }

    #[tokio::test]
    async fn a_silenced_call_sends_no_more_copies_and_ends_at_once() {
        let (mut lanes, calls) = lanes_to(|_| true, Duration::from_secs(5), None).await;
        let (tx, rx) = watch::channel(false);
        let started = Instant::now();
        let silence = async {
            // A few copies go out first (the hedge delay is 3 ms at the least).
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).expect("send");
        };
        let (result, ()) =
            tokio::join!(lanes.call(RpcKind::Append, Vec::new(), Duration::from_secs(3), Some(rx.clone())), silence);
        let err = result.expect_err("silenced");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
        assert!(started.elapsed() < Duration::from_millis(200), "ended after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = calls.load(Ordering::SeqCst);
        assert!((1..HEDGE_LANES).contains(&sent), "{sent} copies: none may go out once silenced");
        // Still silenced: nothing is sent at all.
        let err = lanes.call(RpcKind::Append, Vec::new(), Duration::from_secs(3), Some(rx)).await.expect_err("silent");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), sent);
    }
}
