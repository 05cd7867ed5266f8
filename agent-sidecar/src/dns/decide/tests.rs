use super::*;
use crate::dns::test_support::{allowlist, query};

fn decide_for(
    qname: &str,
    qtype: RecordType,
    refusal: RefusalMode,
) -> (Option<ResponseCode>, Option<RefuseReason>) {
    let list = allowlist(&["api.example.com", "*.example.org"], false, false);
    match decide(&query(qname, qtype), &list, refusal) {
        QueryPlan::Forward { question, rule } => {
            assert_eq!(
                question.canonical,
                qname.trim_end_matches('.').to_ascii_lowercase()
            );
            assert!(rule.pattern.matches(qname));
            (None, None)
        }
        QueryPlan::Refuse { rcode, reason, .. } => (Some(rcode), Some(reason)),
    }
}

#[test]
fn allowlisted_names_are_forwarded() {
    for qtype in FORWARDED_TYPES {
        assert_eq!(
            decide_for("API.example.com.", qtype, RefusalMode::NxDomain),
            (None, None)
        );
    }
    // Other types carry bits of the agent's choosing: refused.
    for qtype in [
        RecordType::ANY,
        RecordType::TXT,
        RecordType::MX,
        RecordType::NULL,
        RecordType::Unknown(4242),
    ] {
        assert_eq!(
            decide_for("API.example.com.", qtype, RefusalMode::NxDomain),
            (Some(ResponseCode::Refused), Some(RefuseReason::QueryType)),
            "{qtype}"
        );
    }
    assert_eq!(
        decide_for("x.example.org.", RecordType::A, RefusalMode::NxDomain),
        (None, None)
    );
}

#[test]
fn other_names_are_refused_in_the_configured_style() {
    let nx = decide_for("evil.example.net.", RecordType::A, RefusalMode::NxDomain);
    assert_eq!(
        nx,
        (
            Some(ResponseCode::NXDomain),
            Some(RefuseReason::NotAllowlisted)
        )
    );
    let refused = decide_for("evil.example.net.", RecordType::A, RefusalMode::Refused);
    assert_eq!(
        refused,
        (
            Some(ResponseCode::Refused),
            Some(RefuseReason::NotAllowlisted)
        )
    );
    let deep = decide_for("a.b.example.org.", RecordType::AAAA, RefusalMode::NxDomain);
    assert_eq!(deep.0, Some(ResponseCode::NXDomain));
}

#[test]
fn service_queries_for_unlisted_names_are_always_refused() {
    for qtype in [RecordType::HTTPS, RecordType::SVCB, RecordType::ANY] {
        let got = decide_for("evil.example.net.", qtype, RefusalMode::NxDomain);
        assert_eq!(
            got,
            (
                Some(ResponseCode::Refused),
                Some(RefuseReason::ServiceQueryNotAllowlisted)
            ),
            "{qtype}"
        );
    }
}

#[test]
fn non_queries_bad_counts_classes_and_transfers() {
    let list = allowlist(&["api.example.com"], false, false);
    let refused = |m: &Message| match decide(m, &list, RefusalMode::NxDomain) {
        QueryPlan::Refuse { rcode, reason, .. } => (rcode, reason),
        other => panic!("forwarded: {other:?}"),
    };
    let mut notify = query("api.example.com.", RecordType::A);
    notify.set_op_code(OpCode::Notify);
    assert_eq!(
        refused(&notify),
        (ResponseCode::NotImp, RefuseReason::NotAQuery)
    );
    let mut none = query("api.example.com.", RecordType::A);
    none.take_queries();
    assert_eq!(
        refused(&none),
        (ResponseCode::FormErr, RefuseReason::QuestionCount)
    );
    let mut two = query("api.example.com.", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        crate::dns::test_support::name("api.example.com."),
        RecordType::AAAA,
    ));
    assert_eq!(
        refused(&two),
        (ResponseCode::FormErr, RefuseReason::QuestionCount)
    );
    let mut chaos = query("api.example.com.", RecordType::TXT);
    chaos.queries_mut()[0].set_query_class(DNSClass::CH);
    assert_eq!(
        refused(&chaos),
        (ResponseCode::Refused, RefuseReason::NotInternetClass)
    );
    let axfr = query("api.example.com.", RecordType::AXFR);
    assert_eq!(
        refused(&axfr),
        (ResponseCode::Refused, RefuseReason::ZoneTransfer)
    );
}

#[test]
fn doh_names_under_wildcards_are_not_forwarded() {
    let list = allowlist(&["**.google"], false, false);
    let got = decide(
        &query("dns.google.", RecordType::A),
        &list,
        RefusalMode::NxDomain,
    );
    assert!(
        matches!(
            got,
            QueryPlan::Refuse {
                rcode: ResponseCode::NXDomain,
                ..
            }
        ),
        "{got:?}"
    );
}
