//! Who the pod's agent is: its id, owner, team, purpose and environment
//! (from the pod's annotations, through the downward API), and the
//! instance id that names this replica's pins, locks and state.

use sha2::{Digest, Sha256};

/// Longest instance id (the pin directory's name).
const MAX_INSTANCE: usize = 64;

/// The agent's identity in a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The agent id: its document in the policy set, its metrics and
    /// records.
    pub agent_id: String,
    /// The instance id: this replica's pins, locks and state.
    pub instance_id: String,
    /// The agent's owner.
    pub owner: Option<String>,
    /// The owner's team.
    pub team: Option<String>,
    /// What the agent is for.
    pub purpose: Option<String>,
}

/// The instance id of pod `pod_name` in `namespace` (`pod_uid` breaks
/// ties): `NAMESPACE.NAME` (or the name alone) when it is a valid id of at
/// most 64 characters, else its first characters and a hash of namespace,
/// name and UID, so that two replicas (whose names differ), or same-named
/// pods of two namespaces, never share pins.
pub fn instance_id(namespace: Option<&str>, pod_name: &str, pod_uid: &str) -> String {
    let full = match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}.{pod_name}"),
        None => pod_name.to_string(),
    };
    let pod_name = full.as_str();
    let clean: String = pod_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches(['.', '-']);
    if !clean.is_empty() && clean == pod_name && clean.len() <= MAX_INSTANCE {
        return clean.to_string();
    }
    let digest = Sha256::digest(format!("{pod_name}\n{pod_uid}"));
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let keep = MAX_INSTANCE - hash.len() - 1;
    let prefix: String = clean.chars().take(keep).collect();
    let prefix = if prefix.is_empty() { "pod" } else { &prefix };
    format!("{prefix}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pins::validate_agent_id;

    #[test]
    fn instance_ids_are_valid_and_distinct_per_replica() {
        let a = instance_id(None, "reviewer-7d9f8b-abcde", "u1");
        let b = instance_id(None, "reviewer-7d9f8b-fghij", "u2");
        assert_eq!(a, "reviewer-7d9f8b-abcde");
        assert_ne!(a, b);
        let ns1 = instance_id(Some("team-a"), "reviewer-0", "u1");
        let ns2 = instance_id(Some("team-b"), "reviewer-0", "u2");
        assert_eq!(ns1, "team-a.reviewer-0");
        assert_ne!(ns1, ns2, "same-named pods of two namespaces");
        let long = "x".repeat(200);
        let l1 = instance_id(Some("ns"), &format!("{long}-a"), "u1");
        let l2 = instance_id(Some("ns"), &format!("{long}-b"), "u2");
        assert_ne!(l1, l2, "a long name keeps its distinction in the hash");
        let evil = instance_id(None, "../../evil", "u");
        let empty = instance_id(None, "", "u");
        for id in [&a, &b, &ns1, &ns2, &l1, &l2, &evil, &empty] {
            validate_agent_id(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }
}
