use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;

/// The agent finishes sending first; the upstream still answers after
/// seeing EOF, and the answer reaches the agent.
#[tokio::test]
async fn half_close_passes_through_and_bytes_are_counted() {
    let (client_side, mut agent) = duplex(1024);
    let (upstream_side, mut server) = duplex(1024);
    let splicer = tokio::spawn(splice(client_side, upstream_side));

    agent.write_all(b"request").await.expect("write");
    agent.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    server
        .read_to_end(&mut got)
        .await
        .expect("server reads to EOF");
    assert_eq!(got, b"request");
    server
        .write_all(b"response after EOF")
        .await
        .expect("answer");
    server.shutdown().await.expect("close");
    let mut answer = Vec::new();
    agent.read_to_end(&mut answer).await.expect("agent reads");
    assert_eq!(answer, b"response after EOF");

    let spliced = splicer.await.expect("join");
    assert_eq!(spliced, Spliced { up: 7, down: 18 });
}
