//! The spool's bytes on disk: segment file names, the segment header, record
//! frames and the version 1 acknowledgement cursor file (read only, to
//! migrate it; `cursor.rs` owns the current one). Pure encoding and decoding;
//! no I/O happens here.
//!
//! A segment is `HEADER_LEN` bytes of header followed by frames:
//!
//! ```text
//! header: magic "wspool\0\x01" (8) | first sequence number (u64 LE)
//! frame:  len (u32 LE) | crc (u32 LE) | payload (len bytes)
//! ```
//!
//! The checksum is CRC-32C (Castagnoli) over the four length bytes *and*
//! the payload. Covering the length means a zero-filled region (what some
//! filesystems expose after a crash in a file's extended tail) is never a
//! valid frame: an all-zero header would claim an empty payload with
//! checksum 0, but the CRC-32C of four zero bytes is not 0.

use crc::{CRC_32_ISCSI, Crc, Table};

/// Segment magic: format name and version. Bump the last byte on any change.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"wspool\x00\x01";
/// Bytes before the first frame of a segment.
pub(super) const HEADER_LEN: u64 = 16;
/// Bytes a frame adds to its payload.
pub(super) const FRAME_OVERHEAD: u64 = 8;
/// The format's ceiling on one payload. Decoding treats a larger length as
/// damage, so it also bounds what a corrupt length field can make us read.
pub const MAX_RECORD_LEN: usize = 1 << 20;
/// Suffix of segment files; the stem is the first sequence number, 20 digits.
pub(super) const SEGMENT_SUFFIX: &str = ".seg";
/// First line of the version 1 acknowledgement cursor file.
const CURSOR_MAGIC: &str = "ward-spool-ack/v1";

/// CRC-32C with a 16-lane table (computed at compile time).
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// Why bytes are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FrameError {
    /// Fewer than [`FRAME_OVERHEAD`] bytes remain.
    ShortHeader,
    /// The length exceeds [`MAX_RECORD_LEN`].
    LengthOverLimit,
    /// The payload runs past the end of the data.
    ShortPayload,
    /// The checksum does not match.
    Checksum,
}

impl FrameError {
    /// What to say in a [`super::SpoolError::Corrupt`].
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::ShortHeader => "frame header cut short",
            Self::LengthOverLimit => "frame length over the format's limit",
            Self::ShortPayload => "frame payload cut short",
            Self::Checksum => "frame checksum mismatch",
        }
    }
}

/// The name of the segment whose first record is `first_seq`.
pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first sequence number named by a segment file name, if it is one.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A segment header for `first_seq`.
pub(super) fn encode_header(first_seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0; HEADER_LEN as usize];
    let (magic, seq) = h.split_at_mut(SEGMENT_MAGIC.len());
    magic.copy_from_slice(&SEGMENT_MAGIC);
    seq.copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// The first sequence number in a segment's header, or `None` when the
/// header is short or has the wrong magic.
pub(super) fn decode_header(bytes: &[u8]) -> Option<u64> {
    let (magic, rest) = bytes.split_first_chunk::<8>()?;
    let (seq, _) = rest.split_first_chunk::<8>()?;
    (*magic == SEGMENT_MAGIC).then(|| u64::from_le_bytes(*seq))
}

/// Appends the frame of `payload` to `out`. The caller has checked that
/// `payload` is at most [`MAX_RECORD_LEN`] bytes, so its length fits a u32.
pub(super) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_RECORD_LEN);
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a frame header into the payload length and the checksum,
/// refusing lengths over the format's limit.
pub(super) fn decode_frame_header(header: [u8; 8]) -> Result<(usize, u32), FrameError> {
    let (len, crc) = header.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| FrameError::ShortHeader)?);
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| FrameError::ShortHeader)?);
    let len = usize::try_from(len).map_err(|_| FrameError::LengthOverLimit)?;
    if len > MAX_RECORD_LEN {
        return Err(FrameError::LengthOverLimit);
    }
    Ok((len, crc))
}

/// Checks a payload read after a header decoded by [`decode_frame_header`].
pub(super) fn check_payload(len: usize, crc: u32, payload: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(len).map_err(|_| FrameError::LengthOverLimit)?;
    if checksum(len.to_le_bytes(), payload) == crc {
        Ok(())
    } else {
        Err(FrameError::Checksum)
    }
}

/// Decodes the frame at the start of `bytes`: its payload and the frame's
/// total length.
pub(super) fn decode_frame(bytes: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let (header, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or(FrameError::ShortHeader)?;
    let (len, crc) = decode_frame_header(*header)?;
    let payload = rest.get(..len).ok_or(FrameError::ShortPayload)?;
    check_payload(len, crc, payload)?;
    Ok((payload, len + 8))
}

/// CRC-32C of `bytes` (the ack cursor's slots).
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&len);
    digest.update(payload);
    digest.finalize()
}

/// A version 1 cursor file's contents for "everything below `acked_below`
/// is acknowledged". Only tests write one now.
#[cfg(test)]
pub(super) fn encode_cursor(acked_below: u64) -> String {
    format!("{CURSOR_MAGIC}\n{acked_below}\n")
}

/// Parses a version 1 cursor file; `None` when it is not exactly
/// `ward-spool-ack/v1\n<decimal>\n` with no leading zeros.
pub(super) fn decode_cursor(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(CURSOR_MAGIC)?.strip_prefix('\n')?;
    let digits = rest.strip_suffix('\n')?;
    let n: u64 = digits.parse().ok()?;
    (format!("{CURSOR_MAGIC}\n{n}\n") == text).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_damage_is_named() {
        let mut buf = Vec::new();
        for p in [&b""[..], b"a", &[7; 1000]] {
            encode_frame(p, &mut buf);
        }
        let mut rest = &buf[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let (payload, n) = decode_frame(rest).unwrap();
            got.push(payload.to_vec());
            rest = &rest[n..];
        }
        assert_eq!(got, vec![vec![], b"a".to_vec(), vec![7; 1000]]);

        let mut one = Vec::new();
        encode_frame(b"hello", &mut one);
        assert_eq!(decode_frame(&one[..7]), Err(FrameError::ShortHeader));
        assert_eq!(decode_frame(&one[..12]), Err(FrameError::ShortPayload));
        let mut flipped = one.clone();
        flipped[10] ^= 1;
        assert_eq!(decode_frame(&flipped), Err(FrameError::Checksum));
        let mut long = one.clone();
        long[..4].copy_from_slice(&(MAX_RECORD_LEN as u32 + 1).to_le_bytes());
        assert_eq!(decode_frame(&long), Err(FrameError::LengthOverLimit));
        // Zeros are never a frame, empty or not.
        assert_eq!(decode_frame(&[0; 64]), Err(FrameError::Checksum));
    }

    #[test]
    fn names_headers_and_cursors_parse_strictly() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        for bad in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.tmp",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
        assert_eq!(decode_header(&encode_header(7)), Some(7));
        assert_eq!(decode_header(&encode_header(7)[..15]), None);
        assert_eq!(decode_header(&[0; 16]), None);
        assert_eq!(decode_cursor(encode_cursor(99).as_bytes()), Some(99));
        for bad in [
            "ward-spool-ack/v1\n099\n",
            "ward-spool-ack/v1\n99",
            "x\n99\n",
        ] {
            assert_eq!(decode_cursor(bad.as_bytes()), None, "{bad}");
        }
    }
}
