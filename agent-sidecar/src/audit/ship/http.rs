//! The shipper's HTTP client: the sidecar's pooled client
//! ([`crate::http_client`]: HTTP/1.1 and HTTP/2, kept connections, rustls)
//! for `https://` collectors, through the operator's
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` like the webhooks, with a timeout
//! per request and a bounded answer.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    HeaderMap, Method, Request, StatusCode, Uri,
    header::{self, HeaderValue},
};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{
    Client,
    connect::{HttpConnector, dns::GaiResolver},
};

use crate::http_client::{Proxied, Schemes, pooled, proxy_from_env, tcp_connector};

/// Largest answer body read (an OTLP partial success is small).
const MAX_ANSWER: usize = 64 * 1024;

/// A pooled client for every destination of one shipper.
pub type ShipClient = Client<HttpsConnector<Proxied<HttpConnector<GaiResolver>>>, Full<Bytes>>;

/// Builds the client: `tls` verifies `https://` collectors (its ALPN is
/// replaced by `h2, http/1.1`); without it only `http://` works.
pub fn client(tls: Option<Arc<rustls::ClientConfig>>, connect_timeout: Duration) -> ShipClient {
    let tls = match tls {
        Some(c) => (*c).clone(),
        // Never used: https:// destinations are refused without TLS.
        None => rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    };
    let connector = Proxied::new(
        tcp_connector(GaiResolver::new(), connect_timeout),
        proxy_from_env(),
    );
    pooled(tls, connector, Schemes::HttpAndHttps)
}

/// A collector's answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its `Retry-After`.
    pub retry_after: Option<HeaderValue>,
    /// Its body (at most 64 KiB read).
    pub body: Bytes,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connecting or the exchange failed.
    #[error("{0}")]
    Failed(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// POSTs `body` to `uri` with `headers` and `content_type`.
pub async fn post(
    client: &ShipClient,
    uri: &Uri,
    headers: &HeaderMap,
    content_type: &'static str,
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .body(Full::new(body))
        .expect("a valid request");
    req.headers_mut().extend(headers.clone());
    req.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            SendError::Failed(msg)
        })?;
        let status = resp.status();
        let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
        // A body larger than the limit is cut: only its start matters.
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SendError::Timeout(timeout))?
}
