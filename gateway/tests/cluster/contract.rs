//! The API contract against a real cluster: clients generated from the committed
//! `openapi/ledger.v1.json` (Python: openapi-python-client; TypeScript: openapi-typescript +
//! openapi-fetch, type-checked by `tsc --strict`) drive every kind of call, schemathesis fuzzes
//! the API from the spec (four checks and the stateful phase), and `min_index` past the end of
//! the log answers `index_not_reached` at once. The tools come from PyPI and npm (`.ci/run`
//! installs them); a missing tool fails the test with the install command.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Cluster, SERIAL, TestGateway, gateway_static, wait_for_voters};
use crate::tools;

/// Bound of one code generator run.
const GENERATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound of one generated-client scenario.
const DRIVE_TIMEOUT: Duration = Duration::from_secs(180);
/// Schemathesis' time budget in the suite (`--max-time`): fuzzing and the stateful phase repeat
/// until it is spent. `LEDGER_SCHEMATHESIS_SECONDS` raises it for a longer local run.
const SCHEMATHESIS_SECONDS_DEFAULT: u64 = 60;
/// Examples per operation and phase (`--max-examples`).
const SCHEMATHESIS_EXAMPLES: u32 = 20;

fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("contract")
}

/// A 3-node cluster and an in-process gateway over it (admin token `s3cret`), ready.
async fn cluster_and_gateway() -> (Cluster, TestGateway) {
    let cluster = Cluster::start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;
    (cluster, gw)
}

