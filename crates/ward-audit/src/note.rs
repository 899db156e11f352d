//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys:
//! key names and IDs, verifier keys (`<name>+<id>+<base64 key>`), signing,
//! strict parsing, and verification against trusted keys.
//!
//! Signing and verifying go through aws-lc-rs, the workspace's one crypto
//! provider. A note is refused if it is malformed, if a signature by a
//! trusted key fails, or if no trusted key signed it; signatures by unknown
//! keys are ignored, as the spec requires.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

/// Signature type byte of Ed25519 in key IDs and verifier keys.
pub const ED25519_TYPE: u8 = 0x01;
/// Length of an Ed25519 public key or seed.
const ED25519_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
const ED25519_SIG_LEN: usize = 64;
/// Largest note we parse; checkpoints are a few hundred bytes, and even
/// sixteen post-quantum cosignatures stay far below this.
pub const MAX_NOTE_LEN: usize = 256 * 1024;
/// Most signature lines we accept (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Prefix of a signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Prefix of the private key string format of Go's `sumdb/note`.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key, a note or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name that is empty or has a space or `+`.
    #[error("key name {0:?} must be non-empty and contain neither spaces nor '+'")]
    KeyName(String),
    /// A verifier key string that does not parse.
    #[error("verifier key is malformed: {0}")]
    VerifierKey(&'static str),
    /// A key string whose ID is not the hash of its name and key.
    #[error("key {name} states ID {stated}, but its name and public key give {computed}")]
    KeyIdMismatch {
        /// Key name.
        name: String,
        /// ID written in the key string.
        stated: KeyId,
        /// ID computed from name and key.
        computed: KeyId,
    },
    /// A key of a signature type other than Ed25519.
    #[error("signature type 0x{0:02x} is not supported; only Ed25519 (0x01) is")]
    UnsupportedType(u8),
    /// A private key that does not parse (its bytes are never shown).
    #[error("private key is malformed: {0}")]
    PrivateKey(&'static str),
    /// The crypto library failed to sign.
    #[error("the Ed25519 signer failed")]
    Signing,
    /// A note bigger than [`MAX_NOTE_LEN`].
    #[error("note is {0} bytes; the limit is {MAX_NOTE_LEN}")]
    TooLarge(usize),
    /// A note that is not UTF-8.
    #[error("note is not valid UTF-8 (from byte {0})")]
    NotUtf8(usize),
    /// An ASCII control character other than newline.
    #[error("note line {line} contains control character 0x{byte:02x}")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
        /// The character.
        byte: u8,
    },
    /// Text that cannot be signed or is not followed by signatures.
    #[error("note text {0}")]
    Text(&'static str),
    /// A malformed signature line.
    #[error("note line {line}: {reason}")]
    SignatureLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has {0} signatures; the limit is {MAX_SIGNATURES}")]
    TooManySignatures(usize),
    /// A signature by a trusted key that does not verify.
    #[error("signature by trusted key {name}+{key_id} does not verify")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: KeyId,
    },
    /// No signature by a trusted key.
    #[error("note carries no signature by a trusted key (signed by: {0})")]
    NoTrustedSignature(String),
}

/// A key name: non-empty, without Unicode spaces or `+`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct KeyName(String);

impl KeyName {
    /// Checks the spec's rules.
    pub fn new(name: &str) -> Result<Self, NoteError> {
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(NoteError::KeyName(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyName {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The 32-bit key ID carried in every signature; shown as 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(u32);

impl KeyId {
    /// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
    #[must_use]
    pub fn ed25519(name: &KeyName, public_key: &[u8; ED25519_KEY_LEN]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(name.as_str().as_bytes());
        ctx.update(&[b'\n', ED25519_TYPE]);
        ctx.update(public_key);
        let d = ctx.finish();
        let mut id = [0u8; 4];
        id.copy_from_slice(d.as_ref().get(..4).unwrap_or(&[0; 4]));
        Self(u32::from_be_bytes(id))
    }

    /// The ID as a number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A trusted Ed25519 public key: name, ID and key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteVerifier {
    name: KeyName,
    id: KeyId,
    public_key: [u8; ED25519_KEY_LEN],
}

impl NoteVerifier {
    /// A verifier for `public_key` under `name`.
    #[must_use]
    pub fn new(name: KeyName, public_key: [u8; ED25519_KEY_LEN]) -> Self {
        let id = KeyId::ed25519(&name, &public_key);
        Self {
            name,
            id,
            public_key,
        }
    }

    /// Key name.
    #[must_use]
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Key ID.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The raw Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> &[u8; ED25519_KEY_LEN] {
        &self.public_key
    }

    fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(text, signature)
            .is_ok()
    }
}

/// `<name>+<8 hex digits of ID>+<base64(0x01 || public key)>`.
impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{}+{}", self.name, self.id, BASE64.encode(key))
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Names never contain '+', base64 keys may.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::VerifierKey("expected <name>+<id>+<key>"));
        };
        let name = KeyName::new(name)?;
        let stated =
            parse_key_id(id).ok_or(NoteError::VerifierKey("the ID is not 8 hex digits"))?;
        let key = decode_canonical(key)
            .ok_or(NoteError::VerifierKey("the key is not standard base64"))?;
        let public_key = typed_ed25519_key(&key).map_err(|e| match e {
            KeyBytesError::Type(t) => NoteError::UnsupportedType(t),
            KeyBytesError::Length => NoteError::VerifierKey("an Ed25519 public key is 32 bytes"),
        })?;
        let verifier = Self::new(name, public_key);
        if verifier.id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: verifier.name.0,
                stated,
                computed: verifier.id,
            });
        }
        Ok(verifier)
    }
}

