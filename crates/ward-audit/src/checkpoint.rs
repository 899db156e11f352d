//! C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed tree
//! head. Its note text is `<origin>\n<tree size>\n<base64 root hash>\n`,
//! optionally followed by extension lines, signed as a [`crate::note`].

use std::fmt;
use std::str::FromStr;

use crate::hash::Hash;
use crate::index::{TreeSize, parse_decimal};
use crate::note::{NoteError, NoteSigner, NoteVerifier, SignedNote};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around it is malformed or not trusted.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// An origin that is empty or spans lines.
    #[error("origin must be one non-empty line without control characters")]
    Origin,
    /// A line of the checkpoint text is missing or malformed.
    #[error("checkpoint line {line} ({what}): {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// Which line (`origin`, `tree size`, …).
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A checkpoint of another log.
    #[error("checkpoint is for origin {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// Origin that was expected.
        expected: String,
        /// Origin found.
        found: String,
    },
}

/// The log's identity, first line of every checkpoint.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Origin(String);

impl Origin {
    /// A non-empty single line without control characters.
    pub fn new(origin: &str) -> Result<Self, CheckpointError> {
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(CheckpointError::Origin);
        }
        Ok(Self(origin.to_owned()))
    }

    /// The origin text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Origin {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A tree head: origin, size, root (and opaque extension lines, kept but
/// never produced by Ward).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    origin: Origin,
    size: TreeSize,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    #[must_use]
    pub fn new(origin: Origin, size: TreeSize, root: Hash) -> Self {
        Self {
            origin,
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Parses a checkpoint's note text (which ends with a newline).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let line = |line, what, reason| CheckpointError::Line { line, what, reason };
        let body = text
            .strip_suffix('\n')
            .ok_or(line(1, "text", "must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin =
            lines
                .next()
                .filter(|o| !o.is_empty())
                .ok_or(line(1, "origin", "must not be empty"))?;
        let origin =
            Origin::new(origin).map_err(|_| line(1, "origin", "has control characters"))?;
        let size = lines.next().ok_or(line(2, "tree size", "is missing"))?;
        let size = parse_decimal(size).map_err(|_| {
            line(
                2,
                "tree size",
                "must be a decimal number without leading zeros",
            )
        })?;
        let root = lines.next().ok_or(line(3, "root hash", "is missing"))?;
        let root = Hash::from_base64(root)
            .map_err(|_| line(3, "root hash", "must be a 32-byte hash in standard base64"))?;
        let mut extensions = Vec::new();
        for (i, ext) in lines.enumerate() {
            if ext.is_empty() {
                return Err(line(4 + i, "extension", "must not be empty"));
            }
            extensions.push(ext.to_owned());
        }
        Ok(Self {
            origin,
            size: TreeSize::new(size),
            root,
            extensions,
        })
    }

    /// The log's origin.
    #[must_use]
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The tree size.
    #[must_use]
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The root hash.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Extension lines, if any.
    #[must_use]
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Signs this checkpoint.
    pub fn sign(&self, signer: &NoteSigner) -> Result<SignedCheckpoint, CheckpointError> {
        let note = signer.sign(&self.to_string())?;
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            note,
        })
    }
}

/// The note text.
impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}\n{}\n{}",
            self.origin,
            self.size,
            self.root.to_base64()
        )?;
        for ext in &self.extensions {
            writeln!(f, "{ext}")?;
        }
        Ok(())
    }
}

/// A checkpoint together with its signed note, verified or freshly signed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: String,
}

impl SignedCheckpoint {
    /// Parses `note`, verifies it against the `trusted` keys, parses the
    /// checkpoint and checks it is for `origin`.
    pub fn open(
        note: &[u8],
        trusted: &[NoteVerifier],
        origin: &Origin,
    ) -> Result<Self, CheckpointError> {
        let parsed = SignedNote::parse(note)?;
        let text = parsed.verify(trusted)?;
        let checkpoint = Checkpoint::parse(text)?;
        if checkpoint.origin != *origin {
            return Err(CheckpointError::WrongOrigin {
                expected: origin.0.clone(),
                found: checkpoint.origin.0,
            });
        }
        Ok(Self {
            checkpoint,
            note: String::from_utf8_lossy(note).into_owned(),
        })
    }

    /// The checkpoint.
    #[must_use]
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed note, as served at `<prefix>/checkpoint`.
    #[must_use]
    pub fn note(&self) -> &str {
        &self.note
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::KeyName;

    fn origin() -> Origin {
        Origin::new("example.com/ward").unwrap()
    }

    #[test]
    fn text_round_trips_and_matches_the_spec_layout() {
        let cp = Checkpoint::new(origin(), TreeSize::new(20_852_163), leaf_hash(b"x"));
        let text = cp.to_string();
        assert_eq!(
            text,
            format!(
                "example.com/ward\n20852163\n{}\n",
                leaf_hash(b"x").to_base64()
            )
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        let with_ext = format!("{text}ext one\n");
        assert_eq!(
            Checkpoint::parse(&with_ext).unwrap().extensions(),
            ["ext one"]
        );
    }

    #[test]
    fn malformed_texts_name_the_line() {
        let root = leaf_hash(b"x").to_base64();
        let cases = [
            (format!("o\n1\n{root}"), 1),
            (format!("\n1\n{root}\n"), 1),
            ("o\n".to_owned(), 2),
            (format!("o\n01\n{root}\n"), 2),
            (format!("o\n-1\n{root}\n"), 2),
            ("o\n1\n".to_owned(), 3),
            ("o\n1\nAAAA\n".to_owned(), 3),
            (format!("o\n1\n{root}\n\n"), 4),
        ];
        for (text, want) in cases {
            match Checkpoint::parse(&text) {
                Err(CheckpointError::Line { line, .. }) => assert_eq!(line, want, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn sign_then_open_and_refuse_other_origins() {
        let signer =
            NoteSigner::from_seed(KeyName::new("example.com/ward").unwrap(), &[9; 32]).unwrap();
        let cp = Checkpoint::new(origin(), TreeSize::new(3), leaf_hash(b"r"));
        let signed = cp.sign(&signer).unwrap();
        let trusted = [signer.verifier().clone()];
        let opened = SignedCheckpoint::open(signed.note().as_bytes(), &trusted, &origin()).unwrap();
        assert_eq!(opened.checkpoint(), &cp);
        assert!(matches!(
            SignedCheckpoint::open(
                signed.note().as_bytes(),
                &trusted,
                &Origin::new("other").unwrap()
            ),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        assert!(Origin::new("").is_err());
        assert!(Origin::new("a\nb").is_err());
    }
}
