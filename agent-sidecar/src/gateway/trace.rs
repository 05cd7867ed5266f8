//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the gateway
//! joins the agent's trace when it sends a valid `traceparent`, starts one
//! when it does not, and sends upstream a child span for its own hop.

use std::fmt;

use hyper::http::{HeaderMap, HeaderValue};
use rand::Rng;

/// The header carrying the trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendor-specific trace state, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// The `sampled` trace flag.
pub const FLAG_SAMPLED: u8 = 0x01;
/// The `random` trace flag (Trace Context Level 2): the trace id's
/// right-most 7 bytes are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// Length of a version-00 `traceparent` value.
const LEN_V00: usize = 55;
/// Most members a `tracestate` may hold.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A parsed `traceparent`: which trace, which span is the parent, and the
/// trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id, never all zeros.
    pub trace_id: [u8; 16],
    /// The id of the calling span, never all zeros.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` value.
    ///
    /// Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`. A
    /// higher version is accepted as the spec's forward compatibility asks:
    /// its first 55 characters are read as version 00 and anything after
    /// must start with `-`. Version `ff`, upper-case hex, and all-zero trace
    /// or parent ids are refused.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        let version = hex_byte(bytes.get(0..2)?)?;
        if version == 0xff {
            return None;
        }
        if version == 0 && bytes.len() != LEN_V00 {
            return None;
        }
        if bytes.len() < LEN_V00 || (bytes.len() > LEN_V00 && bytes[LEN_V00] != b'-') {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id: [u8; 16] = hex_array(&bytes[3..35])?;
        let parent_id: [u8; 8] = hex_array(&bytes[36..52])?;
        let flags = hex_byte(&bytes[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace: random trace and parent ids, flags `01` (sampled).
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: random_nonzero(),
            parent_id: random_nonzero(),
            flags: FLAG_SAMPLED,
        }
    }

    /// The context for the next hop: the same trace and flags, a new random
    /// span id as the parent.
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            parent_id: random_nonzero(),
            flags: self.flags,
        }
    }

    /// Whether the caller recorded this trace (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The trace id as 32 lower-case hex digits, as logs and audit records
    /// carry it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

impl TraceContext {
    /// The version-00 header value, `00-<trace id>-<parent id>-<flags>`, as
    /// its 55 ASCII bytes.
    pub fn encode(&self) -> [u8; LEN_V00] {
        let mut out = [b'-'; LEN_V00];
        out[0] = b'0';
        out[1] = b'0';
        hex_into(&self.trace_id, &mut out[3..35]);
        hex_into(&self.parent_id, &mut out[36..52]);
        hex_into(&[self.flags], &mut out[53..55]);
        out
    }
}

/// The version-00 header value, `00-<trace id>-<parent id>-<flags>`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // Only ASCII hex digits and dashes.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

/// The agent's span id (hex) when its request carries exactly one valid
/// `traceparent`: the parent of the gateway's hop, read before
/// [`propagate`] replaces the header.
pub fn caller_span(headers: &HeaderMap) -> Option<String> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    match (parents.next(), parents.next()) {
        (Some(value), None) => {
            let t = TraceContext::parse(value.to_str().ok()?)?;
            Some(t.parent_id.iter().map(|b| format!("{b:02x}")).collect())
        }
        _ => None,
    }
}

/// Sets the trace headers of a request going upstream and returns the
/// context sent.
///
/// With one valid `traceparent` from the agent, the upstream gets a child
/// of it (the gateway's hop) and the agent's `tracestate`, unless that is
/// malformed. Otherwise (absent, invalid, or repeated) a new trace starts
/// and any `tracestate` is dropped, as the spec requires when the parent
/// cannot be trusted.
pub fn propagate(headers: &mut HeaderMap) -> TraceContext {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = match (parents.next(), parents.next()) {
        (Some(value), None) => value.to_str().ok().and_then(TraceContext::parse),
        _ => None,
    };
    let context = match parent {
        Some(parent) => {
            if !tracestate_valid(headers) {
                headers.remove(TRACESTATE);
            }
            parent.child()
        }
        None => {
            headers.remove(TRACESTATE);
            TraceContext::new_root()
        }
    };
    // 55 ASCII characters: always a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&context.encode()) {
        headers.insert(TRACEPARENT, value);
    }
    context
}

/// Whether the `tracestate` headers (joined with commas) form a valid list:
/// at most 32 `key=value` members with the spec's key and value characters.
fn tracestate_valid(headers: &HeaderMap) -> bool {
    let mut members = 0;
    for value in headers.get_all(TRACESTATE) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            members += 1;
            if members > MAX_TRACESTATE_MEMBERS || !member_valid(member) {
                return false;
            }
        }
    }
    true
}

/// One `key=value` list member of `tracestate`.
fn member_valid(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    key_valid(key)
        && !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
}

