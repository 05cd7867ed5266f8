//! Durable tier-3 approvals: a held action waits here until an approver
//! answers or its SLA passes (deny by default), and is forwarded at most
//! once. See `docs/approvals.md` for the lifecycle, the durability
//! guarantees and the crash window.
//!
//! - [`model`]: the approval record and its states;
//! - [`journal`]: the fsynced JSON-lines journal, torn-tail recovery and
//!   compaction;
//! - [`ApprovalStore`]: request / wait / approve / deny / expire /
//!   claim-forward, over the journal;
//! - [`BearerToken`]: the admin API's credential (the API itself is
//!   served by [`crate::admin`]);
//! - [`ApprovalsClient`]: a client of that API for the CLI;
//! - [`Notifier`] and [`WebhookNotifier`]; [`ApprovalMetrics`].

mod auth;
pub mod chain;
mod client;
pub mod directory;
mod error;
mod handle;
mod http;
pub mod journal;
mod ledger;
mod limits;
mod metrics;
pub mod model;
mod notify;
mod store;
mod token;
mod webhook;
mod wire;

pub use auth::{BearerToken, MIN_TOKEN_LEN, TokenError};
pub use client::{ApprovalsClient, ClientError};
pub use directory::{Approver, Approvers, DirectoryError};
pub use error::{ApprovalError, JournalError};
pub use handle::ApprovalHandle;
pub use http::HttpError;
pub use journal::TornTail;
pub use ledger::{DEFAULT_MAX_PENDING_PER_AGENT, ReplayReport, StoreConfig};
pub use limits::{MAX_APPROVER, MAX_BODY, MAX_REASON};
pub use metrics::ApprovalMetrics;
pub use model::{
    ActionSummary, ApprovalId, ApprovalOutcome, ApprovalState, ApproverDecision, NewApproval,
    PendingApproval, UnixMillis,
};
pub use notify::Notifier;
pub use store::{ApprovalStore, ApprovalStoreOptions};
pub use token::ForwardToken;
pub use webhook::{WebhookConfig, WebhookNotifier};
pub(crate) use wire::{DecisionBody, ErrorBody, ListBody};
