//! Hostile and careless clients against the real `gateway` binary over real lognodes (issue 21):
//! strings PostgreSQL or a terminal cannot take are refused with 400 `invalid_text`, and
//! thousands of idle sockets do not lock ordinary clients out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{Cluster, GatewayProc, Resp, SERIAL, request, request_raw, wait_for};

/// Idle connections the flood opens (the number from issue 21).
const FLOOD_CONNECTIONS: usize = 4300;
/// Source addresses the flood spreads over (each stays under the per-client cap).
const FLOOD_SOURCES: u8 = 20;
/// Ordinary requests must be served again within this (issue 21's bar).
const SERVED_WITHIN: Duration = Duration::from_secs(15);

/// Raises this process's soft open-files limit to the hard one (the flood needs ~5,000).
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    hard
}

/// A TCP connection to `to` from `127.0.0.<source>` that sends nothing.
async fn idle_conn(source: u8, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, source)), 0))?;
    sock.connect(to).await
}

/// True if the server closed `s` (EOF or reset) within `wait`.
async fn closed_by_server(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {} // e.g. an HTTP/2 SETTINGS frame: keep reading
        }
    }
}

/// One request on a fresh connection; `None` when the connection is refused, cut or slow (2 s).
async fn attempt(addr: SocketAddr, method: &str, path: &str, body: Option<&serde_json::Value>) -> Option<Resp> {
    use http_body_util::{BodyExt as _, Full};
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
        tokio::spawn(conn);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(hyper::body::Bytes::from(bytes)))
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.ok()?.to_bytes().to_vec();
        Some(Resp { status, headers, body })
    };
    tokio::time::timeout(Duration::from_secs(2), fut).await.ok().flatten()
}

