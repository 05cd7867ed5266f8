use super::*;

/// An `inet_diag_msg` for a socket in `cgroup` with `unsent` bytes queued,
/// followed by a padding attribute and the cgroup attribute.
fn message(cgroup: Option<u64>, unsent: u32) -> Vec<u8> {
    let mut b = vec![AF_INET6, 4, 0, 0];
    let mut sockid = [0u8; SOCKID_LEN];
    sockid[0..2].copy_from_slice(&8080u16.to_be_bytes());
    sockid[40..48].copy_from_slice(&[7; 8]);
    b.extend_from_slice(&sockid);
    b.extend_from_slice(&0u32.to_ne_bytes()); // expires
    b.extend_from_slice(&0u32.to_ne_bytes()); // rqueue
    b.extend_from_slice(&unsent.to_ne_bytes()); // wqueue
    b.extend_from_slice(&0u32.to_ne_bytes()); // uid
    b.extend_from_slice(&0u32.to_ne_bytes()); // inode
    // INET_DIAG_SHUTDOWN (u8, padded to 8 bytes).
    b.extend_from_slice(&5u16.to_ne_bytes());
    b.extend_from_slice(&8u16.to_ne_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(id) = cgroup {
        b.extend_from_slice(&12u16.to_ne_bytes());
        b.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
        b.extend_from_slice(&id.to_ne_bytes());
    }
    b
}

#[test]
fn only_sockets_of_the_cgroup_are_kept_with_their_identity() {
    let s = parse(&message(Some(42), 11), IPPROTO_TCP, &[42]).expect("in the cgroup");
    assert_eq!(
        (s.family, s.protocol, s.state, s.unsent),
        (AF_INET6, 6, 4, 11)
    );
    assert_eq!(&s.sockid[0..2], &8080u16.to_be_bytes());
    assert_eq!(&s.sockid[40..48], &[7; 8], "the cookie names the socket");
    assert_eq!(parse(&message(Some(43), 0), IPPROTO_TCP, &[42]), None);
    // Any of a pod's governed containers; an empty set keeps nothing.
    assert!(parse(&message(Some(43), 0), IPPROTO_TCP, &[42, 43]).is_some());
    assert_eq!(parse(&message(Some(43), 0), IPPROTO_TCP, &[]), None);
    assert_eq!(
        parse(&message(None, 0), IPPROTO_TCP, &[42]),
        None,
        "no cgroup attribute: not the agent's"
    );
}

#[test]
fn truncated_messages_are_not_read_past_their_end() {
    let full = message(Some(42), 0);
    for cut in 0..full.len() {
        let _ = parse(&full[..cut], IPPROTO_TCP, &[42]);
    }
    assert_eq!(parse(&full[..MSG_LEN - 1], IPPROTO_TCP, &[42]), None);
}

#[test]
fn requests_have_the_kernel_layout() {
    let r = request(
        SOCK_DESTROY,
        NLM_F_REQUEST | NLM_F_ACK,
        AF_INET,
        17,
        0,
        &[1; SOCKID_LEN],
    );
    assert_eq!(r.len(), NLMSG_HDRLEN + REQ_LEN);
    assert_eq!(u32_at(&r, 0), Some(72));
    assert_eq!(u16_at(&r, 4), Some(21));
    assert_eq!(&r[16..20], &[AF_INET, 17, 0, 0]);
    assert_eq!(&r[24..], &[1; SOCKID_LEN]);
}
