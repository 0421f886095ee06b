//! The CLI against an HTTPS gateway (`gateway --tls-cert`, docs/SECURITY.md): `--ca-cert`
//! (`LEDGER_CA_CERT`) names the CA to trust; without it the CLI refuses the server.

use std::process::Command;
use std::time::Duration;

mod support;

#[test]
fn ca_cert_lets_the_cli_talk_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = lognode_args::certs::ensure(&dir.path().join("tls"), &["gateway"]).expect("certificates");
    let listen = testkit::ports::free_addr();
    let dead = testkit::ports::RefusedAddr::new();
    let mut cmd = testkit::process::hermetic(testkit::bins::workspace_bin("gateway"));
    cmd.args(["--listen", &listen, "--lognodes", &dead.addr(), "--auth", "none"]);
    cmd.arg("--tls-cert").arg(&files[0].cert).arg("--tls-key").arg(&files[0].key);
    let _gw = testkit::Proc::spawn("gateway", cmd, &dir.path().join("gateway.log"));
    let url = format!("https://{listen}");
    let ledger = |ca: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ledger"));
        c.args(["--gateway", &url, "cluster"]).env_remove("LEDGER_CA_CERT").env_remove("LEDGER_KEY");
        if let Some(ca) = ca {
            c.arg("--ca-cert").arg(ca);
        }
        c.output().expect("run ledger")
    };
    // Without a lognode the gateway answers 503: an answer over HTTPS (exit 1), not a failure
    // to reach it (exit 3).
    let out = testkit::wait_until("the gateway answering over HTTPS", Duration::from_secs(20), || {
        let out = ledger(Some(&files[0].ca));
        (out.status.code() == Some(1)).then_some(out)
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_leader") || err.contains("unavailable"), "{err}");
    let out = ledger(None);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ledger(Some(&dir.path().join("missing.pem")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-cert"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `ledger dev --https`: the gateway serves HTTPS with a certificate of the data dir's CA, the
/// banner says which CA to trust, and the CLI works through it with `--ca-cert`.
#[test]
fn ledger_dev_https_serves_the_api_over_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = support::Dev::start(&tmp.path().join("data"), 1, &["--no-projector", "--https"], &[]);
    let banner = dev.stdout();
    let https = dev.gateway.replace("http://", "https://");
    let ca = tmp.path().join("data/tls/ca.pem");
    assert!(banner.contains(&format!("{https}/v1/")) && banner.contains("LEDGER_CA_CERT="), "{banner}");
    let key = dev.admin_key();
    let ca_arg = ca.display().to_string();
    let out = support::ledger(&https, &["--api-key", &key, "--ca-cert", &ca_arg, "--json", "cluster"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let plain = support::ledger(&dev.gateway, &["--api-key", &key, "cluster"]);
    assert_ne!(plain.code, Some(0), "plain HTTP was served: {plain:?}");
}
