//! Harness of the end-to-end tests: 3 real `lognode` processes (fsync on),
//! a real `gateway` process, `projector` processes, a fresh PostgreSQL
//! database per test and a TCP proxy that can cut PostgreSQL off. Everything
//! listens on 127.0.0.1; every wait is bounded.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger_client::{Client, Consistency, NewAccount, NewTransfer};
use ledger_events::TOPIC;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::watch;

/// The tests start whole clusters: one at a time on a small machine.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A port free for TCP and UDP on 127.0.0.1 (gossip uses both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// A binary of the workspace built next to this test (`$LEDGER_<NAME>_BIN` wins).
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("LEDGER_{}_BIN", name.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p lognode -p gateway` (same CARGO_TARGET_DIR), \
         or set {var}",
        bin.display()
    );
    bin
}

/// A child process, SIGKILLed on drop; output goes to `log`.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Spawns `bin args` with no `LEDGER_*` variables inherited.
    pub fn spawn(name: &str, bin: &Path, args: &[String], log: PathBuf, rust_log: &str) -> Proc {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("LEDGER_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Proc { name: name.to_owned(), log, child: Some(child) }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait at most `within`; the exit status if it exited.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Three lognodes and one gateway.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    pub gateway: Proc,
    pub url: String,
    pub client: Client,
    pub root: tempfile::TempDir,
}

impl Cluster {
    /// Starts the processes and waits (bounded) until the gateway is ready.
    pub async fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let lognode = workspace_bin("lognode");
        let mut nodes = Vec::new();
        let mut grpc = Vec::new();
        let mut seed = String::new();
        for id in 1..=3u64 {
            let g = format!("127.0.0.1:{}", free_port());
            let gossip = format!("127.0.0.1:{}", free_port());
            let mut args: Vec<String> = vec![
                "--id".into(),
                id.to_string(),
                "--data-dir".into(),
                root.path().join(format!("n{id}")).display().to_string(),
                "--grpc-addr".into(),
                g.clone(),
                "--gossip-addr".into(),
                gossip.clone(),
                "--gossip-profile".into(),
                "local".into(),
                "--fsync".into(),
                "always".into(),
            ];
            if id == 1 {
                args.push("--bootstrap".into());
                seed = gossip;
            } else {
                args.push("--join".into());
                args.push(seed.clone());
            }
            let log = root.path().join(format!("n{id}.log"));
            nodes.push(Proc::spawn(&format!("lognode {id}"), &lognode, &args, log, "warn"));
            grpc.push(g);
        }
        let addr = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = vec!["--listen".into(), addr.clone(), "--lognodes".into(), grpc.join(",")];
        let gateway = Proc::spawn("gateway", &workspace_bin("gateway"), &args, root.path().join("gateway.log"), "warn");
        let url = format!("http://{addr}");
        let client = Client::with_timeout(&url, Duration::from_secs(10)).unwrap();
        let c = Cluster { nodes, gateway, url, client, root };
        let probe = c.client.clone();
        wait_for("a ready gateway with 3 voters", Duration::from_secs(60), || {
            let probe = probe.clone();
            async move {
                if !matches!(probe.ready().await, Ok(true)) {
                    return None;
                }
                let cl = probe.cluster().await.ok()?;
                let voters = cl.nodes.iter().filter(|n| n.alive && n.role != "learner").count();
                (cl.leader_id.is_some() && voters >= 3).then_some(())
            }
        })
        .await;
        c
    }

    /// Where a test's processes may write logs.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Starts a projector process.
    pub fn projector(&self, name: &str, database_url: &str, extra: &[&str]) -> Proc {
        let mut args: Vec<String> =
            vec!["--gateway".into(), self.url.clone(), "--database-url".into(), database_url.to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_projector"));
        Proc::spawn(name, &bin, &args, self.path(&format!("{name}.log")), "info")
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
        let mut s = String::new();
        for p in self.nodes.iter().chain([&self.gateway]) {
            s.push_str(&format!("--- {} ---\n{}\n", p.name, p.tail(15)));
        }
        s
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

/// Polls `f` every 100 ms until it returns `Some`, at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
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
        let admin_url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL must point at a PostgreSQL server the tests may create databases on, \
             e.g. postgres://postgres@127.0.0.1:5432/postgres",
        );
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

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].rfind('/') {
        Some(i) => format!("{}/{name}", &base[..scheme_end + i]),
        None => format!("{base}/{name}"),
    }
}

/// A TCP proxy to PostgreSQL (`DATABASE_URL`'s host and port) that can be
/// cut off: cutting closes every open connection and stops listening, so new
/// connections are refused, as when the server is down; restoring listens
/// again on the same port.
pub struct Proxy {
    pub port: u16,
    target: String,
    cut: watch::Sender<u64>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1, forwarding to `target`.
    pub async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(0u64);
        let p = Proxy { port, target, cut, task: std::sync::Mutex::new(None) };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (cut, target) = (self.cut.clone(), self.target.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let mut cut_rx = cut.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes every connection and stops listening.
    pub fn cut(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
        self.cut.send_modify(|n| *n += 1);
    }

    /// Listens again (same port).
    pub async fn restore(&self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let listener = wait_for("the proxy port to be free again", Duration::from_secs(10), || {
            let addr = addr.clone();
            async move { tokio::net::TcpListener::bind(&addr).await.ok() }
        })
        .await;
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `host:port` of `DATABASE_URL`.
pub fn pg_target() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let rest = url.split("://").nth(1).unwrap_or("");
    let host = rest.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    if host.is_empty() {
        "127.0.0.1:5432".to_owned()
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
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
