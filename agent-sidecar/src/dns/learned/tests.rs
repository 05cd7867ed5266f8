use super::*;
use agent_sidecar_common::{PROTO_TCP, PROTO_UDP};
use std::time::Duration;

/// A fake clock: a fixed base plus whole seconds.
struct Clock(Instant);

impl Clock {
    fn at(&self, secs: u64) -> Instant {
        self.0 + Duration::from_secs(secs)
    }
}

fn ep(port: u16, proto: u8) -> Endpoint {
    Endpoint {
        port: Some(port),
        proto,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn records_each_endpoint_once_and_reports_new_keys() {
    let clock = Clock(Instant::now());
    let mut table = Learned::new();
    let endpoints = [ep(5432, PROTO_TCP), ep(5432, PROTO_UDP)];
    let added = table.record(ip("203.0.113.7"), &endpoints, clock.at(60));
    assert_eq!(added.len(), 2);
    assert_eq!(table.len(), 2);
    let again = table.record(ip("203.0.113.7"), &endpoints, clock.at(30));
    assert!(again.is_empty(), "already present: nothing new to insert");
    let key = LearnedKey {
        addr: ip("203.0.113.7"),
        endpoint: ep(5432, PROTO_TCP),
    };
    assert_eq!(
        table.expiry(&key),
        Some(clock.at(60)),
        "an earlier expiry never shortens"
    );
}

#[test]
fn re_resolution_extends_expiry() {
    let clock = Clock(Instant::now());
    let mut table = Learned::new();
    let endpoints = [ep(22, PROTO_TCP)];
    table.record(ip("203.0.113.7"), &endpoints, clock.at(60));
    table.record(ip("203.0.113.7"), &endpoints, clock.at(120));
    assert!(table.expired(clock.at(61)).is_empty());
    assert_eq!(table.expired(clock.at(120)).len(), 1);
    assert!(table.is_empty());
}

#[test]
fn expired_returns_only_due_entries_sorted() {
    let clock = Clock(Instant::now());
    let mut table = Learned::new();
    table.record(ip("203.0.113.9"), &[ep(22, PROTO_TCP)], clock.at(10));
    table.record(ip("203.0.113.7"), &[ep(22, PROTO_TCP)], clock.at(10));
    table.record(ip("203.0.113.8"), &[ep(22, PROTO_TCP)], clock.at(100));
    assert!(table.expired(clock.at(9)).is_empty());
    let gone = table.expired(clock.at(10));
    assert_eq!(
        gone.iter().map(|k| k.addr).collect::<Vec<_>>(),
        vec![ip("203.0.113.7"), ip("203.0.113.9")]
    );
    assert_eq!(table.len(), 1);
    assert!(table.expired(clock.at(10)).is_empty(), "removed once");
}

#[test]
fn a_mutex_table_is_a_sink() {
    let clock = Clock(Instant::now());
    let shared = Mutex::new(Learned::new());
    let rule: NameRule = "db.example.com:5432".parse().unwrap();
    let sink: &dyn LearnedSink = &shared;
    sink.learned(&rule, ip("203.0.113.7"), &rule.endpoints(), clock.at(60));
    assert_eq!(shared.lock().unwrap().len(), 2);
}
