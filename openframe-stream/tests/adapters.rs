//! Source adapters against golden samples (tests/golden/<tool>/*.json), every mapped type,
//! malformed input, unknown types and id determinism.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use openframe_stream::adapters::{AdapterError, AdapterRegistry, MAX_PAYLOAD_BYTES, RawRecord};
use openframe_stream::model::{
    BUILTIN_MAPPINGS, EventCategory, MappingTable, Outcome, Severity, ToolSource, UnifiedEvent,
};
use serde_json::{Value, json};

fn golden(path: &str) -> Vec<u8> {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", path]
        .iter()
        .collect();
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn adapt(topic: &str, payload: Vec<u8>) -> Result<Vec<UnifiedEvent>, AdapterError> {
    let record = RawRecord::new(topic, payload)
        .with_timestamp(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap());
    AdapterRegistry::builtin().adapt(&record)
}

fn one(topic: &str, path: &str) -> UnifiedEvent {
    let events = adapt(topic, golden(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(events.len(), 1, "{path}");
    let again = adapt(topic, golden(path)).unwrap();
    assert_eq!(events[0].id, again[0].id, "{path}: id must be stable");
    assert_eq!(events, again, "{path}: adapting must be deterministic");
    events.into_iter().next().unwrap()
}

const MESH: &str = "meshcentral-events";
const FLEET: &str = "fleet-mdm-events";
const TRMM: &str = "tactical-rmm.public.events";
const AGENT_EVENTS: &str = "openframe.agent-events";

fn script_subject() -> &'static str {
    "machine.m-web-01.script-execution.result"
}

#[test]
fn meshcentral_login_from_mongo_string_row() {
    let e = one(MESH, "meshcentral/user_login.json");
    assert_eq!(e.tool, ToolSource::Meshcentral);
    assert_eq!(e.source_type, "user.login");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Auth, "LOGIN")
    );
    assert_eq!(e.severity, Severity::Info);
    assert_eq!(e.user.as_deref(), Some("admin"));
    assert_eq!(e.summary, "Account login from 10.0.4.21");
    assert_eq!(
        e.occurred_at,
        Utc.timestamp_millis_opt(1_740_823_200_000).unwrap()
    );
    assert_eq!(e.source_position.as_deref(), Some("oplog:1740823200000:1"));
    assert!(e.details.get("_id").is_none());
    assert_eq!(e.details["domain"], "");
    assert_eq!(
        e.id,
        UnifiedEvent::id_for(
            ToolSource::Meshcentral,
            "events",
            "65f1c2a9e4b0a1d2c3f40001",
            None
        )
    );
}

#[test]
fn meshcentral_agent_connect_and_relay_sessions() {
    let e = one(MESH, "meshcentral/agent_connect.json");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Device, "DEVICE_ONLINE")
    );
    assert_eq!(
        e.tool_agent_id.as_deref(),
        Some("node//Zx9kLmq2vT4hW8pR3yN5aB7cD1eF6gH0jK2lM4nO8pQ$")
    );
    let e = one(MESH, "meshcentral/relay_desktop.json");
    assert_eq!(e.source_type, "relay.relaylog.desktop");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::RemoteAccess, "REMOTE_DESKTOP_SESSION")
    );
    assert_eq!(e.user.as_deref(), Some("jdoe"));
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 5, 0).unwrap()
    );
}

#[test]
fn fleet_activity_with_host_from_details() {
    let e = one(FLEET, "fleetdm/activity_ran_script.json");
    assert_eq!(e.tool, ToolSource::FleetMdm);
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Scripts, "SCRIPT_EXECUTION_STARTED")
    );
    assert_eq!(e.tool_agent_id.as_deref(), Some("412"));
    assert_eq!(e.user.as_deref(), Some("Jane Admin"));
    assert_eq!(
        e.summary,
        "ran script 'disk-cleanup.sh' on web-01 by Jane Admin"
    );
    assert_eq!(e.details["teamId"], "7");
    assert_eq!(e.details["details"]["script_name"], "disk-cleanup.sh");
    assert_eq!(
        e.source_position.as_deref(),
        Some("binlog:binlog.000042:18211")
    );
    assert_eq!(
        e.id,
        UnifiedEvent::id_for(ToolSource::FleetMdm, "activities", "90211", None)
    );
}

