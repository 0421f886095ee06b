//! The `gateway` binary's command line.

use std::process::Command;

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LEDGER_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn openapi_subcommand_prints_the_generated_document() {
    let out = gateway().arg("openapi").output().expect("run gateway openapi");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), gateway::openapi::spec_json());
}

/// With no lognode reachable the binary still serves: alive, not ready; SIGTERM stops it cleanly.
#[test]
fn binary_serves_without_a_cluster_and_stops_on_sigterm() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut child = gateway()
        .args(["--listen", &listen, "--lognodes", &dead])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let get = |path: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(&listen).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(r) = get("/healthz") {
            break r;
        }
        assert!(Instant::now() < deadline, "gateway did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = get("/readyz").expect("readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.to_ascii_lowercase().contains("retry-after:"), "{ready}");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("gateway did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn invalid_flags_are_rejected() {
    for args in [
        vec!["--listen", "127.0.0.1:0"],
        vec!["--listen", "127.0.0.1:0", "--join", "a:1", "--lognodes", "b:2"],
        vec!["--listen", "nope", "--lognodes", "b:2"],
        vec!["--listen", "127.0.0.1:99999", "--lognodes", "b:2"],
        vec!["--listen", "127.0.0.1:0", "--lognodes", "b"],
        vec!["--listen", "127.0.0.1:0", "--lognodes", "b:2", "--gossip-addr", "c:3"],
        vec!["--listen", "127.0.0.1:0", "--join", "127.0.0.1:7946"],
    ] {
        let out = gateway().args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}: no error message");
    }
}
