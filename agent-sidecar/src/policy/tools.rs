//! Compiling tool declarations into the set's [`ToolTable`]: how a request
//! is recognised as a tool's action (host + method + path pattern, or MCP
//! server + tool name) and where its attributes come from. Validation of
//! the `tools:` sections lives here.

use std::{collections::HashMap, sync::Arc};

use super::{
    attribute::{Attr, Values},
    defaults::Floor,
    document::{ActionDecl, AttributeSources, Source, ToolDecl},
    error::Problem,
    index::{ActionId, ToolId},
    interned::{self, Interned},
    location::Location,
    scoped_doc::Doc,
    tool::{ActionInfo, Extract, From, Route, Segment, Tool, ToolMatch, ToolTable},
    vocab::Vocab,
};

impl ToolTable {
    /// Compiles the `tools:` of every document; problems are appended.
    pub(crate) fn compile(docs: &[Doc<'_>], vocab: &Vocab, problems: &mut Vec<Problem>) -> Self {
        let mut table = ToolTable::default();
        let mut first_seen: HashMap<String, Location> = HashMap::new();
        for doc in docs {
            for (ti, decl) in doc.parsed.doc.tools().iter().enumerate() {
                let path = format!("tools[{ti}]");
                let location = doc.parsed.at(&path);
                if let Some(prev) = table.names.get(decl.name.as_str()) {
                    problems.push(
                        Problem::new(
                            doc.parsed.at(&format!("{path}.name")),
                            format!("tool `{}` is declared twice", decl.name),
                            "give each tool a unique name across the policy set; declare a shared tool once, in the base or a role",
                        )
                        .with_related(table.tools[*prev as usize].location.clone(), "first declared here"),
                    );
                    continue;
                }
                let matcher = match tool_match(decl, doc, &path, &mut first_seen, problems) {
                    Some(m) => m,
                    None => continue,
                };
                let id = table.tools.len() as ToolId;
                let mut tool = Tool {
                    name: decl.name.as_str().into(),
                    scope: doc.scope,
                    location,
                    matcher: matcher.clone(),
                    actions: Vec::new(),
                };
                match &matcher {
                    ToolMatch::Http(h) => table.hosts.insert(h.clone(), id),
                    ToolMatch::Mcp(s) => table.mcp_servers.insert(s.clone(), id),
                };
                if decl.actions.is_empty() {
                    problems.push(Problem::new(
                        doc.parsed.at(&format!("{path}.actions")),
                        format!("tool `{}` declares no action", decl.name),
                        "list the tool's actions under `actions:`, each with a name and its route",
                    ));
                }
                let mut names: HashMap<&str, usize> = HashMap::new();
                for (ai, a) in decl.actions.iter().enumerate() {
                    let apath = format!("{path}.actions[{ai}]");
                    if let Some(prev) = names.insert(a.name.as_str(), ai) {
                        problems.push(
                            Problem::new(
                                doc.parsed.at(&format!("{apath}.name")),
                                format!(
                                    "action `{}` is declared twice in tool `{}`",
                                    a.name, decl.name
                                ),
                                "give each action of a tool a unique name",
                            )
                            .with_related(
                                doc.parsed.at(&format!("{path}.actions[{prev}]")),
                                "first declared here",
                            ),
                        );
                        continue;
                    }
                    let Some(route) = action_route(decl, a, doc, &apath, problems) else {
                        continue;
                    };
                    if let Some(prev) = tool
                        .actions
                        .iter()
                        .find(|&&p| table.actions[p as usize].route == route)
                    {
                        problems.push(
                            Problem::new(
                                doc.parsed.at(&apath),
                                format!("action `{}` has the same route as action `{}`", a.name, table.actions[*prev as usize].name),
                                "give each action of a tool a distinct method and path (or MCP tool name)",
                            )
                            .with_related(table.actions[*prev as usize].location.clone(), "that action"),
                        );
                        continue;
                    }
                    let action =
                        compile_action(id, decl, a, doc, &path, &apath, route, vocab, problems);
                    tool.actions.push(table.actions.len() as ActionId);
                    table.actions.push(action);
                }
                table.names.insert(tool.name.clone(), id);
                table.tools.push(tool);
            }
        }
        table
    }
}

fn tool_match(
    decl: &ToolDecl,
    doc: &Doc<'_>,
    path: &str,
    first_seen: &mut HashMap<String, Location>,
    problems: &mut Vec<Problem>,
) -> Option<ToolMatch> {
    let (matcher, key, what) = match (&decl.http, &decl.mcp) {
        (Some(h), None) => {
            let host = h.host.trim().to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ':', ' ']) {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{path}.http.host")),
                    format!("`{}` is not a host name", h.host),
                    "write the host alone, without scheme, port or path (e.g. erp.internal.example)",
                ));
                return None;
            }
            (
                ToolMatch::Http(host.clone()),
                format!("http:{host}"),
                format!("host `{host}`"),
            )
        }
        (None, Some(m)) => (
            ToolMatch::Mcp(m.server.clone()),
            format!("mcp:{}", m.server),
            format!("MCP server `{}`", m.server),
        ),
        _ => {
            problems.push(Problem::new(
                doc.parsed.at(path),
                format!("tool `{}` must have exactly one of `http` and `mcp`", decl.name),
                "add `http: {host: HOST}` for an HTTP API or `mcp: {server: NAME}` for an MCP server",
            ));
            return None;
        }
    };
    let here = doc.parsed.at(path);
    if let Some(prev) = first_seen.get(&key) {
        problems.push(
            Problem::new(
                here,
                format!(
                    "tool `{}` uses {what}, which another tool already uses",
                    decl.name
                ),
                "declare one tool per host or MCP server and list all its actions there",
            )
            .with_related(prev.clone(), "the other tool"),
        );
        return None;
    }
    first_seen.insert(key, here);
    Some(matcher)
}

