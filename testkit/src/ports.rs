//! Free ports on 127.0.0.1, and addresses there that refuse connections ([`RefusedAddr`]).
//!
//! Ports are handed out from below the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), never from it: a test picks a port, releases it
//! and binds it later (a node started after another), and a port of the ephemeral range can be
//! taken meanwhile by any outgoing connection (lognode opens several per peer), which failed the
//! in-process cluster test once with "Address already in use". Within a process, ports come from
//! one cursor, so no port is handed out twice; the cursor starts at a place derived from the
//! process id and the clock, so that test processes running side by side start apart.

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Attempts at finding a port free for both TCP and UDP before giving up.
pub const FREE_PORT_ATTEMPTS_MAX: usize = 100;
/// Lowest port handed out (above the well-known and registered ports the machine's own services
/// use: PostgreSQL, MariaDB, Redis, RabbitMQ, NATS, Mosquitto).
pub const FREE_PORT_FLOOR: u16 = 20_000;
/// Fewest ports between [`FREE_PORT_FLOOR`] and the ephemeral range for that span to be used;
/// with fewer, ports come from the kernel (`127.0.0.1:0`) as before.
pub const FREE_PORT_SPAN_MIN: u16 = 1_000;

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32_768)
}

/// The next port to try: the cursor's, then it moves on (wrapping inside the span).
fn next_candidate(span: u16) -> u16 {
    static CURSOR: Mutex<Option<u16>> = Mutex::new(None);
    let mut cursor = CURSOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = *cursor.get_or_insert_with(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let seed = u64::from(std::process::id()).wrapping_mul(7_919) ^ u64::from(nanos);
        (seed % u64::from(span)) as u16
    });
    *cursor = Some((at + 1) % span);
    FREE_PORT_FLOOR + at
}

/// A port free for both TCP and UDP on 127.0.0.1 (gossip uses both), outside the ephemeral
/// range. Panics after [`FREE_PORT_ATTEMPTS_MAX`] attempts.
pub fn free_port() -> u16 {
    let span = ephemeral_low().saturating_sub(FREE_PORT_FLOOR);
    for _ in 0..FREE_PORT_ATTEMPTS_MAX {
        let port = if span >= FREE_PORT_SPAN_MIN {
            next_candidate(span)
        } else {
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
        };
        if is_free(port) {
            return port;
        }
    }
    panic!("no port free for TCP and UDP on 127.0.0.1 in {FREE_PORT_ATTEMPTS_MAX} attempts");
}

/// `127.0.0.1:<a free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// An address on 127.0.0.1 where every TCP connection is refused, for as long as the value lives:
/// a socket bound to a port but never listening. Nothing else can bind the port meanwhile, so
/// it cannot become another test's listener. (A port taken and released with `bind(":0")` can:
/// a gateway given such a port as its "dead" lognode once reached a second gateway started by a
/// test running beside it, and got that gateway's 404 instead of a refused connection.)
pub struct RefusedAddr {
    _socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl RefusedAddr {
    /// Binds a socket on 127.0.0.1 (a port of the kernel's choosing) without listening on it.
    pub fn new() -> RefusedAddr {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local addr");
        RefusedAddr { _socket: socket, addr }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Default for RefusedAddr {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `port` is free for both TCP and UDP on 127.0.0.1 right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_free_and_a_bound_one_is_not() {
        let port = free_port();
        assert!(is_free(port));
        let _held = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        assert!(!is_free(port));
    }

    /// A refused address refuses connections, and its port cannot be bound by anyone else
    /// (tokio's listeners set `SO_REUSEADDR`, as the gateway's do) until it is dropped.
    #[test]
    fn a_refused_addr_refuses_connections_and_keeps_its_port() {
        let refused = RefusedAddr::new();
        let err = std::net::TcpStream::connect(refused.addr()).expect_err("a connection was accepted");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
        rt.block_on(async {
            assert!(tokio::net::TcpListener::bind(refused.addr()).await.is_err(), "another listener took the port");
        });
        assert!(TcpListener::bind(refused.addr()).is_err(), "std took the port");
        let port = refused.port();
        drop(refused);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "the port is not released on drop");
    }

    /// Ports come from below the ephemeral range (where no outgoing connection takes them) and
    /// are not handed out twice by one process.
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_distinct() {
        let low = ephemeral_low();
        assert!(
            low.saturating_sub(FREE_PORT_FLOOR) >= FREE_PORT_SPAN_MIN,
            "this machine's ephemeral range starts at {low}"
        );
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        for p in &ports {
            assert!((FREE_PORT_FLOOR..low).contains(p), "port {p} outside {FREE_PORT_FLOOR}..{low}");
        }
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
    }
}
