//! Free ports on 127.0.0.1.

use std::net::{TcpListener, UdpSocket};

/// Attempts at finding a port free for both TCP and UDP before giving up.
pub const FREE_PORT_ATTEMPTS_MAX: usize = 100;

/// A port free for both TCP and UDP on 127.0.0.1 (gossip uses both). Panics after
/// [`FREE_PORT_ATTEMPTS_MAX`] attempts.
pub fn free_port() -> u16 {
    for _ in 0..FREE_PORT_ATTEMPTS_MAX {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for TCP and UDP on 127.0.0.1 in {FREE_PORT_ATTEMPTS_MAX} attempts");
}

/// `127.0.0.1:<a free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
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
}
