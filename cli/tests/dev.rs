//! `ledger dev`: the whole system comes up on free 127.0.0.1 ports, moves money, projects into
//! PostgreSQL, and leaves no process behind on SIGINT or when killed; its data survives a
//! restart; bad set-ups get one clear message.
//!
//! Needs PostgreSQL at `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) with
//! the right to create databases: the test creates `ledger_dev_test_<random>` and drops it.
//! Without it the test FAILS (never skips).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::Connection as _;
use support::{Dev, STOP_TIMEOUT, wait_gone};
use testkit::pg::{database_url, with_database};

/// Longest wait for a transfer to show up in PostgreSQL.
const PROJECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the children to go after `ledger dev` stopped or died.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh database, dropped on drop.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl TestDb {
    fn create() -> TestDb {
        let admin_url = database_url();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("ledger_dev_test_{}_{nanos}", std::process::id());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL={admin_url} is unreachable: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c).await.unwrap();
        });
        let url = with_database(&admin_url, &name);
        TestDb { admin_url, name, url, rt }
    }

    /// The amount of transfer `id` in the projected `transfers` table, polled up to `timeout`.
    fn projected_amount(&self, id: &str, timeout: Duration) -> Result<i64, String> {
        self.rt.block_on(async {
            let deadline = Instant::now() + timeout;
            let mut last = String::new();
            while Instant::now() < deadline {
                match sqlx::PgConnection::connect(&self.url).await {
                    Ok(mut c) => {
                        let q = sqlx::query_scalar::<_, String>("SELECT amount::text FROM transfers WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut c)
                            .await;
                        match q {
                            Ok(Some(a)) => return a.parse::<i64>().map_err(|e| format!("amount {a:?}: {e}")),
                            Ok(None) => last = format!("no row for transfer {id} in transfers"),
                            Err(e) => last = e.to_string(),
                        }
                        let _ = c.close().await;
                    }
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(last)
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        self.rt.block_on(async move {
            if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut c)
                    .await;
            }
        });
    }
}

#[test]
fn ledger_dev_comes_up_moves_money_projects_and_stops_cleanly_on_sigint() {
    let db = TestDb::create();
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(&tmp.path().join("data"), 3, &[], &[("DATABASE_URL", db.url.as_str())]);
    let banner = dev.stdout();
    for want in ["/v1/...", "/docs", "/metrics", "curl -s -XPOST", "Ctrl-C stops everything."] {
        assert!(banner.contains(want), "banner lacks {want:?}:\n{banner}");
    }
    let pids = dev.child_pids();
    let roles: Vec<&str> = pids.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["lognode 1", "lognode 2", "lognode 3", "gateway", "projector", "webhooks"], "{banner}");

    // /readyz answers 200 (the banner is printed only then; check it independently).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = ledger_client::Client::new(&dev.gateway).unwrap();
    assert!(rt.block_on(client.ready()).unwrap(), "/readyz is not 200");
    let c = dev.ledger(&["--json", "cluster"]).ok().to_owned();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&c).unwrap()["nodes"].as_array().unwrap().len(), 3);

    // API keys: the bootstrap admin key is in a file only its owner reads, the banner says how to
    // use it, and without a key the gateway answers 401.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dev.data_dir.join("admin.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "admin.key is readable by others: {mode:o}");
        // Mutual TLS and encrypted gossip: the throwaway CA, each member's private key and the
        // gossip key are private files of the data dir (the cluster above formed over them).
        for f in ["tls/ca.key", "tls/node1.key", "tls/node3.key", "tls/gateway.key", "gossip.key"] {
            let mode = std::fs::metadata(dev.data_dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
        assert!(std::fs::read_to_string(dev.data_dir.join("tls/ca.pem")).unwrap().contains("BEGIN CERTIFICATE"));
        let node_log = std::fs::read_to_string(dev.data_dir.join("logs/node1.log")).unwrap_or_default();
        assert!(!node_log.contains("mutual TLS:"), "{node_log}");
    }
    assert!(banner.contains("export LEDGER_KEY=") && banner.contains("Authorization: Bearer"), "{banner}");
    let err = rt.block_on(client.cluster()).expect_err("a request without a key");
    assert_eq!(err.status(), Some(401), "{err}");
    let keyed = ledger_client::Client::new(&dev.gateway).unwrap().with_key(&dev.admin_key());
    assert!(rt.block_on(keyed.cluster()).is_ok(), "the admin key is refused");

    // A transfer through the CLI.
    dev.ledger(&["account", "create", "equity", "--currency", "USD", "--allow-overdraft"]).ok();
    dev.ledger(&["account", "create", "alice", "--currency", "USD"]).ok();
    let out =
        dev.ledger(&["transfer", "equity", "alice", "1234", "--currency", "USD", "--id", "t-dev-1"]).ok().to_owned();
    assert!(out.starts_with("transfer t-dev-1 created"), "{out}");
    assert!(dev.ledger(&["account", "show", "alice"]).ok().contains("balance      1234\n"));

    // The projection in PostgreSQL (checked after the shutdown, so that a missing projection
    // still lets the process checks run).
    let projected = db.projected_amount("t-dev-1", PROJECTION_TIMEOUT);
    let projector_log = std::fs::read_to_string(dev.data_dir.join("logs/projector.log")).unwrap_or_default();

    // SIGINT: everything stops, nothing is left behind.
    dev.signal(Signal::SIGINT);
    let code = dev.wait_exit(STOP_TIMEOUT);
    assert_eq!(code, Some(0), "ledger dev exit after SIGINT:\n{}", dev.stderr());
    let left = wait_gone(&pids, Duration::from_secs(1));
    assert!(left.is_empty(), "processes left behind after SIGINT: {left:?}");
    assert!(dev.stderr().contains("stopped; data kept in"), "{}", dev.stderr());

    assert_eq!(
        projected,
        Ok(1234),
        "transfer t-dev-1 did not reach PostgreSQL within {PROJECTION_TIMEOUT:?}; projector log:\n{projector_log}"
    );
}

