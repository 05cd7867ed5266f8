//! Refusing requests whose body length is ambiguous (request smuggling).

use hyper::http::{
    HeaderMap, StatusCode, Version,
    header::{CONTENT_LENGTH, TRANSFER_ENCODING},
    request::Parts,
};

/// A request whose framing the gateway refuses. Answer
/// [`FramingError::status`] (400) with `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both headers: two parties may disagree on where the body ends.
    #[error(
        "request has both Content-Length and Transfer-Encoding; \
         send one of them (a request may not be framed two ways)"
    )]
    ContentLengthAndTransferEncoding,
    /// Several Content-Length values, even equal ones.
    #[error("request has {count} Content-Length values; send exactly one")]
    MultipleContentLength {
        /// How many values there were.
        count: usize,
    },
    /// A Content-Length that is not a decimal number.
    #[error("request Content-Length {value:?} is not a decimal number of bytes")]
    InvalidContentLength {
        /// The value as sent (lossy UTF-8).
        value: String,
    },
    /// A Transfer-Encoding other than a single `chunked`.
    #[error(
        "request Transfer-Encoding {value:?} is not accepted; \
         send `Transfer-Encoding: chunked` alone, or a Content-Length"
    )]
    TransferEncoding {
        /// The value(s) as sent, joined with ", " (lossy UTF-8).
        value: String,
    },
    /// HTTP/1.0 has no chunked encoding.
    #[error(
        "HTTP/1.0 request with Transfer-Encoding; HTTP/1.0 has no chunked encoding: send a Content-Length"
    )]
    Http10TransferEncoding,
    /// HTTP/2 and later frame bodies themselves.
    #[error(
        "{version:?} request with Transfer-Encoding, which HTTP/2 and later forbid; drop the header"
    )]
    TransferEncodingOverFrames {
        /// The request's HTTP version.
        version: Version,
    },
}

impl FramingError {
    /// The status to answer with: 400 Bad Request.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// Refuses a request whose body framing is ambiguous: Content-Length with
/// Transfer-Encoding, more than one Content-Length (even equal), a
/// Content-Length that is not digits, a Transfer-Encoding other than exactly
/// `chunked` on one header line, or any Transfer-Encoding on HTTP/1.0 or
/// HTTP/2+.
///
/// hyper already refuses most of these on HTTP/1 before a request reaches
/// the service, and for Content-Length with Transfer-Encoding it drops the
/// Content-Length and closes the connection after the response; this check
/// repeats the rules on what reaches the service, so the gateway's safety
/// does not rest on one parser's choices.
pub fn check_framing(parts: &Parts) -> Result<(), FramingError> {
    let headers = &parts.headers;
    let has_te = headers.contains_key(TRANSFER_ENCODING);
    if has_te {
        match parts.version {
            Version::HTTP_09 | Version::HTTP_10 => {
                return Err(FramingError::Http10TransferEncoding);
            }
            Version::HTTP_11 => {}
            version => return Err(FramingError::TransferEncodingOverFrames { version }),
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(FramingError::ContentLengthAndTransferEncoding);
        }
        check_transfer_encoding(headers)?;
    }
    check_content_length(headers)
}

fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), FramingError> {
    let values: Vec<_> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    match values.as_slice() {
        [single]
            if single
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked") =>
        {
            Ok(())
        }
        values => Err(FramingError::TransferEncoding {
            value: values
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn check_content_length(headers: &HeaderMap) -> Result<(), FramingError> {
    let mut count = 0;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            count += 1;
            let item = item.trim_ascii();
            if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
                return Err(FramingError::InvalidContentLength {
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                });
            }
        }
    }
    if count > 1 {
        return Err(FramingError::MultipleContentLength { count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hyper::http::{HeaderValue, Request};

    use super::*;

    fn parts(version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::post("/mcp").version(version);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).unwrap());
        }
        request.body(()).unwrap().into_parts().0
    }

    fn check(version: Version, headers: &[(&str, &str)]) -> Result<(), FramingError> {
        check_framing(&parts(version, headers))
    }

    #[test]
    fn accepts_plain_framing() {
        let v11 = Version::HTTP_11;
        assert_eq!(check(v11, &[]), Ok(()));
        assert_eq!(check(v11, &[("content-length", "0")]), Ok(()));
        assert_eq!(check(v11, &[("content-length", "1024")]), Ok(()));
        assert_eq!(check(v11, &[("transfer-encoding", "chunked")]), Ok(()));
        assert_eq!(check(v11, &[("transfer-encoding", "Chunked")]), Ok(()));
        assert_eq!(check(Version::HTTP_10, &[("content-length", "3")]), Ok(()));
        assert_eq!(check(Version::HTTP_2, &[("content-length", "3")]), Ok(()));
    }

    #[test]
    fn refuses_both_lengths() {
        let err = check(
            Version::HTTP_11,
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
        )
        .unwrap_err();
        assert_eq!(err, FramingError::ContentLengthAndTransferEncoding);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn refuses_several_or_bad_content_lengths() {
        let v11 = Version::HTTP_11;
        assert_eq!(
            check(v11, &[("content-length", "5"), ("content-length", "5")]),
            Err(FramingError::MultipleContentLength { count: 2 })
        );
        assert_eq!(
            check(v11, &[("content-length", "5, 5")]),
            Err(FramingError::MultipleContentLength { count: 2 })
        );
        for bad in ["-1", "+5", "5 5", "0x10", "", "99999999999999999999"] {
            assert!(
                matches!(
                    check(v11, &[("content-length", bad)]),
                    Err(FramingError::InvalidContentLength { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_other_transfer_encodings() {
        let v11 = Version::HTTP_11;
        for bad in [
            "chunked, identity",
            "identity, chunked",
            "gzip",
            "chunked;x=1",
            "chunkedx",
        ] {
            let err = check(v11, &[("transfer-encoding", bad)]).unwrap_err();
            assert_eq!(
                err,
                FramingError::TransferEncoding { value: bad.into() },
                "{bad}"
            );
            assert!(err.to_string().contains("chunked` alone"));
        }
        let err = check(
            v11,
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            FramingError::TransferEncoding {
                value: "chunked, chunked".into()
            }
        );
    }

    #[test]
    fn refuses_transfer_encoding_outside_http11() {
        assert_eq!(
            check(Version::HTTP_10, &[("transfer-encoding", "chunked")]),
            Err(FramingError::Http10TransferEncoding)
        );
        assert_eq!(
            check(Version::HTTP_09, &[("transfer-encoding", "chunked")]),
            Err(FramingError::Http10TransferEncoding)
        );
        assert_eq!(
            check(Version::HTTP_2, &[("transfer-encoding", "chunked")]),
            Err(FramingError::TransferEncodingOverFrames {
                version: Version::HTTP_2
            })
        );
    }
}
