//! Harness of the end-to-end tests: 3 real `lognode` processes (fsync on),
//! a real `gateway` process, `projector` processes, a fresh PostgreSQL
//! database per test and a TCP proxy that can cut PostgreSQL off. Everything
//! listens on 127.0.0.1; every wait is bounded.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger_client::{Client, Consistency, NewAccount, NewTransfer};
use ledger_events::TOPIC;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use testkit::cluster::GatewayProcess;
pub use testkit::pg::{pg_target, with_database};
pub use testkit::proxy::Proxy;
pub use testkit::{Proc, wait_for};

/// The tests start whole clusters: one at a time on a small machine.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three lognodes and one gateway.
pub struct Cluster {
    pub gateway: GatewayProcess,
    pub nodes: testkit::Cluster,
    pub url: String,
    pub client: Client,
}

impl Cluster {
    /// Starts the processes and waits (bounded) until the gateway is ready.
    pub async fn start() -> Cluster {
        let nodes = testkit::Cluster::builder().rust_log("warn").start();
        let gateway = nodes.gateway("warn");
        let url = gateway.url.clone();
        let client = Client::with_timeout(&url, Duration::from_secs(10)).unwrap();
        let c = Cluster { gateway, nodes, url, client };
        c.gateway.wait_ready(3, Duration::from_secs(60));
        c
    }

    /// Where a test's processes may write logs.
    pub fn path(&self, name: &str) -> PathBuf {
        self.nodes.path(name)
    }

    /// Starts a projector process.
    pub fn projector(&self, name: &str, database_url: &str, extra: &[&str]) -> Proc {
        let bin = Path::new(env!("CARGO_BIN_EXE_projector"));
        testkit::cluster::projector(bin, name, &self.url, database_url, extra, &self.path(&format!("{name}.log")))
    }

    /// `projector verify`: (success, output).
    pub fn verify(&self, database_url: &str) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(["verify", "--gateway", &self.url, "--database-url", database_url])
            .env_remove("LEDGER_GATEWAY")
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Every process's log tail, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}--- gateway ---\n{}\n", self.nodes.logs(), self.gateway.proc.tail(15))
    }

    /// The end offset of every `ledger` partition (strong reads).
    pub async fn end_offsets(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in 0..8 {
            let f = self.client.fetch_raw(TOPIC, p, 0, Some(1), Consistency::Strong).await.unwrap();
            out.push(f.end_offset);
        }
        out
    }

    /// Creates `equity` (overdraft) and `user-0..n`.
    pub async fn accounts(&self, n: usize) {
        let mk = |id: String, od: bool| NewAccount {
            id,
            currency: "USD".into(),
            allow_overdraft: od,
            metadata: Some(serde_json::json!({"test": true})),
            ..NewAccount::default()
        };
        self.client.create_account(&mk("equity".into(), true)).await.unwrap();
        for i in 0..n {
            self.client.create_account(&mk(format!("user-{i}"), false)).await.unwrap();
        }
    }

    /// `count` transfers `equity → user-(i % users)` named `{prefix}{i}`, in batches of 100.
    pub async fn transfers(&self, prefix: &str, count: usize, users: usize) {
        let mut i = 0;
        while i < count {
            let k = (count - i).min(100);
            let batch: Vec<NewTransfer> = (i..i + k).map(|j| transfer(&format!("{prefix}{j}"), users, j)).collect();
            let r = self.client.create_transfers(&batch, false).await.unwrap();
            assert!(r.results.iter().all(|x| x.result == "created" || x.result == "exists"), "{r:?}");
            i += k;
        }
    }
}

/// One transfer `equity → user-(j % users)`.
pub fn transfer(id: &str, users: usize, j: usize) -> NewTransfer {
    NewTransfer {
        id: id.to_owned(),
        debit_account_id: "equity".into(),
        credit_account_id: format!("user-{}", j % users),
        amount: 1 + (j as u64 % 97),
        currency: "USD".into(),
        metadata: Some(serde_json::json!({"n": j})),
        ..NewTransfer::default()
    }
}

/// A fresh database for one test, dropped (best effort) at the end.
pub struct Db {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
}

static DB_SEQ: AtomicU64 = AtomicU64::new(0);

impl Db {
    /// Creates `projector_e2e_<pid>_<n>` on `$DATABASE_URL`; fails loudly when
    /// PostgreSQL is not reachable.
    pub async fn fresh() -> Db {
        let admin_url = testkit::pg::database_url();
        let name = format!("projector_e2e_{}_{}", std::process::id(), DB_SEQ.fetch_add(1, Ordering::Relaxed));
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL is not reachable: {e}"));
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&admin).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
        Db { name, url, pool, admin_url }
    }

    /// The same database through `127.0.0.1:<port>` (a proxy).
    pub fn url_via(&self, port: u16) -> String {
        let u = self.url.clone();
        let at = u.find('@').map_or("postgres://".len(), |i| i + 1);
        let slash = u[at..].find('/').map_or(u.len(), |i| at + i);
        format!("{}127.0.0.1:{port}{}", &u[..at], &u[slash..])
    }

    /// Rows of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }

    /// Sum of the projector's next offsets over partitions.
    pub async fn projected(&self) -> u64 {
        let v: Option<i64> = sqlx::query_scalar("SELECT sum(next_offset)::int8 FROM projector_offsets")
            .fetch_one(&self.pool)
            .await
            .ok()
            .flatten();
        v.unwrap_or(0) as u64
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(admin) = PgPoolOptions::new().max_connections(1).connect(&self.admin_url).await {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}

/// Waits until PostgreSQL has every record of the log (sum of next offsets
/// = sum of end offsets) and the row counts match.
pub async fn caught_up(c: &Cluster, db: &Db, transfers: i64, accounts: i64, within: Duration) {
    let ends: u64 = c.end_offsets().await.iter().sum();
    let deadline = Instant::now() + within;
    loop {
        let (p, t, a) = (db.projected().await, db.count("transfers").await, db.count("accounts").await);
        if p >= ends && t == transfers && a == accounts {
            assert_eq!(p, ends, "PostgreSQL's offsets are past the log's end");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not catch up within {within:?}: offsets {p}/{ends}, transfers {t}/{transfers}, \
             accounts {a}/{accounts}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
