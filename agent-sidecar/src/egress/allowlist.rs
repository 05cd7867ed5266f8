//! The egress rule set of one agent, merged from policy files and `--allow`
//! flags, each rule remembering where it came from.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Target;

/// Which transport protocols a rule allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocols {
    /// TCP and UDP (the default).
    #[default]
    Any,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
}

impl Protocols {
    /// IANA protocol numbers covered by this setting.
    pub fn numbers(self) -> &'static [u8] {
        use agent_sidecar_common::{PROTO_TCP, PROTO_UDP};
        match self {
            Protocols::Any => &[PROTO_TCP, PROTO_UDP],
            Protocols::Tcp => &[PROTO_TCP],
            Protocols::Udp => &[PROTO_UDP],
        }
    }
}

/// Where a rule was written, so logs and errors can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSource {
    /// The n-th `--allow` flag (1-based).
    Flag(usize),
    /// A policy file and the rule's index in its `egress.allow` list (1-based).
    Policy {
        /// Path of the policy file.
        file: String,
        /// 1-based index in `egress.allow`.
        index: usize,
    },
    /// A policy file (or tier policy document) and the rule's index in its
    /// `egress.names` list (1-based).
    PolicyName {
        /// Path of the file.
        file: String,
        /// 1-based index in `egress.names`.
        index: usize,
    },
    /// A just-in-time grant, by id.
    Grant(String),
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Flag(n) => write!(f, "--allow #{n}"),
            RuleSource::Policy { file, index } => write!(f, "{file}: egress.allow[{index}]"),
            RuleSource::PolicyName { file, index } => write!(f, "{file}: egress.names[{index}]"),
            RuleSource::Grant(id) => write!(f, "grant {id}"),
        }
    }
}

/// One allowlist rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRule {
    /// Destination.
    pub target: Target,
    /// Protocols.
    pub protocols: Protocols,
    /// Origin of the rule.
    pub source: RuleSource,
}

/// An agent's egress allowlist. Rule ids reported by the kernel are indices
/// into [`Allowlist::rules`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<EgressRule>,
}

impl Allowlist {
    /// An empty allowlist: the agent may reach nothing but the sidecar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a rule.
    pub fn push(&mut self, rule: EgressRule) {
        self.rules.push(rule);
    }

    /// Appends every rule of `other`.
    pub fn extend(&mut self, other: Allowlist) {
        self.rules.extend(other.rules);
    }

    /// The rules in order.
    pub fn rules(&self) -> &[EgressRule] {
        &self.rules
    }

    /// Whether the allowlist has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
