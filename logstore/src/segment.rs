//! One segment: a data file of frames (`<first-index>.log`) plus, once sealed, an index file
//! (`<first-index>.idx`) mapping each record to its byte offset.
//!
//! Index file layout: `"LIDX" | version: u32 | first_index: u64 | offset: u32 * n | crc32c: u32 | "SEAL"`.
//! The CRC covers the offsets. Only sealed segments have an index file; the active (last) segment
//! keeps its offsets in memory and is rebuilt from its data file on open, which is also how a torn
//! tail is found. Index files are derived data: a missing or damaged one is rebuilt from the data.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN, Invalid};

const IDX_MAGIC: &[u8; 4] = b"LIDX";
const IDX_VERSION: u32 = 1;
const IDX_HEADER_LEN: u64 = 16;
const IDX_TRAILER_MAGIC: &[u8; 4] = b"SEAL";
const IDX_TRAILER_LEN: u64 = 8;
/// Read size used when scanning a data file.
const SCAN_BUF_BYTES: usize = 1024 * 1024;

/// File name of the data file of the segment starting at `first_index`.
pub fn data_name(first_index: u64) -> String {
    format!("{first_index:020}.log")
}

fn idx_name(first_index: u64) -> String {
    format!("{first_index:020}.idx")
}

/// Parses a data file name back into its first index.
pub fn parse_data_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Where a segment's offsets live.
#[derive(Debug)]
pub enum Offsets {
    /// The active segment: in memory.
    Memory(Vec<u32>),
    /// A sealed segment: in its index file, read on demand so a large log costs no memory.
    File(File),
}

/// A segment and what the log knows about it.
#[derive(Debug)]
pub struct Segment {
    /// Log index of the first record.
    pub first_index: u64,
    /// Records in the segment.
    pub count: u64,
    /// Bytes of valid frames in the data file.
    pub len: u64,
    /// The data file, opened for reading and writing.
    pub data: Arc<File>,
    /// Path of the data file, for errors.
    pub data_path: PathBuf,
    /// Path of the index file.
    pub idx_path: PathBuf,
    /// Byte offsets of the records.
    pub offsets: Offsets,
}

impl Segment {
    /// Creates a new, empty active segment.
    pub fn create(dir: &Path, first_index: u64) -> Result<Segment> {
        let data_path = dir.join(data_name(first_index));
        let data = crate::durable::private_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&data_path)
            .map_err(Error::io("create segment", &data_path))?;
        Ok(Segment {
            first_index,
            count: 0,
            len: 0,
            data: Arc::new(data),
            data_path,
            idx_path: dir.join(idx_name(first_index)),
            offsets: Offsets::Memory(Vec::new()),
        })
    }

    /// An existing segment whose data file was just scanned: offsets in memory, as when active.
    pub fn from_scan(first_index: u64, data: File, data_path: PathBuf, idx_path: PathBuf, scan: Scan) -> Segment {
        Segment {
            first_index,
            count: scan.offsets.len() as u64,
            len: scan.valid_len,
            data: Arc::new(data),
            data_path,
            idx_path,
            offsets: Offsets::Memory(scan.offsets),
        }
    }

    /// One past the last index held.
    pub fn end_index(&self) -> u64 {
        self.first_index + self.count
    }

    /// Byte offset of record `index`, which must be in this segment or equal to `end_index()`.
    pub fn offset_of(&self, index: u64) -> Result<u64> {
        assert!(index >= self.first_index && index <= self.end_index(), "offset_of out of range");
        if index == self.end_index() {
            return Ok(self.len);
        }
        let slot = index - self.first_index;
        match &self.offsets {
            Offsets::Memory(v) => Ok(u64::from(v[slot as usize])),
            Offsets::File(f) => {
                let mut b = [0u8; 4];
                f.read_exact_at(&mut b, IDX_HEADER_LEN + 4 * slot).map_err(Error::io("read index", &self.idx_path))?;
                Ok(u64::from(u32::from_le_bytes(b)))
            }
        }
    }

    /// Records appended frames: `frame_lens` in order, starting at the current end.
    pub fn push_offsets(&mut self, frame_lens: &[u64]) {
        let Offsets::Memory(v) = &mut self.offsets else {
            panic!("append to a sealed segment {}", self.data_path.display());
        };
        for len in frame_lens {
            v.push(u32::try_from(self.len).expect("segment size is capped below u32::MAX"));
            self.len += len;
            self.count += 1;
        }
        assert_eq!(v.len() as u64, self.count, "index entries must match record count");
    }

    /// Writes the index file with its trailer and switches to on-demand offsets.
    /// The index is derived data, so it is not synced: a damaged one is rebuilt on open.
    pub fn seal(&mut self) -> Result<()> {
        let Offsets::Memory(v) = &self.offsets else { return Ok(()) };
        let bytes = encode_index(self.first_index, v);
        let tmp = self.idx_path.with_extension("idx.tmp");
        {
            use std::io::Write as _;
            let mut f = crate::durable::private_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(Error::io("write index", &tmp))?;
            f.write_all(&bytes).map_err(Error::io("write index", &tmp))?;
        }
        fs::rename(&tmp, &self.idx_path).map_err(Error::io("rename index", &self.idx_path))?;
        let f = File::open(&self.idx_path).map_err(Error::io("open index", &self.idx_path))?;
        self.offsets = Offsets::File(f);
        Ok(())
    }

    /// Makes this segment the active one again (after a truncation): offsets back in memory.
    pub fn unseal(&mut self) -> Result<()> {
        if let Offsets::File(_) = &self.offsets {
            let mut v = Vec::with_capacity(self.count as usize);
            for i in self.first_index..self.end_index() {
                v.push(u32::try_from(self.offset_of(i)?).expect("offsets are u32"));
            }
            self.offsets = Offsets::Memory(v);
            remove_if_exists(&self.idx_path)?;
        }
        Ok(())
    }

    /// Drops every record from `index` on: shrinks the data file (the caller syncs it).
    pub fn truncate_from(&mut self, index: u64) -> Result<()> {
        assert!(index > self.first_index && index <= self.end_index());
        self.unseal()?;
        let new_len = self.offset_of(index)?;
        self.data.set_len(new_len).map_err(Error::io("truncate segment", &self.data_path))?;
        let Offsets::Memory(v) = &mut self.offsets else { unreachable!("unsealed above") };
        v.truncate((index - self.first_index) as usize);
        self.count = index - self.first_index;
        self.len = new_len;
        Ok(())
    }

    /// Deletes both files of this segment.
    pub fn remove_files(&self) -> Result<()> {
        remove_if_exists(&self.data_path)?;
        remove_if_exists(&self.idx_path)
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path)(e)),
    }
}

