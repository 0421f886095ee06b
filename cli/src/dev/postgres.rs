//! PostgreSQL for the projector: `DATABASE_URL` when set; otherwise a private instance under the
//! data dir when PostgreSQL's binaries are installed; otherwise none.
//!
//! The private instance is `postgres` itself as a child of `ledger dev` (not a daemon started by
//! `pg_ctl`), so it stops with everything else and cannot outlive `ledger dev`. As root it runs
//! as the `postgres` user through `runuser`, and its directory must be owned by, and reachable
//! for, that user: when a parent directory is not traversable for it (e.g. under `/root`), a
//! directory in the system's temporary directory is used instead, and `ledger dev` says so.
//!
//! Every directory it creates is private (0700), created fresh with `mkdir` (which never follows
//! a link), and an existing one is used only when it is its own: a real directory (not a
//! symlink), owned by the expected user, mode 0700, and — to skip `initdb` — holding the marker
//! `ledger dev` writes after its own `initdb`. The fallback in the temporary directory has an
//! unpredictable name, recorded in the data dir (`postgres-dir`) so a restart finds it again.

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

    /// Creates the cluster with `initdb` unless it exists and is `ledger dev`'s own (it holds
    /// [`INITDB_MARKER`]); its output is appended to `log`.
    pub fn init(&self, log: &Path) -> Result<(), Failure> {
        let has_version = std::fs::symlink_metadata(self.dir.join("PG_VERSION")).is_ok();
        let ours = std::fs::symlink_metadata(self.dir.join(INITDB_MARKER)).is_ok_and(|m| m.is_file());
        if has_version && ours {
            return Ok(());
        }
        if has_version {
            return Err(Failure::failed(format!(
                "{} holds a PostgreSQL cluster that `ledger dev` did not create (no {INITDB_MARKER}): \
                 nothing was touched; remove it, or start with --fresh",
                self.dir.display()
            )));
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
        // Written by us into a directory only its owner can write: the next start knows the
        // cluster is ours. `create_new` never follows a planted link.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.dir.join(INITDB_MARKER))
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", self.dir.join(INITDB_MARKER).display())))?;
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

/// Written into a private cluster's directory after `ledger dev`'s own `initdb`.
pub const INITDB_MARKER: &str = "ledger-dev-initdb";

/// File in the data dir naming the fallback directory in the temporary directory.
pub const FALLBACK_RECORD: &str = "postgres-dir";

/// Attempts at a fresh, unpredictable fallback name before giving up.
const FALLBACK_NAME_ATTEMPTS: usize = 16;

/// The database URL with its password (if any) replaced by `***`, for banners and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    let host = match host.split_once('?') {
        Some((h, q)) if q.contains("password=") => format!("{h}?***"),
        _ => host.to_owned(),
    };
    format!("{scheme}://{redacted}@{host}")
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
        let fallback = fallback_dir_for(data_dir, owner)?;
        note(&format!(
            "the postgres user cannot reach {} (a parent directory is not traversable for it); \
             keeping PostgreSQL's data in {} instead",
            pg.dir.display(),
            fallback.display()
        ));
        let _ = std::fs::remove_dir(&pg.dir);
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

/// The fallback directory recorded in the data dir, if any (`--fresh` removes it).
pub fn fallback_dir(data_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(data_dir.join(FALLBACK_RECORD)).ok()?;
    let p = PathBuf::from(text.trim());
    // Only a directory of ours, directly in the temporary directory.
    let ours = p.parent() == Some(std::env::temp_dir().as_path())
        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ledger-dev-postgres-"));
    ours.then_some(p)
}

/// An unpredictable name: std's `RandomState` is seeded from the OS's randomness.
fn unpredictable_suffix() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a);
    format!("{a:016x}{:016x}", h2.finish())
}

/// Where PostgreSQL's data goes when the postgres user cannot reach the data dir: the directory
/// recorded by an earlier start when it is still its own, else a fresh private directory with an
/// unpredictable name in the temporary directory (recorded for the next start).
fn fallback_dir_for(data_dir: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, Failure> {
    if let Some(p) = fallback_dir(data_dir)
        && own_dir(&p, owner).is_ok()
    {
        return Ok(p);
    }
    for _ in 0..FALLBACK_NAME_ATTEMPTS {
        let p = std::env::temp_dir().join(format!("ledger-dev-postgres-{}", unpredictable_suffix()));
        match create_dir(&p, owner) {
            Ok(()) => {
                std::fs::write(data_dir.join(FALLBACK_RECORD), p.display().to_string()).map_err(|e| {
                    Failure::failed(format!("cannot write {}: {e}", data_dir.join(FALLBACK_RECORD).display()))
                })?;
                return Ok(p);
            }
            Err(_) if std::fs::symlink_metadata(&p).is_ok() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Failure::failed(format!(
        "cannot create a fresh private directory in {} after {FALLBACK_NAME_ATTEMPTS} attempts",
        std::env::temp_dir().display()
    )))
}

/// Is `dir` a private directory of ours: a real directory (not a link), owned by `owner` (or by
/// us), mode 0700?
fn own_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if m.file_type().is_symlink() {
        return Err("it is a symbolic link".to_owned());
    }
    if !m.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    let uid = owner.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u);
    if m.uid() != uid {
        return Err(format!("it is owned by uid {}, not {uid}", m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!("its mode is {:o}, not 0700", m.mode() & 0o7777));
    }
    Ok(())
}

/// Creates `dir` fresh (mode 0700, `mkdir` never follows a link) and gives it to `owner`; an
/// existing `dir` is accepted only when it is already its own ([`own_dir`]).
fn create_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return own_dir(dir, owner).map_err(|why| {
                Failure::failed(format!(
                    "{} exists and is not a private directory of `ledger dev` ({why}): nothing was touched; \
                     remove it, or start with --fresh",
                    dir.display()
                ))
            });
        }
        Err(e) => return Err(Failure::failed(format!("cannot create {}: {e}", dir.display()))),
    }
    if let Some((uid, gid)) = owner {
        // `lchown`: never the target of a link planted after the mkdir.
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
            .map_err(|e| Failure::failed(format!("cannot give {} to the postgres user: {e}", dir.display())))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_the_banner() {
        assert_eq!(redacted("postgres://u:s3cret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redacted("postgres://postgres@127.0.0.1:5/postgres"), "postgres://postgres@127.0.0.1:5/postgres");
        assert_eq!(redacted("postgres://u@h/x?password=s3cret"), "postgres://u@h/x?***");
        assert_eq!(redacted("postgres://u:p@ss@h/x"), "postgres://u:***@h/x");
    }
}
