//! The `gateway` binary's command line.

use std::process::Command;

fn gateway() -> Command {
    testkit::process::hermetic(env!("CARGO_BIN_EXE_gateway"))
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
    use std::time::Duration;
    let listen = testkit::ports::free_addr();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").to_string();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut cmd = gateway();
    cmd.args(["--listen", &listen, "--lognodes", &dead]);
    let mut child = testkit::Proc::spawn("gateway", cmd, log.path());
    let get = |path: &str| testkit::raw_http::request_text(&listen, "GET", path, None);
    let health = testkit::wait_until("gateway listening", Duration::from_secs(20), || get("/healthz"));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = get("/readyz").expect("readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.to_ascii_lowercase().contains("retry-after:"), "{ready}");
    let status = child.terminate(Duration::from_secs(20)).expect("gateway did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// `--auth none` opens every route: the gateway refuses it on an address other hosts can reach.
#[test]
fn auth_none_is_refused_off_loopback() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let out =
            gateway().args(["--listen", listen, "--lognodes", "127.0.0.1:1", "--auth", "none"]).output().expect("run");
        assert!(!out.status.success(), "{listen} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--auth none") && err.contains("loopback"), "{listen}: {err}");
    }
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
