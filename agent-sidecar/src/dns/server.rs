//! The UDP and TCP listeners of one agent's resolver.
//!
//! UDP: one receive loop per socket; answers that need no upstream (cached,
//! refused, malformed) are sent from the loop itself, forwarded queries run
//! on their own task, at most `max_in_flight` at once (beyond that:
//! SERVFAIL, counted as an upstream error). TCP: one task per connection
//! (at most `max_tcp_connections`; more are closed at once), RFC 1035
//! length-prefixed framing by `tokio_util`'s `LengthDelimitedCodec`,
//! messages up to `max_tcp_message` bytes, the connection closed after
//! `tcp_idle_timeout` without a complete message or on a framing error.

use std::{io, net::SocketAddr, sync::Arc};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::{
    net::{TcpListener, TcpStream, UdpSocket},
    sync::Semaphore,
    task::JoinSet,
};
use tokio_util::codec::Framed;

use super::{
    config::DnsConfig,
    error::DnsError,
    events::Transport,
    resolver::{Local, Resolver},
    upstream::dns_tcp_codec,
};

/// Tries at finding a port free on both UDP and TCP when listening on port 0.
const PORT_TRIES: usize = 16;
/// Largest UDP datagram read.
const UDP_BUFFER: usize = 65_535;

/// A running resolver: its listeners and their tasks. Dropping it stops
/// them.
pub struct DnsServer {
    resolver: Resolver,
    local: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

impl DnsServer {
    /// Validates `config`, binds every listen address on UDP and TCP (the
    /// same port for both) and starts serving with `resolver`.
    pub async fn start(config: &DnsConfig, resolver: Resolver) -> Result<Self, DnsError> {
        config.validate()?;
        let mut tasks = JoinSet::new();
        let mut local = Vec::new();
        for &addr in &config.listen {
            let (udp, tcp) = bind_pair(addr).await?;
            let bound = udp.local_addr().map_err(|source| DnsError::Bind {
                addr,
                transport: "udp",
                source,
            })?;
            local.push(bound);
            let udp = Arc::new(udp);
            let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
            tasks.spawn(serve_udp(udp, resolver.clone(), in_flight));
            let connections = Arc::new(Semaphore::new(config.max_tcp_connections));
            tasks.spawn(serve_tcp(
                tcp,
                resolver.clone(),
                connections,
                config.clone(),
            ));
        }
        Ok(DnsServer {
            resolver,
            local,
            tasks,
        })
    }

    /// The bound addresses (UDP and TCP alike), in `config.listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The resolver (to swap the allowlist on policy reload).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Stops the listeners and waits for their tasks to end.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds UDP and TCP on `addr`; for port 0, on one port free for both.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let tries = if addr.port() == 0 { PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr,
                transport: "udp",
                source,
            })?;
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(addr.port());
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(DnsError::Bind {
        addr,
        transport: "tcp",
        source: last.unwrap_or_else(|| io::Error::other("no port")),
    })
}

async fn serve_udp(socket: Arc<UdpSocket>, resolver: Resolver, in_flight: Arc<Semaphore>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut forwards = JoinSet::new();
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // ICMP errors from earlier sends surface here; keep serving.
            Err(e) => {
                tracing::debug!(target: "agent_sidecar::dns", error = %e, "udp receive error");
                continue;
            }
        };
        while forwards.try_join_next().is_some() {}
        match resolver.local(&buf[..n], client, Transport::Udp) {
            Local::Now(Some(bytes)) => send(&socket, &bytes, client).await,
            Local::Now(None) => {}
            Local::Forward(forward) => {
                let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                    if let Some(bytes) = resolver.overloaded(forward) {
                        send(&socket, &bytes, client).await;
                    }
                    continue;
                };
                let (socket, resolver) = (Arc::clone(&socket), resolver.clone());
                forwards.spawn(async move {
                    if let Some(bytes) = resolver.forward(forward).await {
                        send(&socket, &bytes, client).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], client: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, client).await {
        tracing::debug!(target: "agent_sidecar::dns", %client, error = %e, "udp send error");
    }
}

async fn serve_tcp(
    listener: TcpListener,
    resolver: Resolver,
    connections: Arc<Semaphore>,
    config: DnsConfig,
) {
    let mut clients = JoinSet::new();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(target: "agent_sidecar::dns", error = %e, "tcp accept error");
                continue;
            }
        };
        while clients.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(target: "agent_sidecar::dns", %client, "too many DNS TCP connections; closing");
            continue;
        };
        let resolver = resolver.clone();
        let config = config.clone();
        clients.spawn(async move {
            serve_tcp_client(stream, client, &resolver, &config).await;
            drop(permit);
        });
    }
}

async fn serve_tcp_client(
    stream: TcpStream,
    client: SocketAddr,
    resolver: &Resolver,
    config: &DnsConfig,
) {
    let mut framed = Framed::new(stream, dns_tcp_codec(config.max_tcp_message));
    loop {
        let frame = match tokio::time::timeout(config.tcp_idle_timeout, framed.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                resolver.tcp_framing_error(client, &e);
                return;
            }
            // Closed by the client, or idle too long.
            Ok(None) | Err(_) => return,
        };
        if let Some(bytes) = resolver.handle(&frame, client, Transport::Tcp).await
            && framed.send(bytes::Bytes::from(bytes)).await.is_err()
        {
            return;
        }
    }
}
