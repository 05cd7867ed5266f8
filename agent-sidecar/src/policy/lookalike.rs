//! Paths the policy cannot match exactly but a tool server may well take
//! for a declared route: `/v1/Vendors`, `/v1/vend%6Frs`, `/v1/vendors%20`,
//! `/v1//vendors`, `/v1/./vendors`. Matched by no declaration, such a
//! request would fall to `defaults.unknown` and become an approval whose
//! target looks like a route the policy denies or halts, while a server
//! that decodes, folds case or normalises the path runs the declared
//! action. The gateway refuses them instead.

use percent_encoding::percent_decode_str;

use super::{
    set::CompiledPolicySet,
    tool::{Route, Segment},
};

impl CompiledPolicySet {
    /// When `method path` matches no declared action of `host`'s tool
    /// exactly but matches one once the path is normalised the way servers
    /// commonly do (percent-decoded, letters folded to lower case,
    /// whitespace and control characters trimmed from segments, empty and
    /// `.` segments dropped, `..` applied), that action as `tool.action`.
    pub fn lookalike_route(&self, host: &str, method: &str, path: &str) -> Option<String> {
        let &tid = self.hosts.get(host)?;
        let tool = &self.tools[tid as usize];
        let actions = || tool.actions.iter().map(|&a| &self.actions[a as usize]);
        let path = path.split(['?', '#']).next().unwrap_or("/");
        if actions().any(|a| a.route.matches_http(method, path)) {
            return None;
        }
        let normal = normalise(path);
        actions()
            .find(|a| folded_match(&a.route, method, &normal))
            .map(|a| a.qualified.to_string())
    }
}

/// The path's segments, decoded, folded, trimmed, without empty and dot
/// segments.
fn normalise(path: &str) -> Vec<String> {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut out: Vec<String> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        let seg = seg
            .trim_matches(|c: char| c.is_whitespace() || c.is_control())
            .to_lowercase();
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    out
}

fn folded_match(route: &Route, method: &str, parts: &[String]) -> bool {
    let Route::Http {
        method: m,
        segments,
    } = route
    else {
        return false;
    };
    if !m.eq_ignore_ascii_case(method) {
        return false;
    }
    let mut parts = parts.iter();
    for seg in segments {
        match seg {
            Segment::Rest => return true,
            Segment::Literal(l) => {
                if parts.next().is_none_or(|p| *p != l.to_lowercase()) {
                    return false;
                }
            }
            Segment::Param => {
                if parts.next().is_none() {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use crate::policy::test_support::set;

    const BASE: &str = r#"kind: base
name: t
label: t
tools:
  - name: erp
    http: { host: erp.example }
    actions:
      - name: delete_vendors
        method: DELETE
        path: /v1/vendors
      - name: update_vendor
        method: PATCH
        path: /v1/vendors/{id}
"#;

    #[test]
    fn look_alikes_of_declared_routes_are_named() {
        let s = set(&[("base.yaml", BASE)]);
        for path in [
            "/v1/Vendors",
            "/V1/VENDORS",
            "/v1/vend%6Frs",
            "/v1/vendors%20",
            "/v1/vendors%00",
            "/v1//vendors",
            "/v1/./vendors",
            "/v1/x/../vendors",
            "/v1/vendors/%2e",
            "/v1%2Fvendors",
        ] {
            assert_eq!(
                s.lookalike_route("erp.example", "DELETE", path).as_deref(),
                Some("erp.delete_vendors"),
                "{path}"
            );
        }
        for (method, path) in [
            ("DELETE", "/v1/vendors"),
            ("DELETE", "/v1/vendors/"),
            ("PATCH", "/v1/vendors/V-42"),
            ("GET", "/v1/reports"),
            ("DELETE", "/v1/vendor"),
        ] {
            assert_eq!(
                s.lookalike_route("erp.example", method, path),
                None,
                "{method} {path}"
            );
        }
        assert_eq!(
            s.lookalike_route("other.example", "DELETE", "/v1/Vendors"),
            None
        );
    }
}
