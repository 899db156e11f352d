//! SPIFFE identifiers, parsed by the rules of the SPIFFE ID specification
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>).
//!
//! Parse, don't validate: a [`SpiffeId`] or [`TrustDomain`] that exists is valid,
//! so code downstream never re-checks. The parser is deliberately strict — no
//! normalisation, no percent-decoding, no case folding — because two proxies
//! that read one identity two ways is exactly the gap an attacker looks for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SPIFFE URI scheme with its authority marker.
const SCHEME_PREFIX: &str = "spiffe://";
/// SPIFFE ID: "URIs ... MUST NOT exceed 2048 bytes".
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// SPIFFE ID: trust domain names "MUST NOT exceed 255 bytes".
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest agent name we accept; keeps IDs, file names and log lines readable.
pub const MAX_AGENT_NAME_LEN: usize = 63;
/// Path prefix under which every agent's SPIFFE ID lives.
pub const AGENT_PATH_PREFIX: &str = "/agent/";

/// Why a string is not a valid SPIFFE ID, trust domain or agent name.
///
/// Every variant names the rule that was broken so the message can tell the
/// user how to fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input was empty.
    #[error("is empty")]
    Empty,
    /// The input does not start with `spiffe://`.
    #[error("must start with `spiffe://` (lowercase scheme)")]
    WrongScheme,
    /// The input is longer than the specification allows.
    #[error("is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// No trust domain between `spiffe://` and the path.
    #[error("has no trust domain after `spiffe://`")]
    MissingTrustDomain,
    /// A trust domain character outside `[a-z0-9._-]`.
    #[error(
        "trust domain has {found:?} at byte {at}; only lowercase letters, digits, `.`, `-` and `_` are allowed (no port, userinfo or uppercase)"
    )]
    BadTrustDomainChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the trust domain.
        at: usize,
    },
    /// Two slashes in a row, or a lone `/` path.
    #[error("path has an empty segment (`//` or a lone `/`)")]
    EmptySegment,
    /// The path ends in `/`.
    #[error("path ends with `/`; remove the trailing slash")]
    TrailingSlash,
    /// A `.` or `..` segment.
    #[error("path has a `.` or `..` segment, which the specification forbids")]
    DotSegment,
    /// A path character outside `[A-Za-z0-9._-]`.
    #[error(
        "path has {found:?} at byte {at}; segments allow only letters, digits, `.`, `-` and `_` (no query, fragment or percent-encoding)"
    )]
    BadPathChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the path.
        at: usize,
    },
    /// The ID has a path where only a trust domain was expected, or vice versa.
    #[error("{0}")]
    Shape(&'static str),
    /// An agent name outside the allowed alphabet or length.
    #[error(
        "agent name {0:?} is invalid: use 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or digit"
    )]
    BadAgentName(String),
}

/// A SPIFFE trust domain name, such as `example.org`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`) or a trust-domain
    /// SPIFFE ID (`spiffe://example.org`, no path).
    pub fn new(input: &str) -> Result<Self, IdError> {
        if input.starts_with(SCHEME_PREFIX) {
            let id = SpiffeId::new(input)?;
            if !id.path().is_empty() {
                return Err(IdError::Shape(
                    "a trust domain ID must not have a path; drop everything after the domain",
                ));
            }
            return Ok(id.trust_domain().clone());
        }
        validate_trust_domain(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The trust domain name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            uri: format!("{SCHEME_PREFIX}{}", self.0),
            td_end: SCHEME_PREFIX.len() + self.0.len(),
            trust_domain: self.clone(),
        }
    }

    /// The SPIFFE ID Ward gives an agent: `spiffe://<td>/agent/<name>`.
    pub fn agent_id(&self, name: &AgentName) -> SpiffeId {
        let uri = format!("{SCHEME_PREFIX}{}{AGENT_PATH_PREFIX}{}", self.0, name.0);
        SpiffeId {
            td_end: SCHEME_PREFIX.len() + self.0.len(),
            uri,
            trust_domain: self.clone(),
        }
    }
}

fn validate_trust_domain(td: &str) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TooLong {
            len: td.len(),
            max: MAX_TRUST_DOMAIN_LEN,
        });
    }
    match td
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some((at, found)) => Err(IdError::BadTrustDomainChar { found, at }),
        None => Ok(()),
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A SPIFFE ID: `spiffe://<trust-domain><path>`, where the path is empty or a
/// sequence of `/segment`s.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    uri: String,
    /// Byte offset where the trust domain ends and the path begins.
    td_end: usize,
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// Parses a SPIFFE ID by the specification's rules.
    pub fn new(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdError::TooLong {
                len: input.len(),
                max: MAX_SPIFFE_ID_LEN,
            });
        }
        let rest = input
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(IdError::WrongScheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_trust_domain(td)?;
        validate_path(path)?;
        Ok(Self {
            uri: input.to_owned(),
            td_end: SCHEME_PREFIX.len() + td.len(),
            trust_domain: TrustDomain(td.to_owned()),
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        self.uri.get(self.td_end..).unwrap_or_default()
    }

    /// The whole ID as a URI string.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// Whether this ID belongs to `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        &self.trust_domain == td
    }

    /// The agent name if this is an agent ID (`/agent/<name>`), else `None`.
    pub fn agent_name(&self) -> Option<AgentName> {
        self.path()
            .strip_prefix(AGENT_PATH_PREFIX)
            .and_then(|name| AgentName::new(name).ok())
    }
}

fn validate_path(path: &str) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with('/') {
        // A lone "/" is an empty segment; "/a/" a trailing slash.
        return Err(if path == "/" {
            IdError::EmptySegment
        } else {
            IdError::TrailingSlash
        });
    }
    // `path` starts with '/', so the first split item is the empty prefix.
    let mut offset = 0;
    for segment in path.split('/').skip(1) {
        offset += 1;
        if segment.is_empty() {
            return Err(IdError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(IdError::DotSegment);
        }
        if let Some((i, found)) = segment
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(IdError::BadPathChar {
                found,
                at: offset + i,
            });
        }
        offset += segment.len();
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The name of a registered agent; the last segment of its SPIFFE ID.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentName(String);

impl AgentName {
    /// Parses an agent name: 1–63 of `[a-z0-9_-]`, starting with a letter or digit.
    ///
    /// Narrower than a SPIFFE path segment on purpose: names become file names,
    /// Cedar entity ids and DNS-like `Host` values, so no dots and no uppercase.
    pub fn new(name: &str) -> Result<Self, IdError> {
        let valid_start = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid_start && valid_chars && name.len() <= MAX_AGENT_NAME_LEN {
            Ok(Self(name.to_owned()))
        } else {
            Err(IdError::BadAgentName(name.to_owned()))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentName({})", self.0)
    }
}

impl FromStr for AgentName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$ty>::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(SpiffeId);
string_serde!(TrustDomain);
string_serde!(AgentName);

#[cfg(test)]
mod tests;
