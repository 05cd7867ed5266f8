//! The path of a byte stream whose destination is named in its first bytes:
//! a transparent connection, or the inside of a CONNECT tunnel.
//!
//! sniff (bounded, timed) -> check the name -> resolve -> dial -> replay the
//! sniffed bytes -> splice; or, for a tool host the [`Inspect`]or takes,
//! check the name -> hand the stream (sniffed bytes put back) to the tool
//! gateway. Every exit before the dial refuses in the client's protocol, and
//! nothing is dialled for a refused stream.
//!
//! [`Inspect`]: super::Inspect

use std::{net::IpAddr, time::Duration};

use bytes::Bytes;

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::{Instant, timeout, timeout_at},
};

use super::{
    context::ProxyContext,
    dial::{connect, resolve},
    gate::{check_head, check_hello},
    inspect::{Io, Rewind},
    name::split_host_port,
    record::Record,
    refusal::{Denial, tls_alert},
    sniff::{Sniffed, looks_like_tls, sniff},
    splice::splice,
};

/// Most bytes read and discarded after a refusal, so that the client reads
/// the refusal instead of a reset caused by unread data.
const DRAIN_MAX_BYTES: usize = 64 * 1024;
/// Longest wait for the client to close after a refusal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A CONNECT target already checked and resolved by the explicit proxy.
pub(crate) struct Tunnel {
    /// Normalised CONNECT host.
    pub(crate) host: String,
    /// What the sidecar's resolver returned for it.
    pub(crate) addrs: Vec<IpAddr>,
}

/// Serves one stream to its end. `port` is the destination port (CONNECT
/// port, or the transparent listener's original port).
pub(crate) async fn route<S>(
    ctx: &ProxyContext,
    mut record: Record,
    mut client: S,
    port: u16,
    tunnel: Option<Tunnel>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (buf, sniffed) = read_first(&mut client, ctx).await;
    let connect_host = tunnel.as_ref().map(|t| t.host.as_str());
    let (claimed, checked) = match &sniffed {
        Ok(Sniffed::Tls(hello)) => {
            record.tls(hello.sni.as_deref(), hello.ech);
            (
                hello.sni.clone(),
                check_hello(ctx, hello, connect_host, port),
            )
        }
        Ok(Sniffed::Http(head)) => (
            head.host
                .as_deref()
                .and_then(split_host_port)
                .map(|(h, _)| h.to_owned()),
            check_head(ctx, head, connect_host, port),
        ),
        Ok(Sniffed::Incomplete) => (
            None,
            Err(Denial::malformed("incomplete", "stream ended early")),
        ),
        Err(denial) => (None, Err(denial.clone())),
    };
    let claimed = claimed.or_else(|| connect_host.map(str::to_owned));
    if let Some(host) = &claimed {
        record.target(host, port);
    }
    let cleared = match checked {
        Ok(cleared) => cleared,
        Err(denial) => return deny(record, client, &buf, denial, claimed.as_deref(), port).await,
    };
    record.target(&cleared.host, port);
    if let Some(inspector) = ctx
        .inspector
        .as_ref()
        .filter(|i| i.inspects(&cleared.host, port))
    {
        if !matches!(sniffed, Ok(Sniffed::Tls(_))) {
            let denial = Denial::forbidden(
                "inspected_host_needs_tls",
                format!(
                    "{} is a tool host: the gateway takes HTTPS only",
                    cleared.host
                ),
            );
            return deny(record, client, &buf, denial, Some(&cleared.host), port).await;
        }
        record.allowed(
            &format!("{} (inspected by the gateway)", cleared.allowed.rule),
            0,
            0,
        );
        let stream: Box<dyn Io> = Box::new(client);
        inspector
            .serve(Rewind::new(Bytes::from(buf), stream), cleared.host, port)
            .await;
        return;
    }
    let addrs = match tunnel {
        Some(t) => t.addrs,
        None => match resolve(ctx, &cleared.host).await {
            Ok(addrs) => addrs,
            Err(denial) => {
                return deny(record, client, &buf, denial, Some(&cleared.host), port).await;
            }
        },
    };
    let (mut upstream, addr) = match connect(ctx, &addrs, port).await {
        Ok(ok) => ok,
        Err(denial) => return deny(record, client, &buf, denial, Some(&cleared.host), port).await,
    };
    record.upstream(addr);
    if let Err(e) = upstream.write_all(&buf).await {
        let denial = Denial::upstream("upstream_unreachable", format!("{addr}: {e}"));
        return deny(record, client, &buf, denial, Some(&cleared.host), port).await;
    }
    let spliced = splice(client, upstream).await;
    record.allowed(
        &cleared.allowed.rule,
        spliced.up + buf.len() as u64,
        spliced.down,
    );
}

/// Reads until the first bytes name a destination, the bound is reached, the
/// client stops sending, or the sniff timeout passes. Returns what was read.
async fn read_first<S>(client: &mut S, ctx: &ProxyContext) -> (Vec<u8>, Result<Sniffed, Denial>)
where
    S: AsyncRead + Unpin,
{
    let max = ctx.config.sniff_max_bytes;
    let deadline = Instant::now() + ctx.config.sniff_timeout;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        match sniff(&buf) {
            Ok(Sniffed::Incomplete) => {}
            Ok(found) => return (buf, Ok(found)),
            Err(e) => {
                let reason = if looks_like_tls(&buf) {
                    "malformed_client_hello"
                } else {
                    "malformed_request"
                };
                return (buf, Err(Denial::malformed(reason, e.to_string())));
            }
        }
        if buf.len() >= max {
            let denial = Denial::malformed(
                "head_too_large",
                format!("no complete ClientHello or request head in {max} bytes"),
            );
            return (buf, Err(denial));
        }
        let want = chunk.len().min(max - buf.len());
        match timeout_at(deadline, client.read(&mut chunk[..want])).await {
            Err(_) => {
                let denial = Denial::timeout(format!(
                    "no complete ClientHello or request head within {:?}",
                    ctx.config.sniff_timeout
                ));
                return (buf, Err(denial));
            }
            Ok(Ok(0)) => {
                let denial =
                    Denial::malformed("client_closed", "client closed before naming a destination");
                return (buf, Err(denial));
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return (buf, Err(Denial::malformed("client_error", e.to_string()))),
        }
    }
}

/// Refuses in the client's protocol (TLS alert, or HTTP status with JSON),
/// closes, and records the refusal.
async fn deny<S>(
    record: Record,
    mut client: S,
    buf: &[u8],
    denial: Denial,
    host: Option<&str>,
    port: u16,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    record.denied(&denial);
    let reply = if buf.is_empty() {
        Vec::new()
    } else if looks_like_tls(buf) {
        tls_alert(buf)
    } else {
        denial.http_response(host, port)
    };
    close_after(&mut client, &reply).await;
}

/// Writes `reply`, shuts the write half, and reads (bounded in bytes and
/// time) until the client closes, so that the reply is not lost to a reset.
pub(crate) async fn close_after<S>(client: &mut S, reply: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if client.write_all(reply).await.is_err() || client.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let _ = timeout(DRAIN_TIMEOUT, async {
        while drained < DRAIN_MAX_BYTES {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
