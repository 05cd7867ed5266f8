//! [`ApprovalsClient`]: the admin API over plain HTTP, so that the
//! `agent-sidecar approvals` CLI is a thin layer on top.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::{
    http::{HttpError, RemoteEndpoint},
    model::{ApprovalId, PendingApproval},
    wire::{DecisionBody, ErrorBody, ListBody},
};

/// Largest response the client reads, in bytes.
const MAX_RESPONSE: usize = 16 << 20;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server answered with an error.
    #[error("{status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`not_found`, `already_decided`, `unauthorized`...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server's answer is not what the API promises.
    #[error("unexpected response ({status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What could not be decoded.
        reason: String,
    },
    /// A `state` filter that is not a plain word.
    #[error("invalid state filter {0:?}")]
    InvalidState(String),
}

/// A client of the approvals admin API.
#[derive(Clone, Debug)]
pub struct ApprovalsClient {
    endpoint: RemoteEndpoint,
    authorization: String,
    timeout: Duration,
}

impl ApprovalsClient {
    /// A client for the API at `base_url` (`http://host:port`) with the
    /// bearer `token`, and a 10 s timeout per call.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Ok(ApprovalsClient {
            endpoint: RemoteEndpoint::parse(base_url, None)?,
            authorization: format!("Bearer {}", token.trim()),
            timeout: Duration::from_secs(10),
        })
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Lists approvals, optionally only those in `state` (`pending`...).
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<PendingApproval>, ClientError> {
        let path = match state {
            None => "/v1/approvals".to_string(),
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase()) => {
                format!("/v1/approvals?state={s}")
            }
            Some(s) => return Err(ClientError::InvalidState(s.to_string())),
        };
        let list: ListBody = self.call(Method::GET, &path, None).await?;
        Ok(list.approvals)
    }

    /// Shows one approval.
    pub async fn show(&self, id: &ApprovalId) -> Result<PendingApproval, ClientError> {
        self.call(Method::GET, &format!("/v1/approvals/{id}"), None)
            .await
    }

    /// Approves a pending approval as `approver`, for `reason`.
    pub async fn approve(
        &self,
        id: &ApprovalId,
        approver: &str,
        reason: &str,
    ) -> Result<PendingApproval, ClientError> {
        self.decide(id, "approve", approver, reason).await
    }

    /// Denies a pending approval as `approver`, for `reason`.
    pub async fn deny(
        &self,
        id: &ApprovalId,
        approver: &str,
        reason: &str,
    ) -> Result<PendingApproval, ClientError> {
        self.decide(id, "deny", approver, reason).await
    }

    async fn decide(
        &self,
        id: &ApprovalId,
        verb: &str,
        approver: &str,
        reason: &str,
    ) -> Result<PendingApproval, ClientError> {
        let body = DecisionBody {
            approver: approver.to_string(),
            reason: reason.to_string(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Decode {
            status: 0,
            reason: e.to_string(),
        })?;
        self.call(
            Method::POST,
            &format!("/v1/approvals/{id}/{verb}"),
            Some(body),
        )
        .await
    }

    /// The kill switches the sidecar follows (`GET /v1/kill-switches`).
    pub async fn kill_switches(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/v1/kill-switches", None).await
    }

    /// Trips a kill switch on the sidecar (`POST /v1/kill-switches`).
    pub async fn trip_kill_switch(
        &self,
        switch: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post("/v1/kill-switches", switch).await
    }

    /// Releases a kill switch tripped on the sidecar, as `approver` for
    /// `reason`.
    pub async fn release_kill_switch(
        &self,
        id: &str,
        approver: &str,
        reason: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({"approver": approver, "reason": reason});
        self.post(&format!("/v1/kill-switches/{id}/release"), &body)
            .await
    }

    /// The governed agent's inventory (`GET /v1/inventory`).
    pub async fn inventory(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/v1/inventory", None).await
    }

    /// The policy version in force and the kept previous ones
    /// (`GET /v1/policy`).
    pub async fn policy_versions(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/v1/policy", None).await
    }

    /// Puts a kept or archived policy version back in force
    /// (`POST /v1/policy/rollback`) as `operator`, for `reason`.
    pub async fn policy_rollback(
        &self,
        version: &str,
        operator: &str,
        reason: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({
            "version": version, "operator": operator, "reason": reason,
        });
        self.post("/v1/policy/rollback", &body).await
    }

    /// `GET /v1/grants[?state=STATE]`.
    pub async fn grants(&self, state: Option<&str>) -> Result<serde_json::Value, ClientError> {
        let path = match state {
            Some(s) => format!("/v1/grants?state={s}"),
            None => "/v1/grants".into(),
        };
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v1/grants` with a request
    /// (`{agent, kind, target, purpose, ttl_secs, requested_by}`).
    pub async fn request_grant(
        &self,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post("/v1/grants", request).await
    }

    /// `POST /v1/grants/{id}/{verb}` (`approve`, `deny`, `revoke`) as
    /// `approver` with `reason`.
    pub async fn decide_grant(
        &self,
        id: &str,
        verb: &str,
        approver: &str,
        reason: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({"approver": approver, "reason": reason});
        self.post(&format!("/v1/grants/{id}/{verb}"), &body).await
    }

    /// `POST path` with `body` as JSON.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body.to_string().into_bytes()))
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let mut req = self
            .endpoint
            .request(method, path)
            .header(header::AUTHORIZATION, self.authorization.as_str());
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Decode {
                status: 0,
                reason: format!("cannot build the request: {e}"),
            })?;
        let (status, bytes) = self.endpoint.send(req, self.timeout, MAX_RESPONSE).await?;
        decode(status, &bytes)
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            status: status.as_u16(),
            reason: e.to_string(),
        });
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => Err(ClientError::Api {
            status: status.as_u16(),
            code: e.error,
            message: e.message,
        }),
        Err(_) => Err(ClientError::Decode {
            status: status.as_u16(),
            reason: String::from_utf8_lossy(bytes).chars().take(200).collect(),
        }),
    }
}