/// An Ed25519 signing key with its name. `Debug` never shows the key.
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: Ed25519KeyPair,
}

impl NoteSigner {
    /// A fresh random key.
    pub fn generate(name: KeyName) -> Result<Self, NoteError> {
        let key = Ed25519KeyPair::generate().map_err(|_| NoteError::Signing)?;
        Ok(Self::from_key_pair(name, key))
    }

    /// The key from its 32-byte RFC 8032 seed.
    pub fn from_seed(name: KeyName, seed: &[u8]) -> Result<Self, NoteError> {
        if seed.len() != ED25519_KEY_LEN {
            return Err(NoteError::PrivateKey("an Ed25519 seed is 32 bytes"));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::PrivateKey("the seed was rejected"))?;
        Ok(Self::from_key_pair(name, key))
    }

    /// The key from a PKCS#8 (v1 or v2) DER document.
    pub fn from_pkcs8(name: KeyName, der: &[u8]) -> Result<Self, NoteError> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| NoteError::PrivateKey("not an Ed25519 PKCS#8 document"))?;
        Ok(Self::from_key_pair(name, key))
    }

    /// Parses the private key format of Go's `sumdb/note`:
    /// `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`.
    pub fn from_private_key_string(s: &str) -> Result<Self, NoteError> {
        let rest = s
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(NoteError::PrivateKey(
                "expected PRIVATE+KEY+<name>+<id>+<key>",
            ))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::PrivateKey(
                "expected PRIVATE+KEY+<name>+<id>+<key>",
            ));
        };
        let name = KeyName::new(name)?;
        let stated = parse_key_id(id).ok_or(NoteError::PrivateKey("the ID is not 8 hex digits"))?;
        let key = Zeroizing::new(
            decode_canonical(key).ok_or(NoteError::PrivateKey("the key is not standard base64"))?,
        );
        let seed = Zeroizing::new(typed_ed25519_key(&key).map_err(|e| match e {
            KeyBytesError::Type(t) => NoteError::UnsupportedType(t),
            KeyBytesError::Length => NoteError::PrivateKey("an Ed25519 seed is 32 bytes"),
        })?);
        let signer = Self::from_seed(name, seed.as_slice())?;
        if signer.verifier.id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: signer.verifier.name.0.clone(),
                stated,
                computed: signer.verifier.id,
            });
        }
        Ok(signer)
    }

    /// The key in the `PRIVATE+KEY+…` format of
    /// [`NoteSigner::from_private_key_string`]. This is the secret: write it
    /// only to a 0600 file.
    pub fn private_key_string(&self) -> Result<Zeroizing<String>, NoteError> {
        let seed = self
            .key
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| NoteError::Signing)?;
        let mut bytes = Zeroizing::new(vec![ED25519_TYPE]);
        bytes.extend_from_slice(seed.as_ref());
        Ok(Zeroizing::new(format!(
            "{PRIVATE_KEY_PREFIX}{}+{}+{}",
            self.verifier.name,
            self.verifier.id,
            BASE64.encode(bytes.as_slice())
        )))
    }

    fn from_key_pair(name: KeyName, key: Ed25519KeyPair) -> Self {
        let mut public_key = [0u8; ED25519_KEY_LEN];
        public_key.copy_from_slice(key.public_key().as_ref());
        Self {
            verifier: NoteVerifier::new(name, public_key),
            key,
        }
    }

    /// The matching public verifier.
    #[must_use]
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Signs `text` (which must end in a newline and be a valid note text)
    /// and returns the complete signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.verifier.id.0.to_be_bytes().to_vec();
        blob.extend_from_slice(signature.as_ref());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            BASE64.encode(blob)
        ))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier", &self.verifier.to_string())
            .finish_non_exhaustive()
    }
}

