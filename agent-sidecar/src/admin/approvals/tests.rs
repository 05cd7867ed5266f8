use http_body_util::BodyExt;

use super::*;
use crate::approvals::model::tests::sample_request;
use crate::approvals::{MAX_APPROVER, MAX_BODY};

const TOKEN: &str = "admin-token-0123456789";

struct Fixture {
    store: ApprovalStore,
    token: BearerToken,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    Fixture {
        store,
        token: BearerToken::new(TOKEN).expect("token"),
        _dir: dir,
    }
}

impl Fixture {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        self.send(req).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let resp = handle(req, &self.store, &self.token).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    async fn pending(&self) -> ApprovalId {
        self.store
            .request(ApprovalId::random().to_string(), sample_request())
            .await
            .expect("request")
            .id()
            .clone()
    }
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_challenge() {
    let f = fixture().await;
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let mut req = Request::builder().uri("/v1/approvals");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = handle(
            req.body(Full::new(Bytes::new())).expect("req"),
            &f.store,
            &f.token,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .expect("challenge");
        assert!(challenge.as_bytes().starts_with(b"Bearer"));
    }
}

#[tokio::test]
async fn list_show_and_filter() {
    let f = fixture().await;
    let a = f.pending().await;
    let b = f.pending().await;
    f.store.deny(&b, "bob", "no").await.expect("deny");
    let (s, all) = f.call(Method::GET, "/v1/approvals", "").await;
    assert_eq!(
        (s, all["approvals"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let (_, pending) = f.call(Method::GET, "/v1/approvals?state=pending", "").await;
    assert_eq!(pending["approvals"][0]["id"], a.as_str());
    assert_eq!(pending["approvals"].as_array().map(Vec::len), Some(1));
    let (s, one) = f.call(Method::GET, &format!("/v1/approvals/{b}"), "").await;
    assert_eq!(
        (
            s,
            one["state"]["kind"].as_str(),
            one["state"]["by"].as_str()
        ),
        (StatusCode::OK, Some("denied"), Some("bob"))
    );
    let (s, e) = f.call(Method::GET, "/v1/approvals?state=bogus", "").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
}

#[tokio::test]
async fn approve_records_who_and_why_then_conflicts() {
    let f = fixture().await;
    let id = f.pending().await;
    let path = format!("/v1/approvals/{id}/approve");
    let (s, r) = f
        .call(
            Method::POST,
            &path,
            r#"{"approver": "alice", "reason": "within budget"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let state = &r["state"];
    assert_eq!(
        (
            state["kind"].as_str(),
            state["by"].as_str(),
            state["reason"].as_str()
        ),
        (Some("approved"), Some("alice"), Some("within budget"))
    );
    let (s, e) = f
        .call(
            Method::POST,
            &format!("/v1/approvals/{id}/deny"),
            r#"{"approver": "bob", "reason": "no"}"#,
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let f = fixture().await;
    for path in [
        format!("/v1/approvals/{}", ApprovalId::random()),
        "/v1/approvals/../../etc".to_string(),
        "/v1/other".to_string(),
    ] {
        let (s, e) = f.call(Method::GET, &path, "").await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn bad_bodies_are_rejected() {
    let f = fixture().await;
    let id = f.pending().await;
    let path = format!("/v1/approvals/{id}/deny");
    let long = "x".repeat(MAX_APPROVER + 1);
    for body in [
        "",
        "not json",
        r#"{"approver": "a"}"#,
        r#"{"approver": "  ", "reason": "r"}"#,
        r#"{"approver": "a", "reason": "r", "extra": 1}"#,
        r#"{"approver": "a\nb", "reason": "r"}"#,
        &format!(r#"{{"approver": "{long}", "reason": "r"}}"#),
    ] {
        let (s, e) = f.call(Method::POST, &path, body).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_body")),
            "{body}"
        );
    }
    let huge = format!(
        r#"{{"approver": "a", "reason": "{}"}}"#,
        "r".repeat(MAX_BODY)
    );
    let (s, e) = f.call(Method::POST, &path, &huge).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri(&path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_LENGTH, "1000000")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(f.send(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        f.store.get(&id).await.expect("get").state,
        crate::approvals::ApprovalState::Pending
    );
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let f = fixture().await;
    let id = f.pending().await;
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/approvals/{id}/approve"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = handle(req, &f.store, &f.token).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        resp.headers().get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
}

const LEAD: &str = "lead-token-0123456789abcdef";

async fn decide_with_directory(auth: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let f = fixture().await;
    let id = f.pending().await;
    let yaml = format!(
        "approvers:\n  - name: lee\n    team: support\n    roles: [team_lead]\n    token_sha256: {}\n",
        crate::approvals::directory::token_sha256_hex(LEAD)
    );
    let dir = Approvers::from_yaml(&yaml, std::path::Path::new("a.yaml")).expect("directory");
    let admin = crate::admin::Admin::api(f.store.clone(), f.token.clone()).with_approvers(dir);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/approvals/{id}/approve"))
        .header(header::AUTHORIZATION, format!("Bearer {auth}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = crate::admin::server::handle(req, &admin, None).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn with_a_directory_only_an_approvers_own_token_decides_under_their_name() {
    let (s, r) = decide_with_directory(LEAD, r#"{"approver": "lee", "reason": "ok"}"#).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["state"]["by"].as_str(), Some("lee"));
    // The admin token alone can no longer decide.
    let (s, e) = decide_with_directory(TOKEN, r#"{"approver": "lee", "reason": "ok"}"#).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("approver_token_required"))
    );
    // An approver cannot claim another name.
    let (s, e) = decide_with_directory(LEAD, r#"{"approver": "fay", "reason": "ok"}"#).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("approver_mismatch"))
    );
    // A forged token is neither an approver's nor the admin's.
    let (s, _) = decide_with_directory(
        "lead-token-0123456789abcdeX",
        r#"{"approver": "lee", "reason": "ok"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
