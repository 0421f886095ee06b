//! Snapshots on disk: the state (never the records), built after the runs the logs no longer hold
//! were dropped from the live state, written to a file while apply goes on, restored on open,
//! streamed from that file to followers and installed from a file received in chunks. No
//! encoded copy of the state is held in memory on either side.
//!
//! Layout of `<data-dir>/log/snapshot/`:
//! - `current`: which snapshot is the current one ([`Current`]: its meta, its data file and
//!   length), replaced with logstore's `write_atomic`;
//! - `state-<seq>.snap`: one snapshot's state data ([`State::write_snapshot`]), written whole under
//!   a `.tmp` name and published (synced, renamed) before `current` names it;
//! - `*.tmp`: a snapshot being built or received; a crash leaves it behind and open removes it, as
//!   it removes data files that `current` does not name;
//! - `snapshot.bin`: the single-file layout of lognodes before 2026-12-04 (meta and data in one
//!   file, held in memory); open reads it once, rewrites it in this layout and removes it.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use openraft::storage::Snapshot;
use openraft::{ErrorVerb, SnapshotMeta};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::{POISONED, State, StateMachineStore, TOPIC_LEDGER, align_events, index_of, snap_err};
use crate::codec::{decode_legacy, decode_or_legacy, encode};
use crate::types::{Node, StorageError, TypeConfig};

pub(super) const SNAPSHOT_DIR: &str = "snapshot";
const CURRENT_FILE: &str = "current";
const LEGACY_FILE: &str = "snapshot.bin";
const DATA_PREFIX: &str = "state-";
const DATA_SUFFIX: &str = ".snap";
/// Read buffer when decoding a snapshot file (and write buffer when dumping one).
const READ_BUFFER_BYTES: usize = 1 << 20;

/// A file handle to hold while the real one is away being filled (`/dev/null`).
fn tempfile_placeholder() -> std::io::Result<fs::File> {
    fs::File::open("/dev/null")
}

/// The `current` file: the current snapshot's meta and where its data is. Its format follows from
/// its first byte (`meta.last_log_id`'s `Option` tag in format 1, see [`crate::codec`]).
#[derive(Serialize, Deserialize)]
struct Current {
    meta: SnapshotMeta<u64, Node>,
    /// File name in the snapshot directory.
    file: String,
    /// Its length in bytes.
    len: u64,
}

/// A snapshot whose data is a file in the snapshot directory.
#[derive(Clone, Debug)]
pub(super) struct StoredSnapshot {
    pub(super) meta: SnapshotMeta<u64, Node>,
    path: PathBuf,
    len: u64,
}

/// Writes a snapshot's data into an empty file (see [`SnapshotFile::lazy`]).
pub(super) type Fill = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send>;

/// Openraft's snapshot data: an open snapshot file (being sent, or being received) and its path.
/// The file of a sent snapshot stays readable even when a newer snapshot replaces it meanwhile
/// (the open handle keeps it).
///
/// A snapshot of the on-disk store is *lazy*: its file is empty, and [`SnapshotFile::materialize`]
/// writes the data when it is needed (by the sender, off the state machine's task).
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
    len: u64,
    fill: Option<Fill>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("lazy", &self.fill.is_some())
            .finish()
    }
}

impl SnapshotFile {
    /// An open file as snapshot data (`len`: its length).
    pub(super) fn from_std(file: fs::File, path: PathBuf, len: u64) -> SnapshotFile {
        SnapshotFile { file: tokio::fs::File::from_std(file), path, len, fill: None }
    }

    /// An empty open file that `fill` writes the data into when [`SnapshotFile::materialize`] is
    /// called.
    pub(super) fn lazy(file: fs::File, path: PathBuf, fill: Fill) -> SnapshotFile {
        SnapshotFile { file: tokio::fs::File::from_std(file), path, len: 0, fill: Some(fill) }
    }

