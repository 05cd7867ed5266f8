//! [`Redactor`]: the injected credential, as a tool may send it back.
//!
//! A tool that reflects request headers (echo and debug endpoints, verbose
//! error pages) would hand the agent the credential the gateway injected
//! for it. The gateway knows the exact bytes it injected, so it looks for
//! them in every answer (header values, body, trailers), as they are and
//! as a tool may encode them: the header value and the secret alone
//! (without its scheme prefix), each raw, JSON-escaped, percent-encoded,
//! in hex, and in base64 (standard and URL-safe, at each of the three byte
//! alignments a secret can have inside a longer base64 text). Matching
//! ignores ASCII case (hex and percent escapes come in both cases, some
//! tools lower-case what they echo).
//!
//! [`RedactStream`] does the same over a body that arrives in pieces: a
//! secret split across chunk boundaries is still found, and only the bytes
//! that could begin a secret are held back, so a streamed answer (SSE)
//! is not delayed.

use std::{
    borrow::{Borrow, Cow},
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::REDACTED;

/// Encoded forms shorter than this are not searched (they would match
/// ordinary text); the raw forms always are.
const MIN_ENCODED: usize = 8;

/// What percent-encoders commonly leave alone (RFC 3986 unreserved).
const KEEP_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Finds the forms of an injected credential.
#[derive(Debug)]
pub struct Redactor {
    matcher: AhoCorasick,
    /// Every form, for the hold-back check of streams.
    forms: Vec<Vec<u8>>,
    first_bytes: [bool; 256],
}

impl Redactor {
    /// The forms of `values` (e.g. the injected header value and the
    /// secret alone). `None` when there is nothing to look for.
    pub fn new(values: &[&[u8]]) -> Option<Self> {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for value in values.iter().filter(|v| !v.is_empty()) {
            forms.push(value.to_vec());
            forms.extend(encoded_forms(value).filter(|f| f.len() >= MIN_ENCODED));
        }
        forms.sort();
        forms.dedup();
        if forms.is_empty() {
            return None;
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok()?;
        let mut first_bytes = [false; 256];
        for f in &forms {
            first_bytes[f[0].to_ascii_lowercase() as usize] = true;
            first_bytes[f[0].to_ascii_uppercase() as usize] = true;
        }
        Some(Redactor {
            matcher,
            forms,
            first_bytes,
        })
    }

    /// `input` with every form replaced by `[redacted]`.
    pub fn redact<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.matcher.is_match(input) {
            return Cow::Borrowed(input);
        }
        let mut out = Vec::with_capacity(input.len());
        self.matcher
            .replace_all_with_bytes(input, &mut out, |_, _, out| {
                out.extend_from_slice(REDACTED.as_bytes());
                true
            });
        Cow::Owned(out)
    }

    /// Whether `tail` could be the beginning of a form.
    fn could_start(&self, tail: &[u8]) -> bool {
        self.forms
            .iter()
            .any(|f| f.len() > tail.len() && f[..tail.len()].eq_ignore_ascii_case(tail))
    }

    /// Where the bytes that could begin a form start in `buf` (its end if
    /// none could).
    fn hold_from(&self, buf: &[u8]) -> usize {
        let longest = self.forms.iter().map(Vec::len).max().unwrap_or(0);
        let from = buf.len().saturating_sub(longest.saturating_sub(1));
        (from..buf.len())
            .find(|&s| self.first_bytes[buf[s] as usize] && self.could_start(&buf[s..]))
            .unwrap_or(buf.len())
    }
}

/// Redacts a body that arrives in pieces.
#[derive(Debug, Default)]
pub struct RedactStream {
    held: Vec<u8>,
}

impl RedactStream {
    /// Takes the next piece; returns what can be passed on now.
    pub fn push(&mut self, redactor: &Redactor, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.held);
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        let mut hold = None;
        for m in redactor.matcher.find_iter(&buf) {
            // A match that reaches the end of what came so far may be the
            // prefix of a longer form: decide on it with the next piece.
            if m.end() == buf.len() {
                hold = Some(m.start());
                break;
            }
            out.extend_from_slice(&buf[pos..m.start()]);
            out.extend_from_slice(REDACTED.as_bytes());
            pos = m.end();
        }
        let hold = hold.unwrap_or_else(|| pos + redactor.hold_from(&buf[pos..]));
        out.extend_from_slice(&buf[pos..hold]);
        self.held = buf[hold..].to_vec();
        out
    }

    /// [`push`](Self::push) for a shared buffer: when nothing is held back
    /// from before and the piece holds no form, what can be passed on is a
    /// slice of `chunk` (no copy).
    pub fn push_bytes(&mut self, redactor: &Redactor, chunk: Bytes) -> Bytes {
        if !self.held.is_empty() || redactor.matcher.is_match(&chunk[..]) {
            return Bytes::from(self.push(redactor, &chunk));
        }
        let hold = redactor.hold_from(&chunk);
        self.held = chunk[hold..].to_vec();
        chunk.slice(..hold)
    }

    /// The end of the body: whatever was held back, redacted.
    pub fn finish(&mut self, redactor: &Redactor) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        redactor.redact(&held).into_owned()
    }
}

