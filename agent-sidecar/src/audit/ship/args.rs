//! The flags that configure audit shipping ([`AuditShipArgs`]), for
//! `run` to flatten into its own; [`AuditShipArgs::destinations`] turns
//! them into the shipper's destinations.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::{DEFAULT_BATCH_SIZE, DestinationConfig, ShipError, WebhookSecret, headers_from_file};

/// Which OTLP signals are shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpSignal {
    /// Every audit record as a log record (`/v1/logs`).
    Logs,
    /// Finished tool calls as `execute_tool` spans (`/v1/traces`).
    Traces,
}

/// Shipping the audit records to collectors.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Audit shipping")]
pub struct AuditShipArgs {
    /// Ship the audit records to this OTLP/HTTP collector (e.g. http://localhost:4318);
    /// /v1/logs and /v1/traces are appended. https:// is verified like upstreams.
    #[arg(long, value_name = "URL")]
    pub audit_otlp_endpoint: Option<String>,
    /// Which OTLP signals to ship (comma-separated).
    #[arg(
        long,
        value_name = "SIGNALS",
        value_delimiter = ',',
        default_value = "logs,traces",
        requires = "audit_otlp_endpoint"
    )]
    pub audit_otlp_signals: Vec<OtlpSignal>,
    /// File (mode 0600) of headers sent to the OTLP collector, one `Name: value` per line
    /// (e.g. an Authorization token).
    #[arg(long, value_name = "FILE", requires = "audit_otlp_endpoint")]
    pub audit_otlp_headers_file: Option<PathBuf>,
    /// Most audit records per OTLP request.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE, value_parser = parse_batch)]
    pub audit_otlp_batch_size: usize,
    /// Longest wait of an audit record before a partial OTLP batch is sent (e.g. 1s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub audit_otlp_flush_interval: Duration,
    /// Ship the audit records as signed JSON lines (Standard Webhooks) to this URL.
    #[arg(long, value_name = "URL", requires = "audit_webhook_secret_file")]
    pub audit_webhook: Option<String>,
    /// File (mode 0600) holding the webhook's signing secret, whsec_<base64>.
    #[arg(long, value_name = "FILE", requires = "audit_webhook")]
    pub audit_webhook_secret_file: Option<PathBuf>,
    /// File (mode 0600) of headers sent to the webhook, one `Name: value` per line.
    #[arg(long, value_name = "FILE", requires = "audit_webhook")]
    pub audit_webhook_headers_file: Option<PathBuf>,
    /// Most audit records per webhook request.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE, value_parser = parse_batch)]
    pub audit_webhook_batch_size: usize,
    /// Longest wait of an audit record before a partial webhook batch is sent.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub audit_webhook_flush_interval: Duration,
}

impl AuditShipArgs {
    /// The destinations the flags ask for (none without an endpoint);
    /// reads the secret and header files.
    pub fn destinations(&self) -> Result<Vec<DestinationConfig>, ShipError> {
        let mut out = Vec::new();
        if let Some(base) = &self.audit_otlp_endpoint {
            let headers = match &self.audit_otlp_headers_file {
                Some(f) => headers_from_file(f)?,
                None => Vec::new(),
            };
            let mut signals = self.audit_otlp_signals.clone();
            signals.dedup();
            for s in signals {
                let mut d = match s {
                    OtlpSignal::Logs => DestinationConfig::otlp_logs(base),
                    OtlpSignal::Traces => DestinationConfig::otlp_traces(base),
                };
                d.headers = headers.clone();
                d.batch_size = self.audit_otlp_batch_size;
                d.flush_interval = self.audit_otlp_flush_interval;
                out.push(d);
            }
        }
        if let (Some(url), Some(secret)) = (&self.audit_webhook, &self.audit_webhook_secret_file) {
            let mut d = DestinationConfig::webhook(url, WebhookSecret::from_file(secret)?);
            if let Some(f) = &self.audit_webhook_headers_file {
                d.headers = headers_from_file(f)?;
            }
            d.batch_size = self.audit_webhook_batch_size;
            d.flush_interval = self.audit_webhook_flush_interval;
            out.push(d);
        }
        Ok(out)
    }
}

fn parse_batch(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=super::MAX_BATCH_SIZE).contains(n))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a batch size: give 1 to {} records",
                super::MAX_BATCH_SIZE
            )
        })
}

/// A duration: a number then `ms`, `s`, `m` or `h`; more than zero.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 500ms, 1s, 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{s}` is not a duration: write e.g. 500ms, 1s, 2m")),
    };
    if d.is_zero() {
        return Err(format!("`{s}`: the interval must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
