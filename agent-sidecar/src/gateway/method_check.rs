//! The method the gateway decides on must be the method the tool runs.
//!
//! Many frameworks let a request name another method than its request
//! line: Express's `method-override`, Rails' `Rack::MethodOverride`,
//! Spring's `HiddenHttpMethodFilter`, Laravel/Symfony, ASP.NET and many
//! APIs read `X-HTTP-Method-Override`, `X-HTTP-Method`,
//! `X-Method-Override`, a `_method` query parameter or form field (and
//! Laravel a `_method` JSON key). Some read the path from
//! `X-Original-URL` / `X-Rewrite-URL`. A tier-1 `POST` carrying any of
//! them could run a `DELETE` the policy denies, so a request carrying one
//! (in any letter case, repeated or not) is refused. `TRACE`, `TRACK` and
//! `CONNECT` are always refused (a `TRACE` echoes the injected
//! credential), and methods beyond the common REST ones only when the
//! tool declares an action with them.

use bytes::Bytes;
use hyper::{HeaderMap, Method, header};
use serde_json::Value;
use thiserror::Error;

/// Headers that name another method or path than the request line.
const OVERRIDE_HEADERS: [&str; 6] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

/// Query, form and JSON field names that name another method.
const OVERRIDE_FIELDS: [&str; 6] = [
    "_method",
    "__method",
    "_httpmethod",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Methods a REST tool may be called with without declaring them.
const COMMON: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Why the request's method is not the one it would run.
#[derive(Debug, Error, PartialEq, Eq)]
pub(super) enum MethodError {
    /// `TRACE`, `TRACK`, `CONNECT`.
    #[error(
        "the gateway never forwards {0} to a tool (it echoes or tunnels the request); use the tool's declared routes"
    )]
    Forbidden(String),
    /// An extension method no action of the tool declares.
    #[error(
        "method {0} is not declared by any action of this tool; the policy must declare an action with this method before it can be called"
    )]
    Undeclared(String),
    /// A header, query parameter or body field naming another method.
    #[error(
        "the request carries the method override {what} `{name}`, which frameworks honour to run another method than the one decided; send the intended method on the request line instead"
    )]
    Override {
        /// `header`, `query parameter`, `form field`, `JSON field`.
        what: &'static str,
        /// The name as sent.
        name: String,
    },
}

/// Checks the method itself: never `TRACE`/`TRACK`/`CONNECT`; beyond the
/// common REST methods only when `declared` says the tool declares it.
pub(super) fn check_method(
    method: &Method,
    declared: impl Fn(&str) -> bool,
) -> Result<(), MethodError> {
    let name = method.as_str();
    if *method == Method::TRACE || *method == Method::CONNECT || name.eq_ignore_ascii_case("TRACK")
    {
        return Err(MethodError::Forbidden(name.to_string()));
    }
    if COMMON.contains(method) || declared(&name.to_ascii_uppercase()) {
        return Ok(());
    }
    Err(MethodError::Undeclared(name.to_string()))
}

/// Refuses override headers and query parameters.
pub(super) fn check_overrides(
    headers: &HeaderMap,
    path_and_query: &str,
) -> Result<(), MethodError> {
    if let Some(name) = headers
        .keys()
        .find(|n| OVERRIDE_HEADERS.contains(&n.as_str()))
    {
        return Err(MethodError::Override {
            what: "header",
            name: name.to_string(),
        });
    }
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    if let Some(name) = override_field(query.as_bytes()) {
        return Err(MethodError::Override {
            what: "query parameter",
            name,
        });
    }
    Ok(())
}

