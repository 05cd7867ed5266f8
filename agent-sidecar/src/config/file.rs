//! The config file: YAML, one key per flag of `run` (the flag's name
//! without `--`), checked against [`ConfigFile`] (whose JSON Schema is
//! published as `docs/config.schema.json`).
//!
//! Values are kept as the text a flag would be given, and are checked by
//! the flag's own parser afterwards ([`super::layers`]): a value means the
//! same in the file, in a variable and on the command line. Relative paths
//! are resolved against the file's directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use schemars::{JsonSchema, generate::SchemaSettings};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ConfigError, positions::KeyPositions, suggest};
use crate::yaml;

/// A scalar written as text or as a whole number (`pids-max: 512` or
/// `pids-max: max`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Text {
    /// A whole number.
    Number(u64),
    /// Text.
    Text(String),
}

/// The config file of `run` and `serve`. Every key is the name of a flag
/// of `run` or `serve` (see `agent-sidecar run --help`, `agent-sidecar
/// serve --help` and docs/config.md for what each one does); the
/// repeatable flags take a list. Each subcommand reads the keys it has.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "agent-sidecar config file")]
pub struct ConfigFile {
    /// Log filter (tracing EnvFilter syntax), e.g. `info,agent_sidecar=debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Log format on stderr: `text` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Refuse to start when no bpffs is mounted, instead of mounting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_mount_bpffs: Option<bool>,
    /// Egress policy files (YAML); rules are merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Vec<String>>,
    /// Egress targets: `IP:PORT`, `[IPv6]:PORT`, CIDR, `CIDR:PORT`, or names `HOST[:PORT]`, `*.DOMAIN`, `**.DOMAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Upstream resolvers of the agent's resolver (`IP` or `IP:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_dns: Option<Vec<String>>,
    /// `NAME=IP` answers of the sidecar's resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_host: Option<Vec<String>>,
    /// Answer to names that are not allowlisted: `nxdomain` or `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refusal: Option<String>,
    /// Queries the agent may have forwarded upstream per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_budget_queries: Option<u32>,
    /// Distinct names among those queries per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_budget_names: Option<u32>,
    /// TCP destination ports sent to the transparent proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept_ports: Option<Vec<u16>>,
    /// Do not set `HTTP_PROXY`/`HTTPS_PROXY` for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy_env: Option<bool>,
    /// Agent id: names the cgroup, pins and log fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Who the command runs as: `UID[:GID]` or a user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Text>,
    /// `FIRST-LAST`: where the agent's own uid is allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_range: Option<String>,
    /// `NAME=VALUE` added to the agent's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Names of the operator's variables passed to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_env: Option<Vec<String>>,
    /// Most tasks of the agent, or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<Text>,
    /// Most memory of the agent (`K`, `M`, `G`, `T` suffixes), or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<Text>,
    /// Run even when the kernel cannot scope the agent (Landlock ABI 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unscoped_agent: Option<bool>,
    /// Leave programs and maps pinned when the command exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_pinned: Option<bool>,
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Fleet-controls file of kill switches this sidecar follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_controls: Option<String>,
    /// Tier policy set (directory): enables the tool gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_dir: Option<String>,
    /// Directory each policy version put in force is written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_archive: Option<String>,
    /// Deployment environment of the agent (selects the policy overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Credentials the policy names: `NAME=file:PATH` or `NAME=env:VARIABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Vec<String>>,
    /// CA certificate (PEM) for the agent-facing leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Private key (PEM) of `ca-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<String>,
    /// Extra CAs (PEM) trusted for upstream tool servers, webhooks and audit collectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca: Option<Vec<String>>,
    /// Serve the admin API here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// File (mode 0600) holding the admin API's bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<String>,
    /// Webhook of the agent's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_webhook: Option<String>,
    /// Webhook of the SOC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc_webhook: Option<String>,
    /// Syslog collectors of alerts: `udp://HOST:PORT`, `tcp://HOST:PORT`, `tls://HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<Vec<String>>,
    /// Directory of the behavioural baselines, or `none` (kept in memory only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_dir: Option<String>,
    /// Webhook of the approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_webhook: Option<String>,
    /// How long a tier-3 call waits for an approver (`15m`, `1h30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_sla: Option<String>,
    /// Most tier-3 approvals the agent may have pending at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_approvals: Option<u64>,
    /// Largest request body of an inspected tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Key (64 hex digits, mode 0600) of the keyed hashes of `redact: hash` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction_key: Option<String>,
    /// Signing secret file (`whsec_<base64>`, mode 0600) of the approver, owner and SOC webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<String>,
    /// bpffs mount point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpffs: Option<String>,
    /// Directory for state files and owner locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Directory of the agent's audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_dir: Option<String>,
    /// How soon audit records are fsynced: `always` or a window such as `10ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_fsync: Option<String>,
    /// How often a checkpoint of the audit log is signed (`10s`, `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_checkpoint_interval: Option<String>,
    /// The checkpoints' Ed25519 signing key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<String>,
    /// Files every signed checkpoint is also appended to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_witness_file: Option<Vec<String>>,
    /// Let actions through when their audit record cannot be written (counted, logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_fail_open: Option<bool>,
    /// OTLP/HTTP collector the audit records are shipped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_otlp_endpoint: Option<String>,
    /// OTLP signals shipped: `logs`, `traces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_otlp_signals: Option<Vec<String>>,
    /// File (mode 0600) of headers sent to the OTLP collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_otlp_headers_file: Option<String>,
    /// Most audit records per OTLP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_otlp_batch_size: Option<u64>,
    /// Longest wait of a record before a partial OTLP batch is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_otlp_flush_interval: Option<String>,
    /// URL the audit records are shipped to as signed JSON lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_webhook: Option<String>,
    /// File (mode 0600) holding the audit webhook's signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_webhook_secret_file: Option<String>,
    /// File (mode 0600) of headers sent to the audit webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_webhook_headers_file: Option<String>,
    /// Most audit records per webhook request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_webhook_batch_size: Option<u64>,
    /// Longest wait of a record before a partial webhook batch is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_webhook_flush_interval: Option<String>,
    /// `serve`: UID of the pod (downward API `metadata.uid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// `serve`: name of the pod (downward API `metadata.name`): the instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// `serve`: namespace of the pod (downward API `metadata.namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// `serve`: where the host's cgroup v2 tree is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cgroupfs: Option<String>,
    /// `serve`: the sidecar's own container cgroup (absolute, or relative to the pod's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_cgroup: Option<String>,
    /// `serve`: the agent's owner (pod annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `serve`: the owner's team (pod annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// `serve`: what the agent is for (pod annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// `serve`: the explicit HTTP(S) proxy's address (the agent containers' `HTTP_PROXY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_listen: Option<String>,
    /// `serve`: how long in-flight calls may take to finish on SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_grace: Option<String>,
    /// Redis of the quota counters shared across sidecars (`redis://HOST:PORT/DB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_redis: Option<String>,
    /// File (mode 0600) of the approver directory: each approver's own token decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers_file: Option<String>,
    /// Directory of a candidate tier policy set decided beside the active one, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_policies: Option<String>,
    /// Policy fixtures run against the set in force at every load and every 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_fixtures: Option<String>,
    /// This agent's fleet identity certificate for calls between agents (`fleet-ca issue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity_cert: Option<String>,
    /// Private key (mode 0600) of `agent-identity-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity_key: Option<String>,
    /// The fleet CA certificate peers' identities must chain to (`fleet-ca init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_ca_cert: Option<String>,
    /// Address of the mutual-TLS endpoint where other agents' sidecars call this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a_listen: Option<String>,
    /// The agent's own endpoint (`http://127.0.0.1:PORT`) admitted calls go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a_forward: Option<String>,
}

