//! The typed fields of the audit record that have a fixed format (time,
//! trace ID, certificate serial, body digest): parsed once, in one spelling
//! (lowercase hex), and serialized as such.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest time we encode: 2^53 − 1 ms, the largest integer JSON numbers
/// carry exactly everywhere (RFC 8785 §3.2.2.3, I-JSON).
pub const MAX_UNIX_MILLIS: u64 = (1 << 53) - 1;

/// Why a field value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A time beyond [`MAX_UNIX_MILLIS`].
    #[error("time {0} ms is beyond 2^53 - 1")]
    Time(u64),
    /// A time before 1970.
    #[error("time is before the Unix epoch")]
    BeforeEpoch,
    /// A trace ID that is not 32 lowercase hex digits or is all zero.
    #[error("trace id must be 32 lowercase hex digits, not all zero (W3C trace context)")]
    TraceId,
    /// A serial that is not 1 to 20 bytes of lowercase hex.
    #[error("certificate serial must be 1 to 20 bytes as lowercase hex")]
    CertSerial,
    /// A digest that is not 64 lowercase hex digits.
    #[error("body digest must be 64 lowercase hex digits (SHA-256)")]
    BodyDigest,
}

/// Milliseconds since the Unix epoch, UTC, at most [`MAX_UNIX_MILLIS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(u64);

impl UnixMillis {
    /// Checks the bound.
    pub fn new(ms: u64) -> Result<Self, FieldError> {
        if ms > MAX_UNIX_MILLIS {
            return Err(FieldError::Time(ms));
        }
        Ok(Self(ms))
    }

    /// Converts a clock reading (the caller's clock: the core reads none).
    pub fn from_system_time(time: SystemTime) -> Result<Self, FieldError> {
        let since = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| FieldError::BeforeEpoch)?;
        let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        Self::new(ms)
    }

    /// The milliseconds.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A W3C trace-context trace ID: 16 bytes, not all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// Refuses the all-zero (invalid) ID.
    pub fn new(bytes: [u8; 16]) -> Result<Self, FieldError> {
        if bytes == [0; 16] {
            return Err(FieldError::TraceId);
        }
        Ok(Self(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// An X.509 certificate serial number: 1 to 20 bytes (RFC 5280 §4.1.2.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertSerial(Vec<u8>);

impl CertSerial {
    /// Checks the length.
    pub fn new(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.is_empty() || bytes.len() > 20 {
            return Err(FieldError::CertSerial);
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// SHA-256 of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyDigest([u8; 32]);

impl BodyDigest {
    /// Hashes `body`.
    #[must_use]
    pub fn of(body: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, body);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// A digest computed elsewhere (e.g. over canonical JSON).
    #[must_use]
    pub const fn from_bytes(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The raw digest.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Lowercase hex only: one spelling per value.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2)
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

macro_rules! hex_text {
    ($ty:ident, $err:expr, |$b:ident| $parse:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                crate::hash::write_hex(f, &self.0)
            }
        }

        impl FromStr for $ty {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, FieldError> {
                let $b = from_hex(s).ok_or($err)?;
                $parse
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_text!(TraceId, FieldError::TraceId, |b| {
    Self::new(b.try_into().map_err(|_| FieldError::TraceId)?)
});
hex_text!(CertSerial, FieldError::CertSerial, |b| Self::new(&b));
hex_text!(BodyDigest, FieldError::BodyDigest, |b| {
    b.try_into().map(Self).map_err(|_| FieldError::BodyDigest)
});

impl Serialize for UnixMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(u64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
