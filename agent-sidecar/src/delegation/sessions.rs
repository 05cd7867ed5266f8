//! The delegated tasks in force on the callee's sidecar, by W3C trace id:
//! the inbound endpoint opens one per admitted token; the gateway narrows
//! every tool call that carries the task's trace id to what the token
//! delegates (and refuses calls outside any task when the agent acts only
//! under delegation).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Refusal;
use super::token::Admitted;

/// Most tasks kept at once; the oldest to expire is dropped first.
pub const MAX_SESSIONS: usize = 4096;

/// One delegated task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Token id.
    pub token_id: String,
    /// The delegating agent.
    pub delegator: String,
    /// Expiry, unix seconds.
    pub expires: i64,
    /// `tool` or `tool.action` entries the token lets through.
    pub permissions: BTreeSet<String>,
}

impl Session {
    /// Whether the task covers `tool`'s `action`.
    pub fn allows(&self, tool: &str, action: Option<&str>) -> bool {
        self.permissions.contains(tool)
            || action.is_some_and(|a| {
                self.permissions.iter().any(|p| {
                    p.strip_prefix(tool).and_then(|rest| rest.strip_prefix('.')) == Some(a)
                })
            })
    }
}

/// The tasks in force.
#[derive(Debug, Default)]
pub struct Sessions {
    by_trace: Mutex<HashMap<String, Vec<Session>>>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The trace id of a `traceparent` header value (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut it = traceparent.split('-');
    let (_, id) = (it.next()?, it.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then_some(id)
}

impl Sessions {
    /// Opens a task for `admitted` under `trace_id`.
    pub fn open(&self, trace_id: &str, admitted: &Admitted) {
        let mut map = self.by_trace.lock().unwrap_or_else(|e| e.into_inner());
        let t = now();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, v| {
                v.retain(|s| s.expires > t);
                !v.is_empty()
            });
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, v)| v.iter().map(|s| s.expires).max())
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.entry(trace_id.to_ascii_lowercase())
            .or_default()
            .push(Session {
                token_id: admitted.verified.id.clone(),
                delegator: admitted.verified.delegator.clone(),
                expires: admitted.expires,
                permissions: admitted.permissions.clone(),
            });
    }

    /// Decides whether a tool call carrying `traceparent` may go on: a
    /// call in a task in force must be within it (`Ok(Some)` names the
    /// task), a call outside every task is refused when `only_delegated`
    /// and passes (`Ok(None)`) otherwise.
    pub fn check(
        &self,
        traceparent: Option<&str>,
        tool: Option<&str>,
        action: Option<&str>,
        only_delegated: bool,
    ) -> Result<Option<Session>, Refusal> {
        let t = now();
        let id = traceparent.and_then(trace_id).map(str::to_ascii_lowercase);
        let map = self.by_trace.lock().unwrap_or_else(|e| e.into_inner());
        let mut tasks = id
            .and_then(|id| map.get(&id))
            .into_iter()
            .flatten()
            .filter(|s| s.expires > t)
            .peekable();
        if tasks.peek().is_none() {
            return if only_delegated {
                Err(Refusal::NotUnderDelegation)
            } else {
                Ok(None)
            };
        }
        if let Some(tool) = tool
            && let Some(task) = tasks.find(|s| s.allows(tool, action))
        {
            return Ok(Some(task.clone()));
        }
        Err(Refusal::NotDelegated(match (tool, action) {
            (Some(t), Some(a)) => format!("{t}.{a}"),
            (Some(t), None) => t.to_string(),
            _ => "an undeclared action".to_string(),
        }))
    }

    /// Tasks in force.
    pub fn len(&self) -> usize {
        let t = now();
        let map = self.by_trace.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|v| v.iter().filter(|s| s.expires > t).count())
            .sum()
    }

    /// Whether no task is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegation::token::Verified;

    fn admitted(perms: &[&str], ttl: i64) -> Admitted {
        Admitted {
            verified: Verified {
                id: "t1".into(),
                delegator: "spiffe://f/team/a/agent/o".into(),
            },
            expires: now() + ttl,
            permissions: perms.iter().map(|s| s.to_string()).collect(),
        }
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn calls_in_a_task_are_narrowed_to_it_and_calls_outside_follow_only_delegated() {
        let s = Sessions::default();
        s.open(
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            &admitted(&["erp.list_invoices", "crm"], 60),
        );
        assert!(
            s.check(Some(TP), Some("erp"), Some("list_invoices"), true)
                .unwrap()
                .is_some()
        );
        assert!(
            s.check(Some(TP), Some("crm"), Some("lookup"), true)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            s.check(Some(TP), Some("erp"), Some("pay"), false)
                .unwrap_err()
                .reason(),
            "not_delegated"
        );
        // `erp.list_invoicesX` or a prefix never matches.
        assert!(
            s.check(Some(TP), Some("erp"), Some("list_invoicesx"), false)
                .is_err()
        );
        assert!(s.check(Some(TP), None, None, false).is_err());
        let other = "00-11111111111111111111111111111111-00f067aa0ba902b7-01";
        assert_eq!(
            s.check(Some(other), Some("erp"), Some("pay"), false),
            Ok(None)
        );
        assert_eq!(
            s.check(Some(other), Some("erp"), Some("pay"), true)
                .unwrap_err()
                .reason(),
            "delegation_required"
        );
        assert!(s.check(None, Some("erp"), Some("pay"), true).is_err());
        assert!(
            s.check(Some("garbage"), Some("erp"), Some("pay"), true)
                .is_err()
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn an_expired_task_narrows_nothing_and_admits_nothing() {
        let s = Sessions::default();
        s.open("4bf92f3577b34da6a3ce929d0e0e4736", &admitted(&["erp"], -1));
        assert!(s.is_empty());
        assert!(s.check(Some(TP), Some("erp"), Some("pay"), true).is_err());
    }
}
