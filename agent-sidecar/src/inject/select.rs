//! Whether a pod gets the sidecar.

use k8s_openapi::api::core::v1::Pod;

use super::patch::SIDECAR_NAME;
use super::{
    AGENT_ID_ANNOTATION, INJECT_KEY, OWNER_ANNOTATION, STATUS_ANNOTATION, STATUS_INJECTED,
};

/// Namespaces never injected, whatever the pod asks.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// What the webhook does with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Add the sidecar.
    Inject,
    /// Admit unchanged; the reason is returned as an admission warning.
    Skip(String),
    /// Refuse the pod; the message tells the author how to fix it.
    Refuse(String),
}

/// Decides for `pod` in `namespace`. `namespace_selected` is true when the
/// namespace carries `agent-sidecar.io/inject=true` (the webhook
/// configuration's namespace selector routes those pods to a distinct
/// path). The pod's own choice wins over the namespace's: its annotation,
/// else its label. `injector_namespace` is the webhook's own namespace,
/// never injected.
///
/// A pod that carries the status annotation without the sidecar it
/// records (a hand-written annotation to escape injection) is refused, as
/// is a pod that already has a container named like the sidecar.
pub fn decide(
    pod: &Pod,
    namespace: &str,
    namespace_selected: bool,
    injector_namespace: &str,
    image: &str,
) -> Decision {
    let meta = &pod.metadata;
    let annotation = meta.annotations.as_ref().and_then(|a| a.get(INJECT_KEY));
    let label = meta.labels.as_ref().and_then(|l| l.get(INJECT_KEY));
    let pod_choice = annotation
        .or(label)
        .map(|v| v.trim().eq_ignore_ascii_case("true"));
    if !pod_choice.unwrap_or(namespace_selected) {
        return Decision::Skip(format!(
            "agent-sidecar: not injected: neither the pod nor namespace {namespace:?} asks for it \
             (set label or annotation {INJECT_KEY}=true)"
        ));
    }
    if SYSTEM_NAMESPACES.contains(&namespace) || namespace == injector_namespace {
        return Decision::Skip(format!(
            "agent-sidecar: not injected: {namespace:?} is a system namespace; \
             run agents in a namespace of their own"
        ));
    }
    let injected = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION));
    let spec = pod.spec.as_ref();
    let sidecar = spec
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == SIDECAR_NAME));
    if injected.is_some() {
        let genuine = injected.map(String::as_str) == Some(STATUS_INJECTED)
            && sidecar.is_some_and(|c| {
                c.image.as_deref() == Some(image) && c.restart_policy.as_deref() == Some("Always")
            });
        if genuine {
            return Decision::Skip("agent-sidecar: already injected".to_owned());
        }
        return Decision::Refuse(format!(
            "agent-sidecar: pod carries the {STATUS_ANNOTATION} annotation but not the sidecar \
             it records (init container {SIDECAR_NAME:?}, image {image:?}, restartPolicy \
             Always); remove the annotation from the pod template and let the webhook inject"
        ));
    }
    let mut names = spec.into_iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    });
    if names.any(|c| c.name == SIDECAR_NAME) {
        return Decision::Refuse(format!(
            "agent-sidecar: pod already has a container named {SIDECAR_NAME:?}; the name is \
             reserved for the injected sidecar: rename that container"
        ));
    }
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return Decision::Skip(
            "agent-sidecar: not injected: hostNetwork pods share the node's network and \
             cannot be governed per pod; run the agent without hostNetwork"
                .to_owned(),
        );
    }
    let owner = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION));
    if owner.is_none_or(|o| o.trim().is_empty()) {
        return Decision::Refuse(format!(
            "agent-sidecar: pod asks for injection but has no {OWNER_ANNOTATION} annotation; \
             every governed agent needs an accountable owner: add \
             metadata.annotations[\"{OWNER_ANNOTATION}\"] to the pod template"
        ));
    }
    let agent_id = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(AGENT_ID_ANNOTATION))
        .map(String::as_str)
        .unwrap_or_default();
    if crate::kernel::pins::validate_agent_id(agent_id).is_err() {
        return Decision::Refuse(format!(
            "agent-sidecar: pod asks for injection but its {AGENT_ID_ANNOTATION} annotation \
             is {agent_id:?}; the sidecar decides by the agent's document in the policy set \
             and cannot start without one: set metadata.annotations[\"{AGENT_ID_ANNOTATION}\"] \
             in the pod template to the agent's id (1-64 of A-Z a-z 0-9 . _ -, not starting \
             with . or -)"
        ));
    }
    Decision::Inject
}
