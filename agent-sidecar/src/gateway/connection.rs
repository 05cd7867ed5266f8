//! Serving one agent connection to a tool host: the agent's TLS is
//! terminated with a leaf for the tool host, then HTTP/1.1 or HTTP/2 runs
//! under the gateway's limits.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    conn_info::ConnInfo,
    limits::{FirstByteTimeout, serve_until_idle, server_builder},
    pipeline::handle,
    state::Gateway,
};

impl Gateway {
    /// Terminates the agent's TLS on `io` (the proxy has already checked
    /// that `host` is allowed and read nothing it did not replay) and serves
    /// its requests until the connection ends. `port` is the tool port.
    pub async fn serve_tls<IO>(&self, io: IO, host: String, port: u16)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tls, sni) = match self.shared.tls.accept(io).await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(host, error = %e, "agent TLS handshake with the gateway failed");
                return;
            }
        };
        if sni != host {
            tracing::warn!(
                host,
                sni,
                "TLS server name changed between sniff and handshake; closing"
            );
            return;
        }
        self.serve_http(tls, host, port).await;
    }

    /// Serves HTTP on an already terminated (or test) stream for `host`.
    pub async fn serve_http<IO>(&self, io: IO, host: String, port: u16)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(ConnInfo { host, port });
        let shared = self.shared.clone();
        let limits = &self.shared.limits;
        let builder = server_builder(limits);
        let io = FirstByteTimeout::new(io, limits.header_read_timeout);
        let served = serve_until_idle(&builder, io, limits.idle_timeout, move |req| {
            handle(shared.clone(), conn.clone(), req)
        });
        if let Err(e) = served.await {
            tracing::debug!(error = %e, "gateway connection ended with an error");
        }
    }
}

impl crate::proxy::Inspect for Gateway {
    fn inspects(&self, host: &str, port: u16) -> bool {
        self.shared
            .policy
            .current()
            .inspected(host)
            .is_some_and(|e| e.port == port)
    }

    fn serve(
        &self,
        stream: crate::proxy::Rewind<Box<dyn crate::proxy::Io>>,
        host: String,
        port: u16,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let gw = self.clone();
        Box::pin(async move { gw.serve_tls(stream, host, port).await })
    }
}
