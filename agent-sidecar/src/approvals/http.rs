//! [`RemoteEndpoint`]: one URL reached through the sidecar's pooled HTTP
//! client ([`crate::http_client`]), shared by the webhook notifier and
//! [`ApprovalsClient`](super::ApprovalsClient): `http://` URLs, and
//! `https://` ones when the caller gives the TLS client configuration that
//! verifies the server (webhooks do; the admin API client speaks plain
//! HTTP to a local listener). Connections are kept and reused between
//! requests to the endpoint.

use std::{error::Error as _, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::{
    legacy::{
        Client,
        connect::{HttpConnector, dns::GaiResolver},
    },
    proxy::matcher::Matcher,
};
use rustls::{ClientConfig, pki_types::ServerName};

use crate::http_client::{Proxied, Schemes, pooled, tcp_connector};

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The webhook's queue directory cannot be made or read.
    #[error("webhook queue directory {path}: {source}; give a writable directory")]
    Queue {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The URL does not parse or has no host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS handshake failed (e.g. the certificate is not trusted).
    #[error("TLS handshake with {authority} failed: {reason}")]
    Tls {
        /// `host:port`.
        authority: String,
        /// What rustls said.
        reason: String,
    },
    /// Connecting failed (directly or through the proxy).
    #[error("cannot connect to {authority}: {reason}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// What failed.
        reason: String,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {authority} failed: {reason}")]
    Exchange {
        /// `host:port`.
        authority: String,
        /// What hyper said.
        reason: String,
    },
    /// Reading the response body failed or it was too large.
    #[error("response body from {authority} unreadable or larger than {limit} bytes")]
    Body {
        /// `host:port`.
        authority: String,
        /// The size limit.
        limit: usize,
    },
    /// The whole exchange took longer than the timeout.
    #[error("no answer from {authority} within {timeout:?}")]
    Timeout {
        /// `host:port`.
        authority: String,
        /// The timeout.
        timeout: Duration,
    },
}

type EndpointClient = Client<HttpsConnector<Proxied<HttpConnector<GaiResolver>>>, Full<Bytes>>;

/// One URL and the pooled client that reaches it.
#[derive(Clone)]
pub(super) struct RemoteEndpoint {
    host: String,
    port: u16,
    /// `scheme://authority`.
    origin: String,
    authority: String,
    base_path: String,
    tls: bool,
    client: EndpointClient,
}

impl std::fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Connection attempts give up after this long (the caller's timeout
/// bounds the whole exchange).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl RemoteEndpoint {
    /// Parses an `http://host[:port][/path]` URL, or with `tls` (which then
    /// verifies the server's certificate for `host`) an `https://` one;
    /// connects directly.
    pub(super) fn parse(url: &str, tls: Option<Arc<ClientConfig>>) -> Result<Self, HttpError> {
        Self::parse_proxied(url, tls, None)
    }

    /// [`RemoteEndpoint::parse`], through the HTTP proxy `proxy` names for
    /// the URL, if any.
    pub(super) fn parse_proxied(
        url: &str,
        tls: Option<Arc<ClientConfig>>,
        proxy: Option<Arc<Matcher>>,
    ) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        let (tls, default_port) = match (uri.scheme_str(), tls) {
            (Some("http"), _) => (None, 80),
            (Some("https"), Some(config)) => (Some(config), 443),
            (Some("https"), None) => return Err(invalid("only http:// is supported here")),
            _ => return Err(invalid("the URL must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if tls.is_some() {
            ServerName::try_from(host.to_string())
                .map_err(|e| invalid(&format!("not a TLS server name: {e}")))?;
        }
        let is_tls = tls.is_some();
        // An http:// endpoint never uses TLS; the connector still needs a
        // configuration, which trusts nothing.
        let config = match tls {
            Some(c) => (*c).clone(),
            None => ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        let connector = Proxied::new(tcp_connector(GaiResolver::new(), CONNECT_TIMEOUT), proxy);
        Ok(RemoteEndpoint {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            origin: format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("http"),
                authority.as_str()
            ),
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls: is_tls,
            client: pooled(config, connector, Schemes::HttpAndHttps),
        })
    }

    /// A request builder for `method` on `base path + path` (origin form;
    /// [`RemoteEndpoint::send`] makes it absolute), with `Host` set.
    pub(super) fn request(
        &self,
        method: hyper::Method,
        path: &str,
    ) -> hyper::http::request::Builder {
        let target = format!("{}{path}", self.base_path);
        let target = if target.is_empty() {
            "/".to_string()
        } else {
            target
        };
        Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, self.authority.as_str())
    }

    /// Sends `req` (on a pooled connection) and reads at most `limit` bytes
    /// of the response, all within `timeout`.
    pub(super) async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        tokio::time::timeout(timeout, self.exchange(req, limit))
            .await
            .map_err(|_| HttpError::Timeout {
                authority: self.authority.clone(),
                timeout,
            })?
    }

    async fn exchange(
        &self,
        mut req: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        // The pooled client routes by the absolute URI.
        let absolute = format!("{}{}", self.origin, req.uri());
        *req.uri_mut() = absolute
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| HttpError::InvalidUrl {
                url: absolute.clone(),
                reason: e.to_string(),
            })?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| self.classify(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|_| HttpError::Body {
                authority: self.authority.clone(),
                limit,
            })?
            .to_bytes();
        Ok((status, body))
    }

    /// A TLS failure, a connection failure or an HTTP one, with the
    /// innermost reason.
    fn classify(&self, e: &hyper_util::client::legacy::Error) -> HttpError {
        let mut reason = e.to_string();
        let mut tls = false;
        let mut source = e.source();
        while let Some(s) = source {
            reason = s.to_string();
            tls |= is_rustls(s);
            source = s.source();
        }
        let authority = self.authority.clone();
        if tls {
            HttpError::Tls { authority, reason }
        } else if e.is_connect() {
            HttpError::Connect { authority, reason }
        } else {
            HttpError::Exchange { authority, reason }
        }
    }
}

/// Whether `e` is a rustls error, or io::Errors wrapping one: the TLS
/// connector wraps rustls' error in two of them, whose `source()` skips it.
fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<rustls::Error>()
        || e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| is_rustls(inner))
}

#[cfg(test)]
mod tests {
    use super::RemoteEndpoint;

    #[test]
    fn parses_plain_http_urls() {
        let e = RemoteEndpoint::parse("http://127.0.0.1:8080/hooks/", None).expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.base_path, "/hooks");
        let e = RemoteEndpoint::parse("http://[::1]/", None).expect("parses");
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("::1", 80, "")
        );
        let req = e.request(hyper::Method::GET, "").body(()).expect("builds");
        assert_eq!(req.uri(), "/");
    }

    #[test]
    fn refuses_https_without_tls_and_credentials() {
        for bad in [
            "https://example.com/",
            "http://u:p@example.com/",
            "ftp://example.com/",
            "example.com",
            "::",
        ] {
            assert!(RemoteEndpoint::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_defaults_to_port_443_with_tls() {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let e = RemoteEndpoint::parse("https://soc.example.com/alerts", Some(config.into()))
            .expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("soc.example.com", 443));
        assert!(e.tls);
    }
}
