//! From a snapshot of YAML files to a [`CompiledPolicySet`]: parse every
//! document, link the hierarchy, compile tools and rules, check that no
//! child loosens its parents, then build the decision indexes. Any problem
//! fails the whole set: there is no partially compiled set.

use std::{collections::HashMap, path::Path, sync::Arc};

use super::{
    defaults::{DEFAULT_FIELDS, EffectiveDefaults, Floor, OverlayDefaults, built_in},
    detection::DetectionPolicy,
    document::{self, BaseDoc, Document, Parsed},
    error::{CompileError, Problem},
    gateway_table::GatewayTable,
    index::{RuleId, ScopeId},
    links::Hierarchy,
    location::Location,
    names::Ids,
    redact,
    rules::compile_rules,
    scoped_doc::{Doc, floors},
    set::{Agent, CompiledPolicySet, Rule, Scope},
    source::Snapshot,
    tighten,
    tool::ToolTable,
    version::{PolicyVersion, content_hash},
    vocab::Vocab,
};
use crate::egress::{Allowlist, EgressRule, NameRule, RuleSource};

/// The most classes a vocabulary may hold (they are bits of a `u64`).
pub(crate) const MAX_CLASSES: usize = 64;

/// The vocabulary the base document declares; problems are appended.
fn vocab(base: &BaseDoc, p: &Parsed, problems: &mut Vec<Problem>) -> Vocab {
    let code_ok = |c: &str| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
    if !code_ok(&base.currency) {
        problems.push(Problem::new(
            p.at("currency"),
            format!("`{}` is not an ISO 4217 currency code", base.currency),
            "write three upper-case letters, e.g. USD",
        ));
    }
    let mut rates = HashMap::new();
    for (code, rate) in &base.exchange_rates {
        if !(code_ok(code) && rate.is_finite() && *rate > 0.0) {
            problems.push(Problem::new(
                p.at(&format!("exchange_rates.{code}")),
                format!("invalid exchange rate `{code}: {rate}`"),
                "write `CODE: RATE` with a three-letter upper-case code and a positive number of base-currency units per unit",
            ));
        }
        rates.insert(code.clone(), *rate);
    }
    if base.label.trim().is_empty() {
        problems.push(Problem::new(
            p.at("label"),
            "`label` is empty",
            "set a human version label, e.g. `label: 2026.11.21-1`",
        ));
    }
    unique_list(&base.environments, "environments", p, problems);
    let mut classes = |list: &[String], key: &str| {
        let path = format!("vocabulary.{key}");
        unique_list(list, &path, p, problems);
        if list.len() > MAX_CLASSES {
            problems.push(Problem::new(
                p.at(&path),
                format!(
                    "{} {key} values; at most {MAX_CLASSES} are supported",
                    list.len()
                ),
                "merge classes",
            ));
        }
        list.iter().map(|s| Arc::from(s.as_str())).collect()
    };
    let sensitivity = classes(&base.vocabulary.sensitivity, "sensitivity");
    let regulatory = classes(&base.vocabulary.regulatory, "regulatory");
    Vocab {
        currency: base.currency.as_str().into(),
        rates,
        sensitivity,
        regulatory,
    }
}

