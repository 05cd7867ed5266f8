//! `policy explain`: which rules were tested at each level of the hierarchy
//! for one action, which matched and why, which defaults applied, and why
//! the final tier won. Uses the same evaluation as
//! [`decide`](CompiledPolicySet::decide), observed.

use std::fmt;

use serde::Serialize;

use super::{
    action::Action,
    attribute::Values,
    decide::{Trace, Why},
    decision::Decision,
    defaults::Floor,
    index::{RuleId, ScopeId},
    set::CompiledPolicySet,
    tier::Tier,
};

/// The explanation of one decision.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The action, as resolved (tool, action and extracted attributes).
    pub action: Action,
    /// Defaults and baselines that applied.
    pub defaults: Vec<DefaultReport>,
    /// Each level whose rules apply, base first, overlay last.
    pub levels: Vec<LevelReport>,
    /// The decision (identical to `decide`'s).
    pub decision: Decision,
    /// The agent's quotas this call would be counted against (their
    /// counters are live state: see the sidecar's `/metrics`); a reached
    /// one raises the decision to its `on_reach`.
    pub quotas: Vec<super::model::quota::QuotaDecl>,
    /// The approval chain that decides who may approve it, if it is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_chain: Option<super::model::approval_chain::ChainSpec>,
}

/// A default or baseline that applied.
#[derive(Clone, Debug, Serialize)]
pub struct DefaultReport {
    /// Pseudo rule id.
    pub id: String,
    /// Its tier.
    pub tier: Tier,
    /// The document that set it.
    pub level: String,
    /// Where.
    pub source: String,
    /// Why it applied.
    pub why: String,
    /// Whether it is among the deciding rules.
    pub decided: bool,
}

/// The rules of one level tested for the action.
#[derive(Clone, Debug, Serialize)]
pub struct LevelReport {
    /// `base acme`, `team finance`, `overlay prod`...
    pub level: String,
    /// The document's file.
    pub file: String,
    /// Rules selected for the action (by tool, action or for every action).
    pub rules: Vec<RuleReport>,
}

/// One rule tested.
#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    /// Rule id.
    pub id: String,
    /// Tier it demands.
    pub tier: Tier,
    /// Whether all its conditions held.
    pub matched: bool,
    /// Whether it is among the deciding rules.
    pub decided: bool,
    /// Where.
    pub source: String,
    /// The condition.
    pub condition: String,
    /// Each attribute test with the actual value and its outcome.
    pub checks: Vec<String>,
}

#[derive(Default)]
struct Recorder {
    floors: Vec<(Floor, Why)>,
    rules: Vec<(ScopeId, RuleId, bool, Values)>,
}

impl Trace for Recorder {
    fn floor(&mut self, floor: &Floor, why: Why) {
        self.floors.push((floor.clone(), why));
    }

    fn rule(&mut self, scope: ScopeId, rule: RuleId, matched: bool, values: &Values) {
        self.rules.push((scope, rule, matched, *values));
    }
}

