use std::net::SocketAddr;

use agent_sidecar_test_support::{ca::TestCa, connect_proxy, upstream::Upstream};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::dns::GaiResolver;

use super::*;

type TestClient = Client<HttpsConnector<Proxied<HttpConnector<GaiResolver>>>, Empty<Bytes>>;

fn client(tls: ClientConfig, proxy: Option<Arc<Matcher>>, schemes: Schemes) -> TestClient {
    let connector = Proxied::new(
        tcp_connector(GaiResolver::new(), Duration::from_secs(5)),
        proxy,
    );
    pooled(tls, connector, schemes)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn get(c: &TestClient, url: &str) -> Result<String, hyper_util::client::legacy::Error> {
    let resp = c.get(url.parse().unwrap()).await?;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn requests_to_one_host_share_a_pooled_connection() {
    let ca = TestCa::new();
    let plain = Upstream::start(loopback(), "plain", None).await;
    let tls = Upstream::start(loopback(), "tls", Some(ca.leaf(&["127.0.0.1"]).acceptor())).await;
    let c = client((*ca.client_config()).clone(), None, Schemes::HttpAndHttps);
    for _ in 0..5 {
        let body = get(&c, &format!("http://{}/a", plain.addr)).await.unwrap();
        assert!(body.starts_with("plain"), "{body}");
        let body = get(&c, &format!("https://{}/b", tls.addr)).await.unwrap();
        assert!(body.starts_with("tls"), "{body}");
    }
    assert_eq!((plain.hits(), tls.hits()), (1, 1));
}

#[tokio::test]
async fn an_untrusted_server_and_plain_http_where_only_https_goes_are_refused() {
    let tls = Upstream::start(
        loopback(),
        "tls",
        Some(TestCa::new().leaf(&["127.0.0.1"]).acceptor()),
    )
    .await;
    let other = TestCa::new();
    let c = client(
        (*other.client_config()).clone(),
        None,
        Schemes::HttpAndHttps,
    );
    assert!(get(&c, &format!("https://{}/", tls.addr)).await.is_err());
    let plain = Upstream::start(loopback(), "plain", None).await;
    let c = client((*other.client_config()).clone(), None, Schemes::HttpsOnly);
    assert!(get(&c, &format!("http://{}/", plain.addr)).await.is_err());
    assert_eq!(plain.hits(), 0);
}

#[tokio::test]
async fn proxied_destinations_go_through_a_connect_tunnel_with_tls_inside() {
    let ca = TestCa::new();
    let proxy = connect_proxy::start().await;
    let plain = Upstream::start(loopback(), "plain", None).await;
    let tls = Upstream::start(loopback(), "tls", Some(ca.leaf(&["127.0.0.1"]).acceptor())).await;
    let matcher = Matcher::builder().all(proxy.url()).build();
    let c = client(
        (*ca.client_config()).clone(),
        Some(Arc::new(matcher)),
        Schemes::HttpAndHttps,
    );
    let body = get(&c, &format!("http://{}/a", plain.addr)).await.unwrap();
    assert!(body.starts_with("plain"), "{body}");
    let body = get(&c, &format!("https://{}/b", tls.addr)).await.unwrap();
    assert!(body.starts_with("tls"), "{body}");
    assert_eq!(
        proxy.targets(),
        [plain.addr.to_string(), tls.addr.to_string()]
    );
}

#[tokio::test]
async fn no_proxy_destinations_and_dead_proxies() {
    let proxy = connect_proxy::start().await;
    let plain = Upstream::start(loopback(), "plain", None).await;
    let ca = TestCa::new();
    let matcher = Matcher::builder().all(proxy.url()).no("127.0.0.1").build();
    let c = client(
        (*ca.client_config()).clone(),
        Some(Arc::new(matcher)),
        Schemes::HttpAndHttps,
    );
    get(&c, &format!("http://{}/", plain.addr)).await.unwrap();
    assert!(proxy.targets().is_empty());
    // A proxy that is down fails the request: never a direct connection.
    let addr = proxy.addr;
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let matcher = Matcher::builder().all(format!("http://{addr}")).build();
    let c = client(
        (*ca.client_config()).clone(),
        Some(Arc::new(matcher)),
        Schemes::HttpAndHttps,
    );
    let hits = plain.hits();
    assert!(get(&c, &format!("http://{}/", plain.addr)).await.is_err());
    assert_eq!(plain.hits(), hits);
}