fn action_route(
    tool: &ToolDecl,
    a: &ActionDecl,
    doc: &Doc<'_>,
    apath: &str,
    problems: &mut Vec<Problem>,
) -> Option<Route> {
    let here = doc.parsed.at(apath);
    if tool.http.is_some() {
        if a.mcp_tool.is_some() {
            problems.push(Problem::new(
                doc.parsed.at(&format!("{apath}.mcp_tool")),
                format!(
                    "action `{}` of HTTP tool `{}` has an `mcp_tool`",
                    a.name, tool.name
                ),
                "HTTP actions are recognised by `method` and `path`; remove `mcp_tool`",
            ));
            return None;
        }
        let (Some(method), Some(path)) = (&a.method, &a.path) else {
            problems.push(Problem::new(
                here,
                format!(
                    "action `{}` of HTTP tool `{}` needs `method` and `path`",
                    a.name, tool.name
                ),
                "add e.g. `method: POST` and `path: /v1/payments/{id}`",
            ));
            return None;
        };
        let method = method.trim().to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            problems.push(Problem::new(
                doc.parsed.at(&format!("{apath}.method")),
                format!("`{method}` is not an HTTP method"),
                "write a method such as GET, POST, PUT, PATCH or DELETE",
            ));
            return None;
        }
        match parse_pattern(path) {
            Ok(segments) => Some(Route::Http { method, segments }),
            Err(what) => {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{apath}.path")),
                    format!("invalid path pattern `{path}`: {what}"),
                    "write an absolute path with literal segments, `{name}` for one segment and an optional final `*` (e.g. /v1/vendors/{id}/payments)",
                ));
                None
            }
        }
    } else {
        if a.method.is_some() || a.path.is_some() {
            problems.push(Problem::new(
                here,
                format!("action `{}` of MCP tool `{}` has `method` or `path`", a.name, tool.name),
                "MCP actions are recognised by `mcp_tool` (the `params.name` of tools/call); remove `method` and `path`",
            ));
            return None;
        }
        match &a.mcp_tool {
            Some(t) if !t.is_empty() => Some(Route::Mcp(t.clone())),
            _ => {
                problems.push(Problem::new(
                    here,
                    format!(
                        "action `{}` of MCP tool `{}` needs `mcp_tool`",
                        a.name, tool.name
                    ),
                    "add `mcp_tool: NAME`, the tool name the MCP server exposes",
                ));
                None
            }
        }
    }
}

