//! The conservation check can fail: against a fake gateway that acknowledges every write but
//! reports wrong balances, the generator must exit with status 2 and name the violation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use crate::support::run_bounded;

/// Connections the fake gateway serves before it stops accepting.
const FAKE_CONNECTIONS_MAX: usize = 16;
/// Requests one fake connection serves before it closes.
const FAKE_REQUESTS_PER_CONNECTION_MAX: usize = 100_000;

/// Serves one keep-alive connection: every POST is 201, every account read answers `balance`.
fn serve(stream: TcpStream, balance: i64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    for _ in 0..FAKE_REQUESTS_PER_CONNECTION_MAX {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0usize;
        for _ in 0..100 {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, json) = if request_line.starts_with("GET /v1/accounts/") {
            ("200 OK", format!(r#"{{"currency":"USD","balance":{balance},"debits_pending":0,"credits_pending":0}}"#))
        } else {
            ("201 Created", "{}".to_owned())
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn fake_gateway(balance: i64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(FAKE_CONNECTIONS_MAX).flatten() {
            std::thread::spawn(move || serve(stream, balance));
        }
    });
    url
}

fn run_against(url: &str) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.args(["--gateway", url, "--scenario", "transfers", "--concurrency", "2", "--duration", "1s"]);
    let out = run_bounded(cmd);
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn balances_that_do_not_sum_to_zero_fail_the_run() {
    let (code, out) = run_against(&fake_gateway(7));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("conservation: VIOLATED"), "{out}");
    assert!(out.contains("balances sum to 707, not 0"), "{out}");
}

#[test]
fn balances_that_miss_acknowledged_transfers_fail_the_run() {
    // Every balance 0: the sums are conserved, but the acknowledged transfers are not there.
    let (code, out) = run_against(&fake_gateway(0));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("conservation: VIOLATED"), "{out}");
    assert!(out.contains("but the acknowledged transfers give"), "{out}");
}

/// Longest a loadtest may take to finish after SIGINT (the load stops at once; the check reads
/// 100 accounts from the fake).
const STOP_AFTER_SIGNAL_MAX: std::time::Duration = std::time::Duration::from_secs(30);

#[test]
fn sigint_ends_the_load_early_and_the_check_still_runs() {
    let url = fake_gateway(7);
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--gateway", &url, "--scenario", "transfers", "--concurrency", "2", "--duration", "10m"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn loadtest");
    // Past the setup (instant against the fake), well into the 10-minute load.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success(), "kill -INT failed: {kill}");
    let deadline = std::time::Instant::now() + STOP_AFTER_SIGNAL_MAX;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadtest still running {STOP_AFTER_SIGNAL_MAX:?} after SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("SIGINT: load stopped"), "{text}");
    // The money check ran after the interruption (the fake's balances violate it: exit 2).
    assert!(text.contains("conservation: VIOLATED"), "{text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
}