/// A value of the file: a switch, or the texts a flag would be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileValue {
    /// A switch (`keep-pinned: true`).
    Switch(bool),
    /// One value per occurrence of the flag.
    Texts(Vec<String>),
}

/// A config file read and checked against [`ConfigFile`].
#[derive(Clone, Debug)]
pub struct LoadedFile {
    /// The file as named.
    pub path: PathBuf,
    /// Its values by key, relative paths resolved against its directory.
    pub values: BTreeMap<String, FileValue>,
    positions: KeyPositions,
}

/// Keys whose values are paths (resolved against the file's directory).
const PATH_KEYS: &[&str] = &[
    "policy",
    "policy-dir",
    "policy-archive",
    "ca-cert",
    "ca-key",
    "upstream-ca",
    "admin-token-file",
    "redaction-key",
    "webhook-secret-file",
    "baseline-dir",
    "bpffs",
    "state-dir",
    "audit-dir",
    "audit-key",
    "audit-witness-file",
    "audit-otlp-headers-file",
    "audit-webhook-secret-file",
    "audit-webhook-headers-file",
    "host-cgroupfs",
    "fleet-controls",
    "approvers-file",
    "shadow-policies",
    "policy-fixtures",
    "agent-identity-cert",
    "agent-identity-key",
    "fleet-ca-cert",
];