impl CompiledPolicySet {
    /// Decides `action` and reports how.
    pub fn explain(&self, action: &Action) -> Explanation {
        let mut rec = Recorder::default();
        let decision = self.evaluate(action, &mut rec);
        let decided = |id: &str, source: &str| {
            decision
                .rules
                .iter()
                .any(|r| r.id.as_ref() == id && r.source.as_ref() == source)
        };
        let defaults = rec
            .floors
            .iter()
            .map(|(f, why)| DefaultReport {
                id: f.id.to_string(),
                tier: f.tier,
                level: f.level.to_string(),
                source: f.source.to_string(),
                why: self.why_text(action, *why),
                decided: decided(&f.id, &f.source),
            })
            .collect();
        let agent = self
            .agents
            .get(action.agent.id.as_str())
            .unwrap_or(&self.unknown_agent);
        let overlay = self
            .overlays
            .get(action.agent.environment.as_str())
            .map(|(s, _)| *s);
        let ids = self.ids();
        let levels = agent
            .scopes
            .iter()
            .copied()
            .chain(overlay)
            .map(|s| {
                let scope = &self.scopes[s as usize];
                LevelReport {
                    level: scope.level.to_string(),
                    file: scope.file.to_string(),
                    rules: rec
                        .rules
                        .iter()
                        .filter(|(rs, ..)| *rs == s)
                        .map(|&(_, rid, matched, values)| {
                            let rule = &self.rules[rid as usize];
                            RuleReport {
                                id: rule.id.to_string(),
                                tier: rule.tier,
                                matched,
                                decided: decided(&rule.id, &rule.source),
                                source: rule.source.to_string(),
                                condition: rule.summary.to_string(),
                                checks: rule
                                    .cond
                                    .checks(&ids, Some(&values))
                                    .into_iter()
                                    .map(|c| {
                                        format!(
                                            "{} {}",
                                            if c.held { "holds:" } else { "fails:" },
                                            c.text
                                        )
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let quotas = self
            .quotas(&action.agent.id)
            .iter()
            .filter(|q| q.applies(action, decision.tier))
            .cloned()
            .collect();
        let (tool, act) = (
            action.tool.as_deref().unwrap_or(""),
            action.action.as_deref().unwrap_or(""),
        );
        let approval_chain = self
            .approval_chains(&action.agent.id)
            .iter()
            .find(|c| c.matches(tool, act))
            .cloned();
        Explanation {
            action: action.clone(),
            defaults,
            levels,
            decision,
            quotas,
            approval_chain,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.action;
        writeln!(
            f,
            "action:  agent `{}` in `{}`",
            a.agent.id, a.agent.environment
        )?;
        match (&a.tool, &a.action) {
            (Some(t), Some(x)) => writeln!(f, "         {t}.{x}")?,
            (Some(t), None) => writeln!(f, "         tool {t}, no declared action matched")?,
            _ => writeln!(f, "         no declared tool matched")?,
        }
        let attrs = serde_json::to_string(&a.attributes).unwrap_or_default();
        writeln!(f, "         attributes {attrs}")?;
        writeln!(f, "policy:  {}", self.decision.policy_version)?;
        writeln!(f)?;
        writeln!(f, "defaults and baselines:")?;
        for d in &self.defaults {
            writeln!(
                f,
                "  {} {:<8} {} ({}, {}): {}",
                mark(d.decided, true),
                tier_col(d.tier),
                d.id,
                d.level,
                d.source,
                d.why
            )?;
        }
        for level in &self.levels {
            writeln!(f)?;
            writeln!(f, "{} ({}):", level.level, level.file)?;
            if level.rules.is_empty() {
                writeln!(f, "  no rule of this level selects this action")?;
            }
            for r in &level.rules {
                writeln!(
                    f,
                    "  {} {:<8} {} ({})",
                    mark(r.decided, r.matched),
                    tier_col(r.tier),
                    r.id,
                    r.source
                )?;
                writeln!(f, "      when {}", r.condition)?;
                for c in &r.checks {
                    writeln!(f, "        {c}")?;
                }
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "legend: [*] matched and decided  [+] matched  [ ] did not match"
        )?;
        writeln!(
            f,
            "result:  {} (the highest tier demanded by any matching rule, default or baseline)",
            self.decision.tier
        )?;
        writeln!(f, "reason:  {}", self.decision.reason)?;
        for q in &self.quotas {
            writeln!(
                f,
                "quota:   {} ({} scope, {:?} up to {} per {}; when reached: {})",
                q.name,
                q.scope.as_str(),
                q.measure,
                q.limit,
                q.window,
                tier_col(q.on_reach)
            )?;
        }
        if let Some(c) = &self.approval_chain {
            let steps: Vec<String> = c
                .steps
                .iter()
                .map(|s| {
                    let team = s.team.as_deref().unwrap_or("the agent's team");
                    match s.up_to {
                        Some(u) => format!("{} of {team} up to {u}", s.role),
                        None => format!("{} of {team}", s.role),
                    }
                })
                .collect();
            writeln!(
                f,
                "approval chain (if held): {}: {}{}",
                c.name,
                steps.join(", then "),
                if c.four_eyes {
                    "; two distinct approvers"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

fn mark(decided: bool, matched: bool) -> &'static str {
    match (decided, matched) {
        (true, _) => "[*]",
        (false, true) => "[+]",
        (false, false) => "[ ]",
    }
}

fn tier_col(t: Tier) -> String {
    match t {
        Tier::Deny => "deny".into(),
        t => format!("tier {}", t.rank()),
    }
}
