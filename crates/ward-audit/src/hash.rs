//! SHA-256 hashes and the two domain-separated hash functions of RFC 6962 /
//! RFC 9162 §2.1: `leaf = SHA-256(0x00 || entry)`, `node = SHA-256(0x01 || left || right)`.
//!
//! Everything else in the crate hashes through this module, so the domain
//! separation that stops a leaf from posing as an interior node lives in one place.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Length of a SHA-256 hash in bytes.
pub const HASH_LEN: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
///
/// `Display` and `FromStr` use lowercase hex; checkpoints use base64
/// ([`Hash::to_base64`], [`Hash::from_base64`]) as C2SP requires.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; HASH_LEN]);

/// Why bytes or text are not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The input has the wrong number of bytes.
    #[error("a SHA-256 hash is {HASH_LEN} bytes, got {0}")]
    Length(usize),
    /// The hex text is not 64 lowercase hex digits.
    #[error("a hash in hex is 64 lowercase hex digits")]
    Hex,
    /// The base64 text does not decode, or is not in canonical padded form.
    #[error("hash is not canonical standard base64 (RFC 4648 §4)")]
    Base64,
}

impl Hash {
    /// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
    pub const EMPTY_ROOT: Hash = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// Wraps 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 32 raw bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| HashError::Length(bytes.len()))
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Standard padded base64, as in checkpoints.
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard padded base64; refuses any other spelling of the same
    /// bytes so that a signed text has exactly one meaning.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        let bytes = BASE64.decode(text).map_err(|_| HashError::Base64)?;
        let hash = Self::from_slice(&bytes)?;
        if hash.to_base64() != text {
            return Err(HashError::Base64);
        }
        Ok(hash)
    }
}

/// Writes `bytes` as lowercase hex without allocating.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(buf.len() / 2) {
        let out = buf.get_mut(..chunk.len() * 2).ok_or(fmt::Error)?;
        hex::encode_to_slice(chunk, out).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(out).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 * HASH_LEN {
            return Err(HashError::Hex);
        }
        let mut out = [0u8; HASH_LEN];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let [hi, lo] = pair else {
                return Err(HashError::Hex);
            };
            *byte = (hex_digit(*hi)? << 4) | hex_digit(*lo)?;
        }
        Ok(Self(out))
    }
}

fn hex_digit(c: u8) -> Result<u8, HashError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(HashError::Hex),
    }
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || entry)`.
#[must_use]
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(entry);
    from_digest(&ctx.finish())
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer means one call into aws-lc instead of four: node
    // hashing dominates tree building and verification.
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    let (prefix, rest) = buf.split_at_mut(1);
    let (l, r) = rest.split_at_mut(HASH_LEN);
    prefix.copy_from_slice(&[NODE_PREFIX]);
    l.copy_from_slice(&left.0);
    r.copy_from_slice(&right.0);
    from_digest(&digest::digest(&digest::SHA256, &buf))
}

fn from_digest(d: &digest::Digest) -> Hash {
    let mut out = [0u8; HASH_LEN];
    // SHA-256 output is 32 bytes by definition of the algorithm we passed in.
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let d = digest::digest(&digest::SHA256, b"");
        assert_eq!(Hash::EMPTY_ROOT.as_bytes().as_slice(), d.as_ref());
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        // RFC 6962 test vector: leaf hash of the empty entry.
        let expected: Hash = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
            .parse()
            .unwrap();
        assert_eq!(leaf_hash(b""), expected);
        let l = leaf_hash(b"a");
        let r = leaf_hash(b"b");
        let mut concat = vec![0x01];
        concat.extend_from_slice(l.as_bytes());
        concat.extend_from_slice(r.as_bytes());
        assert_eq!(
            node_hash(&l, &r).as_bytes().as_slice(),
            digest::digest(&digest::SHA256, &concat).as_ref()
        );
        assert_ne!(node_hash(&l, &r), leaf_hash(&concat[1..]));
    }

    #[test]
    fn hex_and_base64_round_trip_and_refuse_junk() {
        let h = leaf_hash(b"x");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert_eq!("AB".parse::<Hash>(), Err(HashError::Hex));
        assert_eq!(
            h.to_string().to_uppercase().parse::<Hash>(),
            Err(HashError::Hex)
        );
        assert_eq!(Hash::from_base64("AAAA"), Err(HashError::Length(3)));
        let unpadded = h.to_base64().trim_end_matches('=').to_owned();
        assert_eq!(Hash::from_base64(&unpadded), Err(HashError::Base64));
        assert_eq!(Hash::from_slice(&[0; 31]), Err(HashError::Length(31)));
    }
}