#[test]
fn ledger_dev_killed_leaves_no_child_and_its_data_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // An existing empty directory (`mkdir`, `mktemp -d`) is accepted, as initdb and etcd do.
    std::fs::create_dir(&data).unwrap();
    let mut dev = Dev::start(&data, 1, &["--no-projector"], &[]);
    assert!(dev.stderr().contains("--no-projector: running without the projector"), "{}", dev.stderr());
    dev.ledger(&["account", "create", "kept", "--currency", "EUR"]).ok();
    let pids = dev.child_pids();
    assert_eq!(pids.len(), 2, "{}", dev.stdout());

    // SIGKILL cannot be caught: the children go by their parent-death signal.
    dev.signal(Signal::SIGKILL);
    dev.wait_exit(STOP_TIMEOUT);
    let left = wait_gone(&pids, ORPHAN_TIMEOUT);
    assert!(left.is_empty(), "orphans after ledger dev was killed: {left:?}");

    // Same data dir: the account is still there.
    let mut dev = Dev::start(&data, 1, &["--no-projector"], &[]);
    assert!(dev.ledger(&["account", "show", "kept"]).ok().contains("currency     EUR"));
    dev.signal(Signal::SIGTERM);
    assert_eq!(dev.wait_exit(STOP_TIMEOUT), Some(0));
    assert!(wait_gone(&dev.child_pids(), ORPHAN_TIMEOUT).is_empty());

    // --fresh wipes it (and its keys); --insecure asks for none, and says so.
    let mut dev = Dev::start(&data, 1, &["--no-projector", "--fresh", "--insecure"], &[]);
    assert!(dev.stderr().contains("INSECURE"), "{}", dev.stderr());
    assert!(!data.join("admin.key").exists(), "--insecure made an admin key");
    dev.ledger(&["account", "show", "kept"]).fails(1, "account_not_found");
    dev.signal(Signal::SIGINT);
    assert_eq!(dev.wait_exit(STOP_TIMEOUT), Some(0));
}

/// Runs `ledger dev` expected to fail before starting anything.
fn dev_fails(args: &[&str], dir: &std::path::Path) -> support::Run {
    let (base, _) = support::free_ports(3);
    let mut cmd = std::process::Command::new(support::ledger_bin());
    cmd.arg("dev").args(["--port-base", &base.to_string(), "--no-projector"]).args(args).current_dir(dir);
    cmd.env_remove("CARGO");
    let out = cmd.output().unwrap();
    support::Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn ledger_dev_names_a_busy_port_a_foreign_or_corrupt_data_dir() {
    let tmp = tempfile::tempdir().unwrap();

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let r = dev_fails(&["--listen", &listen, "--data-dir", "d1"], tmp.path());
    r.fails(1, &format!("port {} (the gateway's HTTP address) is already in use", busy.local_addr().unwrap().port()));
    drop(busy);

    std::fs::create_dir_all(tmp.path().join("mine")).unwrap();
    std::fs::write(tmp.path().join("mine/precious.txt"), "keep me").unwrap();
    for extra in [&[][..], &["--fresh"][..]] {
        let mut args = vec!["--data-dir", "mine"];
        args.extend_from_slice(extra);
        dev_fails(&args, tmp.path()).fails(1, "is not a `ledger dev` data dir");
    }
    assert_eq!(std::fs::read_to_string(tmp.path().join("mine/precious.txt")).unwrap(), "keep me");

    std::fs::create_dir_all(tmp.path().join("bad")).unwrap();
    std::fs::write(tmp.path().join("bad/ledger-dev.json"), "{not json").unwrap();
    dev_fails(&["--data-dir", "bad"], tmp.path()).fails(1, "corrupt data dir");
    dev_fails(&["--data-dir", "x", "--nodes", "9"], tmp.path()).fails(2, "--nodes");

    // A `ledger` without the other binaries next to it names the missing one and how to build it.
    let lonely = tmp.path().join("bin/ledger");
    std::fs::create_dir_all(lonely.parent().unwrap()).unwrap();
    std::fs::copy(support::ledger_bin(), &lonely).unwrap();
    let out = std::process::Command::new(&lonely)
        .args(["dev", "--no-projector", "--data-dir"])
        .arg(tmp.path().join("d2"))
        .env_remove("CARGO")
        .output()
        .unwrap();
    let run = support::Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.fails(1, "lognode is missing: build it with `cargo build --release -p lognode -p gateway -p projector`");
}
