//! Making bytes durable: the only place in Ledger that calls fsync.
//!
//! [`Syncer`] is injectable so tests can observe (and order-check) every sync, and so benchmarks can
//! run with [`FsyncMode::Never`](crate::FsyncMode::Never). [`write_atomic`] is the crash-safe way to
//! replace a small file (the Raft vote, the committed index, a snapshot): write a temporary file,
//! sync it, rename it over the target, sync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Flushes files and directories to stable storage.
pub trait Syncer: Send + Sync + std::fmt::Debug + 'static {
    /// Makes a file's data (and the metadata needed to read it back, such as its size) durable.
    fn sync_data(&self, file: &File) -> std::io::Result<()>;
    /// Makes a directory's entries (created, renamed or removed files) durable.
    fn sync_dir(&self, dir: &File) -> std::io::Result<()>;
}

/// The real thing: `fdatasync` for files, `fsync` for directories.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsSyncer;

impl Syncer for OsSyncer {
    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
    fn sync_dir(&self, dir: &File) -> std::io::Result<()> {
        dir.sync_all()
    }
}

/// **UNSAFE for real data**: never syncs. A crash or power loss may lose acknowledged writes.
/// Only for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSyncer;

impl Syncer for NoSyncer {
    fn sync_data(&self, _file: &File) -> std::io::Result<()> {
        Ok(())
    }
    fn sync_dir(&self, _dir: &File) -> std::io::Result<()> {
        Ok(())
    }
}

/// Syncs the directory `dir`, so entries created, renamed or removed in it survive a crash.
pub fn sync_dir(syncer: &dyn Syncer, dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(Error::io("open directory", dir))?;
    syncer.sync_dir(&handle).map_err(Error::io("fsync directory", dir))
}

/// Mode of every file the log store creates: the records are the ledger's data (owner only).
pub const FILE_MODE: u32 = 0o600;

/// Mode of every directory the log store creates (owner only).
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with [`DIR_MODE`], and makes `dir` itself private if it
/// already existed. Other crates create their data directories through it too.
pub fn create_private_dir_all(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(Error::io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(Error::io("chmod directory", dir))
}

/// `OpenOptions` for a new file of the log store: [`FILE_MODE`].
pub fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Replaces `dir/name` with `bytes` so that after a crash the file holds either the old or the new
/// content, never a mix: write `name.tmp`, sync it, rename it over `name`, sync `dir`.
pub fn write_atomic(syncer: &dyn Syncer, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    {
        let mut file =
            private_options().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io("create", &tmp))?;
        file.write_all(bytes).map_err(Error::io("write", &tmp))?;
        syncer.sync_data(&file).map_err(Error::io("fsync", &tmp))?;
    }
    fs::rename(&tmp, &target).map_err(Error::io("rename", &target))?;
    sync_dir(syncer, dir)
}

/// Reads `dir/name` whole, or `None` when it does not exist. A leftover `name.tmp` from a crash
/// between write and rename is ignored: the rename never happened, so the old content stands.
pub fn read_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Shared handle to a syncer.
pub type SharedSyncer = Arc<dyn Syncer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(&OsSyncer, dir.path(), "vote", b"one").expect("write");
        write_atomic(&OsSyncer, dir.path(), "vote", b"two").expect("write");
        assert_eq!(read_file(dir.path(), "vote").expect("read"), Some(b"two".to_vec()));
        assert!(!dir.path().join("vote.tmp").exists());
        assert_eq!(read_file(dir.path(), "missing").expect("read"), None);
    }

    #[test]
    fn a_leftover_temp_file_does_not_replace_the_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(&OsSyncer, dir.path(), "vote", b"old").expect("write");
        fs::write(dir.path().join("vote.tmp"), b"half-writ").expect("write tmp");
        assert_eq!(read_file(dir.path(), "vote").expect("read"), Some(b"old".to_vec()));
    }
}
