//! The one test DNS authority: an authoritative server for test zones that
//! speaks real DNS messages (hickory-proto) over UDP and TCP on one port,
//! either on 127.0.0.1 in the caller's Tokio runtime ([`Authority::start`])
//! or at a chosen address inside a network namespace, on a thread of its
//! own ([`Authority::start_in`]). It answers A, AAAA and CNAME chains from
//! its [`Zone`], NXDOMAIN (with an SOA) for names outside it, logs every
//! question it receives (so tests can prove a name never left the
//! resolver), and can answer chosen names with TC set over UDP (to exercise
//! the TCP fallback).
//!
//! hickory-server's in-memory authority would serve the zones too, but it
//! has no query log and no way to force truncation, which are the two
//! things these tests need; the zone logic here is a dozen lines.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
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
    sync::oneshot,
    task::JoinSet,
};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::netns::{NetNs, in_ns};

/// The TTL of records added without one.
pub const DEFAULT_TTL: u32 = 300;

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

/// Parses a DNS name, panicking with the name when it is not one.
pub fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

impl Zone {
    /// A zone of A and AAAA records, `(name, address)`, each with `ttl`.
    pub fn from_addrs(addrs: &[(&str, &str)], ttl: u32) -> Self {
        let mut zone = Zone::default();
        for (owner, ip) in addrs {
            zone.addr_ttl(owner, ip, ttl);
        }
        zone
    }

    /// Adds a record.
    pub fn add(&mut self, owner: &str, ttl: u32, rdata: RData) -> &mut Self {
        let mut owner = name(owner);
        owner.set_fqdn(true);
        let record = Record::from_rdata(owner, ttl, rdata);
        self.records
            .entry(key(record.name()))
            .or_default()
            .push(record);
        self
    }

    /// Adds an A or AAAA record with [`DEFAULT_TTL`].
    pub fn addr(&mut self, owner: &str, ip: &str) -> &mut Self {
        self.addr_ttl(owner, ip, DEFAULT_TTL)
    }

    /// Adds an A or AAAA record with `ttl`.
    pub fn addr_ttl(&mut self, owner: &str, ip: &str, ttl: u32) -> &mut Self {
        let rdata = match ip.parse().expect(ip) {
            IpAddr::V4(v4) => RData::A(v4.into()),
            IpAddr::V6(v6) => RData::AAAA(v6.into()),
        };
        self.add(owner, ttl, rdata)
    }

    /// Adds a CNAME with [`DEFAULT_TTL`].
    pub fn cname(&mut self, owner: &str, target: &str) -> &mut Self {
        self.add(owner, DEFAULT_TTL, RData::CNAME(CNAME(name(target))))
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
            .set_recursion_desired(query.recursion_desired())
            // Clients asking it directly (dig) take it for a resolver.
            .set_recursion_available(true);
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

/// A running authority; it stops when dropped.
pub struct Authority {
    /// Its address (UDP and TCP).
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    /// Tasks on the caller's runtime ([`Authority::start`]), aborted when
    /// the set drops.
    _tasks: Option<JoinSet<()>>,
    /// The thread's stop signal ([`Authority::start_in`]): it stops when
    /// the sender drops.
    _stop: Option<oneshot::Sender<()>>,
}

impl Authority {
    /// Serves `zone` on 127.0.0.1 (a free port, UDP and TCP) from tasks of
    /// the current Tokio runtime.
    pub async fn start(zone: Zone) -> Authority {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        serve(&mut tasks, udp, tcp, Arc::new(zone), Arc::clone(&log));
        Authority {
            addr,
            log,
            _tasks: Some(tasks),
            _stop: None,
        }
    }

    /// Serves `zone` on `addr` (`IP:PORT`, UDP and TCP) inside `ns`, from a
    /// thread of its own; for tests without a Tokio runtime.
    pub fn start_in(ns: &NetNs, addr: &str, zone: Zone) -> Authority {
        let addr: SocketAddr = addr.parse().expect("addr");
        let (udp, tcp) = in_ns(ns, move || {
            let udp = std::net::UdpSocket::bind(addr).expect("bind dns udp");
            let tcp = std::net::TcpListener::bind(addr).expect("bind dns tcp");
            udp.set_nonblocking(true).expect("nonblocking");
            tcp.set_nonblocking(true).expect("nonblocking");
            (udp, tcp)
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let thread_log = Arc::clone(&log);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("authority runtime");
            rt.block_on(async move {
                let udp = UdpSocket::from_std(udp).expect("tokio udp");
                let tcp = TcpListener::from_std(tcp).expect("tokio tcp");
                let mut tasks = JoinSet::new();
                serve(&mut tasks, udp, tcp, Arc::new(zone), thread_log);
                let _ = stopped.await;
            });
        });
        Authority {
            addr,
            log,
            _tasks: None,
            _stop: Some(stop),
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

    /// Whether `name` was ever asked: [`Authority::saw`], by the name the
    /// end-to-end tests know it.
    pub fn was_asked(&self, name: &str) -> bool {
        self.saw(name)
    }
}

/// Spawns the UDP and TCP servers of `zone` on `tasks`.
fn serve(
    tasks: &mut JoinSet<()>,
    udp: UdpSocket,
    tcp: TcpListener,
    zone: Arc<Zone>,
    log: Arc<Mutex<Vec<Logged>>>,
) {
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
    tasks.spawn(async move {
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
