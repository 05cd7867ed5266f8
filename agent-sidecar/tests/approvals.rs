//! Tier-3 approvals end to end: a real store on disk, the admin API on a
//! real socket, approvals given with the real `curl`, a real webhook
//! receiver, and restarts that drop everything and reopen the journal.

use std::{
    convert::Infallible,
    fs::OpenOptions,
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use agent_sidecar::{
    admin::{self, Admin},
    approvals::{
        self, ActionSummary, ApprovalError, ApprovalId, ApprovalOutcome, ApprovalState,
        ApprovalStore, ApprovalStoreOptions, ApprovalsClient, BearerToken, ClientError,
        NewApproval, WebhookConfig, WebhookNotifier, journal,
    },
    policy::Tier,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, process::Command, task::JoinHandle};

const TOKEN: &str = "test-admin-token-5f2c9a1e";

fn payment(sla: Duration) -> NewApproval {
    NewApproval {
        agent_id: "agent-finance-1".into(),
        action: ActionSummary {
            tool: "payments-mcp".into(),
            action: "create_transfer".into(),
            target: "api.bank.example".into(),
            input: serde_json::json!({"amount_eur": 75000, "iban": "[redacted]"}),
            request: serde_json::Value::Null,
        },
        tier: Tier::Approval,
        rule_ids: vec!["payments.over-50k".into()],
        policy_version: "sha256:0f1e2d".into(),
        reason: "transfer above 50 000 EUR".into(),
        sla,
        binding: "sha256:00".into(),
        decided: None,
        chain: None,
    }
}

/// The admin API on an ephemeral port; aborted on drop.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(store: &ApprovalStore) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let token = BearerToken::new(TOKEN).expect("token");
    let task = tokio::spawn(admin::serve(listener, Admin::api(store.clone(), token)));
    Server { addr, task }
}

/// Runs curl; returns the status code and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

async fn curl_decide(addr: SocketAddr, id: &ApprovalId, verb: &str, body: &str) -> (u16, String) {
    let auth = format!("Authorization: Bearer {TOKEN}");
    let url = format!("http://{addr}/v1/approvals/{id}/{verb}");
    curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        body,
        &url,
    ])
    .await
}

fn journal_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(journal::FILE_NAME)).expect("journal")
}

