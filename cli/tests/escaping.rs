//! Terminal escapes from a hostile or broken server never reach the terminal (issue 21): the real
//! `ledger` binary against a canned HTTP server on 127.0.0.1 that answers with control characters
//! in a record key, a record value and a problem's detail, which the real gateway refuses to
//! store. Every control character must come out as `\u{..}`, and no raw ESC, BEL or CSI byte may
//! appear in stdout or stderr.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::ledger;

/// How long the canned server keeps answering.
const SERVER_LIFETIME: Duration = Duration::from_secs(30);
/// Connections it answers at most.
const SERVER_CONNECTIONS_MAX: usize = 64;
/// Largest request head it reads.
const REQUEST_HEAD_MAX: usize = 16 * 1024;

/// The hostile strings: a colour change and a BEL, a window-title change, and C1 CSI.
const KEY: &str = "\u{1b}[31mred\u{7}";
const VALUE: &str = "\u{1b}]0;pwned\u{7}";
const DETAIL: &str = "no such account \u{1b}[2J\u{9b}2J";

/// Answers `GET /v1/topics`, any `.../records` fetch and `GET /v1/accounts/...` with canned
/// JSON, one request per connection, until `SERVER_LIFETIME` or `SERVER_CONNECTIONS_MAX`.
fn canned_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut served = 0;
        while served < SERVER_CONNECTIONS_MAX && start.elapsed() < SERVER_LIFETIME {
            match listener.accept() {
                Ok((sock, _)) => {
                    served += 1;
                    answer(sock);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    url
}

fn answer(mut sock: TcpStream) {
    sock.set_nonblocking(false).expect("blocking");
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < REQUEST_HEAD_MAX {
        match sock.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = if path.contains("/records") {
        let body = serde_json::json!({
            "records": [{"offset": 0, "key": KEY, "value": {"v": VALUE}, "headers": {}, "timestamp": 1}],
            "next_offset": 1, "end_offset": 1,
        });
        ("200 OK", "application/json", body.to_string())
    } else if path.starts_with("/v1/topics") {
        ("200 OK", "application/json", serde_json::json!({"topics": [{"name": "t", "partitions": 1}]}).to_string())
    } else {
        let body = serde_json::json!({
            "type": "about:blank", "title": "Not Found", "status": 404, "code": "unknown_account", "detail": DETAIL,
        });
        ("404 Not Found", "application/problem+json", body.to_string())
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\nledger-index: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes());
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let raw: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n' && *c != '\t' && *c != '\r').collect();
    assert!(raw.is_empty(), "{what} carries raw control characters {raw:?}: {text:?}");
}

#[test]
fn tail_escapes_control_characters_in_keys_and_values() {
    let url = canned_server();
    let run = ledger(&url, &["tail", "t", "--max-records", "1"]);
    let out = run.ok();
    assert!(out.contains("t/0@0"), "{run:#?}");
    assert!(out.contains("key=\\u{1b}[31mred\\u{7}"), "the key is printed escaped: {run:#?}");
    assert!(out.contains("\\u001b]0;pwned\\u0007"), "the value is printed as escaped JSON: {run:#?}");
    assert_no_raw_controls("stdout", &run.stdout);
    assert_no_raw_controls("stderr", &run.stderr);
}

#[test]
fn server_error_details_are_printed_escaped() {
    let url = canned_server();
    let run = ledger(&url, &["account", "show", "x"]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("\\u{1b}[2J\\u{9b}2J"), "the detail is printed escaped: {run:#?}");
    assert_no_raw_controls("stdout", &run.stdout);
    assert_no_raw_controls("stderr", &run.stderr);
}