/// Each `approval_chains:` entry is well formed, names tools the set
/// declares (a misspelt tool would silently match nothing) and has a name
/// unique in its document.
fn check_approval_chains(docs: &[Doc<'_>], tools: &ToolTable, problems: &mut Vec<Problem>) {
    for d in docs {
        let chains = d.doc().approval_chains();
        for (i, c) in chains.iter().enumerate() {
            let path = format!("approval_chains[{i}]");
            if let Err(e) = c.validate() {
                problems.push(Problem::new(
                    d.parsed.at(&path),
                    e.to_string(),
                    "see docs/approvals.md#approval-chains-and-approvers",
                ));
            }
            if chains[..i].iter().any(|o| o.name == c.name) {
                problems.push(Problem::new(
                    d.parsed.at(&format!("{path}.name")),
                    format!("approval chain name `{}` is used twice", c.name),
                    "give each chain its own name: approvals and the audit trail refer to it",
                ));
            }
            for (j, t) in c.tools.iter().enumerate() {
                if t != "*" && !tools.names.contains_key(t.as_str()) {
                    problems.push(Problem::new(
                        d.parsed.at(&format!("{path}.tools[{j}]")),
                        format!(
                            "approval chain `{}` names tool `{t}`, which no document declares",
                            c.name
                        ),
                        "use a tool name from a `tools:` section, or `*`",
                    ));
                }
            }
        }
    }
}

/// Each `grantable:` entry names exact `IP:PORT` targets and a TTL bound
/// between 1 s and 7 days.
fn check_grantable(
    entries: &[super::model::grantable::GrantableDecl],
    tools: &ToolTable,
    p: &Parsed,
    problems: &mut Vec<Problem>,
) {
    use super::model::grantable::{GrantableKind, MAX_GRANT_TTL_SECS};
    for (i, g) in entries.iter().enumerate() {
        if g.targets.is_empty() {
            problems.push(Problem::new(
                p.at(&format!("grantable[{i}].targets")),
                "`targets` is empty: nothing could be granted",
                "list the exact destinations that may be granted, as IP:PORT",
            ));
        }
        for (j, t) in g.targets.iter().enumerate() {
            let action_of = |q: &str| {
                let (tool, act) = q.rsplit_once('.')?;
                let id = *tools.names.get(tool)?;
                tools.tools[id as usize]
                    .actions
                    .iter()
                    .any(|&a| &*tools.actions[a as usize].name == act)
                    .then_some(())
            };
            let (ok, help) = match g.kind {
                GrantableKind::Egress => (
                    t.parse::<crate::egress::Target>().is_ok_and(|x| {
                        x.net.prefix_len() == x.net.max_prefix_len() && x.port.is_some()
                    }),
                    "an egress grant opens exactly one destination: write IP:PORT (e.g. 198.51.100.7:443 or [2001:db8::7]:443)",
                ),
                GrantableKind::Tool => (
                    tools.names.contains_key(t.as_str()),
                    "a tool grant names a tool a `tools:` section declares",
                ),
                GrantableKind::Action => (
                    action_of(t).is_some(),
                    "an action grant names a declared action as tool.action",
                ),
                GrantableKind::TierCeiling => (
                    matches!(t.as_str(), "1" | "2" | "3"),
                    "a tier ceiling is 1, 2 or 3 (no grant lowers tier 4 or deny)",
                ),
            };
            if !ok {
                problems.push(Problem::new(
                    p.at(&format!("grantable[{i}].targets[{j}]")),
                    format!("`{t}` is not a valid target of this kind"),
                    help,
                ));
            }
        }
        if g.max_ttl_secs == 0 || g.max_ttl_secs > MAX_GRANT_TTL_SECS {
            problems.push(Problem::new(
                p.at(&format!("grantable[{i}].max_ttl_secs")),
                format!(
                    "`max_ttl_secs: {}` is outside 1..={MAX_GRANT_TTL_SECS}",
                    g.max_ttl_secs
                ),
                "grants are time-bound: give at most 7 days (604800 s)",
            ));
        }
    }
}

/// Each document's `quotas:` have unique names and an `on_reach` of 3,
/// 4 or deny (a limit cannot lower a decision to 1 or 2).
fn check_quotas(docs: &[Doc<'_>], problems: &mut Vec<Problem>) {
    for d in docs {
        let quotas = d.doc().quotas();
        for (i, q) in quotas.iter().enumerate() {
            if quotas[..i].iter().any(|o| o.name == q.name) {
                problems.push(Problem::new(
                    d.parsed.at(&format!("quotas[{i}].name")),
                    format!("quota name `{}` is used twice", q.name),
                    "give each limit a unique name: counters, metrics and the audit trail refer to it",
                ));
            }
            if q.on_reach < crate::policy::Tier::Approval {
                problems.push(Problem::new(
                    d.parsed.at(&format!("quotas[{i}].on_reach")),
                    format!(
                        "quota `{}`: on_reach must be 3 (approval), 4 (halt) or deny",
                        q.name
                    ),
                    "a reached limit can only raise the decision: use 3, 4 or deny",
                ));
            }
        }
    }
}

fn unique_list(list: &[String], path: &str, p: &Parsed, problems: &mut Vec<Problem>) {
    if list.is_empty() {
        problems.push(Problem::new(
            p.at(path),
            format!("`{path}` is empty"),
            "list at least one value",
        ));
    }
    for (i, v) in list.iter().enumerate() {
        if v.trim().is_empty() || list[..i].contains(v) {
            problems.push(Problem::new(
                p.at(&format!("{path}[{i}]")),
                format!("`{v}` is empty or listed twice in `{path}`"),
                "list each value once",
            ));
        }
    }
}

impl CompiledPolicySet {
    /// Compiles every policy document under `dir` (see
    /// [`Snapshot::read_dir`] for which files).
    pub fn load_dir(dir: &Path) -> Result<Self, CompileError> {
        Self::compile(Snapshot::read_dir(dir)?)
    }

    /// Compiles a snapshot. All problems found are reported together.
    pub fn compile(snapshot: Snapshot) -> Result<Self, CompileError> {
        let snapshot = Arc::new(snapshot);
        let mut problems = Vec::new();
        let mut parsed = Vec::new();
        for f in &snapshot.files {
            match document::parse(snapshot.display_name(&f.path), &f.text) {
                Ok(p) => parsed.push(p),
                Err(e) => problems.push(e),
            }
        }
        let root = Location::file(snapshot.root.display().to_string().into());
        if snapshot.files.is_empty() {
            problems.push(Problem::new(
                root.clone(),
                "no policy documents (*.yaml, *.yml) in the directory",
                "add the organisation's policy, e.g. org.yaml with `kind: base`; see examples/policies",
            ));
        }
        fail_if(problems)?;
        let mut problems = Vec::new();
        let hier = Hierarchy::build(&parsed, root, &mut problems);
        let Some(hier) = hier else {
            return Err(CompileError::Invalid(problems));
        };
        let Document::Base(base) = &parsed[hier.base].doc else {
            unreachable!("hierarchy found the base")
        };
        let vocab = vocab(base, &parsed[hier.base], &mut problems);
        let docs: Vec<Doc<'_>> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| Doc {
                parsed: p,
                scope: i as ScopeId,
                level: format!("{} {}", p.doc.kind().as_str(), p.doc.name()).into(),
            })
            .collect();
        let tools = ToolTable::compile(&docs, &vocab, &mut problems);
        let ids = Ids {
            tools: &tools.tools,
            actions: &tools.actions,
            vocab: &vocab,
        };
        let rules = compile_rules(&docs, &hier, &tools, &ids, &mut problems);
        let mut gateway = GatewayTable::compile(&docs, &tools, &mut problems);
        gateway.redactions = redact::compile_all(&docs, &tools, &mut problems);
        check_approval_chains(&docs, &tools, &mut problems);
        check_quotas(&docs, &mut problems);
        check_grantable(&base.grantable, &tools, &parsed[hier.base], &mut problems);
        fail_if(problems)?;
        let mut problems = Vec::new();
        tighten::check(&docs, &hier, &tools, &rules, &mut problems);
        fail_if(problems)?;

        let scopes = build_scopes(&docs, &rules);
        let mut problems = Vec::new();
        let mut agents = HashMap::new();
        for &i in hier.agents.values() {
            let Document::Agent(a) = &docs[i].doc() else {
                continue;
            };
            let mut chain = vec![hier.base];
            chain.extend(hier.parents[i].iter().copied().filter(|&p| p != hier.base));
            chain.push(i);
            let (egress, egress_names) = effective_egress(&docs, &hier, i);
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for &d in &chain {
                for (j, q) in docs[d].doc().quotas().iter().enumerate() {
                    if let Some(&first) = seen.get(q.name.as_str()).filter(|&&f| f != d) {
                        problems.push(
                            Problem::new(
                                docs[d].parsed.at(&format!("quotas[{j}].name")),
                                format!(
                                    "quota `{}` is also declared by {}, which applies to agent `{}` too",
                                    q.name, docs[first].level, a.id
                                ),
                                "give each limit a unique name along base, team and agent",
                            )
                            .with_related(
                                docs[first].parsed.at("quotas"),
                                "the other declaration",
                            ),
                        );
                    }
                    seen.entry(q.name.as_str()).or_insert(d);
                }
            }
            let agent = Agent {
                id: a.id.as_str().into(),
                owner: a.owner.as_str().into(),
                purpose: a.purpose.as_str().into(),
                team: a.team.as_deref().map(Arc::from),
                roles: a.roles.iter().map(|r| Arc::from(r.as_str())).collect(),
                scopes: chain.iter().map(|&d| d as ScopeId).collect(),
                defaults: effective_defaults(&docs, &chain),
                egress,
                egress_names,
                detection: effective_detection(&docs, &chain),
                quotas: chain
                    .iter()
                    .flat_map(|&d| docs[d].doc().quotas().to_vec())
                    .collect(),
                approval_chains: chain
                    .iter()
                    .rev()
                    .flat_map(|&d| docs[d].doc().approval_chains().to_vec())
                    .collect(),
                grantable: base
                    .grantable
                    .iter()
                    .filter(|g| g.selects(&a.id, a.team.as_deref()))
                    .cloned()
                    .collect(),
                delegation: a.delegation.as_ref().map(|d| {
                    super::model::delegation_check::compile(d, &tools, &docs[i], &mut problems)
                }),
            };
            agents.insert(agent.id.clone(), agent);
        }
        fail_if(problems)?;
        let unknown_agent = Agent {
            id: "".into(),
            owner: "".into(),
            purpose: "".into(),
            team: None,
            roles: Vec::new(),
            scopes: Box::new([hier.base as ScopeId]),
            defaults: effective_defaults(&docs, &[hier.base]),
            egress: Allowlist::new(),
            egress_names: Vec::new(),
            detection: effective_detection(&docs, &[hier.base]),
            quotas: docs[hier.base].doc().quotas().to_vec(),
            approval_chains: docs[hier.base].doc().approval_chains().to_vec(),
            grantable: Vec::new(),
            delegation: None,
        };
        let overlays = hier
            .overlays
            .iter()
            .map(|(env, &i)| {
                let mut d = OverlayDefaults::default();
                if let Some(defs) = docs[i].doc().defaults() {
                    let [u, m, a] = floors(&docs[i], defs);
                    d = OverlayDefaults {
                        unknown: u,
                        missing_attribute: m,
                        action: a,
                    };
                }
                (Arc::from(env.as_str()), (i as ScopeId, d))
            })
            .collect();
        let version = PolicyVersion {
            hash: content_hash(&snapshot).into(),
            label: base.label.as_str().into(),
        };
        let environments = base
            .environments
            .iter()
            .map(|e| Arc::from(e.as_str()))
            .collect();
        Ok(CompiledPolicySet {
            version,
            snapshot,
            vocab,
            environments,
            tool_names: tools.names,
            hosts: tools.hosts,
            mcp_servers: tools.mcp_servers,
            tools: tools.tools,
            actions: tools.actions,
            rules,
            scopes,
            agents,
            unknown_agent,
            overlays,
            gateway,
        })
    }
}

