//! In-kernel splicing of the proxy's allowed connections (the sockmap
//! offload of `agent-sidecar/src/kernel/splice_offload.rs`).
//!
//! After the proxy has decided and dialled, it inserts both TCP sockets of a
//! connection into [`SPLICE_PEERS`], each under its *peer's* socket cookie.
//! [`splice_verdict`] runs for every skb either socket receives and hands it
//! to the egress of the socket stored under the receiver's own cookie: the
//! peer. One lookup, no userspace copy.
//!
//! Not an enforcement program: it is attached to this map only (never to a
//! cgroup), only the sidecar inserts sockets, and only after its own
//! decision. A miss passes the skb to the receiving socket, where the
//! sidecar reads and forwards it itself: data is never dropped here.

use aya_ebpf::{
    bindings::sk_action::SK_PASS,
    helpers::generated::bpf_get_socket_cookie,
    macros::{map, stream_verdict},
    maps::SockHash,
    programs::SkBuffContext,
};

/// Most sockets spliced at once (two per connection). Entries are
/// allocated on insert.
const SPLICE_CAPACITY: u32 = 65_536;

/// Peer socket cookie -> socket. Private to the loading process (not
/// pinned): the sockets leave it when they close.
#[map]
pub static SPLICE_PEERS: SockHash<u64> = SockHash::with_max_entries(SPLICE_CAPACITY, 0);

/// Redirects the received skb to the egress of the receiving socket's peer.
#[stream_verdict]
pub fn splice_verdict(ctx: SkBuffContext) -> u32 {
    // SAFETY: a valid skb context; in a stream verdict program skb->sk is
    // the receiving socket.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    // SK_PASS with the redirect set on a hit; on a miss (the peer already
    // left the map) the helper returns SK_DROP without a redirect: pass the
    // skb to the receiving socket instead, where userspace forwards it.
    let _ = SPLICE_PEERS.redirect_skb(&ctx, cookie, 0);
    SK_PASS
}