/// How a tool may encode `value` when it echoes it.
fn encoded_forms(value: &[u8]) -> impl Iterator<Item = Vec<u8>> {
    let mut forms = Vec::new();
    if let Ok(text) = std::str::from_utf8(value) {
        let json = serde_json::to_string(text).unwrap_or_default();
        let json = json.trim_matches('"').to_string();
        forms.push(json.replace('/', "\\/").into_bytes());
        forms.push(json.into_bytes());
        forms.push(
            utf8_percent_encode(text, NON_ALPHANUMERIC)
                .to_string()
                .into_bytes(),
        );
        let unreserved = utf8_percent_encode(text, KEEP_UNRESERVED).to_string();
        forms.push(unreserved.replace("%20", "+").into_bytes());
        forms.push(unreserved.into_bytes());
    }
    forms.push(
        value
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3usize {
            forms.push(base64_core(&engine, value, offset));
        }
    }
    forms.into_iter()
}

/// The base64 characters that depend only on `value` when it starts
/// `offset` bytes into the encoded text.
fn base64_core(engine: &impl Engine, value: &[u8], offset: usize) -> Vec<u8> {
    let mut input = vec![0u8; offset];
    input.extend_from_slice(value);
    let encoded = engine.encode(&input);
    let start = (8 * offset).div_ceil(6);
    let end = (8 * (offset + value.len())) / 6;
    encoded
        .as_bytes()
        .get(start..end.min(encoded.len()))
        .unwrap_or_default()
        .to_vec()
}

/// Redactors already built, by the values they look for. Building one
/// (every encoded form of the values, then an Aho-Corasick automaton) costs
/// far more than forwarding a call, and the same credential is injected
/// call after call: it is built once. A changed secret is a new key; the
/// cache is emptied when it holds [`RedactorCache::MAX`] entries.
#[derive(Default)]
pub struct RedactorCache {
    built: Mutex<HashMap<CacheKey, Arc<Redactor>>>,
}

impl RedactorCache {
    /// Most redactors kept.
    pub const MAX: usize = 256;

    /// The redactor of `values` (see [`Redactor::new`]), built on first use.
    /// Looking one up copies nothing.
    pub fn get(&self, values: &[&[u8]]) -> Option<Arc<Redactor>> {
        if let Some(r) = self
            .built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&values as &dyn KeyParts)
        {
            return Some(r.clone());
        }
        let redactor = Arc::new(Redactor::new(values)?);
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if built.len() >= Self::MAX {
            built.clear();
        }
        built.insert(
            CacheKey(values.iter().map(|v| v.to_vec()).collect()),
            redactor.clone(),
        );
        Some(redactor)
    }
}

/// The values a cached redactor looks for, owned.
struct CacheKey(Vec<Vec<u8>>);

/// The values of a cache key, owned ([`CacheKey`]) or borrowed (a lookup's
/// `&[&[u8]]`), hashed and compared alike.
trait KeyParts {
    fn parts(&self) -> usize;
    fn part(&self, i: usize) -> &[u8];
}

impl KeyParts for CacheKey {
    fn parts(&self) -> usize {
        self.0.len()
    }
    fn part(&self, i: usize) -> &[u8] {
        &self.0[i]
    }
}

impl KeyParts for &[&[u8]] {
    fn parts(&self) -> usize {
        self.len()
    }
    fn part(&self, i: usize) -> &[u8] {
        self[i]
    }
}

impl Hash for dyn KeyParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.parts());
        for i in 0..self.parts() {
            self.part(i).hash(state);
        }
    }
}

impl PartialEq for dyn KeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts() && (0..self.parts()).all(|i| self.part(i) == other.part(i))
    }
}

impl Eq for dyn KeyParts + '_ {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyParts).hash(state);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for CacheKey {}