fn fail_if(problems: Vec<Problem>) -> Result<(), CompileError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CompileError::Invalid(problems))
    }
}

fn effective_defaults(docs: &[Doc<'_>], chain: &[usize]) -> EffectiveDefaults {
    let mut eff: [Floor; 3] = std::array::from_fn(|i| Floor {
        tier: built_in(i),
        id: format!("defaults.{}", DEFAULT_FIELDS[i]).into(),
        level: "built-in".into(),
        source: "built-in default".into(),
    });
    for (n, &d) in chain.iter().enumerate() {
        if let Some(defs) = docs[d].doc().defaults() {
            for (i, f) in floors(&docs[d], defs).into_iter().enumerate() {
                // The base may set any value; children only raise (checked).
                if let Some(f) = f.filter(|f| n == 0 || f.tier >= eff[i].tier) {
                    eff[i] = f;
                }
            }
        }
    }
    let [unknown, missing_attribute, action] = eff;
    EffectiveDefaults {
        unknown,
        missing_attribute,
        action,
    }
}

/// Each field of the detection section from the most specific document of
/// `chain` (base first) that sets it.
fn effective_detection(docs: &[Doc<'_>], chain: &[usize]) -> Arc<DetectionPolicy> {
    let mut p = DetectionPolicy::default();
    for &d in chain {
        if let Some(section) = docs[d].doc().detection() {
            p.apply(section);
        }
    }
    if p.pool.is_none() {
        p.pool = chain.last().and_then(|&d| match docs[d].doc() {
            Document::Agent(a) => a.roles.first().or(a.team.as_ref()).cloned(),
            _ => None,
        });
    }
    Arc::new(p)
}

fn effective_egress(
    docs: &[Doc<'_>],
    hier: &Hierarchy,
    agent: usize,
) -> (Allowlist, Vec<NameRule>) {
    let mut d = Some(agent);
    while let Some(i) = d {
        if let Some(e) = docs[i].doc().egress() {
            let file = docs[i].parsed.positions.file_name().to_string();
            let mut list = Allowlist::new();
            for (n, entry) in e.allow.iter().enumerate() {
                list.push(EgressRule {
                    target: entry.target,
                    protocols: entry.protocol,
                    source: RuleSource::Policy {
                        file: file.clone(),
                        index: n + 1,
                    },
                });
            }
            let mut names = Vec::new();
            for (n, entry) in e.names.iter().enumerate() {
                let mut rule = entry.rule.clone();
                rule.source = Some(RuleSource::PolicyName {
                    file: file.clone(),
                    index: n + 1,
                });
                names.push(rule);
            }
            return (list, names);
        }
        d = hier.egress_parent(i);
    }
    (Allowlist::new(), Vec::new())
}

fn build_scopes(docs: &[Doc<'_>], rules: &[Rule]) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = docs
        .iter()
        .map(|d| Scope {
            kind: Some(d.doc().kind()),
            name: d.doc().name().into(),
            level: d.level.clone(),
            file: d.parsed.positions.file_name().clone(),
            ..Scope::default()
        })
        .collect();
    let mut global: Vec<Vec<RuleId>> = vec![Vec::new(); docs.len()];
    let mut by_tool: Vec<std::collections::BTreeMap<u32, Vec<RuleId>>> =
        vec![Default::default(); docs.len()];
    let mut by_action: Vec<std::collections::BTreeMap<u32, Vec<RuleId>>> =
        vec![Default::default(); docs.len()];
    for (i, r) in rules.iter().enumerate() {
        let s = r.scope as usize;
        match (r.cond.tool, r.cond.action) {
            (_, Some(a)) => by_action[s].entry(a).or_default().push(i as RuleId),
            (Some(t), None) => by_tool[s].entry(t).or_default().push(i as RuleId),
            (None, None) => global[s].push(i as RuleId),
        }
    }
    for (s, scope) in scopes.iter_mut().enumerate() {
        scope.global = std::mem::take(&mut global[s]).into();
        scope.by_tool = std::mem::take(&mut by_tool[s])
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect();
        scope.by_action = std::mem::take(&mut by_action[s])
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect();
    }
    scopes
}