fn parse_pattern(path: &str) -> Result<Vec<Segment>, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("it does not start with `/`");
    };
    if path.contains('?') {
        return Err(
            "it contains a query; use an attribute source `query:` to read query parameters",
        );
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        segments.push(match *part {
            "*" if last => Segment::Rest,
            "*" => return Err("`*` may only be the last segment"),
            "" if last => break,
            "" => return Err("it has an empty segment (`//`)"),
            p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Segment::Param,
            p if p.contains(['{', '}', '*']) => {
                return Err("a segment mixes text with `{`, `}` or `*`");
            }
            p => Segment::Literal(p.to_string()),
        });
    }
    Ok(segments)
}

#[allow(clippy::too_many_arguments)]
fn compile_action(
    tool: ToolId,
    decl: &ToolDecl,
    a: &ActionDecl,
    doc: &Doc<'_>,
    tpath: &str,
    apath: &str,
    route: Route,
    vocab: &Vocab,
    problems: &mut Vec<Problem>,
) -> ActionInfo {
    let qualified: Arc<str> = format!("{}.{}", decl.name, a.name).into();
    let mut sources: [Option<Extract>; 5] = Default::default();
    let mut declared = 0u8;
    let mut fallback = Values::default();
    for (level, srcs) in [
        (format!("{tpath}.attributes"), &decl.attributes),
        (format!("{apath}.attributes"), &a.attributes),
    ] {
        for (attr, src) in attribute_sources(srcs) {
            let Some(src) = src else { continue };
            let spath = format!("{level}.{}", attr.name());
            match compile_source(attr, src, doc, &spath, vocab, problems) {
                Some((extract, value)) => {
                    declared |= attr.bit();
                    sources[attr as usize] = Some(extract);
                    // An action-level source replaces the tool-level one.
                    interned::set_value(&mut fallback, attr, value);
                }
                None => continue,
            }
        }
    }
    let baseline = a.tier.map(|tier| Floor {
        tier,
        id: format!("tools.{}.actions.{}", decl.name, a.name).into(),
        level: doc.level.clone(),
        source: doc.parsed.at(&format!("{apath}.tier")).to_string().into(),
    });
    ActionInfo {
        tool,
        name: a.name.as_str().into(),
        qualified,
        location: doc.parsed.at(apath),
        route,
        baseline,
        sources,
        declared,
        fallback,
    }
}

fn attribute_sources(s: &AttributeSources) -> [(Attr, Option<&Source>); 5] {
    [
        (Attr::Amount, s.amount.as_ref()),
        (Attr::Sensitivity, s.sensitivity.as_ref()),
        (Attr::Records, s.records.as_ref()),
        (Attr::Reversibility, s.reversibility.as_ref()),
        (Attr::Regulatory, s.regulatory.as_ref()),
    ]
}

