//! What every webhook the sidecar sends shares: the signing secret
//! ([`WebhookSecret`], `whsec_<base64>`), the Standard Webhooks signature
//! ([`signature`]: `webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64>`), the JSON envelope of an event ([`Envelope`]: an event id
//! for de-duplication, a schema version, RFC 3339 times) and the disk
//! queue deliveries are retried from ([`DiskQueue`]).
//!
//! The senders (the approvers', owner's and SOC's notifier in `approvals`,
//! the audit shipper's webhook in `audit::ship`) build on these; this
//! module imports none of them.

mod envelope;
mod queue;
mod secret;
mod sign;

pub use envelope::{Envelope, SCHEMA_VERSION, event_id, rfc3339};
pub use queue::{DiskQueue, PushError, Queued};
pub use secret::{SecretError, WebhookSecret, read_private};
pub use sign::signature;

/// Where webhook deliveries are counted: `sink` names the webhook
/// (`approver`, `owner`, `soc`), `outcome` is `sent`, `failed` (an
/// attempt that is retried), `rejected` (the receiver refused the event
/// with a 4xx: not retried) or `dropped` (the queue was full or not
/// writable, or the attempts ran out).
pub trait DeliveryMetrics: Send + Sync {
    /// Counts one outcome.
    fn delivery(&self, sink: &str, outcome: &str);
}

#[cfg(test)]
mod tests;
