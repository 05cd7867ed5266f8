use super::*;

#[test]
fn registers_once_and_counts_per_agent() {
    let registry = Registry::new();
    let metrics = DnsMetrics::register(&registry).expect("register");
    assert!(
        DnsMetrics::register(&registry).is_err(),
        "a second registration is refused"
    );
    let a = metrics.for_agent("a");
    let b = metrics.for_agent("b");
    a.query(DnsDecision::Refused);
    a.query(DnsDecision::Refused);
    b.query(DnsDecision::Allowed);
    a.upstream_seconds.observe(0.001);
    let families = registry.gather();
    let queries = families
        .iter()
        .find(|f| f.name() == "agent_sidecar_dns_queries_total")
        .expect("queries family");
    let value = |agent: &str, decision: &str| {
        queries
            .get_metric()
            .iter()
            .find(|m| {
                let labels: Vec<(&str, &str)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                labels.contains(&("agent_id", agent)) && labels.contains(&("decision", decision))
            })
            .map(|m| m.get_counter().get_value())
    };
    assert_eq!(value("a", "refused"), Some(2.0));
    assert_eq!(value("b", "allowed"), Some(1.0));
    assert_eq!(value("a", "malformed"), Some(0.0));
    assert!(
        families
            .iter()
            .any(|f| f.name() == "agent_sidecar_dns_upstream_duration_seconds")
    );
}
