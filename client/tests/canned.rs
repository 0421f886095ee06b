//! The client against a canned HTTP/1.1 server on 127.0.0.1: what it sends
//! (method, path, query, body) and how it reads answers (headers, problems,
//! 204, timeouts). The real gateway is exercised by the CLI and projector
//! tests.

use std::time::Duration;

use ledger_client::{Client, Consistency, Error, NewTransfer, PartitionOffset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bound on one test exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request the canned server reads.
const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Serves one connection: reads one request, answers `response`, returns the
/// request's head and body as text.
async fn one_exchange(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.expect("read");
            assert!(n > 0, "client closed before sending a full request");
            buf.extend_from_slice(&chunk[..n]);
            assert!(buf.len() <= REQUEST_BYTES_MAX, "request too large");
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .map_or(0, |v| v.parse::<usize>().expect("content-length"));
                if buf.len() >= head_end + 4 + len {
                    break;
                }
            }
        }
        sock.write_all(response.as_bytes()).await.expect("write");
        sock.shutdown().await.ok();
        String::from_utf8_lossy(&buf).to_string()
    });
    (url, task)
}

async fn request_of(task: tokio::task::JoinHandle<String>) -> String {
    tokio::time::timeout(EXCHANGE_TIMEOUT, task).await.expect("exchange in time").expect("server task")
}

#[tokio::test]
async fn transfer_replay_reads_headers_and_sends_json() {
    let body = r#"{"id":"t1","debit_account_id":"a","credit_account_id":"b","amount":5,"currency":"USD","status":"posted","index":42,"x_new":1}"#;
    let resp: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nledger-index: 42\r\nidempotent-replayed: true\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let (url, task) = one_exchange(resp).await;
    let c = Client::new(&url).expect("client");
    let t = NewTransfer {
        id: "t1".into(),
        debit_account_id: "a".into(),
        credit_account_id: "b".into(),
        amount: 5,
        currency: "USD".into(),
        ..NewTransfer::default()
    };
    let w = c.create_transfer(&t).await.expect("replay is a success");
    assert_eq!((w.index, w.replayed, w.body.status.as_str(), w.body.amount), (42, true, "posted", 5));
    let req = request_of(task).await;
    assert!(req.starts_with("POST /v1/transfers HTTP/1.1\r\n"), "{req}");
    assert!(req.to_ascii_lowercase().contains("content-type: application/json"), "{req}");
    assert!(
        req.ends_with(r#"{"id":"t1","debit_account_id":"a","credit_account_id":"b","amount":5,"currency":"USD"}"#),
        "{req}"
    );
}

#[tokio::test]
async fn problem_json_becomes_error_with_code_and_retry_after() {
    let body = r#"{"type":"urn:ledger:problem:no_leader","title":"No leader","status":503,"detail":"election in progress","code":"no_leader"}"#;
    let resp: &'static str = Box::leak(
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let (url, task) = one_exchange(resp).await;
    let c = Client::new(&url).expect("client");
    let err = c.account("alice/1", Consistency::MinIndex(7)).await.expect_err("503");
    assert_eq!((err.status(), err.code()), (Some(503), Some("no_leader")));
    assert!(err.is_retryable());
    match &err {
        Error::Problem(p) => assert_eq!(p.retry_after_s, Some(1)),
        other => panic!("expected a problem, got {other:?}"),
    }
    assert_eq!(err.to_string(), "503 no_leader: election in progress (retry after 1 s)");
    let req = request_of(task).await;
    assert!(req.starts_with("GET /v1/accounts/alice%2F1?min_index=7 HTTP/1.1\r\n"), "{req}");
}

#[tokio::test]
async fn commit_offsets_accepts_204() {
    let (url, task) = one_exchange("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
    let c = Client::new(&url).expect("client");
    let offsets = [PartitionOffset { topic: "ledger".into(), partition: 3, offset: 17 }];
    c.commit_offsets("projector", "projector-1", 4, &offsets).await.expect("204 is success");
    let req = request_of(task).await;
    assert!(req.starts_with("POST /v1/groups/projector/members/projector-1/offsets HTTP/1.1\r\n"), "{req}");
    assert!(req.ends_with(r#"{"generation":4,"offsets":[{"topic":"ledger","partition":3,"offset":17}]}"#), "{req}");
}

#[tokio::test]
async fn delete_group_sends_delete_and_reads_the_index() {
    let (url, task) = one_exchange("HTTP/1.1 204 No Content\r\nledger-index: 42\r\nconnection: close\r\n\r\n").await;
    let c = Client::new(&url).expect("client");
    assert_eq!(c.delete_group("billing").await.expect("204 is success"), 42);
    let req = request_of(task).await;
    assert!(req.starts_with("DELETE /v1/groups/billing HTTP/1.1\r\n"), "{req}");
}

#[tokio::test]
async fn unreachable_gateway_and_timeouts_are_transport_errors() {
    // A port with nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let c = Client::with_timeout(&format!("http://{addr}"), Duration::from_secs(2)).expect("client");
    let err = c.cluster().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());

    // A server that accepts and never answers: the deadline fires.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let conn = silent.accept().await;
        tokio::time::sleep(EXCHANGE_TIMEOUT).await;
        drop(conn);
    });
    let c = Client::with_timeout(&url, Duration::from_millis(300)).expect("client");
    let err = tokio::time::timeout(EXCHANGE_TIMEOUT, c.topics()).await.expect("deadline honoured").expect_err("silent");
    assert!(err.to_string().contains("timed out"), "{err}");
    hold.abort();
}
