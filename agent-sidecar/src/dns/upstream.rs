//! Forwarding to the upstream resolvers: UDP first, TCP when the answer is
//! truncated; each exchange under a time limit; the servers tried in turn
//! (starting from a rotating one) for a configured number of rounds.
//!
//! Every upstream query gets a fresh random id and goes out from a fresh
//! ephemeral socket connected to the server; an answer counts only if it
//! comes from that server with that id and repeats the question (anything
//! else is ignored, as a spoofing attempt would be). The query carries only
//! the question, RD and EDNS with a 1232-byte payload: none of the client's
//! EDNS options (client subnet, cookies) leave the sidecar.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::Name,
};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{decide::Question, error::UpstreamError, handle::MAX_UDP_PAYLOAD};

/// Upstream servers and how to ask them.
#[derive(Debug)]
pub struct UpstreamResolvers {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
    next: AtomicUsize,
}

/// A usable upstream answer (NOERROR or NXDOMAIN).
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// The answer.
    pub message: Message,
    /// The server that gave it.
    pub server: SocketAddr,
    /// Whether it came over TCP (after a truncated UDP answer).
    pub tcp: bool,
}

impl UpstreamResolvers {
    /// Upstream `servers`, each exchange limited to `timeout`, `attempts`
    /// rounds over the list.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration, attempts: u32) -> Self {
        UpstreamResolvers {
            servers,
            timeout,
            attempts,
            next: AtomicUsize::new(0),
        }
    }

    /// Resolves `question`; the error is the last server's.
    pub async fn resolve(&self, question: &Question) -> Result<UpstreamAnswer, UpstreamError> {
        let mut last = UpstreamError::NoServer;
        let count = self.servers.len();
        if count == 0 {
            return Err(last);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for round in 0..self.attempts as usize {
            for i in 0..count {
                let server = self.servers[(start + round + i) % count];
                match self.exchange(server, question).await {
                    Ok(answer) => return Ok(answer),
                    Err(UpstreamError::Encode(e)) => return Err(UpstreamError::Encode(e)),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// One server: UDP, then TCP if truncated.
    async fn exchange(
        &self,
        server: SocketAddr,
        question: &Question,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let id: u16 = rand::random();
        let query = upstream_query(id, question)
            .to_vec()
            .map_err(|e| UpstreamError::Encode(e.to_string()))?;
        let deadline = Instant::now() + self.timeout;
        let timeout = UpstreamError::Timeout {
            server,
            timeout: self.timeout,
        };
        let udp =
            tokio::time::timeout_at(deadline.into(), udp_exchange(server, &query, id, question))
                .await
                .map_err(|_| timeout)??;
        let (message, tcp) = if udp.truncated() {
            let deadline = Instant::now() + self.timeout;
            let timeout = UpstreamError::Timeout {
                server,
                timeout: self.timeout,
            };
            let message = tokio::time::timeout_at(
                deadline.into(),
                tcp_exchange(server, &query, id, question),
            )
            .await
            .map_err(|_| timeout)??;
            (message, true)
        } else {
            (udp, false)
        };
        match message.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(UpstreamAnswer {
                message,
                server,
                tcp,
            }),
            rcode => Err(UpstreamError::Rcode {
                server,
                rcode: rcode.to_string(),
            }),
        }
    }
}

/// The query sent upstream for `question`.
fn upstream_query(id: u16, question: &Question) -> Message {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    // Lower-cased: the letter case of the agent's question is not a
    // channel to the upstream servers (the agent's answer keeps its own
    // question as asked).
    let mut query = Query::query(question.name.to_lowercase(), question.qtype);
    query.set_query_class(question.qclass);
    message.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    message.set_edns(edns);
    message
}

/// Whether `bytes` is the answer to our query `id` for `question`.
fn answer_to(bytes: &[u8], id: u16, question: &Question) -> Option<Message> {
    let message = Message::from_vec(bytes).ok()?;
    let same_question = match message.queries() {
        [q] => {
            same_name(q.name(), &question.name)
                && q.query_type() == question.qtype
                && q.query_class() == question.qclass
        }
        _ => false,
    };
    (message.id() == id && message.message_type() == MessageType::Response && same_question)
        .then_some(message)
}

fn same_name(a: &Name, b: &Name) -> bool {
    a.to_ascii().eq_ignore_ascii_case(&b.to_ascii())
}

async fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { server, source };
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        if let Some(message) = answer_to(&buf[..n], id, question) {
            return Ok(message);
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { server, source };
    let stream = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = Framed::new(stream, dns_tcp_codec(usize::from(u16::MAX)));
    framed
        .send(Bytes::copy_from_slice(query))
        .await
        .map_err(io)?;
    while let Some(frame) = framed.next().await {
        let frame = frame.map_err(io)?;
        if let Some(message) = answer_to(&frame, id, question) {
            return Ok(message);
        }
    }
    Err(UpstreamError::Closed { server })
}

/// DNS over TCP framing (RFC 1035 4.2.2): a 2-byte big-endian length, then
/// the message; frames over `max` bytes are an error.
pub(crate) fn dns_tcp_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(max.min(usize::from(u16::MAX)))
        .new_codec()
}

#[cfg(test)]
mod tests;
