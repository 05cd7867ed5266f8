use std::sync::{Arc, Mutex};

use super::*;

/// Remembers `name:kind:agent` for every event it consumes.
struct Tape {
    name: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ActionSink for Tape {
    fn consume(&self, event: ActionEvent<'_>) {
        self.seen.lock().unwrap().push(format!(
            "{}:{}:{}",
            self.name,
            event.kind(),
            event.agent_id()
        ));
    }
}

fn deny() -> DenyRecord {
    DenyRecord {
        hook: "connect4",
        reason: "not_allowlisted",
        pid: 7,
        uid: 1000,
        gid: 1000,
        comm: "python3".into(),
        cgroup_id: 42,
        destination: Some("203.0.113.9:443".parse().unwrap()),
        protocol: "tcp".into(),
        family: 2,
        sock_type: 1,
        boot_ns: 1,
    }
}

#[test]
fn every_consumer_gets_every_event_in_the_order_they_were_added() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tape = |name| -> Arc<dyn ActionSink> {
        Arc::new(Tape {
            name,
            seen: seen.clone(),
        })
    };
    let bus = EventBus::new(vec![tape("log"), tape("metrics")]);
    bus.kernel_deny("billing-agent", &deny());
    bus.add(tape("webhooks"));
    let clone = bus.clone();
    GatewaySink::mcp_message_dropped(&clone, "billing-agent", "to_agent", "unexpected_response");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "log:kernel_deny:billing-agent",
            "metrics:kernel_deny:billing-agent",
            "log:mcp_message_dropped:billing-agent",
            "metrics:mcp_message_dropped:billing-agent",
            "webhooks:mcp_message_dropped:billing-agent",
        ]
    );
}

#[test]
fn an_event_serializes_with_its_kind() {
    let record = deny();
    let event = ActionEvent::KernelDeny(KernelDeny {
        agent_id: "billing-agent",
        record: &record,
    });
    let json = serde_json::to_value(event).unwrap();
    assert_eq!(json["kind"], "kernel_deny");
    assert_eq!(json["event"]["agent_id"], "billing-agent");
    assert_eq!(json["event"]["record"]["hook"], "connect4");
}
