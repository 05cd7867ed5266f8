//! Kubernetes injection: the mutating admission webhook's decisions.
//!
//! - [`select`]: whether a pod gets the sidecar (namespace label, pod
//!   label or annotation with the pod's choice winning, system namespaces,
//!   host-network pods, already injected, missing owner);
//! - [`patch`]: the JSONPatch that adds the sidecar as a native sidecar
//!   (init container with `restartPolicy: Always`), its volumes and the
//!   agent containers' proxy and CA environment;
//! - [`review`]: one `AdmissionReview` v1 request in, one response out;
//! - [`certs`] and [`server`]: the HTTPS server, its certificate reloaded
//!   when the files change.

pub mod certs;
pub mod patch;
pub mod review;
pub mod select;
pub mod server;

/// Label or annotation with which a pod (or namespace label) asks for
/// (`"true"`) or refuses (`"false"`) injection.
pub const INJECT_KEY: &str = "agent-sidecar.io/inject";
/// Annotation recording that the pod was injected; makes injection idempotent.
pub const STATUS_ANNOTATION: &str = "agent-sidecar.io/status";
/// Value of [`STATUS_ANNOTATION`] once injected.
pub const STATUS_INJECTED: &str = "injected";
/// Annotation naming the accountable owner; required for injection.
pub const OWNER_ANNOTATION: &str = "agent-sidecar.io/owner";
/// Annotation naming the agent's document in the policy set; required for
/// injection.
pub const AGENT_ID_ANNOTATION: &str = "agent-sidecar.io/agent-id";
/// Identity annotations passed to the sidecar via the downward API:
/// (annotation, environment variable of the sidecar).
pub const IDENTITY_ANNOTATIONS: [(&str, &str); 5] = [
    (AGENT_ID_ANNOTATION, "AGENT_SIDECAR_AGENT_ID"),
    (OWNER_ANNOTATION, "AGENT_SIDECAR_OWNER"),
    ("agent-sidecar.io/team", "AGENT_SIDECAR_TEAM"),
    ("agent-sidecar.io/purpose", "AGENT_SIDECAR_PURPOSE"),
    ("agent-sidecar.io/environment", "AGENT_SIDECAR_ENVIRONMENT"),
];