/// One signature line of a note.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    name: KeyName,
    key_id: KeyId,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// Name of the signing key.
    #[must_use]
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// ID of the signing key.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

/// A syntactically valid note whose signatures are not verified yet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedNote {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a note strictly (format, UTF-8, control characters, signature
    /// lines, size limits). Verifies nothing.
    pub fn parse(note: &[u8]) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge(note.len()));
        }
        let s = std::str::from_utf8(note).map_err(|e| NoteError::NotUtf8(e.valid_up_to()))?;
        let mut line = 1;
        for b in s.bytes() {
            if b == b'\n' {
                line += 1;
            } else if b < 0x20 {
                return Err(NoteError::ControlCharacter { line, byte: b });
            }
        }
        // The text ends at the last blank line; it keeps its final newline.
        let split = s.rfind("\n\n").ok_or(NoteError::Text(
            "is not followed by a blank line and signatures",
        ))?;
        let (text, block) = s.split_at(split + 1);
        let block = block.get(1..).unwrap_or_default();
        let first_sig_line = text.matches('\n').count() + 2;
        let lines =
            block
                .strip_suffix('\n')
                .filter(|b| !b.is_empty())
                .ok_or(NoteError::SignatureLine {
                    line: first_sig_line,
                    reason: "expected at least one signature line ending in a newline",
                })?;
        let mut signatures = Vec::new();
        for (k, l) in lines.split('\n').enumerate() {
            if k >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures(lines.split('\n').count()));
            }
            let at = |reason| NoteError::SignatureLine {
                line: first_sig_line + k,
                reason,
            };
            let rest = l
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| at("must start with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| at("expected a key name, a space and a signature"))?;
            let name = KeyName::new(name)
                .map_err(|_| at("key name is empty or contains a space or '+'"))?;
            let blob =
                decode_canonical(b64).ok_or_else(|| at("signature is not standard base64"))?;
            let (id, signature) = blob
                .split_first_chunk::<4>()
                .filter(|(_, sig)| !sig.is_empty())
                .ok_or_else(|| at("signature is shorter than a key ID and one byte"))?;
            signatures.push(NoteSignature {
                name,
                key_id: KeyId(u32::from_be_bytes(*id)),
                signature: signature.to_vec(),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, including its final newline. Untrusted until
    /// [`SignedNote::verify`] succeeds.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    #[must_use]
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Checks every signature by a key in `trusted` (same name *and* ID);
    /// ignores the others. Fails if one of them does not verify, or if none
    /// is present. Returns the verified text.
    pub fn verify(&self, trusted: &[NoteVerifier]) -> Result<&str, NoteError> {
        let mut verified = 0;
        for sig in &self.signatures {
            let Some(key) = trusted
                .iter()
                .find(|v| v.name == sig.name && v.id == sig.key_id)
            else {
                continue;
            };
            if sig.signature.len() != ED25519_SIG_LEN
                || !key.verifies(self.text.as_bytes(), &sig.signature)
            {
                return Err(NoteError::BadSignature {
                    name: sig.name.0.clone(),
                    key_id: sig.key_id,
                });
            }
            verified += 1;
        }
        if verified == 0 {
            let seen: Vec<String> = self
                .signatures
                .iter()
                .map(|s| format!("{}+{}", s.name, s.key_id))
                .collect();
            return Err(NoteError::NoTrustedSignature(seen.join(", ")));
        }
        Ok(&self.text)
    }
}

/// The rules a text must meet to be signed: non-empty, newline-terminated,
/// no control characters, and no blank last line (which would move the
/// text/signature boundary when parsed back).
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Text("must end with a newline"));
    }
    if text.ends_with("\n\n") || text == "\n" {
        return Err(NoteError::Text("must not end with a blank line"));
    }
    let mut line = 1;
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
        } else if b < 0x20 {
            return Err(NoteError::ControlCharacter { line, byte: b });
        }
    }
    if text.len() > MAX_NOTE_LEN / 2 {
        return Err(NoteError::TooLarge(text.len()));
    }
    Ok(())
}

fn parse_key_id(hex: &str) -> Option<KeyId> {
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(KeyId)
}

/// Standard padded base64, refusing other spellings of the same bytes.
fn decode_canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
}

enum KeyBytesError {
    Type(u8),
    Length,
}

/// Splits `0x01 || 32 bytes`.
fn typed_ed25519_key(bytes: &[u8]) -> Result<[u8; ED25519_KEY_LEN], KeyBytesError> {
    match bytes.split_first() {
        Some((&ED25519_TYPE, key)) => key.try_into().map_err(|_| KeyBytesError::Length),
        Some((&other, _)) => Err(KeyBytesError::Type(other)),
        None => Err(KeyBytesError::Length),
    }
}

#[cfg(test)]
mod tests;
