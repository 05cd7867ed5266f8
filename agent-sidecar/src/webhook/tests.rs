use serde_json::{Value, json};

use super::*;

#[test]
fn signature_matches_the_standard_webhooks_example() {
    let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "test").unwrap();
    assert_eq!(
        signature(
            secret.key(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn the_envelope_carries_id_kind_version_and_an_rfc3339_time_before_the_fields() {
    let e = Envelope::wrap(
        &json!({"event": "action.halted", "agent": "a", "id": "spoofed"}),
        1_764_855_912_345,
    );
    let v: Value = serde_json::from_slice(&e.body).unwrap();
    assert_eq!(v["id"], e.id.as_str(), "the envelope's id wins");
    assert!(e.id.starts_with("evt_") && e.id.len() == 36, "{}", e.id);
    assert_eq!(v["event"], "action.halted");
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["timestamp"], "2025-12-04T13:45:12.345Z");
    assert_eq!(v["agent"], "a");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys[..4], ["id", "event", "schema_version", "timestamp"]);
    assert_ne!(
        Envelope::wrap(&json!({"event": "x"}), 1).id,
        Envelope::wrap(&json!({"event": "x"}), 1).id
    );
    let odd = Envelope::wrap(&json!([1, 2]), 0);
    let v: Value = serde_json::from_slice(&odd.body).unwrap();
    assert_eq!(v["event"], "unknown");
    assert_eq!(v["data"], json!([1, 2]));
}

#[test]
fn the_disk_queue_keeps_events_in_order_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let q_dir = dir.path().join("q");
    let (mut q, bad) = DiskQueue::open(Some(q_dir.clone()), 3).unwrap();
    assert!(bad.is_empty());
    for i in 0..3 {
        q.push(format!("evt_{i}"), format!("{{\"n\":{i}}}").into_bytes())
            .unwrap();
    }
    assert!(matches!(
        q.push("evt_3".into(), b"{}".to_vec()),
        Err(PushError::Full(3))
    ));
    q.pop_front();
    drop(q);
    std::fs::write(q_dir.join("00000000000000000099.evt"), b"no newline").unwrap();
    let (mut q, bad) = DiskQueue::open(Some(q_dir.clone()), 10).unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(q.len(), 2);
    let f = q.front_mut().unwrap();
    assert_eq!(
        (f.id.as_str(), f.body.as_slice()),
        ("evt_1", &b"{\"n\":1}"[..])
    );
    q.pop_front();
    q.push("evt_new".into(), b"{}".to_vec()).unwrap();
    q.pop_front();
    assert_eq!(
        q.front_mut().unwrap().id,
        "evt_new",
        "new events go after old ones"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&q_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_secret_is_generated_once_private_and_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook.secret");
    let (a, made) = WebhookSecret::open_or_create(&path).unwrap();
    assert!(made);
    let (b, made) = WebhookSecret::open_or_create(&path).unwrap();
    assert!(!made);
    assert_eq!(a.key(), b.key());
    assert_eq!(a.key().len(), 32);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = WebhookSecret::open_or_create(&path).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
}
