//! A small authoritative DNS server for test zones (messages parsed and built
//! with hickory-proto): answers A and AAAA queries from a fixed zone, NXDOMAIN
//! for names outside it, and records every question it gets.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{Arc, Mutex},
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata},
};

use crate::{NetNs, in_ns};

/// A running authority.
pub struct Authority {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// Every question received: (name, type).
    pub asked: Arc<Mutex<Vec<(String, RecordType)>>>,
}

impl Authority {
    /// Serves `zone` — (name, address) pairs; a name of `*` answers every
    /// question — with `ttl` seconds on every record.
    pub fn start(ns: &NetNs, addr: &str, zone: &[(&str, &str)], ttl: u32) -> Self {
        let addr: SocketAddr = addr.parse().expect("addr");
        let zone: Vec<(String, IpAddr)> = zone
            .iter()
            .map(|(n, a)| (absolute(n), a.parse().expect("zone address")))
            .collect();
        let socket = in_ns(ns, move || UdpSocket::bind(addr).expect("bind dns"));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&query, &zone, ttl, &log);
                let bytes = reply.to_vec().expect("encode reply");
                let _ = socket.send_to(&bytes, peer);
            }
        });
        Authority { addr, asked }
    }

    /// Whether `name` was asked (any type).
    pub fn was_asked(&self, name: &str) -> bool {
        let name = absolute(name);
        self.asked.lock().unwrap().iter().any(|(n, _)| *n == name)
    }
}

fn absolute(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "*" || lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

fn answer(
    query: &Message,
    zone: &[(String, IpAddr)],
    ttl: u32,
    log: &Mutex<Vec<(String, RecordType)>>,
) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let mut known = false;
    for q in query.queries() {
        let name = q.name().to_ascii().to_ascii_lowercase();
        log.lock().unwrap().push((name.clone(), q.query_type()));
        reply.add_query(q.clone());
        for (zname, addr) in zone {
            if *zname != name && zname != "*" {
                continue;
            }
            known = true;
            let data = match (q.query_type(), addr) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(rdata::A(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(rdata::AAAA(*v6)),
                _ => continue,
            };
            let owner: Name = q.name().clone();
            reply.add_answer(Record::from_rdata(owner, ttl, data));
        }
    }
    if !known {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    reply
}