/// A `tracestate` key: `simple-key` or `tenant-id@system-id`.
fn key_valid(key: &str) -> bool {
    let part = |s: &str, max: usize, first_digit_ok: bool| {
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || (first_digit_ok && b.is_ascii_digit()));
        first_ok
            && s.len() <= max
            && bytes.all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    };
    match key.split_once('@') {
        None => part(key, 256, true),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut rng = rand::rng();
    loop {
        let mut id = [0u8; N];
        rng.fill(&mut id[..]);
        if id != [0u8; N] {
            return id;
        }
    }
}

/// Two lower-case hex digits as a byte; upper case is refused.
fn hex_byte(digits: &[u8]) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    match digits {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    // Only ASCII hex digits.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the spec's `traceparent` section.
    const SPEC: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_spec_example() {
        let context = TraceContext::parse(SPEC).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            context.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(context.flags, 1);
        assert!(context.sampled());
        assert_eq!(context.to_string(), SPEC);
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn refuses_invalid_values() {
        let bad = [
            "",
            "00",
            // upper case hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // version 00 with extra data
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
            // short and misplaced dashes
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            // not hex
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            // surrounding whitespace is not part of the grammar
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // multi-byte characters where a digit is expected
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ];
        for value in bad {
            assert_eq!(TraceContext::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn future_versions_are_forward_compatible() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(future).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let extended =
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds";
        let context = TraceContext::parse(extended).unwrap();
        assert_eq!(context.flags, 0x09);
        // what we send on is always version 00
        assert!(context.to_string().starts_with("00-4bf92f35"));
        // more data must follow a dash
        assert_eq!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
        // and the 00 fields are still required
        assert_eq!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            None
        );
    }

    #[test]
    fn roots_and_children() {
        let root = TraceContext::new_root();
        assert_ne!(root.trace_id, [0; 16]);
        assert_ne!(root.parent_id, [0; 8]);
        assert_eq!(root.flags, FLAG_SAMPLED);
        assert_eq!(TraceContext::parse(&root.to_string()), Some(root));
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.flags, root.flags);
        assert_ne!(child.parent_id, root.parent_id);
        assert_ne!(TraceContext::new_root().trace_id, root.trace_id);
    }

    #[test]
    fn propagate_continues_valid_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(SPEC));
        headers.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let context = propagate(&mut headers);
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(context.to_string(), SPEC, "a new span for the gateway hop");
        assert_eq!(headers[TRACEPARENT], context.to_string().as_str());
        assert_eq!(headers[TRACESTATE], "congo=t61rcWkgMzE");
    }

    #[test]
    fn propagate_keeps_multi_header_tracestate() {
        // The spec's example of a list split over two header lines.
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(SPEC));
        headers.append(
            TRACESTATE,
            HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        headers.append(
            TRACESTATE,
            HeaderValue::from_static("congo=t61rcWkgMzE, fw529a3039@dt=val"),
        );
        propagate(&mut headers);
        assert_eq!(headers.get_all(TRACESTATE).iter().count(), 2);
    }

    #[test]
    fn propagate_starts_new_trace() {
        let mut headers = HeaderMap::new();
        let context = propagate(&mut headers);
        assert_eq!(context.flags, FLAG_SAMPLED);
        assert_eq!(headers[TRACEPARENT], context.to_string().as_str());

        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        headers.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let context = propagate(&mut headers);
        assert_ne!(context.trace_id, [0; 16]);
        assert!(
            headers.get(TRACESTATE).is_none(),
            "tracestate of an invalid parent dropped"
        );
        assert_eq!(headers.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn propagate_refuses_repeated_traceparent() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(SPEC));
        headers.append(
            TRACEPARENT,
            HeaderValue::from_static("00-11111111111111111111111111111111-00f067aa0ba902b7-01"),
        );
        let context = propagate(&mut headers);
        assert_ne!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(headers.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn propagate_drops_malformed_tracestate() {
        for state in [
            "Congo=t61rcWkgMzE",
            "congo",
            "congo=",
            "congo=a=b",
            "@dt=x",
            "fw529a3039@9dt=x",
            "congo=t61rcWkgMzE ,=x",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, HeaderValue::from_static(SPEC));
            headers.insert(TRACESTATE, HeaderValue::from_str(state).unwrap());
            let context = propagate(&mut headers);
            assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(headers.get(TRACESTATE).is_none(), "{state}");
        }
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(SPEC));
        headers.insert(
            TRACESTATE,
            HeaderValue::from_str(&too_many.join(",")).unwrap(),
        );
        propagate(&mut headers);
        assert!(headers.get(TRACESTATE).is_none());
        // empty members are allowed
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(SPEC));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=1,, b=2"));
        propagate(&mut headers);
        assert!(headers.get(TRACESTATE).is_some());
    }
}