#[test]
fn fleet_failed_software_install_is_an_error() {
    let e = one(FLEET, "fleetdm/activity_installed_software_failed.json");
    assert_eq!(e.event_type, "SOFTWARE_INSTALLED");
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.tool_agent_id.as_deref(), Some("413"));
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 2, 0).unwrap()
    );
}

#[test]
fn fleet_native_query_result_and_policy_membership() {
    let e = one("fleet-mdm-query-result-events", "fleetdm/query_result.json");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Queries, "QUERY_RESULT")
    );
    assert_eq!(e.tool_agent_id.as_deref(), Some("412"));
    assert_eq!(e.outcome, Some(Outcome::Success));
    assert_eq!(e.details["data"]["name"], "sshd");

    let e = one(
        "fleet-mdm-policy-membership-events",
        "fleetdm/policy_membership_fail.json",
    );
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Policies, "POLICY_VIOLATION")
    );
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(e.tool_agent_id.as_deref(), Some("412"));
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 15, 0).unwrap()
    );

    // The same membership through Debezium (passes as tinyint 1, schema-wrapped).
    let e = one(
        "fleet-mdm-policy-membership-events",
        "fleetdm/policy_membership_envelope.json",
    );
    assert_eq!(e.event_type, "POLICY_COMPLIANT");
    assert_eq!(e.tool_agent_id.as_deref(), Some("414"));
}

#[test]
fn fleet_routing_by_header_and_table() {
    // Unknown topic, but the message-type header routes it.
    let record = RawRecord::new("whatever", golden("fleetdm/query_result.json"))
        .with_header("Message-Type", "fleet_mdm_query_result_event");
    let events = AdapterRegistry::builtin().adapt(&record).unwrap();
    assert_eq!(events[0].event_type, "QUERY_RESULT");
}

#[test]
fn tacticalrmm_alerts_keep_their_severity_and_resolution_is_distinct() {
    let raised = one(TRMM, "tacticalrmm/alert_check.json");
    assert_eq!(
        (raised.category, raised.event_type.as_str()),
        (EventCategory::Monitoring, "MONITORING_CHECK_FAILED")
    );
    assert_eq!(raised.severity, Severity::Error);
    assert_eq!(raised.tool_agent_id.as_deref(), Some("57"));
    assert_eq!(raised.source_position.as_deref(), Some("lsn:24023928"));
    let resolved = one(TRMM, "tacticalrmm/alert_resolved.json");
    assert_eq!(resolved.event_type, "ALERT_RESOLVED");
    assert_eq!(resolved.severity, Severity::Info);
    assert_eq!(
        resolved.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 45, 0).unwrap()
    );
    assert_ne!(raised.id, resolved.id);
}

#[test]
fn tacticalrmm_failed_script_history_is_an_error() {
    let e = one(TRMM, "tacticalrmm/agent_history_script.json");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Scripts, "SCRIPT_EXECUTED")
    );
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.details["stderr"], "Access is denied.");
    // Microsecond epoch (Postgres timestamp through Debezium).
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 25, 0).unwrap()
    );
}

#[test]
fn tacticalrmm_audit_login() {
    let e = one(TRMM, "tacticalrmm/audit_login.json");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Auth, "LOGIN")
    );
    assert_eq!(e.user.as_deref(), Some("tech1"));
    assert_eq!(
        e.tool_agent_id.as_deref(),
        Some("mLpQzRtYuVwXbCdEfGhIjKlMnOpQrStUvWxYz012")
    );
    assert!(e.details.get("before_value").is_none());
}

#[test]
fn agent_script_results_success_failure_and_distinct_ids() {
    let ok = one(script_subject(), "openframe_agent/script_result_ok.json");
    assert_eq!(ok.tool, ToolSource::OpenframeAgent);
    assert_eq!(
        (ok.category, ok.event_type.as_str()),
        (EventCategory::Scripts, "SCRIPT_EXECUTED")
    );
    assert_eq!(
        (ok.outcome, ok.severity),
        (Some(Outcome::Success), Severity::Info)
    );
    assert_eq!(ok.machine_id.as_ref().map(|m| m.as_str()), Some("m-web-01"));
    assert_eq!(ok.summary, "Script disk-cleanup finished (exit code 0)");
    // Results carry no time: the broker time is used.
    assert_eq!(
        ok.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
    );

    let failed = one(
        script_subject(),
        "openframe_agent/script_result_failed.json",
    );
    assert_eq!(
        (failed.outcome, failed.severity),
        (Some(Outcome::Failure), Severity::Error)
    );
    assert_eq!(failed.event_type, "SCRIPT_EXECUTED");
    // Same execution and machine, another script: another id (the original's collision).
    assert_ne!(ok.id, failed.id);
}

