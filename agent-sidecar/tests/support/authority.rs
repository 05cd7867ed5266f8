//! A small authoritative DNS server for test zones, on 127.0.0.1 (UDP and
//! TCP on one port), built on `hickory-proto`. It logs every question it
//! receives (so tests can prove a name never left the resolver) and can
//! answer chosen names with TC set over UDP (to exercise the TCP fallback).
//!
//! hickory-server's in-memory authority would serve the zones too, but it
//! has no query log and no way to force truncation, which are the two
//! things these tests need; the zone logic here is a dozen lines.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{CNAME, SOA},
    },
};
use tokio::{
    net::{TcpListener, UdpSocket},
    task::JoinSet,
};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// One question the authority received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// Lowercase name without trailing dot.
    pub name: String,
    /// The name as it arrived, letter case kept.
    pub asked: String,
    /// Query type.
    pub qtype: RecordType,
    /// Whether it came over TCP.
    pub tcp: bool,
}

/// Records of the test zones.
#[derive(Default)]
pub struct Zone {
    records: HashMap<String, Vec<Record>>,
    truncate_udp: HashSet<String>,
}

fn key(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

pub fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

impl Zone {
    /// Adds a record.
    pub fn add(&mut self, owner: &str, ttl: u32, rdata: RData) -> &mut Self {
        let record = Record::from_rdata(name(owner), ttl, rdata);
        self.records
            .entry(key(record.name()))
            .or_default()
            .push(record);
        self
    }

    /// Adds an A or AAAA record.
    pub fn addr(&mut self, owner: &str, ip: &str) -> &mut Self {
        let rdata = match ip.parse().expect(ip) {
            std::net::IpAddr::V4(v4) => RData::A(v4.into()),
            std::net::IpAddr::V6(v6) => RData::AAAA(v6.into()),
        };
        self.add(owner, 300, rdata)
    }

    /// Adds a CNAME.
    pub fn cname(&mut self, owner: &str, target: &str) -> &mut Self {
        self.add(owner, 300, RData::CNAME(CNAME(name(target))))
    }

    /// Answers `owner` with TC set (and no records) over UDP.
    pub fn truncate_udp(&mut self, owner: &str) -> &mut Self {
        self.truncate_udp.insert(key(&name(owner)));
        self
    }

    fn answer(&self, query: &Message, tcp: bool) -> Message {
        let mut response = Message::new();
        response
            .set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(query.op_code())
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired());
        response.add_queries(query.queries().iter().cloned());
        let Some(q) = query.queries().first() else {
            response.set_response_code(ResponseCode::FormErr);
            return response;
        };
        let mut current = key(q.name());
        if !tcp && self.truncate_udp.contains(&current) {
            response.set_truncated(true);
            return response;
        }
        for _ in 0..8 {
            let Some(records) = self.records.get(&current) else {
                if response.answers().is_empty() {
                    response.set_response_code(ResponseCode::NXDomain);
                }
                break;
            };
            let wanted: Vec<Record> = records
                .iter()
                .filter(|r| r.record_type() == q.query_type() || q.query_type() == RecordType::ANY)
                .cloned()
                .collect();
            if !wanted.is_empty() {
                response.add_answers(wanted);
                break;
            }
            match records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME)
            {
                Some(cname) => {
                    response.add_answer(cname.clone());
                    let RData::CNAME(target) = cname.data() else {
                        break;
                    };
                    current = key(target);
                }
                None => break,
            }
        }
        if response.answers().is_empty() {
            let soa = SOA::new(
                name("ns.test."),
                name("hostmaster.test."),
                1,
                3600,
                600,
                86400,
                30,
            );
            response.add_name_server(Record::from_rdata(name("test."), 300, RData::SOA(soa)));
        }
        response
    }
}

/// A running authority.
pub struct Authority {
    /// Its address (UDP and TCP).
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    _tasks: JoinSet<()>,
}

impl Authority {
    /// Serves `zone` on 127.0.0.1.
    pub async fn start(zone: Zone) -> Authority {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let zone = Arc::new(zone);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        {
            let (zone, log) = (Arc::clone(&zone), Arc::clone(&log));
            tasks.spawn(async move {
                let mut buf = vec![0u8; 65_535];
                loop {
                    let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    record(&log, &query, false);
                    let bytes = zone.answer(&query, false).to_vec().expect("encode");
                    let _ = udp.send_to(&bytes, peer).await;
                }
            });
        }
        let tcp_log = Arc::clone(&log);
        tasks.spawn(async move {
            let log = tcp_log;
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                let (zone, log) = (Arc::clone(&zone), Arc::clone(&log));
                tokio::spawn(async move {
                    let codec = LengthDelimitedCodec::builder()
                        .length_field_length(2)
                        .new_codec();
                    let mut framed = Framed::new(stream, codec);
                    while let Some(Ok(frame)) = framed.next().await {
                        let Ok(query) = Message::from_vec(&frame) else {
                            return;
                        };
                        record(&log, &query, true);
                        let bytes = zone.answer(&query, true).to_vec().expect("encode");
                        if framed.send(Bytes::from(bytes)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Authority {
            addr,
            log,
            _tasks: tasks,
        }
    }

    /// Every question received so far.
    pub fn log(&self) -> Vec<Logged> {
        self.log.lock().expect("log").clone()
    }

    /// Whether `name` (any case, with or without dot) was ever asked.
    pub fn saw(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.log().iter().any(|l| l.name == name)
    }
}

fn record(log: &Mutex<Vec<Logged>>, query: &Message, tcp: bool) {
    if let Some(q) = query.queries().first() {
        log.lock().expect("log").push(Logged {
            name: key(q.name()),
            asked: q.name().to_ascii(),
            qtype: q.query_type(),
            tcp,
        });
    }
}
