//! Replaying an audit trail's tool calls under two policy sets.

use std::{ops::ControlFlow, path::Path};

use super::{
    compare::{Difference, compare},
    report::ShadowReport,
};
use crate::{
    audit::{
        AuditRecord, Phase, RecordKind,
        query::{QueryError, QueryFilter, query},
        record::ActionType,
    },
    policy::{Action, ActionTarget, AgentIdentity, Attributes, CompileError, CompiledPolicySet},
};

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trail could not be read.
    #[error("audit trail: {0}")]
    Trail(#[from] QueryError),
    /// A policy directory does not compile.
    #[error("{which} policy set: {source}")]
    Policy {
        /// `active` or `candidate`.
        which: &'static str,
        /// Why.
        source: CompileError,
    },
}

/// The action a tool call record stands for, as the policy decided it:
/// the agent, the tool and action names, the target and the declared
/// attributes the record kept. `None` for a record without them.
pub(super) fn action_of(r: &AuditRecord) -> Option<Action> {
    let info = r.action.as_ref()?;
    let target = info.target.as_ref().and_then(|t| match info.kind {
        ActionType::Rest => Some(ActionTarget::Http {
            host: t.host.clone()?,
            method: t.method.clone()?,
            path: t.path.clone()?,
        }),
        ActionType::Mcp => Some(ActionTarget::Mcp {
            server: t.host.clone()?,
            tool: t.mcp_tool.clone()?,
        }),
        _ => None,
    });
    if target.is_none() && info.tool.is_none() {
        return None;
    }
    let attributes: Attributes = match &info.attributes {
        Some(v) => serde_json::from_value(v.clone()).ok()?,
        None => Attributes::default(),
    };
    Some(Action {
        agent: AgentIdentity {
            id: r.agent.id.clone(),
            environment: r.agent.environment.clone().unwrap_or_default(),
            owner: r.agent.owner.clone(),
            team: r.agent.team.clone(),
            purpose: r.agent.purpose.clone(),
        },
        tool: info.tool.clone(),
        action: info.name.clone(),
        target,
        attributes,
    })
}

/// Decides every tool call recorded in the trail at `trail` (each call's
/// outcome record, once per call; `filter` narrows them) under `active`
/// and `candidate`, and reports exactly the decisions that differ.
pub fn replay(
    trail: &Path,
    filter: &QueryFilter,
    active: &CompiledPolicySet,
    candidate: &CompiledPolicySet,
) -> Result<ShadowReport, ReplayError> {
    let mut report = ShadowReport::new(&active.version().hash, &candidate.version().hash);
    let filter = QueryFilter {
        kind: Some(RecordKind::ToolCall),
        ..filter.clone()
    };
    query(trail, &filter, |r, _| {
        if r.phase != Phase::Outcome {
            return ControlFlow::Continue(());
        }
        match action_of(r) {
            Some(action) => {
                let decided = active.decide(&action);
                report.add(&r.id, &r.agent.id, compare(&decided, candidate, &action));
            }
            None => report.skipped += 1,
        }
        ControlFlow::Continue(())
    })?;
    Ok(report.finish())
}

/// [`replay`] with the two sets compiled from their directories.
pub fn replay_dirs(
    trail: &Path,
    filter: &QueryFilter,
    active: &Path,
    candidate: &Path,
) -> Result<ShadowReport, ReplayError> {
    let load = |which, dir| {
        CompiledPolicySet::load_dir(dir).map_err(|source| ReplayError::Policy { which, source })
    };
    replay(
        trail,
        filter,
        &load("active", active)?,
        &load("candidate", candidate)?,
    )
}

/// The differences a running sidecar recorded (`--shadow-policies`): its
/// trail's `shadow_difference` records grouped by change, against the
/// tool calls it decided in the same span (`filter` narrows both).
pub fn recorded(trail: &Path, filter: &QueryFilter) -> Result<ShadowReport, ReplayError> {
    let mut report = ShadowReport::default();
    query(trail, filter, |r, _| {
        match r.kind {
            RecordKind::ToolCall if r.phase == Phase::Outcome => {
                report.actions += 1;
                if let Some(p) = &r.policy {
                    report.active_version.clone_from(&p.version);
                }
            }
            RecordKind::ShadowDifference => {
                let detail = r.detail.as_ref();
                let diff = detail
                    .and_then(|d| d.get("difference"))
                    .and_then(|d| serde_json::from_value::<Difference>(d.clone()).ok());
                match diff {
                    Some(diff) => {
                        if let Some(v) = detail
                            .and_then(|d| d.get("candidate_version"))
                            .and_then(|v| v.as_str())
                        {
                            report.candidate_version = v.to_string();
                        }
                        report.record(&r.id, &r.agent.id, diff);
                    }
                    None => report.skipped += 1,
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    Ok(report.finish())
}
