//! When to retry a request and how long to wait: only 429, 502, 503 and
//! 504 (and failures to connect or to get an answer) are retried, after
//! the collector's `Retry-After` or an exponential backoff with jitter.

use std::time::{Duration, SystemTime};

use hyper::{StatusCode, header::HeaderValue};
use rand::Rng;

/// Waits between retries: `initial`, doubling up to `max`, each drawn
/// uniformly from its upper half (jitter); a `Retry-After` longer than
/// `max_retry_after` is cut to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    /// 500 ms doubling to 30 s; `Retry-After` up to 5 min.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
            .max(Duration::from_millis(1));
        let nanos = ceiling.as_nanos() as u64;
        Duration::from_nanos(rng.random_range(nanos / 2..=nanos))
    }

    /// The wait a collector asked for, bounded.
    pub fn honour(&self, retry_after: Duration) -> Duration {
        retry_after.min(self.max_retry_after)
    }
}

/// What to do after an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the batch is delivered.
    Delivered,
    /// 429, 502, 503, 504: send the same batch again later (after this
    /// wait, when the collector said).
    Retry(Option<Duration>),
    /// 400 or 413: the collector will never take this batch; it is not
    /// retried, its records are counted as rejected.
    Rejected,
    /// Any other status (401, 403, 404, 500, ...): the collector or the
    /// configuration is wrong, not the records. The batch is kept and
    /// tried again after the longest backoff, so that no record is dropped
    /// for a wrong token or URL.
    Stalled,
}

/// Classifies an answer.
pub fn classify(status: StatusCode, retry_after: Option<&HeaderValue>) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        429 | 502 | 503 | 504 => {
            Verdict::Retry(retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())))
        }
        400 | 413 => Verdict::Rejected,
        _ => Verdict::Stalled,
    }
}

/// Parses `Retry-After` (RFC 9110 10.2.3): seconds, or an HTTP-date
/// (a date in the past is no wait). Anything else is ignored.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