    /// Writes a lazy snapshot's data into its file (on a blocking thread) and rewinds it; does
    /// nothing for a snapshot that has its data.
    pub async fn materialize(&mut self) -> std::io::Result<()> {
        let Some(fill) = self.fill.take() else { return Ok(()) };
        let placeholder = tokio::fs::File::from_std(tempfile_placeholder()?);
        let file = std::mem::replace(&mut self.file, placeholder).into_std().await;
        let started = std::time::Instant::now();
        let (file, len) = tokio::task::spawn_blocking(move || -> std::io::Result<(fs::File, u64)> {
            let mut w = std::io::BufWriter::with_capacity(READ_BUFFER_BYTES, file);
            fill(&mut w)?;
            let mut file = w.into_inner().map_err(|e| e.into_error())?;
            let len = file.metadata()?.len();
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
            Ok((file, len))
        })
        .await
        .map_err(std::io::Error::other)??;
        self.file = tokio::fs::File::from_std(file);
        self.len = len;
        let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(bytes = len, took_ms, "store snapshot dumped for a follower");
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length when it was opened (for a file being received: 0).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The open file, to read or write.
    pub fn file_mut(&mut self) -> &mut tokio::fs::File {
        &mut self.file
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.get_mut().file).start_seek(position)
    }
    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Pin::new(&mut self.get_mut().file).poll_complete(cx)
    }
}

fn data_name(seq: u64) -> String {
    format!("{DATA_PREFIX}{seq:020}{DATA_SUFFIX}")
}

fn parse_data_name(name: &str) -> Option<u64> {
    name.strip_prefix(DATA_PREFIX)?.strip_suffix(DATA_SUFFIX)?.parse().ok()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    snap_err(ErrorVerb::Read, e)
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    snap_err(ErrorVerb::Write, e)
}

/// Decodes the state in the snapshot file `path` and checks its invariants.
fn read_state(path: &Path) -> Result<State, StorageError> {
    let file = fs::File::open(path).map_err(read_err)?;
    let mut r = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let state = State::read_snapshot(&mut r).map_err(read_err)?;
    state.check_invariants().map_err(|e| read_err(std::io::Error::other(e)))?;
    Ok(state)
}

/// What [`load`] found in the snapshot directory.
pub(super) struct Loaded {
    /// The current snapshot's state and the snapshot, if there is one.
    pub(super) current: Option<(State, StoredSnapshot)>,
    /// The next free data-file number.
    pub(super) next_seq: u64,
}

/// Reads the current snapshot of `dir`, if there is one; rewrites a snapshot of the old
/// single-file layout; removes what a crash left behind (temporary files, data files no longer
/// current).
pub(super) fn load(dir: &Path, syncer: &dyn logstore::Syncer) -> Result<Loaded, StorageError> {
    let mut next_seq = 1;
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let name = entry.map_err(read_err)?.file_name().to_string_lossy().into_owned();
        if let Some(seq) = parse_data_name(&name) {
            next_seq = next_seq.max(seq + 1);
        }
        names.push(name);
    }
    let mut current = match logstore::durable::read_file(dir, CURRENT_FILE).map_err(read_err)? {
        Some(bytes) => Some(decode_or_legacy::<Current>(&bytes).map_err(read_err)?),
        None => None,
    };
    if current.is_none()
        && let Some(bytes) = logstore::durable::read_file(dir, LEGACY_FILE).map_err(read_err)?
    {
        // The old layout: (meta, data) in one file. Its data is checked before it is rewritten.
        let (meta, data): (SnapshotMeta<u64, Node>, Vec<u8>) = decode_legacy(&bytes).map_err(read_err)?;
        State::from_snapshot_bytes(&data).map_err(read_err)?;
        let file = data_name(next_seq);
        next_seq += 1;
        let len = logstore::write_atomic_with(syncer, dir, &file, |w| w.write_all(&data)).map_err(write_err)?;
        let c = Current { meta, file, len };
        logstore::write_atomic(syncer, dir, CURRENT_FILE, &encode(&c)).map_err(write_err)?;
        tracing::info!(file = %c.file, "snapshot rewritten from the single-file layout ({LEGACY_FILE})");
        current = Some(c);
    }
    for name in &names {
        let stale = name.ends_with(".tmp")
            || name == LEGACY_FILE
            || (parse_data_name(name).is_some() && current.as_ref().is_none_or(|c| &c.file != name));
        if stale {
            fs::remove_file(dir.join(name)).map_err(write_err)?;
        }
    }
    let Some(c) = current else { return Ok(Loaded { current: None, next_seq }) };
    let path = dir.join(&c.file);
    let state = read_state(&path)?;
    Ok(Loaded { current: Some((state, StoredSnapshot { meta: c.meta, path, len: c.len })), next_seq })
}

