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

/// Fault injection for crash tests (the chaos harness's `lost_unsynced` fault): syncs as
/// [`OsSyncer`] does, and after each file sync records how many bytes of that file are durable
/// in a small map file (`<bytes>\t<path>` lines). The map is written, not synced: it only has to
/// outlive the process, not the machine. A harness that kills the process with SIGKILL can then
/// cut every file in the map back to its durable length (what a power loss would leave of the
/// bytes this process wrote) before starting it again. The length is read before the sync, so it
/// never counts a byte the sync may have missed. Files never synced are not in the map.
#[derive(Debug)]
pub struct RecordingSyncer {
    map: std::path::PathBuf,
    synced: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, u64>>,
}

/// Entries of a [`RecordingSyncer`]'s map past which those of files that no longer exist are
/// dropped.
pub const RECORDED_FILES_MAX: usize = 1024;

impl RecordingSyncer {
    /// Records into the map file `map` (replaced on every sync).
    pub fn new(map: impl Into<std::path::PathBuf>) -> RecordingSyncer {
        RecordingSyncer { map: map.into(), synced: std::sync::Mutex::default() }
    }

    fn record(&self, file: &File, len: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd as _;
        let path = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        let mut synced = self.synced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        synced.insert(path, len);
        if synced.len() > RECORDED_FILES_MAX {
            synced.retain(|p, _| p.exists());
        }
        let text: String = synced.iter().map(|(p, n)| format!("{n}\t{}\n", p.display())).collect();
        fs::write(&self.map, text)
    }
}

impl Syncer for RecordingSyncer {
    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        let len = file.metadata()?.len();
        file.sync_data()?;
        self.record(file, len)
    }
    fn sync_dir(&self, dir: &File) -> std::io::Result<()> {
        dir.sync_all()
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

/// Creates `dir/name` holding `bytes` unless it already exists; never replaces it. Returns
/// `true` if this call created it, `false` if the file was already there (made by someone else,
/// perhaps at the same moment: exactly one of several racing callers creates it). The content is
/// written to a private temporary file, synced, hard-linked to `name` (which fails if it exists)
/// and `dir` synced, so the file is complete and durable whenever it is visible.
pub fn write_new(syncer: &dyn Syncer, dir: &Path, name: &str, bytes: &[u8]) -> Result<bool> {
    // Unique per process and call, so racing callers never share a temporary file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{}-{call}.new", std::process::id()));
    let target = dir.join(name);
    let linked = (|| {
        let mut file =
            private_options().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io("create", &tmp))?;
        file.write_all(bytes).map_err(Error::io("write", &tmp))?;
        syncer.sync_data(&file).map_err(Error::io("fsync", &tmp))?;
        match fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("link", &target)(e)),
        }
    })();
    let _ = fs::remove_file(&tmp);
    if linked? {
        sync_dir(syncer, dir)?;
        return Ok(true);
    }
    Ok(false)
}

/// Like [`write_atomic`] for content too large to hold in memory: `write` streams it into the
/// temporary file `name.tmp` (through a buffer), which is then synced and renamed over `dir/name`,
/// and `dir` synced. Returns the bytes written. On an error the temporary file is removed.
pub fn write_atomic_with(
    syncer: &dyn Syncer,
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = (|| {
        let file =
            private_options().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io("create", &tmp))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut out).map_err(Error::io("write", &tmp))?;
        let file = out.into_inner().map_err(|e| Error::io("write", &tmp)(e.into_error()))?;
        let len = file.metadata().map_err(Error::io("stat", &tmp))?.len();
        syncer.sync_data(&file).map_err(Error::io("fsync", &tmp))?;
        Ok(len)
    })();
    let len = written.inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    publish(syncer, &tmp, dir, name).map(|()| len)
}

/// Makes the finished file `tmp` durable under `dir/name`: syncs its data, renames it, syncs
/// `dir`. For a file written piece by piece elsewhere (a snapshot received in chunks).
pub fn publish(syncer: &dyn Syncer, tmp: &Path, dir: &Path, name: &str) -> Result<()> {
    {
        let file = File::open(tmp).map_err(Error::io("open", tmp))?;
        syncer.sync_data(&file).map_err(Error::io("fsync", tmp))?;
    }
    let target = dir.join(name);
    fs::rename(tmp, &target).map_err(Error::io("rename", &target))?;
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
    fn the_recording_syncer_maps_each_file_to_its_bytes_synced_before_the_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let map = dir.path().join("synced.map");
        let syncer = RecordingSyncer::new(&map);
        let path = dir.path().join("seg");
        let mut f = File::create(&path).expect("create");
        f.write_all(b"12345").expect("write");
        syncer.sync_data(&f).expect("sync");
        f.write_all(b"678").expect("write");
        let text = fs::read_to_string(&map).expect("map");
        assert_eq!(text, format!("5\t{}\n", path.canonicalize().expect("path").display()));
        syncer.sync_data(&f).expect("sync");
        assert!(fs::read_to_string(&map).expect("map").starts_with("8\t"), "the later sync counts all 8");
    }

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(&OsSyncer, dir.path(), "vote", b"one").expect("write");
        write_atomic(&OsSyncer, dir.path(), "vote", b"two").expect("write");
        assert_eq!(read_file(dir.path(), "vote").expect("read"), Some(b"two".to_vec()));
        assert!(!dir.path().join("vote.tmp").exists());
        assert_eq!(read_file(dir.path(), "missing").expect("read"), None);
    }

    /// `write_new` creates a file once and never replaces it; no temporary file is left.
    #[test]
    fn write_new_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write_new(&OsSyncer, dir.path(), "key", b"one").expect("create"));
        assert!(!write_new(&OsSyncer, dir.path(), "key", b"two").expect("exists"));
        assert_eq!(read_file(dir.path(), "key").expect("read"), Some(b"one".to_vec()));
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key")], "no temporary file is left");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.path().join("key")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }

    #[test]
    fn a_leftover_temp_file_does_not_replace_the_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(&OsSyncer, dir.path(), "vote", b"old").expect("write");
        fs::write(dir.path().join("vote.tmp"), b"half-writ").expect("write tmp");
        assert_eq!(read_file(dir.path(), "vote").expect("read"), Some(b"old".to_vec()));
    }

    #[test]
    fn write_atomic_with_streams_the_content_and_an_error_leaves_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let len = write_atomic_with(&OsSyncer, dir.path(), "snap", |w| {
            for i in 0..1000u32 {
                w.write_all(&i.to_le_bytes())?;
            }
            Ok(())
        })
        .expect("write");
        assert_eq!(len, 4000);
        let bytes = read_file(dir.path(), "snap").expect("read").expect("written");
        assert_eq!(&bytes[4..8], &1u32.to_le_bytes());
        let e = write_atomic_with(&OsSyncer, dir.path(), "snap", |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("the producer failed"))
        })
        .expect_err("the producer's error");
        assert!(e.to_string().contains("the producer failed"), "{e}");
        assert_eq!(read_file(dir.path(), "snap").expect("read").map(|b| b.len()), Some(4000), "the old content");
        assert!(!dir.path().join("snap.tmp").exists(), "no temporary file is left");
    }

    #[test]
    fn publish_moves_a_finished_file_into_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join("incoming.tmp");
        fs::write(&tmp, b"chunks").expect("write");
        publish(&OsSyncer, &tmp, dir.path(), "final").expect("publish");
        assert!(!tmp.exists());
        assert_eq!(read_file(dir.path(), "final").expect("read"), Some(b"chunks".to_vec()));
    }
}
