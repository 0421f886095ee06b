//! gRPC services: the Raft transport ([`raft_service`]) and the client API ([`client_service`]).

pub mod batcher;
pub mod client_service;
pub mod deadline;
pub mod raft_service;

use crate::limits::{COMMAND_BYTES_MAX, PROPOSAL_BYTES_MAX};

/// The encoded size of `value` (as the log stores it), without encoding it.
fn encoded_size<T: serde::Serialize>(value: &T) -> usize {
    crate::codec::encoded_len(value)
}

/// Refuses a request whose Raft entry the log could not store (see [`PROPOSAL_BYTES_MAX`]).
pub fn check_proposal(request: &crate::types::Request) -> Result<(), tonic::Status> {
    let n = encoded_size(request);
    if n > PROPOSAL_BYTES_MAX {
        return Err(tonic::Status::invalid_argument(format!(
            "the request encodes to {n} bytes; the log's record limit allows at most {PROPOSAL_BYTES_MAX}"
        )));
    }
    Ok(())
}

/// Refuses one client command larger than [`COMMAND_BYTES_MAX`] (`what` names it).
pub fn check_command<T: serde::Serialize>(what: &str, command: &T) -> Result<(), tonic::Status> {
    let n = encoded_size(command);
    if n > COMMAND_BYTES_MAX {
        return Err(tonic::Status::invalid_argument(format!(
            "{what} encodes to {n} bytes; at most {COMMAND_BYTES_MAX}"
        )));
    }
    Ok(())
}

/// Streams open per caller address (`CONSUME_STREAMS_PER_CALLER_MAX`).
#[derive(Debug, Default)]
pub struct PerCaller(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One counted stream of a caller; uncounted on drop.
#[derive(Debug)]
pub struct CallerSlot {
    table: std::sync::Arc<PerCaller>,
    ip: std::net::IpAddr,
}

impl PerCaller {
    /// Counts one more stream of `ip`, or `None` when it has `max` open.
    pub fn try_add(self: &std::sync::Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<CallerSlot> {
        let mut t = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(CallerSlot { table: self.clone(), ip })
    }
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = t.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// A TCP connection holding one of the server's connection slots (`SERVER_CONNECTIONS_MAX`)
/// until it closes.
#[derive(Debug)]
pub struct CappedConn {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl CappedConn {
    /// Wraps an accepted connection and its slot.
    pub fn new(stream: tokio::net::TcpStream, slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        CappedConn { stream, _slot: slot }
    }
}

impl tokio::io::AsyncRead for CappedConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CappedConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for CappedConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// The server's incoming connections: accepted from `listener` with `TCP_NODELAY` and a LAN's
/// retransmission timeout (`tcp::tune`), each holding a
/// slot of `slots`; past the cap a new connection is closed at once (and logged, rate-limited).
pub fn capped_incoming(
    listener: tokio::net::TcpListener,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
) -> impl tokio_stream::Stream<Item = std::io::Result<CappedConn>> {
    use tokio_stream::StreamExt as _;
    let refused = std::sync::atomic::AtomicU64::new(0);
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Ok(stream) => match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                crate::tcp::tune(&stream);
                Some(Ok(CappedConn::new(stream, slot)))
            }
            Err(_) => {
                let n = refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(
                        refused_so_far = n + 1,
                        limit = crate::limits::SERVER_CONNECTIONS_MAX,
                        "too many gRPC connections; closing a new one"
                    );
                }
                None
            }
        },
        Err(e) => Some(Err(e)),
    })
}