impl<'a> Borrow<dyn KeyParts + 'a> for CacheKey {
    fn borrow(&self) -> &(dyn KeyParts + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    use super::*;

    const SECRET: &[u8] = b"s3cr3t/erp+token=value";
    const HEADER: &[u8] = b"Bearer s3cr3t/erp+token=value";

    fn redactor() -> Redactor {
        Redactor::new(&[HEADER, SECRET]).unwrap()
    }

    fn leaks(out: &[u8]) -> bool {
        let lower = String::from_utf8_lossy(out).to_ascii_lowercase();
        lower.contains("s3cr3t") || lower.contains("token=value")
    }

    #[test]
    fn every_form_is_redacted() {
        let r = redactor();
        let json = serde_json::to_string(&serde_json::json!({
            "headers": {"authorization": "Bearer s3cr3t/erp+token=value"}
        }))
        .unwrap();
        let texts = vec![
            format!("echo: {}", String::from_utf8_lossy(HEADER)),
            "key=S3CR3T/ERP+TOKEN=VALUE".to_string(),
            json,
            r#"{"a":"s3cr3t\/erp+token=value"}"#.to_string(),
            format!(
                "q={}",
                utf8_percent_encode("s3cr3t/erp+token=value", NON_ALPHANUMERIC)
            ),
            "q=s3cr3t%2ferp%2btoken%3dvalue".to_string(),
            format!("x={}", STANDARD.encode(HEADER)),
            format!("x={}", URL_SAFE.encode(SECRET)),
            format!("basic {}", STANDARD.encode(b"user:s3cr3t/erp+token=value")),
            format!("basic {}", STANDARD.encode(b"us:s3cr3t/erp+token=value")),
            format!("basic {}", STANDARD.encode(b"u:s3cr3t/erp+token=value")),
            SECRET.iter().map(|b| format!("{b:02X}")).collect(),
        ];
        for text in texts {
            let out = r.redact(text.as_bytes());
            assert!(!leaks(&out), "{text} -> {}", String::from_utf8_lossy(&out));
            let b64 = |v: &[u8]| STANDARD.encode(v);
            assert!(
                !String::from_utf8_lossy(&out).contains(&b64(SECRET)[..12]),
                "{text}"
            );
        }
        assert_eq!(
            r.redact(b"nothing here"),
            Cow::Borrowed(&b"nothing here"[..])
        );
    }

    #[test]
    fn shared_pieces_redact_like_the_whole_body() {
        let r = redactor();
        let text = format!(
            "plain start, then {} and {} then a tail s3cr3t/er",
            String::from_utf8_lossy(HEADER),
            STANDARD.encode(SECRET)
        );
        let bytes = text.as_bytes();
        let whole = r.redact(bytes).into_owned();
        for cut in 1..bytes.len() {
            for cut2 in [cut, (cut + 5).min(bytes.len())] {
                let mut s = RedactStream::default();
                let mut out = Vec::new();
                for piece in [&bytes[..cut], &bytes[cut..cut2], &bytes[cut2..]] {
                    out.extend_from_slice(&s.push_bytes(&r, Bytes::copy_from_slice(piece)));
                }
                out.extend(s.finish(&r));
                assert_eq!(out, whole, "cut at {cut}/{cut2}");
            }
        }
    }

    #[test]
    fn split_across_every_boundary() {
        let r = redactor();
        let text = format!(
            "data: {{\"echo\":\"{}\"}}\n\ndata: {}\n\n",
            String::from_utf8_lossy(HEADER),
            STANDARD.encode(SECRET)
        );
        let bytes = text.as_bytes();
        let whole = r.redact(bytes).into_owned();
        for cut in 1..bytes.len() {
            for cut2 in [cut, (cut + 7).min(bytes.len())] {
                let mut s = RedactStream::default();
                let mut out = s.push(&r, &bytes[..cut]);
                out.extend(s.push(&r, &bytes[cut..cut2]));
                out.extend(s.push(&r, &bytes[cut2..]));
                out.extend(s.finish(&r));
                assert_eq!(out, whole, "cut at {cut}/{cut2}");
            }
        }
        // One byte at a time.
        let mut s = RedactStream::default();
        let mut out = Vec::new();
        for b in bytes {
            out.extend(s.push(&r, std::slice::from_ref(b)));
        }
        out.extend(s.finish(&r));
        assert_eq!(out, whole);
        assert!(!leaks(&whole));
    }

    #[test]
    fn streams_are_not_held_back_without_reason() {
        let r = redactor();
        let mut s = RedactStream::default();
        let event = b"event: message\ndata: {\"ok\":true}\n\n";
        assert_eq!(s.push(&r, event), event.to_vec());
        // A possible beginning is held until the next piece.
        assert_eq!(s.push(&r, b"x Bearer s3"), b"x ".to_vec());
        assert_eq!(s.push(&r, b"x\n"), b"Bearer s3x\n".to_vec());
    }

    #[test]
    fn a_credential_s_redactor_is_built_once_and_a_new_secret_gets_its_own() {
        let cache = RedactorCache::default();
        let a = cache.get(&[HEADER, SECRET]).unwrap();
        let again = cache.get(&[HEADER, SECRET]).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let rotated = cache
            .get(&[b"Bearer tok-rotated-0001", b"tok-rotated-0001"])
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &rotated));
        assert_eq!(
            &*rotated.redact(b"x tok-rotated-0001 y"),
            b"x [redacted] y".as_slice()
        );
        assert!(cache.get(&[b""]).is_none());
    }
}
