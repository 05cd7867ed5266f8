//! Resolving an allowed name with the sidecar's own resolver and connecting
//! to what it returned — never to the address the agent had in mind.

use std::net::{IpAddr, SocketAddr};

use tokio::{net::TcpStream, time::timeout};

use super::{context::ProxyContext, refusal::Denial};

/// The addresses of `host`, from the sidecar's resolver, within the
/// resolve timeout. An empty answer is a failure.
pub(crate) async fn resolve(ctx: &ProxyContext, host: &str) -> Result<Vec<IpAddr>, Denial> {
    match timeout(ctx.config.resolve_timeout, ctx.resolver.resolve(host)).await {
        Err(_) => Err(Denial::upstream(
            "dns_failure",
            format!("{host}: resolver timed out"),
        )),
        Ok(Err(e)) => Err(Denial::upstream("dns_failure", e.to_string())),
        Ok(Ok(addrs)) if addrs.is_empty() => Err(Denial::upstream(
            "dns_failure",
            format!("{host}: no address"),
        )),
        Ok(Ok(addrs)) => Ok(addrs),
    }
}

/// Connects to the first of `addrs` (in the resolver's order) that accepts
/// within the connect timeout.
pub(crate) async fn connect(
    ctx: &ProxyContext,
    addrs: &[IpAddr],
    port: u16,
) -> Result<(TcpStream, SocketAddr), Denial> {
    let mut last = String::from("no address");
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match timeout(ctx.config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Latency over throughput for small request/response turns;
                // a failure here only costs performance.
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: connect timed out"),
        }
    }
    Err(Denial::upstream("upstream_unreachable", last))
}
