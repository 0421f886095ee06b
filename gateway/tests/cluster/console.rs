//! The console (`/console`, issue 18) in a real browser: Debian's `chromium`, driven by npm's
//! `playwright-core` (`tests/console/console.test.mjs`), against three lognodes and the `gateway`
//! binary asking for API keys. The script loads every page, creates accounts and transfers from
//! the forms, watches balances and a group's lag change, posts a pending transfer, sees a
//! problem+json error, and checks what a read-only key is shown. A missing browser or npm
//! package fails the test with the command that installs it (`.ci/run` installs both).

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{Cluster, GatewayProc, SERIAL, wait_for};

/// The bootstrap admin key's secret.
const ADMIN: &str = "lk_console_admin_secret_0123456789abcdef0123";
/// Longest wait for the gateway to know the admin key (an election, then the bootstrap).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest run of the browser script (about 20 s when all is well).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let node = crate::tools::require("node", "apt-get install nodejs npm");
    let chromium = crate::tools::require("chromium", "apt-get install chromium");
    crate::tools::console_modules("playwright-core");
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = crate::support::write_admin_key(dir.path(), ADMIN);
    let cluster = Cluster::builder().extra(&["--admin-key-file", key_file.to_str().expect("utf-8 path")]).start();
    let gw = GatewayProc::start_static_with(&cluster.grpc_addrs(), &["--auth", "keys"]);
    wait_for("the admin key to work at the gateway", READY_TIMEOUT, || async {
        // The gateway process may not listen yet.
        let up = tokio::net::TcpStream::connect(gw.addr).await.is_ok();
        (up && crate::auth_walk::call(gw.addr, "GET", "/v1/whoami", Some(ADMIN), None).await.status == 200)
            .then_some(())
    })
    .await;
    let r = crate::auth_walk::call(
        gw.addr,
        "POST",
        "/v1/keys",
        Some(ADMIN),
        Some(&json!({"scopes": ["accounts:read", "transfers:read", "cluster:read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let read_key = r.json()["secret"].as_str().expect("secret").to_owned();

    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("console");
    let mut cmd = Command::new(node);
    cmd.arg("console.test.mjs")
        .current_dir(&suite)
        .env("GATEWAY", format!("http://{}", gw.addr))
        .env("ADMIN_KEY", ADMIN)
        .env("READ_KEY", &read_key)
        .env("CHROMIUM", &chromium);
    let (out, in_time) = tokio::task::spawn_blocking(move || crate::tools::run_bounded(cmd, SCRIPT_TIMEOUT))
        .await
        .expect("the browser script's thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        in_time && out.status.success() && stdout.contains("all steps passed"),
        "the console's browser test failed (in time: {in_time}, {}):\n{stdout}\n{}\n--- gateway log:\n{}",
        out.status,
        crate::tools::tail(&out.stderr, 80),
        crate::tools::tail(gw.log().as_bytes(), 40),
    );
}