/// Starts 3 lognodes and a gateway binary, and waits until the gateway takes writes.
async fn system() -> (Cluster, GatewayProc) {
    let cluster = Cluster::start();
    let gw = GatewayProc::start_join(&cluster.procs[0].gossip);
    let addr = gw.addr;
    wait_for("the gateway to take writes", Duration::from_secs(60), || async move {
        let r = attempt(addr, "POST", "/v1/accounts", Some(&json!({"id": "equity", "currency": "USD"}))).await?;
        matches!(r.status, 200 | 201).then_some(())
    })
    .await;
    (cluster, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_and_control_characters_are_refused_with_400_invalid_text() {
    let _serial = SERIAL.lock().await;
    let (_cluster, gw) = system().await;
    // The request of issue 21 that stopped the projector for good.
    let nul = br#"{"id":"x","currency":"USD","metadata":{"a":"\u0000"}}"#;
    let r = request_raw(gw.addr, "POST", "/v1/accounts", nul).await.expect(400, "NUL in metadata");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["code"], "invalid_text", "{:?}", r.json());
    let esc = br#"{"id":"t9","debit_account_id":"equity","credit_account_id":"x","amount":1,"currency":"USD","metadata":{"\u001b[2J":1}}"#;
    let r = request_raw(gw.addr, "POST", "/v1/transfers", esc).await.expect(400, "ESC in a metadata key");
    assert_eq!(r.json()["code"], "invalid_text");
    // A lone surrogate is not JSON text that can be decoded: 400 too.
    let lone = br#"{"id":"y","currency":"USD","metadata":{"a":"\ud800"}}"#;
    let r = request_raw(gw.addr, "POST", "/v1/accounts", lone).await;
    assert_eq!(r.status, 400, "lone surrogate: {}", String::from_utf8_lossy(&r.body));
    // Record keys reach terminals (`ledger tail`): no control characters at all.
    request(gw.addr, "POST", "/v1/topics", Some(&json!({"name": "t", "partitions": 1}))).await.expect(201, "topic");
    let r = request(
        gw.addr,
        "POST",
        "/v1/topics/t/records",
        Some(&json!({"records": [{"key": "k\u{1b}]0;pwned\u{7}", "value": {"a": 1}}]})),
    )
    .await
    .expect(400, "ESC in a record key");
    assert_eq!(r.json()["code"], "invalid_text");
    // Nothing was half-applied: "x" does not exist, and TAB/LF stay allowed in free text.
    request(gw.addr, "GET", "/v1/accounts/x", None).await.expect(404, "x was not created");
    request(
        gw.addr,
        "POST",
        "/v1/accounts",
        Some(&json!({"id": "x", "currency": "USD", "metadata": {"note": "two\nlines\tand a tab"}})),
    )
    .await
    .expect(201, "TAB and LF in metadata");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_idle_connections_leave_ordinary_requests_served() {
    let _serial = SERIAL.lock().await;
    let hard = raise_nofile();
    assert!(hard >= 6000, "RLIMIT_NOFILE hard limit {hard} is too low for this test (needs ~6,000)");
    let (_cluster, gw) = system().await;
    let addr = gw.addr;

    // One address may hold at most CONNECTIONS_PER_CLIENT_MAX connections: past it, closed at once.
    let cap = gateway::limits::CONNECTIONS_PER_CLIENT_MAX;
    let mut one_client = Vec::new();
    for _ in 0..cap + 20 {
        one_client.push(idle_conn(60, addr).await.expect("connect"));
    }
    for (i, s) in one_client.iter_mut().enumerate().skip(cap - 20) {
        let closed = closed_by_server(s, Duration::from_millis(if i >= cap { 1000 } else { 50 })).await;
        assert_eq!(closed, i >= cap, "connection {i} from one address (cap {cap}): closed = {closed}");
    }
    drop(one_client);

    // The flood: 4,300 sockets that send nothing (100 of them only the HTTP/2 preface).
    let mut flood = Vec::with_capacity(FLOOD_CONNECTIONS);
    for i in 0..FLOOD_CONNECTIONS {
        let source = 2 + (i % usize::from(FLOOD_SOURCES)) as u8;
        match idle_conn(source, addr).await {
            Ok(mut s) => {
                if i < 100 {
                    // Preface + an empty SETTINGS frame, then nothing.
                    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await;
                }
                flood.push(s);
            }
            Err(e) => panic!("flood connection {i} failed to connect: {e}"),
        }
    }
    let flooded = Instant::now();

    // Health checks get a reserved slot at once (idle sockets in those slots are cut after 1 s).
    wait_for("/healthz during the flood", Duration::from_secs(5), || async move {
        let r = attempt(addr, "GET", "/healthz", None).await?;
        (r.status == 200).then_some(())
    })
    .await;

    // Ordinary requests (a write and a read) are served again within SERVED_WITHIN.
    let mut served = None;
    let mut n = 0u64;
    while flooded.elapsed() < SERVED_WITHIN {
        n += 1;
        let body = json!({"id": format!("after-flood-{n}"), "currency": "USD"});
        if let Some(r) = attempt(addr, "POST", "/v1/accounts", Some(&body)).await
            && r.status == 201
        {
            served = Some((n, r.index(), flooded.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (n, index, after) =
        served.unwrap_or_else(|| panic!("no ordinary request served within {SERVED_WITHIN:?}:\n{}", gw.log()));
    request(addr, "GET", &format!("/v1/accounts/after-flood-{n}?min_index={index}"), None)
        .await
        .expect(200, "read after the flood");
    eprintln!("ordinary request served {after:?} after {FLOOD_CONNECTIONS} idle connections");

    // Every idle socket was closed by the server, FIRST_REQUEST_TIMEOUT after its accept (which
    // may lag the client's connect on a busy machine: the kernel completes handshakes first).
    let wait = (gateway::limits::FIRST_REQUEST_TIMEOUT * 2).saturating_sub(flooded.elapsed());
    let mut checks = tokio::task::JoinSet::new();
    for mut s in flood {
        checks.spawn(async move { closed_by_server(&mut s, wait.max(Duration::from_millis(100))).await });
    }
    let mut still_open = 0;
    while let Some(closed) = checks.join_next().await {
        if !closed.expect("join") {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "{still_open} of {FLOOD_CONNECTIONS} idle connections still open");
}

/// Per-client cap of the connection-cap test.
const CAP_PER_CLIENT: usize = 8;
/// Idle timeout of the idle-timeout test.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Sends `GET /healthz` (keep-alive) on `s` and reads one whole response; its status.
async fn healthz_on(s: &mut tokio::net::TcpStream) -> Option<u16> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())?;
            if buf.len() >= head_end + 4 + len {
                return text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// The gateway binary's connection flags (issue 21): with `--max-connections-per-client 8`, eight
/// idle connections from 127.0.0.1 hold their slots and a ninth from it is closed at once while
/// 127.0.0.2 is served; a closed connection frees its slot. With `--idle-timeout-ms 1500`, a
/// keep-alive connection that went quiet after a request is closed after about 1.5 s, and one
/// that keeps sending requests stays open. No lognode is needed: `/healthz` is served locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_client_connection_cap_and_idle_timeout_flags() {
    let cap = CAP_PER_CLIENT.to_string();
    let idle = IDLE_TIMEOUT.as_millis().to_string();
    // Nothing listens on port 9 (discard) here: the gateway starts without a reachable lognode.
    let gw = GatewayProc::start_static_with(
        &["127.0.0.1:9".to_owned()],
        &["--max-connections-per-client", &cap, "--idle-timeout-ms", &idle],
    );
    let addr = gw.addr;
    wait_for("the gateway to listen", Duration::from_secs(30), || async move {
        let mut s = idle_conn(3, addr).await.ok()?;
        (healthz_on(&mut s).await == Some(200)).then_some(())
    })
    .await;

    // The cap: 8 idle connections from 127.0.0.1 are held, the 9th is closed at once.
    let mut held = Vec::new();
    for _ in 0..CAP_PER_CLIENT {
        held.push(idle_conn(1, addr).await.expect("connect"));
    }
    let mut ninth = idle_conn(1, addr).await.expect("connect (the kernel accepts it)");
    assert!(closed_by_server(&mut ninth, Duration::from_secs(2)).await, "the 9th connection from 127.0.0.1 was kept");
    let mut other = idle_conn(2, addr).await.expect("connect from 127.0.0.2");
    assert_eq!(healthz_on(&mut other).await, Some(200), "another client address is served: {}", gw.log());
    assert!(!closed_by_server(&mut held[0], Duration::from_millis(500)).await, "a held connection was closed early");
    // Closing one frees its slot.
    drop(held.pop());
    wait_for("the freed slot to take a new connection", Duration::from_secs(5), || async move {
        let mut s = idle_conn(1, addr).await.ok()?;
        (healthz_on(&mut s).await == Some(200)).then_some(())
    })
    .await;
    drop(held);

    // The idle timeout: quiet after one request -> closed after ~1.5 s, not before ~1 s; a
    // connection that sends a request every 0.5 s meanwhile stays open for 4 s.
    let mut quiet = idle_conn(4, addr).await.expect("connect");
    let mut busy = idle_conn(5, addr).await.expect("connect");
    assert_eq!(healthz_on(&mut quiet).await, Some(200));
    let after_request = Instant::now();
    let busy_task = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(healthz_on(&mut busy).await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        statuses
    });
    assert!(
        closed_by_server(&mut quiet, Duration::from_secs(6)).await,
        "a quiet keep-alive connection stayed open past the idle timeout: {}",
        gw.log()
    );
    let closed_after = after_request.elapsed();
    assert!(closed_after >= Duration::from_millis(1000), "closed after {closed_after:?}, before the idle timeout");
    let statuses = busy_task.await.expect("busy client");
    assert!(statuses.iter().all(|s| *s == Some(200)), "a busy connection was closed: {statuses:?} {}", gw.log());
}

/// HTTP/2 frame types used below (RFC 9113 §6).
const H2_HEADERS: u8 = 0x1;
const H2_SETTINGS: u8 = 0x4;
const H2_PING: u8 = 0x6;
/// The ACK flag of SETTINGS and PING.
const H2_ACK: u8 = 0x1;

/// One HTTP/2 frame: type, flags, stream id, payload.
type H2Frame = (u8, u8, u32, Vec<u8>);

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame").to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The next frame; `Err(true)` when the server closed the connection, `Err(false)` when nothing
/// came within `wait`.
async fn h2_read(s: &mut tokio::net::TcpStream, wait: Duration) -> Result<H2Frame, bool> {
    let read = async {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.map_err(|_| true)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.map_err(|_| true)?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Ok((head[3], head[4], stream, payload))
    };
    tokio::time::timeout(wait, read).await.map_err(|_| false)?
}

/// An HTTP/2 connection with prior knowledge, written by hand so that no client library answers
/// the server's PINGs: sends `GET /healthz` on stream 1 and returns once its response headers
/// (`:status 200`) arrived.
async fn h2_healthz(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    // HPACK: :method GET (static 2), :scheme http (static 6), then :path and :authority as
    // literals without indexing (name from static 4 and 1), no Huffman coding.
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    out.extend(h2_frame(H2_HEADERS, 0x5, 1, &block)); // END_STREAM | END_HEADERS
    s.write_all(&out).await.expect("send the request");
    for _ in 0..16 {
        let (kind, flags, stream, payload) = h2_read(&mut s, Duration::from_secs(5)).await.expect("a frame");
        if kind == H2_SETTINGS && flags & H2_ACK == 0 {
            s.write_all(&h2_frame(H2_SETTINGS, H2_ACK, 0, &[])).await.expect("ack the settings");
        } else if kind == H2_HEADERS && stream == 1 {
            assert_eq!(payload.first(), Some(&0x88), "HPACK ':status 200' expected: {payload:?}");
            return s;
        }
    }
    panic!("no response headers among the first 16 frames");
}

/// Reads an HTTP/2 connection until the server closes it (at most `limit`), answering its PINGs
/// when `answer_pings`. Returns the PINGs seen and how long after the start it closed.
async fn h2_until_closed(mut s: tokio::net::TcpStream, answer_pings: bool, limit: Duration) -> (usize, Duration) {
    let start = Instant::now();
    let mut pings = 0;
    loop {
        let left = limit.checked_sub(start.elapsed()).unwrap_or_default();
        match h2_read(&mut s, left).await {
            Ok((H2_PING, flags, _, payload)) if flags & H2_ACK == 0 => {
                pings += 1;
                if answer_pings {
                    // A write can fail when the server closes at the same time: the next read says so.
                    let _ = s.write_all(&h2_frame(H2_PING, H2_ACK, 0, &payload)).await;
                }
            }
            Ok(_) => {}
            Err(true) => return (pings, start.elapsed()),
            Err(false) => panic!("the connection stayed open for {limit:?} ({pings} PINGs)"),
        }
    }
}

/// HTTP/2 connection hygiene of the gateway binary (issue 21), with `--http2-keepalive-ms 1000
/// --idle-timeout-ms 4000`, over hand-written frames: the gateway PINGs an HTTP/2 connection
/// every second; a peer that answers the PINGs but sends no request is still closed by the
/// idle timeout (about 4 s after its last request); a peer that stops answering PINGs (it
/// vanished) is closed within two intervals, well before the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_peers_get_keepalive_pings_and_the_idle_timeout() {
    let gw = GatewayProc::start_static_with(
        &["127.0.0.1:9".to_owned()],
        &["--http2-keepalive-ms", "1000", "--idle-timeout-ms", "4000"],
    );
    let addr = gw.addr;
    wait_for("the gateway to listen", Duration::from_secs(30), || async move {
        let mut s = idle_conn(3, addr).await.ok()?;
        (healthz_on(&mut s).await == Some(200)).then_some(())
    })
    .await;

    let answering = h2_healthz(addr).await;
    let silent = h2_healthz(addr).await;
    let limit = Duration::from_secs(12);
    let (answered, silent) =
        tokio::join!(h2_until_closed(answering, true, limit), h2_until_closed(silent, false, limit));
    let log = gw.log();
    // Answering: PINGs about every second, and closed by the idle timeout, not before it.
    assert!(answered.0 >= 2, "{} PINGs in {:?}: {log}", answered.0, answered.1);
    assert!(
        answered.1 >= Duration::from_millis(3_500),
        "closed after {:?}, before the idle timeout: {log}",
        answered.1
    );
    // Silent: closed for the unanswered PING (1 s + at most 1 s), before the idle timeout.
    assert!(silent.0 >= 1, "no PING before closing a silent peer: {log}");
    assert!(silent.1 < Duration::from_millis(3_500), "a peer ignoring PINGs was kept {:?}: {log}", silent.1);
}
