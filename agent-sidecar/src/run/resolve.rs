//! The proxy's resolver: the agent's own DNS resolver, asked in-process, so a
//! proxied name gets exactly the addresses (rebinding guard, cache, learned
//! destinations) the agent's DNS answers would give.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

use crate::{
    dns::{Resolver, Transport},
    proxy::{Resolve, ResolveError, ResolveFuture},
};

/// How in-process queries appear in DNS events.
const PROXY_CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// [`Resolve`] over one agent's [`Resolver`].
pub(super) struct DnsResolve {
    resolver: Resolver,
}

impl DnsResolve {
    /// Resolves through `resolver`.
    pub(super) fn new(resolver: Resolver) -> Self {
        Self { resolver }
    }

    async fn lookup(
        &self,
        name: &Name,
        host: &str,
        rtype: RecordType,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let failed = |detail: String| ResolveError::Failed {
            host: host.to_string(),
            detail,
        };
        let mut query = Message::new();
        query
            .set_id(rand::random())
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), rtype));
        let bytes = query.to_vec().map_err(|e| failed(e.to_string()))?;
        let reply = self
            .resolver
            .handle(&bytes, PROXY_CLIENT, Transport::Udp)
            .await
            .ok_or_else(|| failed("no answer".into()))?;
        let reply = Message::from_vec(&reply).map_err(|e| failed(e.to_string()))?;
        match reply.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain | ResponseCode::Refused => {
                return Err(ResolveError::NoAddress {
                    host: host.to_string(),
                });
            }
            other => return Err(failed(format!("answer {other}"))),
        }
        Ok(reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect())
    }
}

impl Resolve for DnsResolve {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let name = Name::from_ascii(format!("{host}.")).map_err(|e| ResolveError::Failed {
                host: host.to_string(),
                detail: e.to_string(),
            })?;
            let mut addrs = self.lookup(&name, host, RecordType::A).await?;
            // IPv6 is a bonus: its failure does not hide IPv4 answers.
            if let Ok(v6) = self.lookup(&name, host, RecordType::AAAA).await {
                addrs.extend(v6);
            }
            if addrs.is_empty() {
                return Err(ResolveError::NoAddress {
                    host: host.to_string(),
                });
            }
            Ok(addrs)
        })
    }
}