/// The current snapshot's data file and index, if `dir` has one (its data is not read).
pub(super) fn current_file(dir: &Path) -> Result<Option<(PathBuf, u64)>, StorageError> {
    let Some(bytes) = logstore::durable::read_file(dir, CURRENT_FILE).map_err(read_err)? else { return Ok(None) };
    let c: Current = decode_or_legacy(&bytes).map_err(read_err)?;
    Ok(Some((dir.join(&c.file), index_of(c.meta.last_log_id))))
}

/// Removes every file of `dir` (disk mode keeps no snapshot files); returns the next free
/// data-file number.
pub(super) fn clear_dir(dir: &Path) -> Result<u64, StorageError> {
    let mut next_seq = 1;
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(seq) = parse_data_name(name.trim_end_matches(".tmp")) {
            next_seq = next_seq.max(seq + 1);
        }
        fs::remove_file(entry.path()).map_err(write_err)?;
    }
    Ok(next_seq)
}

impl StoredSnapshot {
    async fn open(&self) -> Result<SnapshotFile, StorageError> {
        let file = tokio::fs::File::open(&self.path).await.map_err(read_err)?;
        Ok(SnapshotFile { file, path: self.path.clone(), len: self.len, fill: None })
    }
}

impl StateMachineStore {
    /// A fresh data-file name in the snapshot directory.
    pub(super) fn next_data_name(&self) -> String {
        let mut g = self.shared.snapshot_seq.lock().expect(POISONED);
        let seq = *g;
        *g += 1;
        data_name(seq)
    }

    /// Builds a snapshot of the applied state: drops unreadable runs, clones the state (apply
    /// waits only for the clone), then writes the clone to a new data file and makes it current.
    /// Returns the snapshot opened for reading (opened before it is made current: a newer one
    /// installed meanwhile removes its file, and the open handle still reads it).
    pub(super) fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        if self.state_on_disk() {
            return self.build_disk();
        }
        // Runs below their log's first index are unreadable: drop them from the live state (so it
        // does not grow with history) and hence from the snapshot. The two logs' first indexes
        // are read before the write lock is taken; they only grow, so a stale one trims less.
        self.purge_events_behind_the_log()?;
        let (raft_first, events_first) = (self.shared.log.first_index(), self.shared.events.first_index());
        let cloning = std::time::Instant::now();
        let (s2, last_applied, membership) = {
            let mut s = self.shared.write();
            let dropped = s.trim_runs(|name| if name == TOPIC_LEDGER { events_first } else { raft_first });
            if dropped > 0 {
                tracing::debug!(dropped, "dropped offset-map runs of purged entries");
            }
            (s.clone(), s.last_applied, s.membership.clone())
        };
        let clone_ms = u64::try_from(cloning.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.mark_events(index_of(last_applied), s2.next_event_seq);
        // The snapshot says "events below next_event_seq exist": make sure they survive a crash.
        super::events::sync_events(&self.shared.events, s2.next_event_seq)?;
        let file = self.next_data_name();
        let syncer = self.shared.log.syncer();
        let started = std::time::Instant::now();
        let len = logstore::write_atomic_with(&*syncer, &self.shared.snapshot_dir, &file, |w| s2.write_snapshot(w))
            .map_err(write_err)?;
        drop(s2);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{file}", l.leader_id, l.index),
            None => format!("none-{file}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let path = self.shared.snapshot_dir.join(&file);
        let reader = fs::File::open(&path).map_err(read_err)?;
        let stored = StoredSnapshot { meta: meta.clone(), path: path.clone(), len };
        self.store_snapshot(&stored)?;
        let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(index = index_of(last_applied), bytes = len, clone_ms, took_ms, "snapshot built");
        let data = SnapshotFile::from_std(reader, path, len);
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }

    /// Makes the published snapshot file `snap` the current snapshot and removes the previous
    /// one's file, unless the current one is newer (a snapshot built from an older state can
    /// finish after a newer one was installed from the leader: making it current would move the
    /// restart point behind the purged log); then `snap`'s own file is removed instead.
    pub(super) fn store_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let mut current = self.shared.current();
        if current.as_ref().is_some_and(|c| c.meta.last_log_id > snap.meta.last_log_id) {
            let _ = fs::remove_file(&snap.path);
            return Ok(());
        }
        let file = snap.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let c = Current { meta: snap.meta.clone(), file, len: snap.len };
        let syncer = self.shared.log.syncer();
        logstore::write_atomic(&*syncer, &self.shared.snapshot_dir, CURRENT_FILE, &encode(&c)).map_err(write_err)?;
        self.made_durable(index_of(snap.meta.last_log_id));
        if let Some(old) = current.replace(snap.clone())
            && old.path != snap.path
        {
            // A follower may still be reading it: its open handle keeps the data.
            if let Err(e) = fs::remove_file(&old.path) {
                tracing::warn!(path = %old.path.display(), error = %e, "could not remove an old snapshot file");
            }
        }
        Ok(())
    }