#[tokio::test]
async fn curl_approval_releases_both_waiters_and_forwards_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
    let server = serve(&store).await;

    // The agent's call and its retry carry the same idempotency key.
    let first = store
        .request("mcp-session-9/jsonrpc-42", payment(Duration::from_secs(60)))
        .await
        .expect("request");
    let retry = store
        .request("mcp-session-9/jsonrpc-42", payment(Duration::from_secs(60)))
        .await
        .expect("retry");
    assert_eq!(first.id(), retry.id());
    let waiters: Vec<_> = [first.clone(), retry.clone()]
        .into_iter()
        .map(|h| {
            tokio::spawn(async move {
                let outcome = h.wait().await?;
                let claim = h.claim_forward().await;
                Ok::<_, ApprovalError>((outcome, claim))
            })
        })
        .collect();

    let (status, body) = curl_decide(
        server.addr,
        first.id(),
        "approve",
        r#"{"approver": "alice@finance", "reason": "invoice 2291 verified"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let approved: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(approved["state"]["kind"], "approved");

    let mut tokens = Vec::new();
    for w in waiters {
        let (outcome, claim) = w.await.expect("join").expect("waited");
        assert!(
            matches!(&outcome, ApprovalOutcome::Approved(d) if d.by == "alice@finance"),
            "{outcome:?}"
        );
        match claim {
            Ok(token) => tokens.push(token),
            Err(e) => assert!(matches!(e, ApprovalError::AlreadyForwarded(_)), "{e}"),
        }
    }
    assert_eq!(tokens.len(), 1, "exactly one waiter forwards");
    let token = tokens.pop().expect("one token");
    store
        .record_upstream_status(token, 201)
        .await
        .expect("status recorded");

    let journal = journal_text(dir.path());
    assert!(
        journal.contains(r#""by":"alice@finance","reason":"invoice 2291 verified""#),
        "{journal}"
    );
    assert!(journal.contains(r#""upstream_status":201"#), "{journal}");

    // Even after a restart, nobody can claim the forward again.
    drop((first, retry, server, store));
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("reopen");
    let id = ApprovalId::parse(approved["id"].as_str().expect("id")).expect("valid id");
    assert!(matches!(
        store.claim_forward(&id).await,
        Err(ApprovalError::AlreadyForwarded(_))
    ));
}

#[tokio::test]
async fn curl_denial_reaches_the_waiter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
    let server = serve(&store).await;
    let h = store
        .request("k-deny", payment(Duration::from_secs(60)))
        .await
        .expect("request");
    let waiter = tokio::spawn({
        let h = h.clone();
        async move { h.wait().await }
    });
    let (status, body) = curl_decide(
        server.addr,
        h.id(),
        "deny",
        r#"{"approver": "bob", "reason": "vendor unknown"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let outcome = waiter.await.expect("join").expect("outcome");
    assert!(
        matches!(&outcome, ApprovalOutcome::Denied(d) if d.by == "bob" && d.reason == "vendor unknown")
    );
    assert!(h.claim_forward().await.is_err());
    let (status, body) = curl_decide(
        server.addr,
        h.id(),
        "approve",
        r#"{"approver": "eve", "reason": "override"}"#,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(r#""error":"already_decided""#), "{body}");
}

#[tokio::test]
async fn sla_expiry_denies_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
    let server = serve(&store).await;
    let h = store
        .request("k-sla", payment(Duration::from_millis(200)))
        .await
        .expect("request");
    let outcome = tokio::time::timeout(Duration::from_secs(5), h.wait())
        .await
        .expect("decided within 5 s")
        .expect("outcome");
    assert!(matches!(outcome, ApprovalOutcome::Expired { .. }));
    assert!(!outcome.is_approved());
    let client = ApprovalsClient::new(&format!("http://{}", server.addr), TOKEN).expect("client");
    assert_eq!(
        client.show(h.id()).await.expect("show").state.name(),
        "expired"
    );
    let (status, _) = curl_decide(
        server.addr,
        h.id(),
        "approve",
        r#"{"approver": "late", "reason": "sorry"}"#,
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
    let h = store
        .request("k-auth", payment(Duration::from_secs(60)))
        .await
        .expect("request");
    let server = serve(&store).await;
    let url = format!("http://{}/v1/approvals/{}/approve", server.addr, h.id());
    let body = r#"{"approver": "mallory", "reason": "trust me"}"#;
    for auth in [
        None,
        Some("Authorization: Bearer not-the-token-at-all"),
        Some("Authorization: Basic Zm9vOmJhcg=="),
    ] {
        let mut args = vec!["-i", "-X", "POST", "--data", body];
        if let Some(a) = auth {
            args.extend(["-H", a]);
        }
        args.push(&url);
        let (status, text) = curl(&args).await;
        assert_eq!(status, 401, "{auth:?}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{text}"
        );
        assert!(text.contains(r#""error":"unauthorized""#), "{text}");
    }
    assert_eq!(
        store.get(h.id()).await.expect("get").state.name(),
        "pending"
    );
    let wrong = ApprovalsClient::new(&format!("http://{}", server.addr), "not-the-token-at-all")
        .expect("client");
    assert!(matches!(
        wrong.list(None).await,
        Err(ClientError::Api { status: 401, .. })
    ));
}

#[tokio::test]
async fn pending_approval_survives_restart_and_resolves_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let (store, report) = ApprovalStore::open(dir.path()).await.expect("open");
        assert_eq!(report.records, 0);
        let server = serve(&store).await;
        let h = store
            .request("k-restart", payment(Duration::from_secs(600)))
            .await
            .expect("request");
        let id = h.id().clone();
        drop((h, server, store));
        id
    };
    let (store, report) = ApprovalStore::open(dir.path()).await.expect("reopen");
    assert_eq!(
        (report.records, report.pending, report.torn_tail),
        (1, 1, None)
    );
    let server = serve(&store).await;
    let client = ApprovalsClient::new(&format!("http://{}", server.addr), TOKEN).expect("client");
    let pending = client.list(Some("pending")).await.expect("list");
    assert_eq!(pending.iter().map(|a| &a.id).collect::<Vec<_>>(), vec![&id]);

    // The agent retries after the restart and attaches to the same approval.
    let h = store
        .request("k-restart", payment(Duration::from_secs(600)))
        .await
        .expect("retry");
    assert!(!h.created());
    let waiter = tokio::spawn({
        let h = h.clone();
        async move { h.wait().await }
    });
    client
        .approve(&id, "carol", "ok after restart")
        .await
        .expect("approve");
    assert!(waiter.await.expect("join").expect("outcome").is_approved());
    let token = h.claim_forward().await.expect("forward once");
    store
        .record_upstream_status(token, 200)
        .await
        .expect("status");
}

/// A request creates a pending approval. Run again as a child process by
/// `pending_approval_survives_sigkill` (with `APPROVALS_KILL_DIR` set), it
/// then hangs until it is killed.
#[tokio::test]
async fn a_request_creates_a_pending_approval() {
    let temp = tempfile::tempdir().expect("tempdir");
    let child_dir = std::env::var("APPROVALS_KILL_DIR").ok();
    let dir = child_dir
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let (store, _) = ApprovalStore::open(&dir).await.expect("open");
    let h = store
        .request("k-kill", payment(Duration::from_secs(600)))
        .await
        .expect("request");
    assert!(
        matches!(h.approval().state, ApprovalState::Pending),
        "{:?}",
        h.approval().state
    );
    println!("PENDING {}", h.id());
    std::io::stdout().flush().expect("flush");
    if child_dir.is_some() {
        std::future::pending::<()>().await;
    }
}

#[tokio::test]
async fn pending_approval_survives_sigkill() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_request_creates_a_pending_approval",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APPROVALS_KILL_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let id = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read child") {
            // libtest may print the test's name on the same line.
            if let Some((_, id)) = line.split_once("PENDING ") {
                return ApprovalId::parse(id.trim()).expect("valid id");
            }
        }
        panic!("child exited without creating an approval");
    })
    .await
    .expect("child creates an approval");
    child.kill().await.expect("SIGKILL");

    let (store, report) = ApprovalStore::open(dir.path())
        .await
        .expect("reopen after SIGKILL");
    assert_eq!((report.pending, report.torn_tail), (1, None));
    let h = store
        .request("k-kill", payment(Duration::from_secs(600)))
        .await
        .expect("retry");
    assert_eq!(h.id(), &id);
    let waiter = tokio::spawn({
        let h = h.clone();
        async move { h.wait().await }
    });
    store
        .approve(&id, "heidi", "after the crash")
        .await
        .expect("approve");
    assert!(waiter.await.expect("join").expect("outcome").is_approved());
}

