use super::*;

fn who(name: &str, team: &str, roles: &[&str]) -> Approver {
    Approver {
        name: name.into(),
        team: team.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn refunds() -> ChainSpec {
    crate::yaml::from_str(
        "name: refunds\ntools: [payments]\nactions: [refund]\nsteps:\n  - {role: team_lead, agent_team: true, up_to: 1000}\n  - {role: finance, team: finance}\nescalate_after_secs: 60\nexclude_owner: true\n",
    )
    .unwrap()
}

fn req(amount: Option<f64>) -> ChainRequest<'static> {
    ChainRequest {
        tool: "payments",
        action: "refund",
        amount,
        agent_team: Some("support"),
        owner: Some("olga"),
    }
}

#[test]
fn parses_validates_and_matches() {
    let c = refunds();
    c.validate().unwrap();
    assert!(c.matches("payments", "refund"));
    assert!(!c.matches("payments", "charge"));
    assert!(!c.matches("crm", "refund"));
    let chains = vec![c];
    assert!(resolve_first(&chains, &req(Some(5.0)), 0).is_some());
}

#[test]
fn invalid_chains_are_refused_with_the_fix() {
    let mut c = refunds();
    c.steps[0].team = Some("x".into());
    assert!(matches!(c.validate(), Err(ChainSpecError::Team(_, 0))));
    let mut c = refunds();
    c.steps[0].up_to = None;
    assert!(matches!(c.validate(), Err(ChainSpecError::Ceiling(_, 0))));
    let mut c = refunds();
    c.steps.clear();
    assert!(c.validate().unwrap_err().to_string().contains("no steps"));
    assert!(crate::yaml::from_str::<ChainSpec>("name: x\nsteps: []\nfour_eye: true\n").is_err());
}

#[test]
fn small_refund_is_approved_by_the_agents_team_lead() {
    let mut r = refunds().resolve(&req(Some(500.0)), 0);
    assert_eq!(r.first_eligible, 0);
    assert_eq!(r.steps[0].team.as_deref(), Some("support"));
    // A team lead of another team holds no step.
    let other = who("ted", "sales", &["team_lead"]);
    assert_eq!(r.check(&other, 0).unwrap_err().reason(), "not_in_chain");
    // Finance is not eligible yet: no escalation so far.
    let fin = who("fay", "finance", &["finance"]);
    assert_eq!(r.check(&fin, 0).unwrap_err().reason(), "not_yet_eligible");
    let lead = who("lee", "support", &["team_lead"]);
    assert_eq!(r.approve(&lead, 1).unwrap(), Progress::Approved);
    assert_eq!(r.approvals[0].approver, "lee");
}

#[test]
fn large_refund_is_above_the_team_leads_ceiling_but_finance_may() {
    let mut r = refunds().resolve(&req(Some(5000.0)), 0);
    assert_eq!(r.first_eligible, 1);
    let lead = who("lee", "support", &["team_lead"]);
    let e = r.approve(&lead, 0).unwrap_err();
    assert_eq!(e.reason(), "above_ceiling");
    assert!(e.to_string().contains("up to 1000"), "{e}");
    assert!(r.approvals.is_empty());
    let fin = who("fay", "finance", &["finance"]);
    assert_eq!(r.approve(&fin, 0).unwrap(), Progress::Approved);
}

#[test]
fn undeclared_amount_needs_the_top_step() {
    let r = refunds().resolve(&req(None), 0);
    assert_eq!(r.first_eligible, 1);
}

#[test]
fn escalation_makes_the_next_step_eligible_after_the_sla() {
    let mut r = refunds().resolve(&req(Some(500.0)), 10_000);
    let fin = who("fay", "finance", &["finance"]);
    assert_eq!(r.next_escalation_at(), Some(70_000));
    assert!(r.escalate(69_999).is_empty());
    assert!(r.check(&fin, 69_999).is_err());
    assert_eq!(r.escalate(70_000), vec![1]);
    assert!(
        r.escalate(200_000).is_empty(),
        "each escalation is announced once"
    );
    assert_eq!(r.next_escalation_at(), None);
    assert_eq!(r.check(&fin, 70_000), Ok(1));
    // The team lead stays eligible after the escalation.
    assert_eq!(
        r.check(&who("lee", "support", &["team_lead"]), 70_000),
        Ok(0)
    );
}

#[test]
fn four_eyes_needs_two_distinct_approvers() {
    let mut c = refunds();
    c.four_eyes = true;
    let mut r = c.resolve(&req(Some(200.0)), 0);
    let a = who("lee", "support", &["team_lead"]);
    let b = who("lia", "support", &["team_lead"]);
    assert_eq!(
        r.approve(&a, 0).unwrap(),
        Progress::Partial { have: 1, need: 2 }
    );
    assert_eq!(r.approve(&a, 1).unwrap_err().reason(), "already_approved");
    assert_eq!(r.approvals.len(), 1);
    assert_eq!(r.approve(&b, 2).unwrap(), Progress::Approved);
}

#[test]
fn the_owner_is_refused_when_excluded() {
    let mut r = refunds().resolve(&req(Some(10.0)), 0);
    let owner = who("olga", "support", &["team_lead"]);
    assert_eq!(r.approve(&owner, 0).unwrap_err().reason(), "owner_excluded");
    let mut c = refunds();
    c.exclude_owner = false;
    let mut r = c.resolve(&req(Some(10.0)), 0);
    assert_eq!(r.approve(&owner, 0).unwrap(), Progress::Approved);
}

#[test]
fn an_agent_without_a_team_fails_closed_on_agent_team_steps() {
    let mut rq = req(Some(10.0));
    rq.agent_team = None;
    let r = refunds().resolve(&rq, 0);
    assert_eq!(
        r.check(&who("lee", "support", &["team_lead"]), 0)
            .unwrap_err()
            .reason(),
        "not_in_chain"
    );
}

#[test]
fn resolved_chain_round_trips_through_json() {
    let mut r = refunds().resolve(&req(Some(10.0)), 5);
    r.approve(&who("lee", "support", &["team_lead"]), 6)
        .unwrap();
    let text = serde_json::to_string(&r).unwrap();
    let back: ResolvedChain = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}
