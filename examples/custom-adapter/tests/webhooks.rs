//! The custom adapter through the registry: routing, mapping, deterministic ids, bad input.

use example_custom_adapter::{MESSAGE_TYPE, TrmmWebhookAdapter, mapping_table};
use openframe_stream::adapters::{AdapterRegistry, MESSAGE_TYPE_HEADER, RawRecord};
use openframe_stream::model::{EventCategory, Outcome, Severity, ToolSource};

fn registry() -> AdapterRegistry {
    let table = mapping_table();
    AdapterRegistry::builtin_with(table.clone()).with(TrmmWebhookAdapter::new(table))
}

fn webhook(status: &str, severity: &str) -> RawRecord {
    let body = serde_json::json!({
        "alert_id": 4711, "status": status, "severity": severity, "agent_id": "TRMM-AGENT-77",
        "hostname": "web-01", "message": "Disk space check failed", "alert_time": "2026-11-26T04:00:00Z",
        "extra_field": "ignored"
    });
    RawRecord::new("trmm-webhooks", serde_json::to_vec(&body).unwrap())
        .with_header(MESSAGE_TYPE_HEADER, MESSAGE_TYPE)
}

#[test]
fn a_failure_webhook_is_an_error_alert() {
    let events = registry().adapt(&webhook("failure", "error")).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.tool, ToolSource::TacticalRmm);
    assert_eq!(e.event_type, "ALERT_RAISED");
    assert_eq!(e.category, EventCategory::Monitoring);
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.tool_agent_id.as_deref(), Some("TRMM-AGENT-77"));
    assert_eq!(e.summary, "web-01: Disk space check failed");
}

#[test]
fn resolved_is_info_and_has_its_own_id() {
    let raised = registry().adapt(&webhook("failure", "error")).unwrap();
    let resolved = registry().adapt(&webhook("resolved", "error")).unwrap();
    assert_eq!(resolved[0].event_type, "ALERT_RESOLVED");
    assert_eq!(resolved[0].severity, Severity::Info);
    assert_ne!(raised[0].id, resolved[0].id);
    // A webhook delivered twice is the same event.
    assert_eq!(
        raised[0].id,
        registry().adapt(&webhook("failure", "error")).unwrap()[0].id
    );
}

#[test]
fn the_tool_can_lower_a_failure_to_info() {
    let events = registry().adapt(&webhook("failure", "info")).unwrap();
    assert_eq!(events[0].severity, Severity::Info);
}

#[test]
fn malformed_webhooks_are_poison_and_do_not_echo_the_payload() {
    for body in [
        &b"{not json"[..],
        br#"{"alert_id": "x"}"#,
        br#"{"alert_id": 1, "status": "exploded", "severity": "error", "agent_id": "a",
            "hostname": "secret-host", "message": "m", "alert_time": "2026-11-26T04:00:00Z"}"#,
    ] {
        let record = RawRecord::new("trmm-webhooks", body.to_vec())
            .with_header(MESSAGE_TYPE_HEADER, MESSAGE_TYPE);
        let err = registry().adapt(&record).unwrap_err();
        assert!(err.is_poison(), "{err}");
        assert!(!err.to_string().contains("secret-host"), "{err}");
    }
}

#[test]
fn other_records_still_reach_the_built_in_adapters() {
    let record = RawRecord::new("something-else", b"{}".to_vec());
    assert!(!TrmmWebhookAdapter::new(mapping_table()).accepts(&record));
    use openframe_stream::adapters::SourceAdapter;
    let agent_event = RawRecord::new("agent-events", b"{}".to_vec());
    assert!(
        registry()
            .find(&agent_event)
            .is_some_and(|a| a.tool() == ToolSource::Openframe)
    );
}