#[tokio::test]
async fn overdue_approval_expires_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
        let h = store
            .request("k-overdue", payment(Duration::from_millis(300)))
            .await
            .expect("request");
        h.id().clone()
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (store, report) = ApprovalStore::open(dir.path()).await.expect("reopen");
    assert_eq!(report.expired_on_open, vec![id.clone()]);
    assert!(matches!(
        store.wait(&id).await.expect("outcome"),
        ApprovalOutcome::Expired { .. }
    ));
}

#[tokio::test]
async fn torn_last_line_is_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
        let a = store
            .request("k-a", payment(Duration::from_secs(600)))
            .await
            .expect("a");
        let b = store
            .request("k-b", payment(Duration::from_secs(600)))
            .await
            .expect("b");
        (a.id().clone(), b.id().clone())
    };
    // A crash mid-write leaves half a line without its newline.
    let path = dir.path().join(journal::FILE_NAME);
    let line = journal_text(dir.path())
        .lines()
        .last()
        .expect("a line")
        .to_string();
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&line.as_bytes()[..line.len() / 2]))
        .expect("tear");

    let (store, report) = ApprovalStore::open(dir.path()).await.expect("recovers");
    let torn = report.torn_tail.expect("torn tail reported");
    assert_eq!((torn.line, torn.bytes), (3, (line.len() / 2) as u64));
    assert_eq!((report.records, report.pending), (2, 2));
    let server = serve(&store).await;
    let (status, body) = curl_decide(
        server.addr,
        &b,
        "deny",
        r#"{"approver": "dan", "reason": "dup"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(store.get(&a).await.expect("a kept").state.name(), "pending");
    assert!(
        journal_text(dir.path()).ends_with("}\n"),
        "journal ends with a whole line"
    );
}

#[tokio::test]
async fn corrupt_line_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
        store
            .request("k1", payment(Duration::from_secs(600)))
            .await
            .expect("request");
    }
    let path = dir.path().join(journal::FILE_NAME);
    let good = journal_text(dir.path());
    std::fs::write(&path, format!("{good}garbage\n{good}")).expect("write");
    let err = ApprovalStore::open(dir.path())
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:2:", path.display())), "{msg}");
}

/// A webhook receiver that records the JSON bodies it is sent.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/approvals-hook",
        listener.local_addr().expect("addr")
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let ok = req.uri().path() == "/approvals-hook"
                            && req
                                .headers()
                                .get("content-type")
                                .is_some_and(|v| v == "application/json");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if let (true, Ok(v)) = (ok, serde_json::from_slice(&body)) {
                            record.lock().expect("lock").push(v);
                        }
                        let status = if ok {
                            StatusCode::OK
                        } else {
                            StatusCode::BAD_REQUEST
                        };
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = status;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, seen, task)
}

