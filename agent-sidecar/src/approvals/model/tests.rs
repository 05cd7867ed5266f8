use std::time::Duration;

use super::*;

pub(crate) fn sample_request() -> NewApproval {
    NewApproval {
        agent_id: "agent-7".into(),
        action: ActionSummary {
            tool: "payments".into(),
            action: "create_transfer".into(),
            target: "api.bank.example".into(),
            input: serde_json::json!({"amount": 60000, "iban": "[redacted]"}),
            request: serde_json::Value::Null,
        },
        tier: Tier::Approval,
        rule_ids: vec!["payments-over-50k".into()],
        policy_version: "sha256:abc".into(),
        reason: "transfer above 50 000".into(),
        sla: Duration::from_secs(60),
        binding: "sha256:00".into(),
        decided: None,
        chain: None,
    }
}

#[test]
fn ids_are_random_url_safe_and_parse_back() {
    let a = ApprovalId::random();
    let b = ApprovalId::random();
    assert_ne!(a, b);
    assert!(
        a.as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_')
    );
    assert_eq!(ApprovalId::parse(a.as_str()), Some(a));
}

#[test]
fn malformed_ids_are_rejected() {
    for bad in [
        "",
        "apr_",
        "apr_xyz",
        "../etc/passwd",
        "apr_0123456789ABCDEF0123456789abcdef",
    ] {
        assert_eq!(ApprovalId::parse(bad), None, "{bad}");
    }
}

#[test]
fn deadline_is_created_plus_sla() {
    let p = PendingApproval::new("k".into(), sample_request(), UnixMillis(1_000));
    assert_eq!(p.sla_deadline, UnixMillis(61_000));
    assert_eq!(p.state, ApprovalState::Pending);
    assert_eq!(
        UnixMillis(1_000).until(p.sla_deadline),
        Duration::from_secs(60)
    );
    assert_eq!(p.sla_deadline.until(UnixMillis(0)), Duration::ZERO);
}

#[test]
fn every_state_round_trips_through_json() {
    let d = ApproverDecision {
        by: "alice".into(),
        reason: "ok".into(),
        at: UnixMillis(5),
    };
    let states = [
        ApprovalState::Pending,
        ApprovalState::Approved(d.clone()),
        ApprovalState::Denied(d.clone()),
        ApprovalState::Expired { at: UnixMillis(9) },
        ApprovalState::Forwarded {
            at: UnixMillis(7),
            upstream_status: Some(201),
            approved: d,
        },
    ];
    for state in states {
        let mut p = PendingApproval::new("k".into(), sample_request(), UnixMillis(1));
        p.state = state;
        let line = serde_json::to_string(&p).expect("serializes");
        let back: PendingApproval = serde_json::from_str(&line).expect("parses");
        assert_eq!(back, p, "{line}");
    }
}

#[test]
fn state_is_tagged_with_its_kind() {
    let p = PendingApproval::new("k".into(), sample_request(), UnixMillis(1));
    let v = serde_json::to_value(&p).expect("serializes");
    assert_eq!(v["state"]["kind"], "pending");
    assert_eq!(v["tier"], 3);
}

#[test]
fn outcomes_follow_states() {
    let d = ApproverDecision {
        by: "bob".into(),
        reason: "no".into(),
        at: UnixMillis(5),
    };
    assert_eq!(ApprovalState::Pending.outcome(), None);
    let fwd = ApprovalState::Forwarded {
        at: UnixMillis(6),
        upstream_status: None,
        approved: d.clone(),
    };
    assert_eq!(fwd.outcome(), Some(ApprovalOutcome::Approved(d.clone())));
    assert!(
        !ApprovalState::Denied(d)
            .outcome()
            .is_some_and(|o| o.is_approved())
    );
    let exp = ApprovalState::Expired { at: UnixMillis(1) }.outcome();
    assert_eq!(exp.map(|o| o.label()), Some("expired"));
}
