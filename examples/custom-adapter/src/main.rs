//! Run with: cargo run -p example-custom-adapter
//!
//! Registers the custom Tactical RMM webhook adapter next to the built-in ones and adapts a
//! sample webhook, printing the unified event.

use example_custom_adapter::{MESSAGE_TYPE, TrmmWebhookAdapter, mapping_table};
use openframe_stream::adapters::{AdapterRegistry, MESSAGE_TYPE_HEADER, RawRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = mapping_table();
    let registry =
        AdapterRegistry::builtin_with(table.clone()).with(TrmmWebhookAdapter::new(table));
    let body = br#"{"alert_id": 4711, "status": "failure", "severity": "error",
        "agent_id": "TRMM-AGENT-77", "hostname": "web-01",
        "message": "Disk space check failed: C: 97% used", "alert_time": "2026-11-26T04:00:00Z"}"#;
    let record = RawRecord::new("tenant-acme.trmm-webhooks", body.to_vec())
        .with_header(MESSAGE_TYPE_HEADER, MESSAGE_TYPE)
        .with_header("tenant-id", "acme");
    for event in registry.adapt(&record)? {
        println!("{}", serde_json::to_string_pretty(&event)?);
    }
    Ok(())
}
