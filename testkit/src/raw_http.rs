//! A blocking HTTP/1.1 request over a plain `TcpStream` (no runtime, no client library): for tests
//! that only need a status line and a body, such as readiness probes of a gateway process.

use std::io::{Read as _, Write as _};
use std::time::Duration;

/// Longest wait for a response once connected.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `method path` (with a JSON body if any, `connection: close`) to `addr` (`host:port`); the
/// whole response text, `None` when the connection or the exchange fails.
pub fn request_text(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Like [`request_text`]: the status and the body.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let out = request_text(addr, method, path, body)?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}