    /// A new, empty file in the snapshot directory for a snapshot that arrives in chunks.
    pub async fn begin_receive(&self) -> Result<SnapshotFile, StorageError> {
        let path = self.shared.snapshot_dir.join(format!("{}.tmp", self.next_data_name()));
        let std_file = logstore::durable::private_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(write_err)?;
        Ok(SnapshotFile::from_std(std_file, path, 0))
    }

    /// Installs a snapshot received from the leader into `data` (a file from
    /// [`StateMachineStore::begin_receive`]): decodes and checks it, aligns the events log,
    /// publishes the file, makes it current and replaces the state.
    ///
    /// # Panics
    /// If the snapshot is behind the applied state (openraft installs only snapshots past the
    /// committed index; installing an older one would move the state backwards).
    pub(super) async fn install(
        &self,
        meta: &SnapshotMeta<u64, Node>,
        mut data: SnapshotFile,
    ) -> Result<(), StorageError> {
        // A lazy snapshot handed over in-process (openraft's tests do) is written out first.
        data.materialize().await.map_err(write_err)?;
        let SnapshotFile { mut file, path: tmp, .. } = data;
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(write_err)?;
        if self.state_on_disk() {
            // Read through the handle: the data may be a file whose name is already gone.
            let mut file = file.into_std().await;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(read_err)?;
            return self.install_disk(meta, file, tmp).await;
        }
        drop(file);
        let this = self.clone();
        let meta2 = meta.clone();
        let tmp2 = tmp.clone();
        let state = tokio::task::spawn_blocking(move || -> Result<State, StorageError> {
            let mut state = read_state(&tmp2)?;
            state.last_applied = meta2.last_log_id;
            state.membership = meta2.last_membership.clone();
            state.check_invariants().map_err(|e| read_err(std::io::Error::other(e)))?;
            Ok(state)
        })
        .await
        .map_err(write_err)?;
        let state = state.inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        let applied = self.applied_index();
        assert!(
            index_of(state.last_applied) >= applied,
            "snapshot {} is behind the applied index {applied}",
            meta.snapshot_id
        );
        let next_seq = state.next_event_seq;
        let meta2 = meta.clone();
        tokio::task::spawn_blocking(move || {
            // Events this node derived beyond the snapshot are dropped and derived again from the
            // entries after it; events below it that this node never derived are unavailable here
            // (the partitions' start offsets move forward).
            align_events(&this.shared.events, next_seq)?;
            let name =
                tmp.file_name().map(|n| n.to_string_lossy().trim_end_matches(".tmp").to_string()).unwrap_or_default();
            let len = fs::metadata(&tmp).map_err(write_err)?.len();
            let syncer = this.shared.log.syncer();
            logstore::publish(&*syncer, &tmp, &this.shared.snapshot_dir, &name).map_err(write_err)?;
            this.store_snapshot(&StoredSnapshot { meta: meta2, path: this.shared.snapshot_dir.join(name), len })
        })
        .await
        .map_err(write_err)??;
        let applied = index_of(state.last_applied);
        *self.shared.write() = state;
        self.shared.applied_tx.send_replace(applied);
        Ok(())
    }

