//! The input stage: what everything but the forwarded call keeps of a
//! call's input. Once the action is recognised, its body (MCP: arguments)
//! becomes an [`InputView`] by the action's redaction in the policy
//! (declared fields kept or hashed with the deployment's key, the rest
//! dropped); the audit records, the approval, the owner's notice and the
//! compensation entry take that view, never the raw input.

use std::sync::Arc;

use serde_json::Value;

use super::binding::Shown;
use crate::{
    policy::{Action, CompiledPolicySet, Tier, gateway::FieldRedaction},
    redaction::{InputView, RedactionKey, body_view},
};

/// This stage's handle: the deployment's redaction key.
#[derive(Clone, Default)]
pub(crate) struct Inputs {
    key: Option<Arc<RedactionKey>>,
}

impl Inputs {
    /// Views made with `key` (without one, fields to hash are dropped).
    pub(crate) fn new(key: Option<Arc<RedactionKey>>) -> Self {
        Inputs { key }
    }

    /// The key of keyed hashes, if the gateway has one.
    pub(crate) fn key(&self) -> Option<&RedactionKey> {
        self.key.as_deref()
    }

    /// The redaction of `action` in `policy` (`None`: undeclared, nothing
    /// of its body is kept).
    pub(crate) fn rules<'p>(
        &self,
        policy: &'p CompiledPolicySet,
        action: &Action,
    ) -> Option<&'p FieldRedaction> {
        match (&action.tool, &action.action) {
            (Some(t), Some(a)) => policy.redaction(t, a).map(|r| &**r),
            _ => None,
        }
    }

    /// Whether a call decided at `tier` needs its view: always when
    /// attempts are journalled, else for the tiers whose request is shown
    /// (2: the owner, 3: the approvers).
    pub(crate) fn needed(journal: bool, tier: Tier) -> bool {
        journal || matches!(tier, Tier::Supervised | Tier::Approval)
    }

    /// How the request of `action` is shown, with its body's `view`.
    pub(crate) fn shown<'a>(
        &'a self,
        policy: &'a CompiledPolicySet,
        action: &Action,
        view: &'a InputView,
    ) -> Shown<'a> {
        Shown {
            rules: self.rules(policy, action),
            key: self.key(),
            view,
        }
    }

    /// The view of a call's body (`json` when it parsed, else its raw
    /// `bytes`).
    pub(crate) fn view(
        &self,
        policy: &CompiledPolicySet,
        action: &Action,
        json: Option<&Value>,
        bytes: &[u8],
    ) -> InputView {
        body_view(
            self.rules(policy, action),
            self.key(),
            json,
            bytes,
            &policy.version().hash,
        )
    }
}