/// Refuses override fields in a body: in a form (url-encoded or
/// multipart, or a body without a content type, which Rack reads as a
/// form) any mention of a field name; in a JSON object a top-level key.
pub(super) fn check_body_overrides(headers: &HeaderMap, body: &Bytes) -> Result<(), MethodError> {
    if body.is_empty() {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let json = content_type.as_deref().is_some_and(|c| c.contains("json"));
    if json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
            && let Some(k) = map.keys().find(|k| is_override_field(k))
        {
            return Err(MethodError::Override {
                what: "JSON field",
                name: k.clone(),
            });
        }
        return Ok(());
    }
    let formlike = content_type.as_deref().is_none_or(|c| {
        c.contains("x-www-form-urlencoded") || c.contains("multipart/") || c.trim().is_empty()
    });
    if !formlike {
        return Ok(());
    }
    // Form field names may be percent-encoded (`%5Fmethod`): compare the
    // decoded keys of a url-encoded form, and the raw bytes otherwise.
    if let Some(name) = override_field(body) {
        return Err(MethodError::Override {
            what: "form field",
            name,
        });
    }
    let lower = String::from_utf8_lossy(body).to_ascii_lowercase();
    if let Some(name) = OVERRIDE_FIELDS.iter().find(|f| lower.contains(*f)) {
        return Err(MethodError::Override {
            what: "form field",
            name: (*name).to_string(),
        });
    }
    Ok(())
}

/// The first override field among url-encoded `pairs`, decoded.
fn override_field(pairs: &[u8]) -> Option<String> {
    form_urlencoded::parse(pairs)
        .map(|(k, _)| k)
        .find(|k| is_override_field(k))
        .map(|k| k.into_owned())
}

fn is_override_field(k: &str) -> bool {
    let k = k.trim();
    OVERRIDE_FIELDS.iter().any(|f| k.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn methods() {
        let none = |_: &str| false;
        assert!(check_method(&Method::GET, none).is_ok());
        assert!(check_method(&Method::DELETE, none).is_ok());
        for m in ["TRACE", "CONNECT", "TRACK"] {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert!(matches!(
                check_method(&m, |_| true),
                Err(MethodError::Forbidden(_))
            ));
        }
        let mv = Method::from_bytes(b"MOVE").unwrap();
        assert!(matches!(
            check_method(&mv, none),
            Err(MethodError::Undeclared(_))
        ));
        assert!(check_method(&mv, |m| m == "MOVE").is_ok());
    }

    #[test]
    fn override_headers_and_queries() {
        assert!(check_overrides(&headers(&[]), "/v1/a?x=1").is_ok());
        for h in [
            "X-HTTP-Method-Override",
            "x-http-method",
            "X-Method-Override",
            "x-original-url",
        ] {
            assert!(
                check_overrides(&headers(&[(h, "DELETE")]), "/v1/a").is_err(),
                "{h}"
            );
        }
        for q in [
            "/v1/a?_method=DELETE",
            "/v1/a?x=1&_METHOD=delete",
            "/v1/a?%5Fmethod=DELETE",
            "/v1/a?X-HTTP-Method-Override=DELETE",
        ] {
            assert!(check_overrides(&headers(&[]), q).is_err(), "{q}");
        }
    }

    #[test]
    fn override_bodies() {
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let json = headers(&[("content-type", "application/json")]);
        let multipart = headers(&[("content-type", "multipart/form-data; boundary=b")]);
        let b = |s: &str| Bytes::from(s.to_string());
        assert!(check_body_overrides(&form, &b("a=1&b=2")).is_ok());
        assert!(check_body_overrides(&form, &b("a=1&_method=DELETE")).is_err());
        assert!(check_body_overrides(&form, &b("a=1&%5Fmethod=DELETE")).is_err());
        assert!(check_body_overrides(&headers(&[]), &b("_method=delete")).is_err());
        assert!(
            check_body_overrides(
                &multipart,
                &b(
                    "--b\r\ncontent-disposition: form-data; name=\"_Method\"\r\n\r\nDELETE\r\n--b--"
                )
            )
            .is_err()
        );
        assert!(check_body_overrides(&json, &b(r#"{"_method":"DELETE"}"#)).is_err());
        assert!(check_body_overrides(&json, &b(r#"{"note":"_method"}"#)).is_ok());
        assert!(check_body_overrides(&json, &b(r#"{"a":{"_method":"x"}}"#)).is_ok());
    }
}