    /// The last stored snapshot, opened for reading.
    pub(super) async fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        if self.state_on_disk() {
            return self.current_disk().await;
        }
        let cur = self.shared.current().clone();
        let Some(c) = cur else { return Ok(None) };
        let file = c.open().await?;
        Ok(Some(Snapshot { meta: c.meta, snapshot: Box::new(file) }))
    }

    /// Size of the current snapshot's data in bytes (0 when there is none).
    pub fn snapshot_bytes(&self) -> u64 {
        if self.state_on_disk() {
            // A checkpoint of the store costs a commit and an fsync, not a write of the state.
            return 0;
        }
        self.shared.current().as_ref().map_or(0, |c| c.len)
    }

    /// Log index of the current snapshot (0 when there is none).
    pub fn snapshot_index(&self) -> u64 {
        if self.state_on_disk() {
            return self.disk_snapshot_index();
        }
        self.shared.current().as_ref().map_or(0, |c| index_of(c.meta.last_log_id))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, StoredMembership};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::store::records::Records;
    use crate::types::LogId;

    fn open(dir: &Path) -> StateMachineStore {
        let config = logstore::LogConfig { fsync: logstore::FsyncMode::Never, ..Default::default() };
        let (log, _) = logstore::Log::open(dir.join("log"), config.clone()).expect("open log");
        let config = logstore::LogConfig { sync: logstore::SyncPolicy::OnRequest, ..config };
        let (events, _) = logstore::Log::open(dir.join("events"), config).expect("open events log");
        let (log, events) = (Records::open(log).expect("log"), Records::open(events).expect("events log"));
        StateMachineStore::open(log, events, super::super::StateStore::Memory).expect("open state machine")
    }

    fn snapshot_at(index: u64) -> (SnapshotMeta<u64, Node>, Vec<u8>) {
        let id = LogId::new(CommittedLeaderId::new(1, 0), index);
        let state = State { last_applied: Some(id), ..State::initial() };
        let meta = SnapshotMeta {
            last_log_id: Some(id),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("s{index}"),
        };
        (meta, state.to_snapshot_bytes())
    }

    /// `bytes` as a snapshot received in chunks.
    async fn received(sm: &StateMachineStore, bytes: &[u8]) -> SnapshotFile {
        let mut f = sm.begin_receive().await.expect("receive file");
        for chunk in bytes.chunks(7) {
            f.file_mut().write_all(chunk).await.expect("write");
        }
        f
    }

    fn snapshot_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("log").join(SNAPSHOT_DIR))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    async fn read_all(snapshot: Snapshot<TypeConfig>) -> Vec<u8> {
        let mut file = snapshot.snapshot;
        let mut out = Vec::new();
        file.read_to_end(&mut out).await.expect("read");
        out
    }

    /// A snapshot built from an older state that finishes after a newer one was installed must not
    /// replace it: the restart point would fall behind the purged log.
    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, data) = snapshot_at(10);
        let file = received(&sm, &data).await;
        sm.install(&meta, file).await.expect("install");
        assert_eq!(sm.applied_index(), 10);
        assert_eq!(sm.snapshot_index(), 10);
        let (old_meta, old_data) = snapshot_at(5);
        let old_path = sm.shared.snapshot_dir.join(data_name(999));
        fs::write(&old_path, &old_data).expect("write");
        sm.store_snapshot(&StoredSnapshot { meta: old_meta, path: old_path.clone(), len: old_data.len() as u64 })
            .expect("store");
        assert!(!old_path.exists(), "the older snapshot's file is removed");
        let current = sm.current().await.expect("current").expect("a current snapshot");
        assert_eq!(current.meta.snapshot_id, "s10");
        assert_eq!(read_all(current).await, data, "the installed snapshot reads back whole");
        drop(sm);
        let reopened = open(dir.path());
        assert_eq!(reopened.applied_index(), 10, "the snapshot on disk is still the newer one");
        assert_eq!(reopened.opened_at_index(), 10);
    }

    #[tokio::test]
    #[should_panic(expected = "is behind the applied index")]
    async fn installing_a_snapshot_behind_the_applied_index_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, data) = snapshot_at(10);
        let file = received(&sm, &data).await;
        sm.install(&meta, file).await.expect("install");
        let (old_meta, old_data) = snapshot_at(5);
        let file = received(&sm, &old_data).await;
        let _ = sm.install(&old_meta, file).await;
    }

    #[tokio::test]
    async fn a_snapshot_whose_state_breaks_an_invariant_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, _) = snapshot_at(3);
        let mut state = State { last_applied: meta.last_log_id, ..State::initial() };
        state.next_event_seq = 0;
        let file = received(&sm, &state.to_snapshot_bytes()).await;
        let e = sm.install(&meta, file).await.expect_err("a broken snapshot");
        assert!(e.to_string().contains("next_event_seq"), "{e}");
        assert_eq!(sm.applied_index(), 0, "nothing installed");
        assert_eq!(snapshot_files(dir.path()), Vec::<String>::new(), "the received file is removed");
    }

    /// A built snapshot is a file: it reads back as the state's snapshot bytes, is current, and is
    /// what a reopened node starts from. Each build replaces the previous file.
    #[tokio::test]
    async fn built_snapshots_are_files_that_a_restart_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let id = LogId::new(CommittedLeaderId::new(2, 1), 42);
        sm.shared.write().last_applied = Some(id);
        let expected = sm.with_state(State::to_snapshot_bytes);
        let built = sm.build().expect("build");
        assert_eq!(built.meta.last_log_id, Some(id));
        assert_eq!(read_all(built).await, expected);
        let first = snapshot_files(dir.path());
        assert_eq!(first.len(), 2, "current and one data file: {first:?}");
        sm.build().expect("build again");
        let second = snapshot_files(dir.path());
        assert_eq!(second.len(), 2, "the older data file is removed: {second:?}");
        assert_ne!(first, second);
        let current = sm.current().await.expect("current").expect("current snapshot");
        assert_eq!(read_all(current).await, expected);
        drop(sm);
        let reopened = open(dir.path());
        assert_eq!((reopened.applied_index(), reopened.opened_at_index(), reopened.snapshot_index()), (42, 42, 42));
    }

    /// What a crash leaves in the snapshot directory (half-written or half-received files, a data
    /// file written but never made current) is removed on open; the current snapshot stays.
    #[tokio::test]
    async fn open_removes_what_a_crash_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, data) = snapshot_at(7);
        let file = received(&sm, &data).await;
        sm.install(&meta, file).await.expect("install");
        let kept = snapshot_files(dir.path());
        let snap_dir = sm.shared.snapshot_dir.clone();
        drop(sm);
        fs::write(snap_dir.join(format!("{}.tmp", data_name(50))), b"half").expect("write");
        fs::write(snap_dir.join(data_name(51)), &data).expect("write");
        fs::write(snap_dir.join("current.tmp"), b"half").expect("write");
        let reopened = open(dir.path());
        assert_eq!(reopened.applied_index(), 7);
        assert_eq!(snapshot_files(dir.path()), kept);
        assert!(*reopened.shared.snapshot_seq.lock().expect("seq") > 51, "new files never reuse a number");
    }

    /// A snapshot in the layout of lognodes before 2026-12-04 (`snapshot.bin`: meta and data in one
    /// file) is read once and rewritten in the current layout.
    #[tokio::test]
    async fn a_single_file_snapshot_is_rewritten_in_the_current_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snap_dir = dir.path().join("log").join(SNAPSHOT_DIR);
        logstore::create_private_dir_all(&snap_dir).expect("mkdir");
        let (meta, data) = snapshot_at(12);
        fs::write(snap_dir.join(LEGACY_FILE), crate::codec::encode_legacy(&(&meta, &data))).expect("write");
        let sm = open(dir.path());
        assert_eq!(sm.applied_index(), 12);
        let files = snapshot_files(dir.path());
        assert!(!files.contains(&LEGACY_FILE.to_string()), "{files:?}");
        assert_eq!(files.len(), 2, "{files:?}");
        let current = sm.current().await.expect("current").expect("current snapshot");
        assert_eq!(current.meta.snapshot_id, "s12");
        assert_eq!(read_all(current).await, data);
        drop(sm);
        assert_eq!(open(dir.path()).applied_index(), 12, "and it opens again");
        // A `current` file in format 1 (bincode, before 2026-12-06) reads too.
        let bytes = fs::read(snap_dir.join(CURRENT_FILE)).expect("current");
        assert_eq!(bytes[0], crate::codec::FORMAT_POSTCARD);
        let c: Current = crate::codec::decode(&bytes).expect("decode");
        fs::write(snap_dir.join(CURRENT_FILE), crate::codec::encode_legacy(&c)).expect("write");
        assert_eq!(open(dir.path()).applied_index(), 12, "and from a format-1 current file");
    }
}