/// Validates one source; returns it and its constant or default value.
fn compile_source(
    attr: Attr,
    src: &Source,
    doc: &Doc<'_>,
    spath: &str,
    vocab: &Vocab,
    problems: &mut Vec<Problem>,
) -> Option<(Extract, Option<Interned>)> {
    let at = |key: &str| doc.parsed.at(&format!("{spath}.{key}"));
    let bad = |problems: &mut Vec<Problem>, loc: Location, msg: String, help: &str| {
        problems.push(Problem::new(loc, msg, help.to_string()));
        None
    };
    if src.count && attr != Attr::Records {
        return bad(
            problems,
            at("count"),
            format!("`count` applies to `records` only, not `{}`", attr.name()),
            "remove `count`",
        );
    }
    if src.currency.is_some() && attr != Attr::Amount {
        return bad(
            problems,
            at("currency"),
            format!("`currency` applies to `amount` only, not `{}`", attr.name()),
            "remove `currency`",
        );
    }
    let from = match source_from(src) {
        Ok(f) => f,
        Err(msg) => {
            return bad(
                problems,
                doc.parsed.at(spath),
                format!("the source of `{}` {msg}", attr.name()),
                "give exactly one of `body: /json/pointer`, `query: NAME`, `header: NAME` or `const: VALUE`",
            );
        }
    };
    if let From::Body(p) = &from
        && !p.is_empty()
        && !p.starts_with('/')
    {
        return bad(
            problems,
            at("body"),
            format!("`{p}` is not a JSON pointer"),
            "a JSON pointer starts with `/` (e.g. /payment/amount; `~1` stands for `/` and `~0` for `~` in a key)",
        );
    }
    let currency = match &src.currency {
        None => None,
        Some(c) => {
            if c.count || c.currency.is_some() || c.default.is_some() {
                return bad(
                    problems,
                    at("currency"),
                    "the currency source takes only `body`, `query`, `header` or `const`".into(),
                    "remove the other keys",
                );
            }
            match source_from(c) {
                Ok(f) => {
                    if let From::Const(v) = &f {
                        let ok = v.as_str().is_some_and(|c| vocab.rate(c).is_some());
                        if !ok {
                            return bad(
                                problems,
                                at("currency.const"),
                                format!("currency {v} has no exchange rate"),
                                "use the base currency or one listed in the base document's `exchange_rates`",
                            );
                        }
                    }
                    Some(Box::new(Extract {
                        from: f,
                        count: false,
                        currency: None,
                    }))
                }
                Err(msg) => {
                    return bad(
                        problems,
                        at("currency"),
                        format!("the currency source {msg}"),
                        "give exactly one of `body`, `query`, `header` or `const`",
                    );
                }
            }
        }
    };
    let fixed = match (&from, &src.default) {
        (From::Const(_), Some(_)) => {
            return bad(
                problems,
                at("default"),
                "`default` has no effect next to `const`".into(),
                "remove `default`",
            );
        }
        (From::Const(v), None) => Some(("const", v)),
        (_, Some(v)) => Some(("default", v)),
        (_, None) => None,
    };
    let value = match fixed {
        None => None,
        Some((key, v)) => {
            let currency_const = currency.as_ref().and_then(|c| match &c.from {
                From::Const(v) => v.as_str(),
                _ => None,
            });
            match interned::interpret(attr, v, false, currency_const)
                .and_then(|a| interned::intern(attr, &a, vocab))
            {
                Ok(i) => Some(i),
                Err(msg) => {
                    return bad(
                        problems,
                        at(key),
                        format!("invalid `{}` value: {msg}", attr.name()),
                        "see docs/policy.md, \"Attributes\", for the values each attribute takes",
                    );
                }
            }
        }
    };
    Some((
        Extract {
            from,
            count: src.count,
            currency,
        },
        value,
    ))
}

fn source_from(src: &Source) -> Result<From, &'static str> {
    match (&src.body, &src.query, &src.header, &src.constant) {
        (Some(p), None, None, None) => Ok(From::Body(p.clone())),
        (None, Some(q), None, None) => Ok(From::Query(q.clone())),
        (None, None, Some(h), None) => Ok(From::Header(h.to_ascii_lowercase())),
        (None, None, None, Some(v)) => Ok(From::Const(v.clone())),
        (None, None, None, None) => Err("names no place to read it from"),
        _ => Err("names more than one place to read it from"),
    }
}

#[cfg(test)]
mod tests;