#[test]
fn agent_command_timeout_is_an_error_and_machine_comes_from_the_subject() {
    let e = one(
        "machine.m-db-02.command-execution.result",
        "openframe_agent/command_timed_out.json",
    );
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Commands, "COMMAND_EXECUTED")
    );
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.summary, "Command timed out");
    assert_eq!(e.machine_id.as_ref().map(|m| m.as_str()), Some("m-db-02"));
    // Over the bus with headers instead of a subject.
    let record = RawRecord::new(
        "logs.events",
        golden("openframe_agent/command_timed_out.json"),
    )
    .with_header("message-type", "COMMAND_EXECUTED")
    .with_header("machine-id", "m-db-02")
    .with_header("tenant-id", "acme")
    .with_timestamp(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap());
    let via_bus = AdapterRegistry::builtin().adapt(&record).unwrap();
    assert_eq!(via_bus[0].id, e.id);
    assert_eq!(via_bus[0].tenant.as_ref().map(|t| t.as_str()), Some("acme"));
}

#[test]
fn agent_domain_events() {
    let e = one(AGENT_EVENTS, "openframe_events/came_online.json");
    assert_eq!(
        (e.category, e.event_type.as_str()),
        (EventCategory::Device, "DEVICE_ONLINE")
    );
    assert_eq!(e.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
    assert_eq!(e.machine_id.as_ref().map(|m| m.as_str()), Some("m-web-01"));
    let e = one(AGENT_EVENTS, "openframe_events/uninstalled.json");
    assert_eq!(
        (e.event_type.as_str(), e.severity),
        ("DEVICE_UNINSTALLED", Severity::Warning)
    );
}

#[test]
fn unmapped_types_become_unknown_events() {
    let e = one(MESH, "meshcentral/unmapped_action.json");
    assert_eq!(e.category, EventCategory::Unknown);
    assert_eq!(e.event_type, "UNKNOWN");
    assert_eq!(e.severity, Severity::Info);
    assert_eq!(e.source_type, "node.brandnewaction");
    assert_eq!(e.tool_agent_id.as_deref(), Some("node//abc"));

    let payload = json!({"id": 1, "activity_type": "some_future_activity",
        "created_at": "2025-03-01T10:00:00Z", "details": {}});
    let e = &adapt(FLEET, payload.to_string().into_bytes()).unwrap()[0];
    assert!(e.is_unknown());
    assert_eq!(e.source_type, "some_future_activity");
}

#[test]
fn replayed_debezium_record_gets_the_same_id() {
    // A snapshot re-read (op r) and a re-delivered create of the same row collapse.
    let mut v: Value = serde_json::from_slice(&golden("fleetdm/activity_ran_script.json")).unwrap();
    let first = adapt(FLEET, v.to_string().into_bytes()).unwrap();
    v["op"] = json!("r");
    v["source"]["snapshot"] = json!("true");
    v["source"]["pos"] = json!(99);
    let replay = adapt(FLEET, v.to_string().into_bytes()).unwrap();
    assert_eq!(first[0].id, replay[0].id);
}

#[test]
fn tombstones_and_deletes_of_log_rows_yield_nothing() {
    assert!(adapt(MESH, Vec::new()).unwrap().is_empty());
    let mut v: Value = serde_json::from_slice(&golden("fleetdm/activity_ran_script.json")).unwrap();
    v["op"] = json!("d");
    v["before"] = v["after"].take();
    assert!(adapt(FLEET, v.to_string().into_bytes()).unwrap().is_empty());
}

fn assert_malformed(topic: &str, payload: Vec<u8>, needle: &str) {
    match adapt(topic, payload) {
        Err(e @ AdapterError::Malformed { .. }) => {
            assert!(e.is_poison());
            assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle:?}"
            );
        }
        other => panic!("expected Malformed mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn malformed_inputs_are_poison_not_panics() {
    let login = golden("meshcentral/user_login.json");
    assert_malformed(MESH, login[..login.len() / 2].to_vec(), "invalid JSON");
    assert_malformed(
        MESH,
        br#"{"op":"c","before":null}"#.to_vec(),
        "without an `after`",
    );
    assert_malformed(
        MESH,
        br#"{"op":"c","after":42}"#.to_vec(),
        "`after` must be an object",
    );
    assert_malformed(
        MESH,
        br#"{"op":"c","after":"{not json"}"#.to_vec(),
        "not JSON",
    );
    assert_malformed(
        MESH,
        br#"{"op":"c","after":{"etype":"user","action":"login"}}"#.to_vec(),
        "_id",
    );
    assert_malformed(
        MESH,
        br#"{"op":"c","after":{"_id":"x","etype":7}}"#.to_vec(),
        "etype",
    );
    assert_malformed(MESH, br#"[1,2,3]"#.to_vec(), "must be an object");
    assert_malformed(
        FLEET,
        br#"{"op":"c","after":{"id":1,"activity_type":["x"]}}"#.to_vec(),
        "activity_type",
    );
    assert_malformed(
        "fleet-mdm-policy-membership-events",
        br#"{"policy_id":1,"passes":true}"#.to_vec(),
        "host_id",
    );
    assert_malformed(
        "fleet-mdm-policy-membership-events",
        br#"{"policy_id":1,"host_id":2,"passes":"yes"}"#.to_vec(),
        "passes",
    );
    assert_malformed(TRMM, br#"{"op":"c","after":{"id":1,"alert_type":"check","alert_time":"soon"},"source":{"table":"alerts_alert"}}"#.to_vec(), "alert_time");
    assert_malformed(
        script_subject(),
        br#"{"stdout":"x"}"#.to_vec(),
        "execution_id",
    );
    assert_malformed(
        script_subject(),
        br#"{"execution_id":"e","exit_code":"zero"}"#.to_vec(),
        "exit_code",
    );
    assert_malformed(
        "machine.bad$id.script-execution.result",
        br#"{"execution_id":"e"}"#.to_vec(),
        "machine id",
    );
    assert_malformed(
        AGENT_EVENTS,
        br#"{"tenant":"acme","machineId":"m 1","kind":"REGISTERED","at":"2025-03-01T00:00:00Z"}"#
            .to_vec(),
        "machineId",
    );
    assert_malformed(
        AGENT_EVENTS,
        br#"{"tenant":"acme","machineId":"m1","kind":"REGISTERED"}"#.to_vec(),
        "at",
    );
    // Deep nesting hits serde_json's recursion limit, not the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_malformed(FLEET, deep.into_bytes(), "invalid JSON");
    // Huge payloads are refused before parsing.
    let huge = format!(
        r#"{{"execution_id":"e","stdout":"{}"}}"#,
        "x".repeat(MAX_PAYLOAD_BYTES)
    );
    assert_malformed(script_subject(), huge.into_bytes(), "exceeds");
}

#[test]
fn malformed_errors_do_not_quote_payloads() {
    let err = adapt(
        script_subject(),
        br#"{"execution_id":"e","exit_code":"s3cr3t-token"}"#.to_vec(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
}

#[test]
fn large_outputs_are_bounded_in_events() {
    let payload = json!({"execution_id": "e", "exit_code": 0, "stdout": "y".repeat(200_000),
        "script_id": "s"});
    let e = &adapt(script_subject(), payload.to_string().into_bytes()).unwrap()[0];
    assert!(serde_json::to_vec(&e.details).unwrap().len() <= 16 * 1024);
    assert_eq!(e.details["stdoutTruncated"], true);
    assert!(e.summary.chars().count() <= 1024);
}

#[test]
fn unsupported_topics_are_not_poison() {
    let err = adapt("some.other.topic", b"{}".to_vec()).unwrap_err();
    assert!(matches!(err, AdapterError::Unsupported { .. }));
    assert!(!err.is_poison());
}

/// A minimal, valid record of `source_type` for `tool`.
fn record_for(tool: ToolSource, st: &str) -> RawRecord {
    let now = "2025-03-01T10:00:00Z";
    let envelope = |after: Value, table: &str| {
        json!({"op": "c", "after": after, "ts_ms": 1_740_823_200_000_i64,
               "source": {"table": table}})
        .to_string()
    };
    let (topic, payload) = match tool {
        ToolSource::Meshcentral => {
            let mut after =
                json!({"_id": {"$oid": "abc"}, "time": {"$date": now}, "nodeid": "node//n1"});
            let (base, refined) = match st {
                "node.agentconnect" => ("node.nodeconnect", Some(("conn", 1))),
                "node.agentdisconnect" => ("node.nodeconnect", Some(("conn", 0))),
                "relay.relaylog.desktop" => ("relay.relaylog", Some(("protocol", 2))),
                "relay.relaylog.terminal" => ("relay.relaylog", Some(("protocol", 1))),
                "relay.relaylog.files" => ("relay.relaylog", Some(("protocol", 5))),
                other => (other, None),
            };
            match base.split_once('.') {
                Some((e, a)) => {
                    after["etype"] = json!(e);
                    after["action"] = json!(a);
                }
                None => after["action"] = json!(base),
            }
            if let Some((k, v)) = refined {
                after[k] = json!(v);
            }
            (
                MESH,
                json!({"op": "c", "after": after.to_string()}).to_string(),
            )
        }
        ToolSource::FleetMdm => match st {
            "execute_scheduled_query" => (
                "fleet-mdm-query-result-events",
                json!({"query_id": 1, "host_id": 2, "last_fetched": now}).to_string(),
            ),
            "policy_membership_pass" | "policy_membership_fail" => (
                "fleet-mdm-policy-membership-events",
                json!({"policy_id": 1, "host_id": 2, "updated_at": now,
                       "passes": st.ends_with("pass")})
                .to_string(),
            ),
            _ => (
                FLEET,
                envelope(
                    json!({"id": 1, "activity_type": st, "created_at": now, "hostId": 2}),
                    "activities",
                ),
            ),
        },
        ToolSource::TacticalRmm => {
            let (family, rest) = st.split_once('.').unwrap();
            let payload = match (family, rest) {
                ("alert", "resolved") => envelope(
                    json!({"id": 1, "agent_id": 2, "alert_type": "check", "resolved": true,
                           "resolved_on": now}),
                    "alerts_alert",
                ),
                ("alert", t) => envelope(
                    json!({"id": 1, "agent_id": 2, "alert_type": t, "alert_time": now}),
                    "alerts_alert",
                ),
                ("agent_history", t) => envelope(
                    json!({"id": 1, "agent_id": 2, "type": t, "time": now}),
                    "agents_agenthistory",
                ),
                ("audit", a) => envelope(
                    json!({"id": 1, "agent_id": "a2", "action": a, "entry_time": now}),
                    "logs_auditlog",
                ),
                other => panic!("no template for {other:?}"),
            };
            (TRMM, payload)
        }
        ToolSource::OpenframeAgent => {
            let topic = if st == "script_result" {
                "machine.m1.script-execution.result"
            } else {
                "machine.m1.command-execution.result"
            };
            (
                topic,
                json!({"execution_id": "e1", "exit_code": 0, "finished_at": now}).to_string(),
            )
        }
        ToolSource::Openframe => (
            AGENT_EVENTS,
            json!({"tenant": "t1", "machineId": "m1", "kind": st, "status": "ONLINE", "at": now})
                .to_string(),
        ),
    };
    RawRecord::new(topic, payload.into_bytes())
}

#[test]
fn every_mapped_type_is_reachable_and_classified() {
    let registry = AdapterRegistry::builtin();
    for entry in BUILTIN_MAPPINGS {
        let record = record_for(entry.tool, entry.source_type);
        let events = registry
            .adapt(&record)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", entry.tool, entry.source_type));
        assert_eq!(events.len(), 1);
        let e = &events[0];
        let key = format!("{}:{}", entry.tool, entry.source_type);
        assert_eq!(e.tool, entry.tool, "{key}");
        assert_eq!(e.source_type, entry.source_type, "{key}");
        assert_eq!(e.category, entry.category, "{key}");
        assert_eq!(e.event_type, entry.event_type, "{key}");
        assert_ne!(e.category, EventCategory::Unknown, "{key}");
        let want = match e.outcome {
            Some(Outcome::Failure) => entry.failure_severity.unwrap_or(entry.severity),
            _ => entry.severity,
        };
        assert_eq!(e.severity, want, "{key}");
        assert_eq!(
            e.id,
            registry.adapt(&record).unwrap()[0].id,
            "{key}: stable id"
        );
        assert!(e.tool_agent_id.is_some(), "{key}: tool agent id");
    }
    assert_eq!(MappingTable::builtin().len(), BUILTIN_MAPPINGS.len());
}

#[test]
fn events_round_trip_through_json() {
    let e = one(
        script_subject(),
        "openframe_agent/script_result_failed.json",
    );
    let text = serde_json::to_string(&e).unwrap();
    assert!(text.contains(r#""severity":"ERROR""#), "{text}");
    assert!(text.contains(r#""tool":"OPENFRAME_AGENT""#), "{text}");
    let back: UnifiedEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(back, e);
}