/// Runs `cmd` bounded; panics with its output unless it succeeds (stdout's last 250 lines:
/// schemathesis prints what failed, health checks included, well above its summary).
#[track_caller]
fn run_ok(what: &str, cmd: Command, limit: Duration) -> std::process::Output {
    let (out, in_time) = tools::run_bounded(cmd, limit);
    assert!(
        in_time && out.status.success(),
        "{what} failed ({}, in time: {in_time}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        tools::tail(&out.stdout, 250),
        tools::tail(&out.stderr, 60)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_python_client_drives_a_real_cluster() {
    let _serial = SERIAL.lock().await;
    let py = tools::python_with("httpx");
    let generator = tools::require("openapi-python-client", tools::PIP_INSTALL);
    let work = tempfile::tempdir().expect("tempdir");
    let mut gen_cmd = Command::new(generator);
    gen_cmd
        .args(["generate", "--meta", "none", "--output-path"])
        .arg(work.path().join("ledger_client"))
        .arg("--path")
        .arg(tools::committed_spec());
    run_ok("openapi-python-client generate", gen_cmd, GENERATE_TIMEOUT);
    assert!(work.path().join("ledger_client/api/transfers/void_pending_transfer.py").is_file(), "no client generated");

    let (_cluster, gw) = cluster_and_gateway().await;
    let mut cmd = Command::new(py);
    cmd.arg(contract_dir().join("python_client.py"))
        .arg(format!("http://{}", gw.addr))
        .arg("s3cret")
        .env("PYTHONPATH", work.path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::task::spawn_blocking(move || run_ok("the Python client scenario", cmd, DRIVE_TIMEOUT))
        .await
        .expect("join");
    assert!(String::from_utf8_lossy(&out.stdout).contains("every step passed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_typescript_client_drives_a_real_cluster() {
    let _serial = SERIAL.lock().await;
    let modules = tools::node_modules("openapi-fetch");
    tools::node_modules("openapi-typescript");
    tools::node_modules("typescript");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).expect("symlink node_modules");
    std::fs::copy(contract_dir().join("ts_client.ts"), dir.join("ts_client.ts")).expect("copy ts_client.ts");
    tools::write(dir, "package.json", r#"{"type": "module", "private": true}"#);
    tools::write(
        dir,
        "tsconfig.json",
        &json!({
            "compilerOptions": {
                "strict": true, "target": "es2022", "module": "nodenext", "moduleResolution": "nodenext",
                "lib": ["es2022", "dom"], "types": [], "skipLibCheck": true, "noEmitOnError": true
            },
            "files": ["ts_client.ts"]
        })
        .to_string(),
    );
    let mut gen_cmd = Command::new(modules.join(".bin/openapi-typescript"));
    gen_cmd.arg(tools::committed_spec()).arg("-o").arg(dir.join("schema.d.ts"));
    run_ok("openapi-typescript", gen_cmd, GENERATE_TIMEOUT);
    // Type-checks the scenario against the generated types: a spec change that breaks the
    // client's use fails here.
    let mut tsc = Command::new(modules.join(".bin/tsc"));
    tsc.arg("-p").arg(dir);
    run_ok("tsc --strict on the generated client", tsc, GENERATE_TIMEOUT);

    let (_cluster, gw) = cluster_and_gateway().await;
    let mut cmd = Command::new(tools::require("node", "apt-get install nodejs npm"));
    cmd.arg(dir.join("ts_client.js")).arg(format!("http://{}", gw.addr)).arg("s3cret").current_dir(dir);
    let out = tokio::task::spawn_blocking(move || run_ok("the TypeScript client scenario", cmd, DRIVE_TIMEOUT))
        .await
        .expect("join");
    assert!(String::from_utf8_lossy(&out.stdout).contains("every step passed"));
}

/// schemathesis from the committed spec with the four checks and every phase (stateful
/// included: the spec's links chain create → read → post). Without the admin token: node
/// removal and offset resets are answered 401 (a fuzzer must not remove the cluster's nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_nothing_against_a_real_cluster() {
    let _serial = SERIAL.lock().await;
    let st = tools::require("st", tools::PIP_INSTALL);
    let seconds: u64 = std::env::var("LEDGER_SCHEMATHESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SCHEMATHESIS_SECONDS_DEFAULT);
    let work = tempfile::tempdir().expect("tempdir");
    let (_cluster, gw) = cluster_and_gateway().await;
    let mut cmd = Command::new(st);
    cmd.arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .arg("run")
        .arg(tools::committed_spec())
        .args(["--url", &format!("http://{}", gw.addr)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &SCHEMATHESIS_EXAMPLES.to_string()])
        .args(["--max-time", &seconds.to_string()])
        // One worker: with two, schemathesis' threads parse Python ASTs at once (hypothesis
        // describing its lambdas), which CPython 3.11.7 does not survive ("AST constructor
        // recursion depth mismatch", a runtime error on a random operation, seen 2026-12-05).
        .args(["--workers", "1", "--request-timeout", "10", "--no-shrink"])
        // Hypothesis' health checks judge the generator, not the API: `too_slow` fires when this
        // 2-core machine is busy, `filter_too_much` when a run's random draws miss the schema's
        // constraints too often. One of them failed a CI run whose 5644 cases all passed
        // (2026-12-06). The checks above, and every case, still count.
        .args(["--suppress-health-check", "too_slow,filter_too_much"])
        .args(["--header", "Content-Type: application/json"])
        .args(["--report", "junit", "--report-dir"])
        .arg(work.path())
        .current_dir(work.path())
        .env("NO_COLOR", "1");
    let limit = Duration::from_secs(seconds * 2 + 120);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run_ok("schemathesis", cmd, limit)).await.expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Stateful"), "the stateful phase did not run:\n{}", tools::tail(&out.stdout, 60));
    // "Test cases:\n  8506 generated, 8506 passed": something was generated and nothing failed.
    let generated: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or(0);
    assert!(generated > 0, "schemathesis generated no test case:\n{text}");
    eprintln!("schemathesis: {:?}\n{}", started.elapsed(), tools::tail(&out.stdout, 12));
}

/// `min_index` past the end of the log is `422 index_not_reached` at once, with the current
/// index, on every read that takes it; never "no leader is reachable".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_index_past_the_end_of_the_log_is_index_not_reached_at_once() {
    let _serial = SERIAL.lock().await;
    let (_cluster, gw) = cluster_and_gateway().await;
    gw.post("/v1/accounts", &json!({"id": "alice", "currency": "USD"})).await.expect(201, "account");
    let w = gw.post("/v1/topics", &json!({"name": "t", "partitions": 1})).await.expect(201, "topic");
    let ix = w.index();
    for path in [
        "/v1/accounts/alice",
        "/v1/accounts/alice/transfers",
        "/v1/transfers/nope",
        "/v1/topics",
        "/v1/topics/t/partitions/0/records",
    ] {
        let ok = gw.get(&format!("{path}?min_index={ix}")).await;
        assert!(ok.status == 200 || ok.status == 404, "{path} at the last write: {}", ok.status);
        let started = Instant::now();
        let r = gw.get(&format!("{path}?min_index={}", ix + 1_000_000)).await;
        let took = started.elapsed();
        let p = r.json();
        assert_eq!((r.status, p["code"].as_str()), (422, Some("index_not_reached")), "{path}: {p}");
        assert!(p["current_index"].as_u64().is_some_and(|c| c >= ix), "{path}: {p}");
        assert_eq!(p["retryable"], false, "{path}: {p}");
        assert!(took < Duration::from_millis(1000), "{path}: index_not_reached took {took:?}");
    }
}
