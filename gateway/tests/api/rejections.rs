//! Rejections answered by a real `gateway` process (the binary, over raw TCP so that any byte
//! can be sent): every one is `application/problem+json` with a stable code, including what no
//! handler sees (unknown routes, wrong methods, content types, oversized bodies, bad path
//! segments, malformed `Authorization`, control characters in headers), plus the two cross-site
//! protections (JSON content type on every write, `--allowed-hosts`). No lognode is needed: the
//! gateway points at a closed port and each request is refused before any backend call.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound of the gateway's start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound of one raw request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The `gateway` binary with `--lognodes` on a closed port; killed on drop.
struct Gw {
    addr: String,
    child: Child,
    /// The gateway's lognode address: held so that it refuses connections until the end.
    _dead: testkit::ports::RefusedAddr,
}

impl Gw {
    fn start(extra: &[&str]) -> Gw {
        // Ports of the kit: a listen port no other test of this process is handed, and a
        // lognode address that refuses connections for the whole test (never another's listener).
        let addr = testkit::ports::free_addr();
        let dead = testkit::ports::RefusedAddr::new();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LEDGER_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args([
                "--auth",
                "none",
                "--listen",
                &addr,
                "--lognodes",
                &dead.addr(),
                "--admin-token",
                "s3cret",
                "--max-body-bytes",
                "1024",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gateway");
        let gw = Gw { addr, child, _dead: dead };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(&gw.addr).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    /// Sends `head` (request line and headers, without the final blank line), a
    /// `content-length` and `body`; returns (status, lower-case headers, body).
    fn raw(&self, head: &[u8], body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut req = head.to_vec();
        req.extend_from_slice(format!("\r\nconnection: close\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        s.write_all(&req).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
        let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.get(split + 4..).unwrap_or_default().to_vec();
        (status, head, body)
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a problem+json answer; `Err` names what is wrong.
fn check(answer: &(u16, String, Vec<u8>), status: u16, code: &str) -> Result<(), String> {
    let (got, head, body) = answer;
    let text = String::from_utf8_lossy(body);
    if *got != status {
        return Err(format!("status {got} (want {status}); body {text}"));
    }
    if !head.contains("\r\ncontent-type: application/problem+json") {
        return Err(format!("not problem+json: {head}"));
    }
    let p: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON ({e}): {text}"))?;
    let ok = p["code"] == code
        && p["status"] == status
        && p["type"] == format!("urn:ledger:problem:{code}")
        && p["retryable"].is_boolean()
        && p["detail"].as_str().is_some_and(|d| !d.is_empty());
    if ok { Ok(()) } else { Err(format!("problem {p} (want code {code})")) }
}

/// (what, request head, body, status, code)
type Case<'a> = (&'a str, Vec<u8>, &'a [u8], u16, &'a str);

#[test]
fn every_rejection_of_a_real_gateway_process_is_problem_json_with_a_stable_code() {
    let gw = Gw::start(&[]);
    let big = vec![b' '; 2048];
    let cases: Vec<Case<'_>> = vec![
        ("unknown route", b"GET /v1/nope HTTP/1.1\r\nhost: x".to_vec(), b"", 404, "not_found"),
        ("unknown route, POST", b"POST /nope HTTP/1.1\r\nhost: x".to_vec(), b"{}", 404, "not_found"),
        ("wrong method", b"DELETE /v1/accounts HTTP/1.1\r\nhost: x".to_vec(), b"", 405, "method_not_allowed"),
        ("wrong method, PUT", b"PUT /v1/transfers/t1 HTTP/1.1\r\nhost: x".to_vec(), b"", 405, "method_not_allowed"),
        (
            "text/plain body",
            b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain".to_vec(),
            b"{}",
            415,
            "unsupported_media_type",
        ),
        (
            "form body",
            b"POST /v1/transfers HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded".to_vec(),
            b"a=b",
            415,
            "unsupported_media_type",
        ),
        (
            "body over the limit",
            b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json".to_vec(),
            &big,
            413,
            "body_too_large",
        ),
        ("invalid UTF-8 in a path segment", b"GET /v1/accounts/%FF HTTP/1.1\r\nhost: x".to_vec(), b"", 400, "invalid_path"),
        ("non-ASCII account id", b"GET /v1/accounts/%C3%A9 HTTP/1.1\r\nhost: x".to_vec(), b"", 422, "invalid_id"),
        (
            "non-ASCII group id",
            b"POST /v1/groups/%C3%A9/offsets/reset HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer s3cret"
                .to_vec(),
            br#"{"topic":"t","to":"earliest"}"#,
            400,
            "invalid_group_id",
        ),
        (
            "non-numeric node id",
            b"POST /v1/cluster/nodes/abc/remove HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer s3cret"
                .to_vec(),
            b"",
            400,
            "invalid_path",
        ),
        ("partition not a number", b"GET /v1/topics/t/partitions/x/records HTTP/1.1\r\nhost: x".to_vec(), b"", 400, "invalid_path"),
        ("unknown query parameter", b"GET /v1/accounts/a?nope=1 HTTP/1.1\r\nhost: x".to_vec(), b"", 400, "invalid_query"),
        (
            "Authorization of another scheme",
            b"POST /v1/cluster/nodes/1/remove HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Basic czNjcmV0".to_vec(),
            b"",
            401,
            "unauthorized",
        ),
        (
            "Authorization with non-ASCII bytes",
            b"POST /v1/cluster/nodes/1/remove HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer \xc3\xa9".to_vec(),
            b"",
            401,
            "unauthorized",
        ),
        (
            "Authorization with a control character",
            b"POST /v1/cluster/nodes/1/remove HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer s3\x01cret"
                .to_vec(),
            b"",
            401,
            "unauthorized",
        ),
        (
            "reset with a control character in Authorization",
            b"POST /v1/groups/g/offsets/reset HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: \x1f".to_vec(),
            br#"{"topic":"t","to":"earliest"}"#,
            401,
            "unauthorized",
        ),
        (
            "Content-Type with a control character",
            b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\x7f".to_vec(),
            br#"{"id":"a","currency":"USD"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json".to_vec(),
            b"{",
            400,
            "malformed_json",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, head, body, status, code)| {
            check(&gw.raw(head, body), *status, code).err().map(|e| format!("{what}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Cross-site safety: a browser can send a POST without a CORS preflight only with a "simple"
/// content type or none; every write needs `Content-Type: application/json`, even with no body.
#[test]
fn writes_without_a_json_content_type_are_refused_by_a_real_gateway_process() {
    let gw = Gw::start(&[]);
    let writes: [&[u8]; 6] = [
        b"POST /v1/transfers/t1/void HTTP/1.1\r\nhost: x",
        b"POST /v1/transfers/t1/post HTTP/1.1\r\nhost: x",
        b"POST /v1/cluster/nodes/1/remove HTTP/1.1\r\nhost: x\r\nauthorization: Bearer s3cret",
        b"POST /v1/groups/g/members/g-1/heartbeat HTTP/1.1\r\nhost: x",
        b"DELETE /v1/groups/g/members/g-1 HTTP/1.1\r\nhost: x",
        b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain",
    ];
    for head in writes {
        let what = String::from_utf8_lossy(head).lines().next().unwrap_or_default().to_owned();
        let r = gw.raw(head, b"");
        if let Err(e) = check(&r, 415, "unsupported_media_type") {
            panic!("{what} without a JSON content type: {e}");
        }
    }
    // With the header (and no body) the same request reaches its handler: here the backend is
    // down, so 503, which shows the content-type gate let it through.
    let r = gw.raw(b"POST /v1/transfers/t1/void HTTP/1.1\r\nhost: x\r\ncontent-type: application/json", b"");
    assert!(r.0 == 503 || r.0 == 404, "void with the header: {} {}", r.0, String::from_utf8_lossy(&r.2));
    // Reads need no content type.
    let r = gw.raw(b"GET /healthz HTTP/1.1\r\nhost: x", b"");
    assert_eq!(r.0, 200, "{}", String::from_utf8_lossy(&r.2));
}

/// DNS-rebinding protection: with `--allowed-hosts`, another `Host` gets 421 `host_not_allowed`.
#[test]
fn a_host_outside_allowed_hosts_is_refused_by_a_real_gateway_process() {
    let gw = Gw::start(&["--allowed-hosts", "ledger.internal,127.0.0.1"]);
    for host in ["evil.example", "ledger.internal.evil.example", "localhost", "ledger.internal\u{1}"] {
        let head = format!("GET /v1/topics HTTP/1.1\r\nhost: {host}");
        let r = gw.raw(head.as_bytes(), b"");
        if let Err(e) = check(&r, 421, "host_not_allowed") {
            panic!("Host {host:?}: {e}");
        }
    }
    let r = gw.raw(b"POST /v1/accounts HTTP/1.1\r\nhost: evil.example:80\r\ncontent-type: application/json", b"{}");
    check(&r, 421, "host_not_allowed").unwrap_or_else(|e| panic!("a write from another host: {e}"));
    // Listed hosts, with or without a port, reach the API (the backend is down: 503, not 421).
    for host in ["ledger.internal", "LEDGER.internal:8080", "127.0.0.1:9"] {
        let head = format!("GET /v1/topics HTTP/1.1\r\nhost: {host}");
        let r = gw.raw(head.as_bytes(), b"");
        assert_eq!(r.0, 503, "Host {host}: {}", String::from_utf8_lossy(&r.2));
    }
    // Probes address the gateway by IP: /healthz is exempt.
    assert_eq!(gw.raw(b"GET /healthz HTTP/1.1\r\nhost: 10.1.2.3", b"").0, 200);

    // Without the option every host is served.
    let open = Gw::start(&[]);
    assert_eq!(open.raw(b"GET /v1/topics HTTP/1.1\r\nhost: evil.example", b"").0, 503);
}

#[test]
fn allowed_hosts_match_a_name_with_any_port_or_an_exact_host_port() {
    use gateway::server::host_allowed;
    let list = ["ledger.internal".to_owned(), "10.0.0.5:8080".to_owned(), "[::1]".to_owned()];
    for ok in ["ledger.internal", "ledger.internal:443", "10.0.0.5:8080", "[::1]", "[::1]:8080"] {
        assert!(host_allowed(&list, ok), "{ok} should be allowed");
    }
    for bad in ["evil.example", "ledger.internal.evil", "10.0.0.5", "10.0.0.5:9090", "ledger.internal:x", "", "::1"] {
        assert!(!host_allowed(&list, bad), "{bad} should be refused");
    }
}
