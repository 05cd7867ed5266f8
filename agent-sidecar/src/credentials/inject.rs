//! [`Injection`]: how a route's secret goes into the upstream request.

use hyper::http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{AUTHORIZATION, PROXY_AUTHORIZATION},
};
use zeroize::Zeroizing;

use super::{CredentialError, Secret};

/// Headers that frame or route the request and so never carry a secret.
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Where and how a secret is put into upstream requests, e.g. header
/// `authorization` with format `Bearer {secret}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The header that carries the secret.
    pub header: HeaderName,
    /// The header value, with `{secret}` where the secret goes.
    pub format: String,
}

impl Injection {
    /// The placeholder replaced by the secret in [`Injection::format`].
    pub const PLACEHOLDER: &'static str = "{secret}";

    /// Checks and builds an injection: `header` must be a valid header name
    /// that does not frame the request (not `host`, `content-length`,
    /// `transfer-encoding`, `connection`...), and `format` must hold
    /// `{secret}` and otherwise only characters a header value may hold.
    pub fn new(header: &str, format: &str) -> Result<Self, CredentialError> {
        let header_error = |reason: &str| CredentialError::Header {
            header: header.to_owned(),
            reason: reason.to_owned(),
        };
        let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            header_error(
                "not a valid HTTP header name; use a token such as `authorization` or `x-api-key`",
            )
        })?;
        if FORBIDDEN.contains(&name.as_str()) {
            return Err(header_error(
                "this header frames or routes the request and cannot carry a secret; \
                 use `authorization` or the API's key header",
            ));
        }
        let format_error = |reason: &str| CredentialError::Format {
            format: format.to_owned(),
            reason: reason.to_owned(),
        };
        if !format.contains(Self::PLACEHOLDER) {
            return Err(format_error(
                "it has no `{secret}` placeholder; write e.g. `Bearer {secret}` or `{secret}`",
            ));
        }
        if HeaderValue::from_str(&format.replace(Self::PLACEHOLDER, "x")).is_err() {
            return Err(format_error(
                "it holds characters an HTTP header value cannot (control characters, line breaks)",
            ));
        }
        Ok(Injection {
            header: name,
            format: format.to_owned(),
        })
    }

    /// Puts `secret` into `headers`: removes whatever credentials the agent
    /// sent (`authorization`, `proxy-authorization` and the target header),
    /// then sets the target header to the format with the secret, marked
    /// sensitive (never indexed by HTTP/2 HPACK, shown redacted by `Debug`).
    ///
    /// When the secret cannot go into a header the agent's credentials are
    /// removed all the same and [`CredentialError::NotHeaderSafe`] is
    /// returned; the request must not be sent.
    pub fn apply(&self, headers: &mut HeaderMap, secret: &Secret) -> Result<(), CredentialError> {
        strip_agent_credentials(headers);
        headers.remove(&self.header);
        let mut rendered = Zeroizing::new(Vec::with_capacity(self.format.len() + secret.len()));
        for (i, part) in self.format.split(Self::PLACEHOLDER).enumerate() {
            if i > 0 {
                rendered.extend_from_slice(secret.expose());
            }
            rendered.extend_from_slice(part.as_bytes());
        }
        let mut value =
            HeaderValue::from_bytes(&rendered).map_err(|_| CredentialError::NotHeaderSafe {
                header: self.header.to_string(),
            })?;
        value.set_sensitive(true);
        headers.insert(self.header.clone(), value);
        Ok(())
    }
}

/// Removes the credentials an agent may have put in a request
/// (`authorization`, `proxy-authorization`), for routes that inject no
/// secret: the agent's own tokens never reach the upstream. Cookies are
/// kept.
pub fn strip_agent_credentials(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    headers.remove(PROXY_AUTHORIZATION);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append("authorization", HeaderValue::from_static("Bearer agent-1"));
        headers.append("authorization", HeaderValue::from_static("Basic agent-2"));
        headers.insert("proxy-authorization", HeaderValue::from_static("Basic p"));
        headers.insert("x-api-key", HeaderValue::from_static("agent-key"));
        headers.insert("cookie", HeaderValue::from_static("session=1"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        headers
    }

    #[test]
    fn bearer_injection_replaces_agent_credentials() {
        let injection = Injection::new("Authorization", "Bearer {secret}").unwrap();
        assert_eq!(injection.header, AUTHORIZATION);
        let mut headers = agent_headers();
        injection
            .apply(&mut headers, &Secret::new(b"ghp_real".to_vec()))
            .unwrap();
        let auth: Vec<_> = headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(auth, ["Bearer ghp_real"]);
        assert!(auth[0].is_sensitive());
        assert!(headers.get(PROXY_AUTHORIZATION).is_none());
        assert_eq!(
            headers["x-api-key"], "agent-key",
            "only the target is replaced"
        );
        assert_eq!(headers["cookie"], "session=1");
        assert_eq!(headers["accept"], "application/json");
        assert!(!format!("{headers:?}").contains("ghp_real"));
    }

    #[test]
    fn custom_header_injection() {
        let injection = Injection::new("x-api-key", "{secret}").unwrap();
        let mut headers = agent_headers();
        injection
            .apply(&mut headers, &Secret::new(b"k1".to_vec()))
            .unwrap();
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], "k1");
        assert!(
            headers.get(AUTHORIZATION).is_none(),
            "agent's authorization removed"
        );
        let twice = Injection::new("x-auth", "{secret}:{secret}").unwrap();
        twice
            .apply(&mut headers, &Secret::new(b"a".to_vec()))
            .unwrap();
        assert_eq!(headers["x-auth"], "a:a");
    }

    #[test]
    fn unsafe_secret_is_refused_after_stripping() {
        let injection = Injection::new("authorization", "Bearer {secret}").unwrap();
        let mut headers = agent_headers();
        let err = injection
            .apply(&mut headers, &Secret::new(b"abc\r\nx-evil: 1".to_vec()))
            .unwrap_err();
        assert!(matches!(err, CredentialError::NotHeaderSafe { .. }));
        let text = err.to_string();
        assert!(
            text.contains("authorization") && !text.contains("abc"),
            "{text}"
        );
        assert!(headers.get(AUTHORIZATION).is_none());
        assert!(headers.get("x-evil").is_none());
    }

    #[test]
    fn invalid_injections() {
        for (header, format, needle) in [
            ("bad header", "{secret}", "not a valid HTTP header name"),
            ("", "{secret}", "not a valid HTTP header name"),
            ("Host", "{secret}", "frames or routes"),
            ("transfer-encoding", "{secret}", "frames or routes"),
            ("authorization", "Bearer {token}", "no `{secret}`"),
            (
                "authorization",
                "Bearer {secret}\r\nx: y",
                "control characters",
            ),
        ] {
            let err = Injection::new(header, format).unwrap_err().to_string();
            assert!(err.contains(needle), "{header} {format}: {err}");
        }
    }

    #[test]
    fn strip_only_authorization_headers() {
        let mut headers = agent_headers();
        strip_agent_credentials(&mut headers);
        assert!(headers.get(AUTHORIZATION).is_none());
        assert!(headers.get(PROXY_AUTHORIZATION).is_none());
        assert_eq!(headers["cookie"], "session=1");
        assert_eq!(headers["x-api-key"], "agent-key");
    }
}
