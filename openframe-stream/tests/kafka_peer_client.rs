//! A round trip with a Kafka client no one here wrote: Python's confluent-kafka (see
//! tests/peer/kafka_peer.py). It produces Debezium envelopes that our consumer reads and our
//! adapters turn into unified events; then it reads what we publish and we check what it saw.
//!
//! Runs when `OPENFRAME_TEST_KAFKA_BROKERS` and `OPENFRAME_TEST_PYTHON` (a Python with
//! confluent-kafka) are set, as `scripts/test-services.sh` does; prints `skipped:` otherwise.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use openframe_stream::adapters::{AdapterRegistry, RawRecord};
use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
use openframe_stream::bus::testkit::read_n;
use openframe_stream::bus::{
    ConsumerSpec, EventBus, EventPublisher, Headers, Record, partition_for_key,
};
use openframe_stream::model::ToolSource;
use serde_json::Value;

const BASE_MS: i64 = 1_740_823_260_000;

struct Peer {
    brokers: String,
    python: String,
    prefix: String,
}

fn peer() -> Option<Peer> {
    let (Ok(brokers), Ok(python)) = (
        std::env::var("OPENFRAME_TEST_KAFKA_BROKERS"),
        std::env::var("OPENFRAME_TEST_PYTHON"),
    ) else {
        println!(
            "skipped: set OPENFRAME_TEST_KAFKA_BROKERS and OPENFRAME_TEST_PYTHON (with confluent-kafka) to run the peer-client round trip"
        );
        return None;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    Some(Peer {
        brokers,
        python,
        prefix: format!("peer-{}.", &id[..8]),
    })
}

impl Peer {
    fn bus(&self) -> KafkaEventBus {
        KafkaEventBus::new(
            KafkaEventBusConfig::new(self.brokers.split(','))
                .with_client_id("openframe-peer-test")
                .with_topic_prefix(self.prefix.clone())
                .with_group_timeouts(Duration::from_secs(6), Duration::from_millis(500)),
        )
        .unwrap()
    }

    /// Runs the Python peer and returns its JSON lines.
    async fn run(&self, args: Vec<String>) -> Vec<Value> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/kafka_peer.py");
        let python = self.python.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(script)
                .args(args)
                .output()
                .expect("run python")
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "python peer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn raw(delivered: &openframe_stream::bus::Delivered) -> RawRecord {
    let mut headers = BTreeMap::new();
    for (name, value) in delivered.record.headers.iter() {
        headers
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    RawRecord {
        topic: delivered.record.topic.clone(),
        key: delivered.record.key.clone(),
        payload: delivered.record.payload.clone(),
        headers,
        timestamp: delivered.record.timestamp,
        position: Some(format!(
            "{}:{}",
            delivered.position.partition, delivered.position.offset
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_envelopes_from_python_become_unified_events() {
    let Some(peer) = peer() else { return };
    let bus = peer.bus();
    let (mesh, fleet) = ("meshcentral-events", "fleet-mdm-activities");
    bus.ensure_topic(mesh, 3).await.unwrap();
    bus.ensure_topic(fleet, 2).await.unwrap();

    let produced = peer
        .run(vec![
            "produce".into(),
            peer.brokers.clone(),
            format!("{}{mesh}", peer.prefix),
            format!("{}{fleet}", peer.prefix),
        ])
        .await;
    assert_eq!(produced.len(), 5, "{produced:?}");

    let mut c = bus
        .consumer(ConsumerSpec::new("normalizer", [mesh, fleet]))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), read_n(&mut *c, 5))
        .await
        .expect("the peer's records arrive");
    let registry = AdapterRegistry::builtin();
    let mut mesh_agents = Vec::new();
    let mut fleet_hosts = Vec::new();
    for d in &got {
        // The peer saw the same position; both clients partition keys alike (murmur2).
        let line = produced
            .iter()
            .find(|l| {
                l["offset"].as_u64() == Some(d.position.offset)
                    && l["partition"].as_u64() == Some(u64::from(d.position.partition))
                    && l["topic"].as_str()
                        == Some(format!("{}{}", peer.prefix, d.record.topic).as_str())
            })
            .unwrap_or_else(|| panic!("no produced record at {:?}", d.position));
        let key = d.record.key.clone().expect("keyed");
        assert_eq!(line["key"].as_str().unwrap().as_bytes(), key.as_slice());
        let partitions = if d.record.topic == mesh { 3 } else { 2 };
        assert_eq!(d.position.partition, partition_for_key(&key, partitions));
        let at = d.record.timestamp.unwrap().timestamp_millis();
        assert_eq!((at - BASE_MS) % 1000, 0, "the producer's timestamp is kept");

        let events = registry.adapt(&raw(d)).expect("adapts");
        assert_eq!(events.len(), 1);
        let event = &events[0];
        if d.record.topic == mesh {
            assert_eq!(
                d.record.headers.get("message-type"),
                Some("MESHCENTRAL_EVENT")
            );
            assert_eq!(event.tool, ToolSource::Meshcentral);
            assert_eq!(event.event_type, "DEVICE_ONLINE");
            mesh_agents.push(event.tool_agent_id.clone().unwrap());
        } else {
            assert_eq!(event.tool, ToolSource::FleetMdm);
            assert_eq!(event.event_type, "SCRIPT_EXECUTION_STARTED");
            assert_eq!(event.user.as_deref(), Some("Peer Admin"));
            assert!(event.summary.contains("peer-check.sh"), "{}", event.summary);
            fleet_hosts.push(event.tool_agent_id.clone().unwrap());
        }
        c.commit_delivered(d).await.unwrap();
    }
    mesh_agents.sort();
    fleet_hosts.sort();
    assert_eq!(
        mesh_agents,
        [
            "node//PeerNode00AbCdEfGhIjKlMnOpQrStUvWxYz0123456789$",
            "node//PeerNode01AbCdEfGhIjKlMnOpQrStUvWxYz0123456789$"
        ]
    );
    assert_eq!(fleet_hosts, ["500", "501", "502"]);
    drop(c);
    bus.delete_topic(mesh).await.unwrap();
    bus.delete_topic(fleet).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_what_we_publish_with_keys_headers_and_timestamps() {
    let Some(peer) = peer() else { return };
    let bus = peer.bus();
    let topic = "agent-results";
    bus.ensure_topic(topic, 2).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..4i64 {
        let record = Record::new(topic, format!("{{\"exitCode\":{i}}}").into_bytes())
            .with_key(format!("machine-{i}"))
            .with_headers(
                Headers::new()
                    .with("message-type", "SCRIPT_EXECUTED")
                    .with("x-tag", "a")
                    .with("x-tag", format!("b{i}")),
            )
            .with_timestamp(chrono::DateTime::from_timestamp_millis(BASE_MS + i).unwrap());
        let position = bus.publish(record.clone()).await.unwrap();
        sent.push((record, position));
    }
    let lines = peer
        .run(vec![
            "consume".into(),
            peer.brokers.clone(),
            format!("{}{topic}", peer.prefix),
            format!("{}python-reader", peer.prefix),
            "4".into(),
        ])
        .await;
    assert_eq!(lines.len(), 4);
    for (record, position) in &sent {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        let line = lines
            .iter()
            .find(|l| l["key"].as_str() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("python did not see {key}: {lines:?}"));
        assert_eq!(line["value"].as_str().unwrap().as_bytes(), record.payload);
        assert_eq!(
            line["partition"].as_u64(),
            Some(u64::from(position.partition))
        );
        assert_eq!(line["offset"].as_u64(), Some(position.offset));
        assert_eq!(
            line["timestamp"].as_i64(),
            Some(record.timestamp.unwrap().timestamp_millis())
        );
        let headers: Vec<(String, String)> = line["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
            .collect();
        let expected: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            headers, expected,
            "headers arrive in order, repeated names kept"
        );
    }
    bus.delete_topic(topic).await.unwrap();
}