#[tokio::test]
async fn webhook_receives_pending_and_decided() {
    let (url, seen, _receiver) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ApprovalStoreOptions {
        notifier: Some(Arc::new(
            WebhookNotifier::spawn(WebhookConfig::new(url)).expect("webhook"),
        )),
        ..ApprovalStoreOptions::default()
    };
    let (store, _) = ApprovalStore::open_with(dir.path(), options)
        .await
        .expect("open");
    let server = serve(&store).await;
    let h = store
        .request("k-hook", payment(Duration::from_secs(60)))
        .await
        .expect("request");
    let (status, _) = curl_decide(
        server.addr,
        h.id(),
        "approve",
        r#"{"approver": "erin", "reason": "ok"}"#,
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..300 {
        if seen.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["event"], "approval.pending");
    assert_eq!(seen[0]["approval"]["id"], h.id().as_str());
    assert_eq!(seen[0]["approval"]["action"]["tool"], "payments-mcp");
    assert_eq!(seen[1]["event"], "approval.decided");
    assert_eq!(seen[1]["approval"]["state"]["kind"], "approved");
    assert_eq!(seen[1]["approval"]["state"]["by"], "erin");
}

#[tokio::test]
async fn client_lists_shows_and_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("open");
    let server = serve(&store).await;
    let client = ApprovalsClient::new(&format!("http://{}/", server.addr), TOKEN).expect("client");
    let a = store
        .request("k-c1", payment(Duration::from_secs(60)))
        .await
        .expect("a")
        .id()
        .clone();
    let b = store
        .request("k-c2", payment(Duration::from_secs(60)))
        .await
        .expect("b")
        .id()
        .clone();

    assert_eq!(client.list(None).await.expect("list").len(), 2);
    let shown = client.show(&a).await.expect("show");
    assert_eq!(
        (shown.agent_id.as_str(), shown.policy_version.as_str()),
        ("agent-finance-1", "sha256:0f1e2d")
    );
    assert_eq!(
        client
            .approve(&a, "frank", "fine")
            .await
            .expect("approve")
            .state
            .name(),
        "approved"
    );
    assert_eq!(
        client
            .deny(&b, "grace", "no")
            .await
            .expect("deny")
            .state
            .name(),
        "denied"
    );
    assert_eq!(client.list(Some("denied")).await.expect("list")[0].id, b);

    let conflict = client
        .deny(&a, "grace", "too late")
        .await
        .expect_err("decided");
    assert!(
        matches!(&conflict, ClientError::Api { status: 409, code, .. } if code == "already_decided"),
        "{conflict}"
    );
    let missing = client
        .show(&ApprovalId::random())
        .await
        .expect_err("unknown");
    assert!(
        matches!(&missing, ClientError::Api { status: 404, .. }),
        "{missing}"
    );
    let invalid = client
        .approve(&b, "", "x")
        .await
        .expect_err("empty approver");
    assert!(
        matches!(&invalid, ClientError::Api { status: 400, .. }),
        "{invalid}"
    );
    assert!(matches!(
        client.list(Some("pending&x=1")).await,
        Err(ClientError::InvalidState(_))
    ));
}

#[tokio::test]
async fn a_thousand_wrong_tokens_are_throttled_counted_and_only_a_few_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = prometheus::Registry::new();
    let metrics = approvals::ApprovalMetrics::register(&registry).expect("metrics");
    let (store, _) = ApprovalStore::open_with(
        dir.path(),
        ApprovalStoreOptions {
            metrics: Some(metrics),
            ..ApprovalStoreOptions::default()
        },
    )
    .await
    .expect("open");
    let server = serve(&store).await;
    let base = format!("http://{}", server.addr);
    let wrong = ApprovalsClient::new(&base, "not-the-token-at-all").expect("client");
    let started = std::time::Instant::now();
    let (mut checked, mut throttled) = (0u64, 0u64);
    for i in 0..1000 {
        match wrong.list(None).await {
            Err(ClientError::Api { status: 401, .. }) => checked += 1,
            Err(ClientError::Api {
                status: 429, code, ..
            }) => {
                assert_eq!(code, "throttled");
                throttled += 1;
            }
            other => panic!("guess {i}: {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    eprintln!("1000 wrong tokens: {checked} checked, {throttled} throttled, in {elapsed:?}");
    assert!(
        checked <= 12,
        "only a handful of guesses may be checked in {elapsed:?}: {checked}"
    );
    assert_eq!(checked + throttled, 1000);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encodes");
    assert!(
        text.contains(&format!(
            "agent_sidecar_admin_auth_failures_total {checked}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "agent_sidecar_admin_auth_throttled_total {throttled}"
        )),
        "{text}"
    );

    // While the wait runs even the right token is not looked at; after it,
    // the operator gets in. The last checked guess's wait may be about to
    // end when the loop finishes: one more checked guess starts a fresh,
    // longer one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match wrong.list(None).await {
            Err(ClientError::Api { status: 401, .. }) => break,
            Err(ClientError::Api { status: 429, .. }) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no guess checked in 10 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a fresh guess: {other:?}"),
        }
    }
    let (status, text) = curl(&[
        "-i",
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("{base}/v1/approvals"),
    ])
    .await;
    assert_eq!(status, 429, "{text}");
    let retry: u64 = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().parse().expect("seconds"))
        })
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let right = ApprovalsClient::new(&base, TOKEN).expect("client");
    assert!(right.list(None).await.expect("authorized").is_empty());
}
