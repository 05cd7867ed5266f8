//! Request paths the gateway decides on must mean the same thing to every
//! upstream: a path whose segments an upstream could split, join or climb
//! differently once it percent-decodes them is refused before it is
//! matched against any route.
//!
//! Upstreams that decode before routing (Starlette/FastAPI, Flask, Django,
//! Spring, Tomcat...) would otherwise run `/v1/accounts/42/secrets` for the
//! `/v1/accounts/42%2Fsecrets` the policy matched as `/v1/accounts/{id}`.
//! The reference is Envoy's `path_with_escaped_slashes_action`
//! (`REJECT_REQUEST`), extended to everything that changes the segments:
//! backslashes, dot segments, NUL and control bytes, `;` path parameters,
//! empty segments, invalid or non-UTF-8 percent sequences, encoded
//! unreserved characters (which hide a literal segment from its route),
//! and all of these behind repeated encoding (`%252F`).

use std::borrow::Cow;

use thiserror::Error;

/// How many rounds of percent-decoding are checked (`%25252F` takes three
/// to become `/`).
const DECODE_ROUNDS: usize = 4;

/// Why a path is refused. Each names the segment and how to send it.
#[derive(Debug, Error, PartialEq, Eq)]
pub(super) enum PathError {
    /// The path does not start with `/` (`*`, or an empty path).
    #[error("the request path `{0}` is not an absolute path; send a path starting with `/`")]
    NotAbsolute(String),
    /// A segment decodes to something that splits or climbs the path.
    #[error(
        "path segment `{segment}` decodes to {what}, which upstreams that decode before routing read as another path; send the path without it (a `/` inside an identifier cannot be sent to this tool)"
    )]
    Ambiguous {
        /// The segment as sent.
        segment: String,
        /// What it decodes to.
        what: &'static str,
    },
    /// `%` not followed by two hex digits.
    #[error(
        "path segment `{0}` holds a `%` that is not followed by two hex digits; encode `%` as `%25`"
    )]
    BadPercent(String),
    /// Percent-encoded unreserved characters.
    #[error(
        "path segment `{0}` percent-encodes a letter, digit or one of `-._~`; send those characters as they are (RFC 3986 6.2.2.2)"
    )]
    EncodedUnreserved(String),
}

/// Checks `path` (without its query).
pub(super) fn check_path(path: &str) -> Result<(), PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute(path.to_string()));
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            if segments.peek().is_none() {
                // One trailing slash is the same route.
                continue;
            }
            return Err(PathError::Ambiguous {
                segment: String::new(),
                what: "an empty segment (`//`)",
            });
        }
        check_segment(segment)?;
    }
    Ok(())
}

fn check_segment(segment: &str) -> Result<(), PathError> {
    let ambiguous = |what| PathError::Ambiguous {
        segment: segment.to_string(),
        what,
    };
    // Borrowed until a round decodes something.
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(segment.as_bytes());
    for round in 0..DECODE_ROUNDS {
        if let Some(what) = splits(&current) {
            return Err(ambiguous(what));
        }
        if !current.contains(&b'%') {
            return Ok(());
        }
        let decoded = match decode(&current, round == 0) {
            Decoded::Bad => return Err(PathError::BadPercent(segment.to_string())),
            Decoded::Unreserved => return Err(PathError::EncodedUnreserved(segment.to_string())),
            Decoded::Bytes(b) => b,
        };
        if std::str::from_utf8(&decoded).is_err() {
            return Err(ambiguous("bytes that are not UTF-8 (overlong or invalid)"));
        }
        if decoded == *current {
            return Ok(());
        }
        current = Cow::Owned(decoded);
    }
    if splits(&current).is_some() || current.contains(&b'%') {
        return Err(ambiguous("another encoded path after repeated decoding"));
    }
    Ok(())
}

/// What in a (partly) decoded segment changes the path's segments.
fn splits(s: &[u8]) -> Option<&'static str> {
    if s == b"." || s == b".." {
        return Some("a dot segment (`.` or `..`)");
    }
    for &b in s {
        match b {
            b'/' => return Some("`/`"),
            b'\\' => return Some("`\\`"),
            b';' => return Some("`;` (a path parameter some upstreams strip)"),
            0 => return Some("NUL"),
            b if b < 0x20 || b == 0x7f => return Some("a control character"),
            _ => {}
        }
    }
    None
}

enum Decoded {
    Bytes(Vec<u8>),
    /// A malformed escape in the segment as sent.
    Bad,
    /// An escaped unreserved character in the segment as sent.
    Unreserved,
}

/// One round of percent-decoding. In the first round (`strict`) every `%`
/// must start an escape and unreserved characters must not be escaped;
/// later rounds decode what escapes they find and keep a lone `%`.
fn decode(s: &[u8], strict: bool) -> Decoded {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let pair = s
                .get(i + 1)
                .zip(s.get(i + 2))
                .and_then(|(&h, &l)| Some((hex(h)?, hex(l)?)));
            match pair {
                Some((h, l)) => {
                    let b = h << 4 | l;
                    if strict && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                        return Decoded::Unreserved;
                    }
                    out.push(b);
                    i += 3;
                    continue;
                }
                None if strict => return Decoded::Bad,
                None => {}
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Decoded::Bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for p in [
            "/",
            "/v1/accounts/42",
            "/v1/accounts/42/",
            "/v1/search/a%20b",
            "/v1/files/r%C3%A9sum%C3%A9",
            "/v1/q/a%3Fb%23c",
            "/v1/ids/100%25",
        ] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn separators_dots_and_tricks_are_refused() {
        for p in [
            "/v1/accounts/42%2Fsecrets",
            "/v1/accounts/42%2fsecrets",
            "/v1/accounts/42%252Fsecrets",
            "/v1/accounts/42%25252Fsecrets",
            "/v1/accounts/42%5Csecrets",
            "/v1/accounts/42\\secrets",
            "/v1/accounts/..%2Fadmin%2Fwipe",
            "/v1/accounts/%2E%2E/admin",
            "/v1/accounts/%2e./admin",
            "/v1/accounts/../admin",
            "/v1/accounts/./7",
            "/v1/accounts/%252E%252E/admin",
            "/v1/accounts/7;x=1",
            "/v1/accounts/..;/admin",
            "/v1/accounts/7%3Bx",
            "/v1/accounts/7%00",
            "/v1/accounts/7%0A",
            "/v1/accounts/%C0%AF",
            "/v1/accounts/%E0%80%AF",
            "/v1/accounts/%FF",
            "/v1/accounts/7%2",
            "/v1/accounts/7%zz",
            "/v1/%61ccounts/7",
            "/v1//accounts/7",
            "//v1/accounts/7",
            "*",
            "",
        ] {
            assert!(check_path(p).is_err(), "{p} passed");
        }
    }

    #[test]
    fn errors_say_what_and_how() {
        let e = check_path("/v1/accounts/42%2Fsecrets")
            .unwrap_err()
            .to_string();
        assert!(e.contains("42%2Fsecrets") && e.contains("`/`"), "{e}");
        let e = check_path("/a/7%zz").unwrap_err().to_string();
        assert!(e.contains("%25"), "{e}");
    }
}