impl LoadedFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks `text` as the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = match yaml::from_str::<Option<ConfigFile>>(text) {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => return Err(file_error(path, e)),
        };
        let base = path.parent().unwrap_or(Path::new(""));
        let mut values = BTreeMap::new();
        let Value::Object(map) = serde_json::to_value(&file).expect("the config serializes") else {
            unreachable!("ConfigFile is a struct")
        };
        for (key, value) in map {
            let value = match value {
                Value::Bool(b) => FileValue::Switch(b),
                Value::Array(items) => FileValue::Texts(items.iter().map(text_of).collect()),
                other => FileValue::Texts(vec![text_of(&other)]),
            };
            let value = match value {
                // `baseline-dir: none` keeps baselines in memory: a word, not a path.
                FileValue::Texts(texts) if key == "baseline-dir" && texts == ["none"] => {
                    FileValue::Texts(texts)
                }
                FileValue::Texts(texts) if PATH_KEYS.contains(&key.as_str()) => {
                    FileValue::Texts(texts.iter().map(|t| relative_to(base, t)).collect())
                }
                FileValue::Texts(texts) if key == "secret" => {
                    FileValue::Texts(texts.iter().map(|t| secret_relative_to(base, t)).collect())
                }
                v => v,
            };
            values.insert(key, value);
        }
        Ok(LoadedFile {
            path: path.to_path_buf(),
            values,
            positions: KeyPositions::index(text),
        })
    }

    /// `(line, column)` of the value of `key` (its `index`th item for a
    /// list), or of the key, or `(0, 0)`.
    pub fn position(&self, key: &str, index: Option<usize>) -> (u32, u32) {
        self.positions.at(key, index)
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn relative_to(base: &Path, value: &str) -> String {
    let p = Path::new(value);
    if p.is_absolute() || value.is_empty() {
        value.to_string()
    } else {
        base.join(p).to_string_lossy().into_owned()
    }
}

/// `NAME=file:PATH` with a relative PATH is resolved like other paths.
fn secret_relative_to(base: &Path, value: &str) -> String {
    match value.split_once("=file:") {
        Some((name, path)) => format!("{name}=file:{}", relative_to(base, path)),
        None => value.to_string(),
    }
}

/// The keys of the file, in the order of [`ConfigFile`].
pub fn file_keys() -> Vec<String> {
    let schema = schemars::schema_for!(ConfigFile);
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn file_error(path: &Path, e: yaml::YamlError) -> ConfigError {
    if let Some(at) = e.message.find("unknown field `")
        && let Some((key, _)) = e.message[at + "unknown field `".len()..].split_once('`')
    {
        let keys = file_keys();
        let (message, help) = match suggest::nearest(key, keys.iter().map(String::as_str)) {
            Some(near) => (
                format!("unknown key `{key}`: did you mean `{near}`?"),
                format!(
                    "rename it to `{near}`; every key is the name of a flag of `run` without `--` (docs/config.md)"
                ),
            ),
            None => (
                format!("unknown key `{key}`"),
                "remove it; every key is the name of a flag of `run` without `--` (docs/config.md lists them)".to_string(),
            ),
        };
        return ConfigError::file(path, e.line, e.column, message, help);
    }
    let help = if e.message.contains("duplicate") {
        "write each key once"
    } else if e.message.contains("invalid type")
        || e.message.contains("expected")
        || e.message.contains("invalid")
    {
        "give the value the type docs/config.md (and docs/config.schema.json) shows for the key: a list for a repeatable flag, true/false for a switch, a whole number for a count"
    } else {
        "see docs/config.md for the format"
    };
    ConfigError::file(path, e.line, e.column, e.message, help)
}

/// The JSON Schema (draft 2020-12) of the config file.
pub fn schema() -> Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let mut root = g.root_schema_for::<ConfigFile>().to_value();
    if let Value::Object(m) = &mut root {
        m.insert(
            "$id".into(),
            json!("https://example.invalid/agent-sidecar/config.schema.json"),
        );
        m.insert(
            "description".into(),
            json!("The config file of `agent-sidecar run` (YAML). Every key is a flag of `run` without `--`; precedence: flag > AGENT_SIDECAR_* variable > file > default. Generated from the code: see docs/config.md."),
        );
    }
    root
}

/// [`schema`] as the text written to `docs/config.schema.json`.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).expect("schema serializes");
    s.push('\n');
    s
}
