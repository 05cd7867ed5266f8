//! Compile-time checks of an agent's `delegation:` section against the
//! set's tools, and its answer schemas compiled.

/// Checks agent `doc`'s `delegation:` against the set's tools and compiles
/// its answer schemas; problems name the field and the fix.
pub(crate) fn compile(
    section: &super::delegation::DelegationSection,
    tools: &super::tool::ToolTable,
    doc: &super::scoped_doc::Doc<'_>,
    problems: &mut Vec<super::error::Problem>,
) -> std::sync::Arc<super::delegation::CompiledDelegation> {
    use super::error::Problem;
    use super::tool::ToolMatch;
    let at = |path: &str| doc.parsed.at(&format!("delegation.{path}"));
    let mut answers = Vec::new();
    for (i, d) in section.delegates.iter().enumerate() {
        let mut schemas = crate::delegation::answer::AnswerSchemas::default();
        let Some((td, team, agent)) = d.parts() else {
            problems.push(Problem::new(
                at(&format!("delegates[{i}].to")),
                format!("`{}` is not a fleet SPIFFE ID", d.to),
                "write spiffe://<trust-domain>/team/<team>/agent/<agent> (lowercase letters, digits, `-`, `.`), as `fleet-ca issue` prints it",
            ));
            answers.push(schemas);
            continue;
        };
        if section.delegates[..i].iter().any(|o| o.to == d.to) {
            problems.push(Problem::new(
                at(&format!("delegates[{i}].to")),
                format!("`{}` is listed twice", d.to),
                "give each callee one entry",
            ));
        }
        if d.permissions.is_empty() {
            problems.push(Problem::new(
                at(&format!("delegates[{i}].permissions")),
                "`permissions` is empty: nothing could be delegated",
                "list the callee's tools or tool.action names this agent may hand over",
            ));
        }
        let tool = tools
            .names
            .get(d.tool.as_str())
            .map(|&id| &tools.tools[id as usize]);
        match tool.map(|t| &t.matcher) {
            None => problems.push(Problem::new(
                at(&format!("delegates[{i}].tool")),
                format!("tool `{}` is not declared", d.tool),
                "declare the callee's endpoint as an HTTP tool (`tools:` with `http.host`) and name it here",
            )),
            Some(ToolMatch::Mcp(_)) => problems.push(Problem::new(
                at(&format!("delegates[{i}].tool")),
                format!("tool `{}` is an MCP tool", d.tool),
                "agents are called over HTTP through their sidecar's endpoint: declare an HTTP tool",
            )),
            Some(ToolMatch::Http(host)) => {
                let expected = format!("{agent}.{team}.{td}");
                if *host != expected {
                    problems.push(Problem::new(
                        at(&format!("delegates[{i}].tool")),
                        format!(
                            "tool `{}` has host `{host}`, but {} answers as `{expected}`",
                            d.tool, d.to
                        ),
                        format!(
                            "set the tool's http.host to `{expected}`: the callee's certificate is checked against that name"
                        ),
                    ));
                }
            }
        }
        let actions: Vec<&str> = tool
            .map(|t| {
                t.actions
                    .iter()
                    .map(|&a| &*tools.actions[a as usize].name)
                    .collect()
            })
            .unwrap_or_default();
        for (action, schema) in &d.answer_schemas {
            if tool.is_some() && !actions.contains(&action.as_str()) {
                problems.push(Problem::new(
                    at(&format!("delegates[{i}].answer_schemas.{action}")),
                    format!("tool `{}` has no action `{action}`", d.tool),
                    "key answer schemas by the tool's action names",
                ));
            }
            if let Err(e) = schemas.insert(action, schema) {
                problems.push(Problem::new(
                    at(&format!("delegates[{i}].answer_schemas.{action}")),
                    e.to_string(),
                    "write a JSON schema (draft 2020-12)",
                ));
            }
        }
        for a in &actions {
            if !d.answer_schemas.contains_key(*a) {
                problems.push(Problem::new(
                    at(&format!("delegates[{i}].answer_schemas")),
                    format!("action `{a}` of tool `{}` has no answer schema", d.tool),
                    "declare the JSON schema of the callee's answer: answers are checked before the agent sees them",
                ));
            }
        }
        answers.push(schemas);
    }
    for (i, a) in section.accept_from.iter().enumerate() {
        if super::delegation::spiffe_parts(a).is_none() {
            problems.push(Problem::new(
                at(&format!("accept_from[{i}]")),
                format!("`{a}` is not a fleet SPIFFE ID"),
                "write spiffe://<trust-domain>/team/<team>/agent/<agent>",
            ));
        }
    }
    std::sync::Arc::new(super::delegation::CompiledDelegation {
        section: section.clone(),
        answers,
    })
}
