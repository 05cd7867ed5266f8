//! The proxy with real clients: curl, Python `requests`, `openssl s_client`
//! and raw sockets, against loopback HTTP and HTTPS upstreams signed by a
//! test CA. "Allowed" upstreams listen on 127.0.0.2, "evil" ones on the same
//! port of 127.0.0.66; the test resolver maps `api.allowed.test` and
//! `other.allowed.test` to 127.0.0.2, so every allowed connection must land
//! on 127.0.0.2 whatever the client pinned, and the evil servers must never
//! see a connection.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent_sidecar::proxy::{
    ConnectionOutcome, ListenerKind, ProxyConfig, ProxyContext, ProxyEvent, ProxyMetrics,
};
use agent_sidecar_test_support::{
    ca::TestCa,
    sidecar::proxy::{AllowList, MapResolve, Proxies},
    upstream::{MIB, Upstream},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
    time::timeout,
};

const ALLOWED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const EVIL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 66));
const AGENT: &str = "agent-test";

struct World {
    ca: TestCa,
    tls_ok: Upstream,
    tls_evil: Upstream,
    http_ok: Upstream,
    http_evil: Upstream,
    proxies: Proxies,
    events: Arc<Mutex<Vec<ProxyEvent>>>,
    registry: prometheus::Registry,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut ProxyConfig)) -> Self {
        let ca = TestCa::new();
        let leaf = ca.leaf(&["api.allowed.test", "other.allowed.test", "evil.test"]);
        let tls_ok = Upstream::start((ALLOWED, 0).into(), "tls-ok", Some(leaf.acceptor())).await;
        let tls_port = tls_ok.addr.port();
        let tls_evil =
            Upstream::start((EVIL, tls_port).into(), "tls-evil", Some(leaf.acceptor())).await;
        let http_ok = Upstream::start((ALLOWED, 0).into(), "http-ok", None).await;
        let http_port = http_ok.addr.port();
        let http_evil = Upstream::start((EVIL, http_port).into(), "http-evil", None).await;

        let policy = AllowList(
            [
                "api.allowed.test",
                "other.allowed.test",
                "dns-fail.allowed.test",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        let resolver = MapResolve(HashMap::from([
            ("api.allowed.test".to_owned(), vec![ALLOWED]),
            ("other.allowed.test".to_owned(), vec![ALLOWED]),
            ("evil.test".to_owned(), vec![EVIL]),
        ]));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink_events = events.clone();
        let registry = prometheus::Registry::new();
        let metrics = ProxyMetrics::register(&registry).expect("metrics");
        let mut config = ProxyConfig {
            agent_id: AGENT.to_owned(),
            sniff_timeout: Duration::from_millis(500),
            ..ProxyConfig::default()
        };
        tweak(&mut config);
        let ctx = ProxyContext::new(Arc::new(policy), Arc::new(resolver))
            .with_config(config)
            .with_event_sink(Arc::new(move |e: &ProxyEvent| {
                sink_events.lock().expect("events").push(e.clone());
            }))
            .with_metrics(Arc::new(metrics));
        let proxies = Proxies::start(&ctx, &[tls_port, http_port]);
        Self {
            ca,
            tls_ok,
            tls_evil,
            http_ok,
            http_evil,
            proxies,
            events,
            registry,
        }
    }

    fn tls_port(&self) -> u16 {
        self.tls_ok.addr.port()
    }

    fn http_port(&self) -> u16 {
        self.http_ok.addr.port()
    }

    fn proxy_url(&self) -> String {
        format!("http://{}", self.proxies.explicit)
    }

    fn transparent(&self, original_port: u16) -> SocketAddr {
        self.proxies.transparent[&original_port]
    }

    /// `--connect-to` arguments that send `host:port` to the transparent
    /// listener of `port`, as the kernel's redirect would.
    fn redirect(&self, host: &str, port: u16) -> [String; 2] {
        let to = self.transparent(port);
        [
            "--connect-to".into(),
            format!("{host}:{port}:{}:{}", to.ip(), to.port()),
        ]
    }

    fn no_evil_connection(&self) {
        assert_eq!(self.tls_evil.hits(), 0, "the evil TLS server was reached");
        assert_eq!(self.http_evil.hits(), 0, "the evil HTTP server was reached");
    }

    /// Waits for the event matching `pred` (events are emitted when a
    /// connection ends, which can be just after the client returns).
    async fn event(&self, pred: impl Fn(&ProxyEvent) -> bool) -> ProxyEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.events.lock().expect("events").iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no matching event in {:#?}",
                self.events.lock().expect("events")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Value of a counter sample with the given label values.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, args: &[String]) -> Output {
    let out = timeout(
        Duration::from_secs(30),
        Command::new(program)
            .args(args)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("NO_PROXY")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
    .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed?)"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn curl(world: &World, args: &[&str]) -> Output {
    let mut all: Vec<String> = ["-sS", "--max-time", "10", "--cacert"]
        .map(str::to_owned)
        .to_vec();
    all.push(world.ca.ca_file().display().to_string());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run("curl", &all).await
}

fn args(list: &[&str], extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.extend(extra.iter().cloned());
    v
}

/// Reads until EOF (or 5 s).
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

/// Status and body of a raw HTTP/1 response.
fn parse_response(raw: &[u8]) -> (u16, String) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => (
            response.code.expect("status"),
            String::from_utf8_lossy(&raw[n..]).into_owned(),
        ),
        other => panic!(
            "not a response ({other:?}): {:?}",
            String::from_utf8_lossy(raw)
        ),
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Sends `CONNECT target` and returns the stream after the response head,
/// with the status.
async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("send CONNECT");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("CONNECT response in time")
            .expect("read");
        assert!(n > 0, "proxy closed: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buf) {
            let status = response.code.expect("status");
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < head + length {
                let n = stream.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "body cut short");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[head..head + length]).into_owned();
            return (stream, status, body);
        }
    }
}

