use super::*;
use crate::dns::test_support::{addr_record, soa_record};
use hickory_proto::op::ResponseCode;

fn filtered(ttl: u32) -> Arc<Filtered> {
    Arc::new(Filtered {
        rcode: ResponseCode::NoError,
        answers: vec![addr_record("a.test.", "203.0.113.1", ttl)],
        authority: vec![],
        kept: vec![("203.0.113.1".parse().unwrap(), ttl)],
        dropped: vec![],
        removed: 0,
    })
}

fn key(name: &str) -> CacheKey {
    (name.to_string(), 1, 1)
}

#[test]
fn entries_live_for_their_ttl_and_report_age() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10);
    cache.insert(key("a.test"), filtered(30), t0);
    let (hit, age) = cache
        .get(&key("a.test"), t0 + Duration::from_secs(12))
        .expect("live");
    assert_eq!(age, 12);
    assert_eq!(hit.kept.len(), 1);
    assert!(
        cache
            .get(&key("a.test"), t0 + Duration::from_secs(30))
            .is_none()
    );
    assert!(cache.get(&key("b.test"), t0).is_none());
}

#[test]
fn zero_ttl_and_ttl_less_answers_are_not_cached() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10);
    cache.insert(key("zero"), filtered(0), t0);
    let empty = Arc::new(Filtered {
        answers: vec![],
        kept: vec![],
        ..(*filtered(5)).clone()
    });
    cache.insert(key("empty"), empty, t0);
    assert!(cache.is_empty());
    let negative = Arc::new(Filtered {
        rcode: ResponseCode::NXDomain,
        answers: vec![],
        authority: vec![soa_record("test.", 600, 45)],
        kept: vec![],
        dropped: vec![],
        removed: 0,
    });
    cache.insert(key("nx"), negative, t0);
    assert!(
        cache
            .get(&key("nx"), t0 + Duration::from_secs(44))
            .is_some()
    );
    assert!(
        cache
            .get(&key("nx"), t0 + Duration::from_secs(45))
            .is_none()
    );
}

#[test]
fn capacity_evicts_expired_then_oldest() {
    let t0 = Instant::now();
    let mut cache = Cache::new(3);
    cache.insert(key("short"), filtered(1), t0);
    cache.insert(key("b"), filtered(100), t0);
    cache.insert(key("c"), filtered(100), t0);
    cache.insert(key("d"), filtered(100), t0 + Duration::from_secs(2));
    assert_eq!(cache.len(), 3);
    assert!(
        cache.get(&key("b"), t0 + Duration::from_secs(2)).is_some(),
        "expired entry went first"
    );
    cache.insert(key("e"), filtered(100), t0 + Duration::from_secs(2));
    assert!(
        cache.get(&key("b"), t0 + Duration::from_secs(2)).is_none(),
        "then the oldest"
    );
    assert!(cache.get(&key("e"), t0 + Duration::from_secs(2)).is_some());
    assert_eq!(cache.len(), 3);
}

#[test]
fn refreshing_one_key_does_not_grow_without_bound() {
    let t0 = Instant::now();
    let mut cache = Cache::new(2);
    for i in 0..1000 {
        cache.insert(key("hot"), filtered(100), t0 + Duration::from_millis(i));
    }
    assert_eq!(cache.len(), 1);
    assert!(cache.order.len() <= 4);
    cache.clear();
    assert!(cache.is_empty());
    let mut off = Cache::new(0);
    off.insert(key("a"), filtered(100), t0);
    assert!(off.is_empty());
}
