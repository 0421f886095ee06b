//! The record frame: `len: u32 | crc32c: u32 | index: u64 | payload`.
//!
//! All integers are little-endian. The CRC32C covers `len`, `index` and the payload, so a frame
//! read back is checked for both its content and its position in the log (a record copied to the
//! wrong place fails too).

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// Encodes one frame onto `buf`.
pub fn encode(buf: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length checked against RECORD_SIZE_MAX");
    let crc = checksum(len, index, payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
}

fn checksum(len: u32, index: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// The fixed-size part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length in bytes.
    pub len: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Log index stored in the frame.
    pub index: u64,
}

impl Header {
    /// Parses a header from the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..HEADER_LEN)?;
        Some(Header {
            len: u32::from_le_bytes(b[0..4].try_into().ok()?),
            crc: u32::from_le_bytes(b[4..8].try_into().ok()?),
            index: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }

    /// Total frame length, header included.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether `payload` matches the stored checksum.
    pub fn verify(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && checksum(self.len, self.index, payload) == self.crc
    }
}

/// Why a frame at some offset is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer than a header's bytes remain.
    ShortHeader,
    /// The header claims more bytes than remain (or than the record limit).
    ShortPayload {
        /// What the header claims, as a total frame length.
        frame_len: u64,
    },
    /// The frame is complete but its checksum fails.
    Checksum {
        /// The frame's total length.
        frame_len: u64,
    },
    /// The checksum is fine but the frame holds another index than expected.
    WrongIndex {
        /// What the frame holds.
        found: u64,
    },
}

impl Invalid {
    /// A human-readable reason for error messages.
    pub fn reason(&self, expected_index: u64) -> String {
        match self {
            Invalid::ShortHeader => "truncated frame header".to_string(),
            Invalid::ShortPayload { frame_len } => {
                format!("frame of {frame_len} bytes runs past the end of the file")
            }
            Invalid::Checksum { .. } => format!("checksum mismatch in record {expected_index}"),
            Invalid::WrongIndex { found } => {
                format!("frame holds index {found}, expected {expected_index}")
            }
        }
    }
}

/// Checks the frame at the start of `bytes`, which must hold log index `expected_index`.
/// Returns the header and the frame's total length.
pub fn check(bytes: &[u8], expected_index: u64, record_size_max: usize) -> Result<(Header, u64), Invalid> {
    let header = Header::parse(bytes).ok_or(Invalid::ShortHeader)?;
    let frame_len = header.frame_len();
    if header.len as usize > record_size_max || frame_len > bytes.len() as u64 {
        return Err(Invalid::ShortPayload { frame_len });
    }
    let payload = &bytes[HEADER_LEN..frame_len as usize];
    if !header.verify(payload) {
        return Err(Invalid::Checksum { frame_len });
    }
    if header.index != expected_index {
        return Err(Invalid::WrongIndex { found: header.index });
    }
    Ok((header, frame_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(index: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, index, payload);
        buf
    }

    #[test]
    fn a_frame_round_trips() {
        let buf = one(42, b"hello");
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let (h, len) = check(&buf, 42, 1024).expect("valid frame");
        assert_eq!(h.len, 5);
        assert_eq!(h.index, 42);
        assert_eq!(len, buf.len() as u64);
    }

    #[test]
    fn an_empty_payload_is_a_valid_frame() {
        let buf = one(0, b"");
        assert!(check(&buf, 0, 1024).is_ok());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = one(7, b"some payload bytes");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(check(&bad, 7, 1024).is_err(), "flip at byte {byte} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn a_frame_at_the_wrong_position_is_rejected() {
        let buf = one(7, b"x");
        assert_eq!(check(&buf, 8, 1024), Err(Invalid::WrongIndex { found: 7 }));
    }

    #[test]
    fn short_buffers_are_reported_as_such() {
        let buf = one(1, b"abcdef");
        assert_eq!(check(&buf[..10], 1, 1024), Err(Invalid::ShortHeader));
        assert!(matches!(check(&buf[..20], 1, 1024), Err(Invalid::ShortPayload { .. })));
    }

    #[test]
    fn a_length_over_the_record_limit_is_not_trusted() {
        let buf = one(1, &[0u8; 100]);
        assert!(matches!(check(&buf, 1, 99), Err(Invalid::ShortPayload { .. })));
    }
}
