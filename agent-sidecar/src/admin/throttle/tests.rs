use super::*;

fn quick() -> ThrottleConfig {
    ThrottleConfig {
        free_failures: 2,
        base: Duration::from_millis(40),
        max: Duration::from_millis(300),
        ..ThrottleConfig::default()
    }
}

#[test]
fn waits_double_after_the_free_failures_up_to_the_cap() {
    let t = AuthThrottle::new(quick(), None);
    let waits: Vec<Option<u128>> = (1..=8)
        .map(|n| t.wait_after(n).map(|d| d.as_millis()))
        .collect();
    assert_eq!(
        waits,
        [
            None,
            None,
            Some(40),
            Some(80),
            Some(160),
            Some(300),
            Some(300),
            Some(300)
        ]
    );
    assert_eq!(
        t.wait_after(u32::MAX),
        Some(Duration::from_millis(300)),
        "no overflow"
    );
}

#[test]
fn a_waiting_peer_is_refused_until_its_wait_ends_and_success_resets_it() {
    let t = AuthThrottle::new(quick(), None);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..3 {
        assert!(t.admit(peer).is_ok());
        t.failed(peer);
    }
    let wait = t.admit(peer).expect_err("third failure waits");
    assert!(wait <= Duration::from_millis(40));
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(
        t.admit(mapped).is_err(),
        "the v4-mapped spelling is the same peer"
    );
    assert!(
        t.admit("127.0.0.2".parse().unwrap()).is_ok(),
        "other peers are not"
    );
    std::thread::sleep(wait + Duration::from_millis(5));
    assert!(t.admit(peer).is_ok());
    t.succeeded(peer);
    t.failed(peer);
    assert!(t.admit(peer).is_ok(), "counting restarts after a success");
}

#[test]
fn ipv6_peers_are_grouped_by_their_64() {
    let t = AuthThrottle::new(quick(), None);
    for i in 0..3 {
        t.failed(format!("2001:db8:1:2::{i}").parse().unwrap());
    }
    assert!(t.admit("2001:db8:1:2::ffff".parse().unwrap()).is_err());
    assert!(t.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
}

#[test]
fn a_full_table_makes_new_peers_wait_the_longest() {
    let t = AuthThrottle::new(
        ThrottleConfig {
            max_peers: 2,
            ..quick()
        },
        None,
    );
    t.failed("10.0.0.1".parse().unwrap());
    t.failed("10.0.0.2".parse().unwrap());
    t.failed("10.0.0.3".parse().unwrap());
    let wait = t.admit("10.0.0.3".parse().unwrap()).expect_err("waits");
    assert!(wait > Duration::from_millis(200), "{wait:?}");
}
