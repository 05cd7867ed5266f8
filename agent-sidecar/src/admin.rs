//! The operator surface: one router for every route an operator, an
//! approver or a control plane uses. Its listeners are registered as
//! sidecar endpoints, so the agent's cgroup cannot reach them.
//!
//! | Route | Auth | Owner |
//! |---|---|---|
//! | `GET /metrics`, `GET /healthz` | none | `ops` |
//! | `GET /v1/approvals[?state=...]`, `GET /v1/approvals/{id}`, `POST /v1/approvals/{id}/approve\|deny` | bearer | `approvals` |
//! | `GET /v1/compensations`, `POST /v1/compensations/{id}/trigger` | bearer | `gateway` |
//! | `GET /v1/quarantine`, `POST /v1/quarantine/release` | bearer | `gateway` |
//! | `GET /v1/alerts`, `POST /v1/alerts/{id}/benign` | bearer | `alerts` |
//! | `GET /v1/inventory` | bearer | `inventory` |
//! | `GET /v1/kill-switches`, `POST /v1/kill-switches`, `POST /v1/kill-switches/{id}/release` | bearer | `kill` |
//!
//! An [`Admin`] says which of them one listener serves: `run` serves the
//! operations routes on `--metrics-listen` (a Prometheus scrape carries no
//! token) and the bearer-token API on `--admin-listen`. Every bearer
//! route is behind the same token and the per-peer throttle of failed
//! authentications ([`throttle`]). Errors of the API are
//! `{"error": code, "message": ...}`.

mod alerts;
mod approvals;
mod gateway;
mod inventory;
mod kill;
mod ops;
mod reply;
mod server;
pub mod throttle;

pub use server::{Admin, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_PER_PEER, bind, serve};
