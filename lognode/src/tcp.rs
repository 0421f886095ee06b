//! TCP options of the node's connections: a retransmission timeout for a LAN.
//!
//! Linux never retransmits a lost segment sooner than 200 ms (its smallest retransmission
//! timeout, sized for the Internet). A Raft RPC between nodes is one small request and one small
//! answer, with nothing behind them whose acknowledgements could reveal a loss sooner, so every lost
//! packet stalled replication, and every write waiting on it, for 200 ms or more. Since Linux 6.15
//! a socket may set its own floor (`TCP_RTO_MIN_US`); the timeout is then about one round trip
//! (which, for an AppendEntries, includes the follower's fsync) plus [`PEER_RTO_MIN`]. On an older
//! kernel the option is refused, logged once, and hedging and pings (see `hedge`) remain.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::{libc, setsockopt_impl, sockopt_impl};

use crate::limits::PEER_RTO_MIN;

/// `TCP_RTO_MIN_US` from Linux's `include/uapi/linux/tcp.h` (6.15 and later).
const TCP_RTO_MIN_US: libc::c_int = 45;

sockopt_impl!(
    /// The connection's smallest retransmission timeout, in microseconds.
    RtoMinUs,
    SetOnly,
    libc::IPPROTO_TCP,
    TCP_RTO_MIN_US,
    u32
);

static WARNED: AtomicBool = AtomicBool::new(false);

/// Sets `TCP_NODELAY` and the retransmission floor on a connection between nodes (or from a
/// gateway); failures leave the kernel's defaults.
pub fn tune(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let floor = u32::try_from(PEER_RTO_MIN.as_micros()).unwrap_or(u32::MAX);
    if let Err(e) = nix::sys::socket::setsockopt(stream, RtoMinUs, &floor)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            error = %e,
            "this kernel refuses TCP_RTO_MIN_US (Linux 6.15 and later have it): a packet lost between nodes \
             costs TCP's 200 ms retransmission timeout, less what hedged Raft RPCs recover"
        );
    }
}

#[cfg(test)]
mod tests {
    use nix::getsockopt_impl;
    use nix::sys::socket::GetSockOpt;

    use super::*;

    sockopt_impl!(RtoMinUsGet, GetOnly, libc::IPPROTO_TCP, TCP_RTO_MIN_US, u32);

    #[tokio::test]
    async fn connections_get_the_lan_retransmission_floor() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let stream = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        tune(&stream);
        assert!(stream.nodelay().expect("nodelay"));
        match RtoMinUsGet.get(&stream) {
            // Rounded up to the kernel's clock tick.
            Ok(us) => assert!(u128::from(us) >= PEER_RTO_MIN.as_micros() && us < 200_000, "TCP_RTO_MIN_US is {us} µs"),
            // Older kernels: nothing to check but that `tune` did not fail the connection.
            Err(e) => assert_eq!(e, nix::errno::Errno::ENOPROTOOPT, "{e}"),
        }
    }
}
