//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys,
//! and the key encodings of Go's `golang.org/x/mod/sumdb/note`:
//!
//! - verifier key: `<name>+<key id, 8 hex>+<base64(0x01 || public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`;
//! - key id: the first 4 bytes (big-endian) of
//!   `SHA-256(name || 0x0A || 0x01 || public key)`;
//! - a signature line: `— <name> <base64(key id || signature)>`, the
//!   signature over the note text including its final newline.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

const ALG_ED25519: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";
/// Largest note accepted.
const MAX_NOTE: usize = 1 << 20;

/// A key or note that could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed {what} key: {reason}")]
    Key {
        /// signer or verifier.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A note is malformed.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// No signature of the expected key is on the note.
    #[error("the note carries no signature of key {name}+{id:08x}")]
    Unsigned {
        /// Key name.
        name: String,
        /// Key id.
        id: u32,
    },
    /// The expected key's signature does not verify: the text was changed
    /// or the signature forged.
    #[error("the signature of key {name}+{id:08x} does not verify: the note was changed or forged")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key id.
        id: u32,
    },
}

fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Key names are non-empty and hold no Unicode space and no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Checks a name for a key, with the reason when it is not valid.
fn check_name(name: &str, what: &'static str) -> Result<(), NoteError> {
    if valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::Key {
            what,
            reason: format!(
                "key name `{name}` must be non-empty without spaces or `+` (e.g. example.com/audit/agent-1)"
            ),
        })
    }
}

/// An Ed25519 note signer: name, key id and private key.
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name, "signer")?;
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_string(),
            id,
            key,
        })
    }

    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        use rand::TryRngCore;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut *seed)
            .map_err(|e| NoteError::Key {
                what: "signer",
                reason: format!("the system's random source failed: {e}"),
            })?;
        NoteSigner::from_seed(name, &seed)
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let bad = |reason: &str| NoteError::Key {
            what: "signer",
            reason: reason.to_string(),
        };
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let id = u32::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 8)
            .ok_or_else(|| bad("the key id is not 8 hex digits"))?;
        let data = Zeroizing::new(
            STANDARD
                .decode(data)
                .map_err(|_| bad("the key is not base64"))?,
        );
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(bad("the key is not an Ed25519 key (0x01 and 32 bytes)"));
        }
        let seed: [u8; 32] = data[1..].try_into().expect("32 bytes");
        let signer = NoteSigner::from_seed(name, &seed)?;
        if signer.id != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`: keep it secret.
    pub fn to_private_text(&self) -> Zeroizing<String> {
        let mut data = Zeroizing::new(Vec::with_capacity(33));
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            STANDARD.encode(&*data)
        ))
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (non-empty, ending in a newline, no blank line, no
    /// control characters but newlines) and returns the signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id.to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the text must be non-empty and end with a newline".into(),
        ));
    }
    if text.contains("\n\n") {
        return Err(NoteError::Malformed(
            "the text must not hold a blank line".into(),
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "the text holds a control character".into(),
        ));
    }
    Ok(())
}

/// An Ed25519 note verifier: name, key id and public key.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.to_text())
    }
}

impl NoteVerifier {
    /// Parses `<name>+<id>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |reason: &str| NoteError::Key {
            what: "verifier",
            reason: reason.to_string(),
        };
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        check_name(name, "verifier")?;
        let id = u32::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 8)
            .ok_or_else(|| bad("the key id is not 8 hex digits"))?;
        let data = STANDARD
            .decode(data)
            .map_err(|_| bad("the key is not base64"))?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(bad("the key is not an Ed25519 key (0x01 and 32 bytes)"));
        }
        let public: [u8; 32] = data[1..].try_into().expect("32 bytes");
        if key_id(name, &public) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("the public key is not a valid Ed25519 point"))?;
        Ok(NoteVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }

    /// `<name>+<id>+<base64(0x01 || public key)>`.
    pub fn to_text(&self) -> String {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(data))
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Checks `note` and returns its text. Signatures of other keys are
    /// ignored; the first signature of this key (name and id) decides.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, sigs) = split_note(note)?;
        for (name, blob) in sigs {
            if name != self.name || blob.len() < 4 {
                continue;
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if id != self.id {
                continue;
            }
            let bad = || NoteError::BadSignature {
                name: self.name.clone(),
                id: self.id,
            };
            let sig: [u8; 64] = blob[4..].try_into().map_err(|_| bad())?;
            return self
                .key
                .verify(text.as_bytes(), &Signature::from_bytes(&sig))
                .map(|()| text)
                .map_err(|_| bad());
        }
        Err(NoteError::Unsigned {
            name: self.name.clone(),
            id: self.id,
        })
    }
}

/// The signatures of a note: key name and decoded blob (key id and
/// signature).
pub type NoteSignatures<'a> = Vec<(&'a str, Vec<u8>)>;

/// Splits a signed note into its text (with the final newline) and its
/// signatures.
pub fn split_note(note: &str) -> Result<(&str, NoteSignatures<'_>), NoteError> {
    if note.len() > MAX_NOTE {
        return Err(NoteError::Malformed("the note is larger than 1 MiB".into()));
    }
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "the note holds a control character".into(),
        ));
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the note does not end with a newline".into(),
        ));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let text = &note[..split + 1];
    let mut sigs = Vec::new();
    for line in note[split + 2..].lines() {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
            NoteError::Malformed(format!(
                "`{line}` is not a signature line (— name signature)"
            ))
        })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| NoteError::Malformed(format!("`{line}` has no signature")))?;
        if !valid_key_name(name) {
            return Err(NoteError::Malformed(format!("bad key name in `{line}`")));
        }
        let blob = STANDARD.decode(b64).map_err(|_| {
            NoteError::Malformed(format!("the signature in `{line}` is not base64"))
        })?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed(format!(
                "the signature in `{line}` is too short"
            )));
        }
        sigs.push((name, blob));
    }
    if sigs.is_empty() {
        return Err(NoteError::Malformed("the note has no signature".into()));
    }
    if sigs.len() > 100 {
        return Err(NoteError::Malformed(
            "the note has more than 100 signatures".into(),
        ));
    }
    Ok((text, sigs))
}
