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
    let dead = testkit::ports::RefusedAddr::new();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut cmd = gateway();
    cmd.args(["--listen", &listen, "--lognodes", &dead.addr()]);
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
        vec!["--listen", "127.0.0.1:0", "--lognodes", "b:2", "--gossip-peers-file", "/tmp/peers"],
    ] {
        let out = gateway().args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}: no error message");
    }
}

/// A TLS client trusting the CA at `ca` (PEM): `GET path` over HTTPS to `addr`, with the server
/// name `lognode` (what the test certificates carry); the raw answer, or why it failed.
fn https_get(addr: &str, ca: &std::path::Path, path: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
            roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("lognode").map_err(|e| e.to_string())?;
        let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
}

/// `--tls-cert`/`--tls-key`: the gateway serves HTTPS; plain HTTP to that port gets no answer;
/// unusable files stop it at start, naming the flag.
#[test]
fn tls_cert_and_key_serve_https() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = lognode_args::certs::ensure(&dir.path().join("tls"), &["gateway"]).expect("certificates");
    let (cert, key) = (files[0].cert.to_str().expect("utf-8"), files[0].key.to_str().expect("utf-8"));
    let listen = testkit::ports::free_addr();
    let mut cmd = gateway();
    cmd.args([
        "--listen",
        &listen,
        "--lognodes",
        "127.0.0.1:1",
        "--auth",
        "none",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let log = dir.path().join("gateway.log");
    let mut child = testkit::Proc::spawn("gateway", cmd, &log);
    let health = testkit::wait_until("gateway serving HTTPS", Duration::from_secs(20), || {
        https_get(&listen, &files[0].ca, "/healthz").ok()
    });
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let plain = testkit::raw_http::request_text(&listen, "GET", "/healthz", None);
    assert!(plain.as_deref().is_none_or(|p| !p.starts_with("HTTP/1.1 200")), "plain HTTP was served: {plain:?}");
    // A client that does not trust this CA refuses the server.
    let other = lognode_args::certs::ensure(&dir.path().join("other"), &["x"]).expect("another CA");
    let e = https_get(&listen, &other[0].ca, "/healthz").expect_err("a server of another CA");
    assert!(e.contains("handshake"), "{e}");
    let status = child.terminate(Duration::from_secs(20)).expect("gateway did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");

    let out = gateway()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--lognodes",
            "127.0.0.1:1",
            "--auth",
            "none",
            "--tls-cert",
            key,
            "--tls-key",
            key,
        ])
        .output()
        .expect("run");
    assert!(!out.status.success(), "a key given as the certificate was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert"), "{err}");
    let out = gateway()
        .args(["--listen", "127.0.0.1:0", "--lognodes", "127.0.0.1:1", "--tls-cert", cert])
        .output()
        .expect("run");
    assert!(!out.status.success(), "--tls-cert without --tls-key was accepted");
}