fn encode_index(first_index: u64, offsets: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IDX_HEADER_LEN as usize + offsets.len() * 4 + IDX_TRAILER_LEN as usize);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&IDX_VERSION.to_le_bytes());
    out.extend_from_slice(&first_index.to_le_bytes());
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[IDX_HEADER_LEN as usize..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(IDX_TRAILER_MAGIC);
    out
}

/// What scanning a data file found.
#[derive(Debug)]
pub struct Scan {
    /// Offsets of the valid records.
    pub offsets: Vec<u32>,
    /// Bytes of valid frames.
    pub valid_len: u64,
    /// Bytes after the valid frames that form a torn tail (only for the last segment).
    pub torn_bytes: u64,
}

/// Reads a data file front to back, checking every frame.
///
/// In the last segment (`tail = true`) an invalid frame that reaches the end of the file, or a
/// remainder of zero bytes, is a torn write from a crash and is reported in `torn_bytes`. Any
/// other invalid frame is corruption.
pub fn scan(path: &Path, file: &File, first_index: u64, record_size_max: usize, tail: bool) -> Result<Scan> {
    let file_len = file.metadata().map_err(Error::io("stat", path))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUF_BYTES, file);
    let mut offsets = Vec::new();
    let mut pos = 0u64;
    let mut buf = Vec::new();
    let mut header = [0u8; HEADER_LEN];
    while pos < file_len {
        let expected = first_index + offsets.len() as u64;
        let remaining = file_len - pos;
        let invalid = if remaining < HEADER_LEN as u64 {
            Some(Invalid::ShortHeader)
        } else {
            reader.read_exact(&mut header).map_err(Error::io("read segment", path))?;
            let h = frame::Header::parse(&header).expect("header buffer has HEADER_LEN bytes");
            let frame_len = h.frame_len();
            if h.len as usize > record_size_max || frame_len > remaining {
                Some(Invalid::ShortPayload { frame_len })
            } else {
                buf.resize(h.len as usize, 0);
                reader.read_exact(&mut buf).map_err(Error::io("read segment", path))?;
                if !h.verify(&buf) {
                    Some(Invalid::Checksum { frame_len })
                } else if h.index != expected {
                    Some(Invalid::WrongIndex { found: h.index })
                } else {
                    offsets.push(u32::try_from(pos).map_err(|_| Error::Corruption {
                        path: path.to_path_buf(),
                        offset: pos,
                        reason: "segment larger than 4 GiB".into(),
                    })?);
                    pos += frame_len;
                    None
                }
            }
        };
        if let Some(invalid) = invalid {
            if tail && is_torn(&invalid, remaining, file, pos, file_len, path)? {
                return Ok(Scan { offsets, valid_len: pos, torn_bytes: file_len - pos });
            }
            return Err(Error::Corruption { path: path.to_path_buf(), offset: pos, reason: invalid.reason(expected) });
        }
    }
    Ok(Scan { offsets, valid_len: pos, torn_bytes: 0 })
}