/// A fatal TLS alert record: (level, description).
fn alert(bytes: &[u8]) -> (u8, u8) {
    assert!(
        bytes.len() >= 7 && bytes[0] == 0x15,
        "expected a TLS alert record, got {bytes:02x?}"
    );
    (bytes[5], bytes[6])
}

/// A ClientHello from rustls for `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

fn corpus(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/sniff")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const OPENSSL_ACCESS_DENIED: &str = "alert access denied";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_allowed_dials_the_resolved_address_not_the_pinned_one() {
    let w = World::new().await;
    let port = w.tls_port();
    let url = format!("https://api.allowed.test:{port}/hello");
    let pin = format!("api.allowed.test:{port}:{EVIL}");
    let proxy = w.proxy_url();
    let out = curl(&w, &["--proxy", &proxy, "--resolve", &pin, &url]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("tls-ok host=api.allowed.test:{port} path=/hello")
    );
    w.no_evil_connection();

    let e = w
        .event(|e| e.listener == ListenerKind::Explicit && e.decision == ConnectionOutcome::Allowed)
        .await;
    assert_eq!(e.agent_id, AGENT);
    assert_eq!(e.host.as_deref(), Some("api.allowed.test"));
    assert_eq!(e.sni.as_deref(), Some("api.allowed.test"));
    assert_eq!(e.upstream, Some(SocketAddr::new(ALLOWED, port)));
    assert_eq!(e.rule.as_deref(), Some("allow-api.allowed.test"));
    assert!(e.bytes_up > 0 && e.bytes_down > 0, "{e:?}");
    let line = serde_json::to_value(&e).expect("event serializes");
    assert_eq!(line["listener"], "explicit");
    assert_eq!(line["decision"], "allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_denied_name_gets_403_json_and_is_counted() {
    let w = World::new().await;
    let port = w.tls_port();
    let (_, status, body) = connect(w.proxies.explicit, &format!("evil.test:{port}")).await;
    assert_eq!(status, 403);
    let body = json(&body);
    assert_eq!(body["error"], "egress_refused");
    assert_eq!(body["host"], "evil.test");
    assert_eq!(body["port"], port);
    assert_eq!(body["reason"], "not_allowlisted");
    assert_eq!(body["rule"], "no egress rule allows evil.test");

    let proxy = w.proxy_url();
    let url = format!("https://evil.test:{port}/");
    let out = curl(&w, &["--proxy", &proxy, &url]).await;
    assert_eq!(out.code, 56, "curl: {}", out.stderr);
    assert!(out.stderr.contains("403"), "{}", out.stderr);
    w.no_evil_connection();

    let e = w.event(|e| e.decision == ConnectionOutcome::Refused).await;
    assert_eq!(e.reason.as_deref(), Some("not_allowlisted"));
    assert_eq!(e.upstream, None);
    let refused = w.counter(
        "agent_sidecar_proxy_connections_total",
        &[
            ("agent_id", AGENT),
            ("listener", "explicit"),
            ("decision", "refused"),
        ],
    );
    assert!(refused >= 2.0, "refused counter {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_ip_literal_and_dns_failure() {
    let w = World::new().await;
    let port = w.tls_port();
    let (_, status, body) = connect(w.proxies.explicit, &format!("{EVIL}:{port}")).await;
    assert_eq!(status, 403);
    assert_eq!(json(&body)["reason"], "ip_literal");
    let (_, status, body) = connect(w.proxies.explicit, &format!("[::1]:{port}")).await;
    assert_eq!(status, 403);
    assert_eq!(json(&body)["reason"], "ip_literal");
    let (_, status, body) =
        connect(w.proxies.explicit, &format!("dns-fail.allowed.test:{port}")).await;
    assert_eq!(status, 502);
    let body = json(&body);
    assert_eq!(body["error"], "bad_gateway");
    assert_eq!(body["reason"], "dns_failure");
    w.no_evil_connection();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_requests_are_forwarded_or_refused() {
    let w = World::new().await;
    let port = w.http_port();
    let proxy = w.proxy_url();
    let url = format!("http://API.allowed.test:{port}/some/path?q=1");
    let out = curl(
        &w,
        &[
            "--proxy",
            &proxy,
            "-H",
            "Proxy-Authorization: Basic eDp5",
            &url,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("http-ok host=api.allowed.test:{port} path=/some/path")
    );

    let url = format!("http://evil.test:{port}/");
    let out = curl(&w, &["--proxy", &proxy, "-w", "\n%{http_code}", &url]).await;
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    assert_eq!(code, "403");
    let body = json(body);
    assert_eq!(body["reason"], "not_allowlisted");
    assert_eq!(body["host"], "evil.test");

    let url = format!("http://{EVIL}:{port}/");
    let out = curl(&w, &["--proxy", &proxy, "-w", "\n%{http_code}", &url]).await;
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    assert_eq!(code, "403");
    assert_eq!(json(body)["reason"], "ip_literal");
    w.no_evil_connection();

    let e = w
        .event(|e| e.decision == ConnectionOutcome::Allowed && e.port == port)
        .await;
    assert_eq!(e.upstream, Some(SocketAddr::new(ALLOWED, port)));
    assert!(e.bytes_down > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_with_sni_other_than_connect_target_is_refused() {
    let w = World::new().await;
    let port = w.tls_port();
    // Domain fronting: CONNECT to an allowed name, SNI of another name.
    let proxy = w.proxy_url();
    let fronted = format!("evil.test:{port}:api.allowed.test:{port}");
    let url = format!("https://evil.test:{port}/");
    let out = curl(&w, &["--proxy", &proxy, "--connect-to", &fronted, &url]).await;
    assert_eq!(out.code, 35, "curl: {} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains(OPENSSL_ACCESS_DENIED), "{}", out.stderr);

    // Both names allowed: still refused, the SNI must be the CONNECT host.
    let (mut tunnel, status, _) =
        connect(w.proxies.explicit, &format!("api.allowed.test:{port}")).await;
    assert_eq!(status, 200);
    tunnel
        .write_all(&client_hello("other.allowed.test"))
        .await
        .expect("hello");
    assert_eq!(alert(&read_all(&mut tunnel).await), (2, 49));
    assert_eq!(
        w.tls_ok.hits(),
        0,
        "nothing may be dialled for a refused tunnel"
    );
    let e = w
        .event(|e| {
            e.reason.as_deref() == Some("sni_mismatch")
                && e.sni.as_deref() == Some("other.allowed.test")
        })
        .await;
    assert_eq!(e.decision, ConnectionOutcome::Refused);
    w.no_evil_connection();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_inside_a_tunnel_must_match_the_connect_host() {
    let w = World::new().await;
    let port = w.http_port();
    let proxy = w.proxy_url();
    let url = format!("http://api.allowed.test:{port}/tunnelled");
    let out = curl(&w, &["--proxytunnel", "--proxy", &proxy, &url]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("http-ok host=api.allowed.test:{port} path=/tunnelled")
    );

    let (mut tunnel, status, _) =
        connect(w.proxies.explicit, &format!("api.allowed.test:{port}")).await;
    assert_eq!(status, 200);
    tunnel
        .write_all(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        .await
        .expect("request");
    let (status, body) = parse_response(&read_all(&mut tunnel).await);
    assert_eq!(status, 403);
    let body = json(&body);
    assert_eq!(body["reason"], "host_mismatch");
    assert_eq!(body["host"], "evil.test");
    w.no_evil_connection();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_tls_routes_on_sni_to_the_resolved_address() {
    let w = World::new().await;
    let port = w.tls_port();
    // The agent meant 127.0.0.66 (pinned); the kernel redirected it to the
    // transparent listener; the sidecar dials what it resolved instead.
    let pin = format!("api.allowed.test:{port}:{EVIL}");
    let url = format!("https://api.allowed.test:{port}/t");
    let out = curl(
        &w,
        &args(
            &["--resolve", &pin, &url],
            &w.redirect("api.allowed.test", port),
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("tls-ok host=api.allowed.test:{port} path=/t")
    );

    let url = format!("https://evil.test:{port}/");
    let redirect = w.redirect("evil.test", port);
    let out = curl(
        &w,
        &[redirect[0].as_str(), redirect[1].as_str(), url.as_str()],
    )
    .await;
    assert_eq!(out.code, 35, "curl: {}", out.stderr);
    assert!(out.stderr.contains(OPENSSL_ACCESS_DENIED), "{}", out.stderr);
    w.no_evil_connection();

    let e = w
        .event(|e| {
            e.listener == ListenerKind::Transparent && e.decision == ConnectionOutcome::Allowed
        })
        .await;
    assert_eq!(e.upstream, Some(SocketAddr::new(ALLOWED, port)));
    assert_eq!(e.port, port);
    let e = w
        .event(|e| {
            e.listener == ListenerKind::Transparent && e.decision == ConnectionOutcome::Refused
        })
        .await;
    assert_eq!(e.sni.as_deref(), Some("evil.test"));
    assert_eq!(e.reason.as_deref(), Some("not_allowlisted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_tls_without_a_name_is_refused() {
    let w = World::new().await;
    let port = w.tls_port();
    let listener = w.transparent(port);
    // curl sends no SNI for an IP-literal URL.
    let url = format!("https://{ALLOWED}:{port}/");
    let redirect = w.redirect(&ALLOWED.to_string(), port);
    let out = curl(
        &w,
        &[redirect[0].as_str(), redirect[1].as_str(), url.as_str()],
    )
    .await;
    assert_eq!(out.code, 35, "curl: {}", out.stderr);
    assert!(out.stderr.contains(OPENSSL_ACCESS_DENIED), "{}", out.stderr);

    // openssl puts the IP literal in the SNI when told to.
    let out = run(
        "openssl",
        &[
            "s_client".to_owned(),
            "-connect".to_owned(),
            listener.to_string(),
            "-servername".to_owned(),
            ALLOWED.to_string(),
        ],
    )
    .await;
    assert!(
        out.stderr.contains(OPENSSL_ACCESS_DENIED),
        "openssl: {} {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(w.tls_ok.hits(), 0);
    w.no_evil_connection();
    w.event(|e| e.reason.as_deref() == Some("sni_missing"))
        .await;
    let e = w
        .event(|e| e.reason.as_deref() == Some("sni_ip_literal"))
        .await;
    assert_eq!(e.sni.as_deref(), Some("127.0.0.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_http_routes_on_host() {
    let w = World::new().await;
    let port = w.http_port();
    let url = format!("http://api.allowed.test:{port}/plain");
    let redirect = w.redirect("api.allowed.test", port);
    let out = curl(
        &w,
        &[redirect[0].as_str(), redirect[1].as_str(), url.as_str()],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("http-ok host=api.allowed.test:{port} path=/plain")
    );

    for (host, reason) in [
        ("evil.test", "not_allowlisted"),
        ("127.0.0.66", "host_ip_literal"),
    ] {
        let url = format!("http://{host}:{port}/");
        let redirect = w.redirect(host, port);
        let out = curl(
            &w,
            &[
                redirect[0].as_str(),
                redirect[1].as_str(),
                "-w",
                "\n%{http_code}",
                url.as_str(),
            ],
        )
        .await;
        let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
        assert_eq!(code, "403", "{host}");
        let body = json(body);
        assert_eq!(body["reason"], reason, "{host}");
        assert_eq!(body["port"], port);
    }
    w.no_evil_connection();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_slow_clients_are_refused_and_the_listener_keeps_serving() {
    let w = World::new().await;
    let port = w.tls_port();
    let listener = w.transparent(port);

    let mut s = TcpStream::connect(listener).await.expect("connect");
    s.write_all(b"\x16\x03\x01\x00\x05hello")
        .await
        .expect("garbage");
    let (level, _) = alert(&read_all(&mut s).await);
    assert_eq!(level, 2, "fatal alert");

    let mut s = TcpStream::connect(listener).await.expect("connect");
    s.write_all(b"\x00\x01\x02 not a protocol\r\n\r\n")
        .await
        .expect("garbage");
    let (status, body) = parse_response(&read_all(&mut s).await);
    assert_eq!(status, 400);
    assert_eq!(json(&body)["reason"], "malformed_request");

    // A client that stops in the middle of its ClientHello is timed out.
    let hello = client_hello("api.allowed.test");
    let mut s = TcpStream::connect(listener).await.expect("connect");
    s.write_all(&hello[..20]).await.expect("partial");
    let started = Instant::now();
    assert_eq!(alert(&read_all(&mut s).await), (2, 40));
    assert!(started.elapsed() < Duration::from_secs(3));
    w.event(|e| e.reason.as_deref() == Some("sniff_timeout"))
        .await;

    // An idle client is closed without a word.
    let mut s = TcpStream::connect(listener).await.expect("connect");
    assert!(read_all(&mut s).await.is_empty());

    let url = format!("https://api.allowed.test:{port}/still-serving");
    let redirect = w.redirect("api.allowed.test", port);
    let out = curl(
        &w,
        &[redirect[0].as_str(), redirect[1].as_str(), url.as_str()],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.ends_with("path=/still-serving"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ech_is_decided_on_the_outer_name() {
    let w = World::new().await;
    let port = w.tls_port();
    let listener = w.transparent(port);

    let mut s = TcpStream::connect(listener).await.expect("connect");
    s.write_all(&corpus("tls-ech-grease-evil.test.bin"))
        .await
        .expect("hello");
    assert_eq!(alert(&read_all(&mut s).await), (2, 49));
    let e = w
        .event(|e| e.reason.as_deref() == Some("ech_outer_not_allowed"))
        .await;
    assert!(e.ech);

    // Outer name allowed: passed through; the upstream answers the hello.
    let mut s = TcpStream::connect(listener).await.expect("connect");
    s.write_all(&corpus("tls-ech-grease-api.allowed.test.bin"))
        .await
        .expect("hello");
    let mut first = [0u8; 1];
    timeout(Duration::from_secs(5), s.read_exact(&mut first))
        .await
        .expect("server answers in time")
        .expect("server answers");
    assert_eq!(
        first[0], 0x16,
        "a ServerHello record from the allowed upstream"
    );
    assert_eq!(w.tls_ok.hits(), 1);

    // Through CONNECT the outer name must also equal the CONNECT host.
    let (mut tunnel, status, _) =
        connect(w.proxies.explicit, &format!("other.allowed.test:{port}")).await;
    assert_eq!(status, 200);
    tunnel
        .write_all(&corpus("tls-ech-grease-api.allowed.test.bin"))
        .await
        .expect("hello");
    assert_eq!(alert(&read_all(&mut tunnel).await), (2, 49));
    w.event(|e| e.reason.as_deref() == Some("ech_outer_mismatch"))
        .await;
    w.no_evil_connection();
}

const REQUESTS_SCRIPT: &str = r#"
import json, sys
import requests
proxy, ca, https_url, http_url, denied_http, denied_https = sys.argv[1:]
s = requests.Session()
s.trust_env = False
proxies = {"http": proxy, "https": proxy}
r = s.get(https_url, proxies=proxies, verify=ca, timeout=10)
out = {"https": [r.status_code, r.text]}
r = s.get(http_url, proxies=proxies, timeout=10)
out["http"] = [r.status_code, r.text]
r = s.get(denied_http, proxies=proxies, timeout=10)
out["denied_http"] = [r.status_code, r.json()]
try:
    s.get(denied_https, proxies=proxies, verify=ca, timeout=10)
    out["denied_https"] = "no error"
except requests.exceptions.ProxyError as e:
    out["denied_https"] = "ProxyError: " + str(e)
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_through_the_explicit_proxy() {
    let w = World::new().await;
    let (tls, http) = (w.tls_port(), w.http_port());
    let probe = run("python3", &["-c".to_owned(), "import requests".to_owned()]).await;
    assert_eq!(
        probe.code, 0,
        "Python requests is needed (apt-get install python3-requests): {}",
        probe.stderr
    );
    let out = run(
        "python3",
        &[
            "-c".to_owned(),
            REQUESTS_SCRIPT.to_owned(),
            w.proxy_url(),
            w.ca.ca_file().display().to_string(),
            format!("https://api.allowed.test:{tls}/py"),
            format!("http://api.allowed.test:{http}/py"),
            format!("http://evil.test:{http}/py"),
            format!("https://evil.test:{tls}/py"),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "python: {}", out.stderr);
    let result = json(out.stdout.trim());
    assert_eq!(
        result["https"],
        serde_json::json!([200, format!("tls-ok host=api.allowed.test:{tls} path=/py")])
    );
    assert_eq!(
        result["http"],
        serde_json::json!([
            200,
            format!("http-ok host=api.allowed.test:{http} path=/py")
        ])
    );
    assert_eq!(result["denied_http"][0], 403);
    assert_eq!(result["denied_http"][1]["reason"], "not_allowlisted");
    let denied = result["denied_https"].as_str().expect("string");
    assert!(
        denied.starts_with("ProxyError") && denied.contains("403"),
        "{denied}"
    );
    w.no_evil_connection();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_passes_through_intact_and_is_counted() {
    let w = World::new().await;
    let port = w.tls_port();
    let tcp = TcpStream::connect(w.transparent(port))
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(w.ca.client_config());
    let name = rustls::pki_types::ServerName::try_from("api.allowed.test").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("handshake through the listener");
    tls.write_all(b"GET /1m HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    // The upstream may close without close_notify after `Connection: close`.
    let _ = tls.read_to_end(&mut response).await;
    drop(tls);
    let (status, body) = parse_response(&response);
    assert_eq!(status, 200);
    assert_eq!(body.len(), MIB);
    assert!(body.bytes().all(|b| b == b'x'));

    let e = w
        .event(|e| {
            e.listener == ListenerKind::Transparent && e.decision == ConnectionOutcome::Allowed
        })
        .await;
    assert!(e.bytes_down > MIB as u64, "{e:?}");
    let down = w.counter(
        "agent_sidecar_proxy_bytes_total",
        &[("listener", "transparent"), ("direction", "down")],
    );
    assert!(down > MIB as f64, "bytes counter {down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_starve_the_agents_real_calls() {
    let w = World::with(|c| {
        c.max_connections = 32;
        c.sniff_timeout = Duration::from_secs(5);
    })
    .await;
    let port = w.tls_port();
    // The agent opens ten times the limit of connections on both listeners
    // and sends nothing on them.
    let mut idle = Vec::new();
    for _ in 0..320 {
        idle.push(TcpStream::connect(w.transparent(port)).await.expect("idle"));
        idle.push(TcpStream::connect(w.proxies.explicit).await.expect("idle"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let url = format!("https://api.allowed.test:{port}/real");
    let redirect = w.redirect("api.allowed.test", port);
    let out = curl(
        &w,
        &[redirect[0].as_str(), redirect[1].as_str(), url.as_str()],
    )
    .await;
    assert_eq!(out.code, 0, "transparent: {}", out.stderr);
    let proxy = w.proxy_url();
    let out = curl(&w, &["--proxy", proxy.as_str(), url.as_str()]).await;
    assert_eq!(out.code, 0, "explicit: {}", out.stderr);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the real calls waited {took:?} behind idle connections"
    );
    for listener in ["transparent", "explicit"] {
        let evicted = w.counter(
            "agent_sidecar_proxy_refusals_total",
            &[("listener", listener), ("reason", "evicted_idle")],
        );
        assert!(evicted > 0.0, "{listener}: nothing evicted");
    }
    drop(idle);
}
