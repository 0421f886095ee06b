//! PostgreSQL for the projector: `DATABASE_URL` when set; otherwise a private instance under the
//! data dir when PostgreSQL's binaries are installed; otherwise none.
//!
//! The private instance is `postgres` itself as a child of `ledger dev` (not a daemon started by
//! `pg_ctl`), so it stops with everything else and cannot outlive `ledger dev`. As root it runs
//! as the `postgres` user through `runuser`, and its directory must be owned by, and reachable
//! for, that user: when a parent directory is not traversable for it (e.g. under `/root`), a
//! directory in the system's temporary directory is used instead, and `ledger dev` says so.

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Failure;
use crate::output::note;

/// Where the projector's database comes from.
#[derive(Debug)]
pub enum Database {
    /// `DATABASE_URL`.
    External(String),
    /// A private instance to start.
    Private(PrivatePg),
    /// No PostgreSQL: the projector is not started (the reason is shown).
    Unavailable(String),
}

/// A private PostgreSQL instance.
#[derive(Debug)]
pub struct PrivatePg {
    /// Directory of `initdb`, `postgres` and `pg_isready`.
    pub bin_dir: PathBuf,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Run as the `postgres` user through `runuser` (when `ledger dev` runs as root).
    pub as_postgres_user: bool,
}

impl PrivatePg {
    /// The URL the projector uses.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `program args` as the right user: the program and its arguments to run.
    pub fn command(&self, tool: &str, args: &[String]) -> (PathBuf, Vec<String>) {
        let tool = self.bin_dir.join(tool).display().to_string();
        if self.as_postgres_user {
            let mut a = vec!["-u".to_owned(), "postgres".to_owned(), "--".to_owned(), tool];
            a.extend_from_slice(args);
            (PathBuf::from("runuser"), a)
        } else {
            (PathBuf::from(tool), args.to_vec())
        }
    }

    /// Arguments of the server.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "-D".into(),
            self.dir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            // No Unix socket: the default directory may not exist or be shared with a system
            // instance; the projector connects over TCP.
            "-c".into(),
            "unix_socket_directories=".into(),
        ]
    }

    /// Creates the cluster with `initdb` unless it exists; its output is appended to `log`.
    pub fn init(&self, log: &Path) -> Result<(), Failure> {
        if self.dir.join("PG_VERSION").exists() {
            return Ok(());
        }
        let non_empty = std::fs::read_dir(&self.dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if non_empty {
            return Err(Failure::failed(format!(
                "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION): remove it, or start with --fresh",
                self.dir.display()
            )));
        }
        note(&format!("creating a private PostgreSQL cluster in {} (initdb)...", self.dir.display()));
        let args: Vec<String> = vec![
            "-D".into(),
            self.dir.display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
        ];
        let (program, args) = self.command("initdb", &args);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Failure::failed(format!("cannot open {}: {e}", log.display())))?;
        let err = file.try_clone().map_err(|e| Failure::failed(format!("{}: {e}", log.display())))?;
        let status = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .status()
            .map_err(|e| Failure::failed(format!("cannot run {}: {e}", program.display())))?;
        if !status.success() {
            return Err(Failure::failed(format!(
                "initdb failed ({status}); last lines of {}:\n{}",
                log.display(),
                super::procs::log_tail(log)
            )));
        }
        Ok(())
    }

    /// Does the server accept connections (`pg_isready`)?
    pub fn ready(&self) -> bool {
        let isready = self.bin_dir.join("pg_isready");
        Command::new(isready)
            .args(["-q", "-U", "postgres", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Decides where the database comes from (see the module doc); creates the private instance's
/// directory when one is used.
pub fn choose(data_dir: &Path, port: u16) -> Result<Database, Failure> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        return Ok(Database::External(url));
    }
    let Some(bin_dir) = find_bin_dir() else {
        return Ok(Database::Unavailable(
            "no DATABASE_URL and no PostgreSQL installed (initdb, pg_ctl): running without the projector".to_owned(),
        ));
    };
    let as_postgres_user = nix::unistd::geteuid().is_root();
    let mut pg = PrivatePg { bin_dir, dir: data_dir.join("postgres"), port, as_postgres_user };
    if !as_postgres_user {
        create_dir(&pg.dir, None)?;
        return Ok(Database::Private(pg));
    }
    let user = match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => u,
        _ => {
            return Ok(Database::Unavailable(
                "running as root and there is no `postgres` user to run a private PostgreSQL: running without \
                 the projector (set DATABASE_URL to use an existing PostgreSQL)"
                    .to_owned(),
            ));
        }
    };
    let owner = Some((user.uid.as_raw(), user.gid.as_raw()));
    create_dir(&pg.dir, owner)?;
    if !reachable_by_postgres(&pg.dir) {
        let fallback = fallback_dir(data_dir);
        note(&format!(
            "the postgres user cannot reach {} (a parent directory is not traversable for it); \
             keeping PostgreSQL's data in {} instead",
            pg.dir.display(),
            fallback.display()
        ));
        let _ = std::fs::remove_dir(&pg.dir);
        create_dir(&fallback, owner)?;
        pg.dir = fallback;
        if !reachable_by_postgres(&pg.dir) {
            return Ok(Database::Unavailable(format!(
                "the postgres user cannot write {} either: running without the projector (set DATABASE_URL)",
                pg.dir.display()
            )));
        }
    }
    Ok(Database::Private(pg))
}

/// Where PostgreSQL's data goes when the postgres user cannot reach the data dir: a directory in
/// the temporary directory named after the data dir (so a restart finds it again).
pub fn fallback_dir(data_dir: &Path) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    std::env::temp_dir().join(format!("ledger-dev-postgres-{:016x}", h.finish()))
}

fn create_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| Failure::failed(format!("cannot give {} to the postgres user: {e}", dir.display())))?;
    }
    // PostgreSQL refuses a data directory others can read.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::failed(format!("cannot set the permissions of {}: {e}", dir.display())))
}

/// Can the postgres user write `dir` (every parent traversable, the directory its own)?
fn reachable_by_postgres(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: from PATH (following symlinks, as
/// Debian links them into /usr/bin or /usr/local/bin), else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let complete = |d: &Path| ["initdb", "pg_ctl", "postgres", "pg_isready"].iter().all(|t| d.join(t).is_file());
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let (initdb, pg_ctl) = (d.join("initdb"), d.join("pg_ctl"));
            if initdb.is_file()
                && pg_ctl.is_file()
                && let Ok(real) = std::fs::canonicalize(&initdb)
                && let Some(dir) = real.parent()
                && complete(dir)
            {
                return Some(dir.to_path_buf());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| complete(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}