/// Whether an invalid frame at `pos` looks like the torn end of the last write rather than damage
/// to data that was once complete.
fn is_torn(invalid: &Invalid, remaining: u64, file: &File, pos: u64, file_len: u64, path: &Path) -> Result<bool> {
    let reaches_end = match invalid {
        Invalid::ShortHeader | Invalid::ShortPayload { .. } => true,
        Invalid::Checksum { frame_len } => *frame_len == remaining,
        // A frame with a valid checksum at the wrong position was written whole: not a tear.
        Invalid::WrongIndex { .. } => false,
    };
    if reaches_end {
        return Ok(true);
    }
    // File systems may expose zero-filled blocks past the last complete write after a crash.
    let mut chunk = vec![0u8; SCAN_BUF_BYTES];
    let mut at = pos;
    while at < file_len {
        let n = usize::try_from((file_len - at).min(SCAN_BUF_BYTES as u64)).expect("bounded by SCAN_BUF_BYTES");
        file.read_exact_at(&mut chunk[..n], at).map_err(Error::io("read segment", path))?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Why a sealed segment's index file cannot be trusted (it is then rebuilt).
pub fn check_index(
    idx_path: &Path,
    first_index: u64,
    expected_count: Option<u64>,
    data: &File,
    data_path: &Path,
    record_size_max: usize,
) -> std::result::Result<(File, u64, u64), String> {
    let bytes = fs::read(idx_path).map_err(|e| format!("unreadable: {e}"))?;
    let len = bytes.len() as u64;
    if len < IDX_HEADER_LEN + IDX_TRAILER_LEN || !(len - IDX_HEADER_LEN - IDX_TRAILER_LEN).is_multiple_of(4) {
        return Err(format!("bad length {len}"));
    }
    if &bytes[0..4] != IDX_MAGIC
        || u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) != IDX_VERSION
        || u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) != first_index
    {
        return Err("bad header".into());
    }
    let body_end = bytes.len() - IDX_TRAILER_LEN as usize;
    if &bytes[body_end + 4..] != IDX_TRAILER_MAGIC {
        return Err("not sealed".into());
    }
    let crc = u32::from_le_bytes(bytes[body_end..body_end + 4].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[IDX_HEADER_LEN as usize..body_end]) != crc {
        return Err("checksum mismatch".into());
    }
    let count = (body_end as u64 - IDX_HEADER_LEN) / 4;
    if count == 0 {
        return Err("sealed segment with no records".into());
    }
    if let Some(expected) = expected_count
        && expected != count
    {
        return Err(format!("holds {count} entries, the next segment implies {expected}"));
    }
    // The last entry must point at a whole frame of the right index that ends the data file.
    let last_at = body_end - 4;
    let last_offset = u64::from(u32::from_le_bytes(bytes[last_at..body_end].try_into().expect("4 bytes")));
    let data_len = data.metadata().map_err(|e| format!("stat {}: {e}", data_path.display()))?.len();
    let mut header = [0u8; HEADER_LEN];
    data.read_exact_at(&mut header, last_offset).map_err(|e| format!("last entry unreadable: {e}"))?;
    let h = frame::Header::parse(&header).expect("HEADER_LEN bytes");
    if h.index != first_index + count - 1 || h.len as usize > record_size_max || last_offset + h.frame_len() != data_len
    {
        return Err("last entry does not match the data file".into());
    }
    let file = File::open(idx_path).map_err(|e| format!("reopen: {e}"))?;
    Ok((file, count, data_len))
}

/// Opens the data file of an existing segment.
pub fn open_data(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).open(path).map_err(Error::io("open segment", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_names_round_trip_and_sort_by_index() {
        assert_eq!(parse_data_name(&data_name(0)), Some(0));
        assert_eq!(parse_data_name(&data_name(u64::MAX)), Some(u64::MAX));
        assert!(data_name(9) < data_name(10));
        assert_eq!(parse_data_name("123.log"), None);
        assert_eq!(parse_data_name("0000000000000000000a.log"), None);
        assert_eq!(parse_data_name(&idx_name(5)), None);
    }
}
