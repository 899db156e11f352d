//! [`PolicyVersion`]: the content hash that names one policy set.
//!
//! Every decision and audit record carries it, so an auditor can tell exactly
//! which policies decided a call. It is SHA-256 over the bundle's files —
//! its policies and its schema fragments, which can change what a policy
//! means (action groups, attribute types) — sorted by name, each framed by
//! its length, so renaming or moving text between files changes the version
//! and no two different bundles can share one.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// SHA-256 of a policy set's source files, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion([u8; 32]);

/// Why text is not a policy version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not exactly 64 lowercase hex digits.
    #[error("{0:?} is not a policy version: expected 64 lowercase hex digits (a SHA-256)")]
    NotHex(String),
}

impl PolicyVersion {
    /// The version of the given `(file name, text)` pairs; order does not
    /// matter.
    pub fn of_sources<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut sorted: Vec<(&str, &str)> = sources.into_iter().collect();
        sorted.sort_unstable();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"ward-policy-set-v1\n");
        for (name, text) in sorted {
            for part in [name, text] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part.as_bytes());
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of the whole text: every decision and audit record
        // formats its version, and 32 `write!`s cost more than the hash.
        let mut text = [0u8; 64];
        hex::encode_to_slice(self.0, &mut text).map_err(|_| fmt::Error)?;
        // Hex digits are ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyVersion({self})")
    }
}

impl FromStr for PolicyVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::NotHex(s.to_owned());
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for PolicyVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PolicyVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use super::*;

    #[test]
    fn order_free_but_content_and_name_sensitive() {
        let a = PolicyVersion::of_sources([("a", "x"), ("b", "y")]);
        assert_eq!(a, PolicyVersion::of_sources([("b", "y"), ("a", "x")]));
        assert_ne!(a, PolicyVersion::of_sources([("a", "x"), ("b", "z")]));
        // Moving text between files changes the version (length framing).
        assert_ne!(a, PolicyVersion::of_sources([("a", "xy"), ("b", "")]));
        assert_ne!(a, PolicyVersion::of_sources([("a", "x"), ("c", "y")]));
    }

    #[test]
    fn shown_as_lowercase_hex_in_byte_order() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i * 8).unwrap();
        }
        let expected: String = (0..32).map(|i| format!("{:02x}", i * 8)).collect();
        assert_eq!(PolicyVersion(bytes).to_string(), expected);
        assert_eq!(
            format!("{:?}", PolicyVersion(bytes)),
            format!("PolicyVersion({expected})")
        );
    }

    #[test]
    fn text_and_serde_round_trip() {
        let v = PolicyVersion::of_sources([("a", "x")]);
        let s = v.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<PolicyVersion>().unwrap(), v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<PolicyVersion>(&json).unwrap(), v);
        assert!(s.to_uppercase().parse::<PolicyVersion>().is_err());
        assert!(s[..62].parse::<PolicyVersion>().is_err());
        assert!("zz".repeat(32).parse::<PolicyVersion>().is_err());
    }
}
