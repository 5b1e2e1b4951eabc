//! The event bus conformance suite on NATS JetStream. Runs when `OPENFRAME_TEST_NATS_URL` is set
//! (`scripts/test-services.sh` starts a server), prints a `skipped:` line otherwise.

#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use openframe_core::Error;
use openframe_stream::bus::nats::{NatsEventBus, NatsEventBusConfig};
use openframe_stream::bus::testkit::{Namespace, next_within, publish, read_n};
use openframe_stream::bus::{ConsumerSpec, EventBus, EventPublisher, Headers, Record};

const VAR: &str = "OPENFRAME_TEST_NATS_URL";

async fn connect() -> Option<NatsEventBus> {
    let Ok(url) = std::env::var(VAR) else {
        println!("skipped: set {VAR} to run the NATS event bus suite");
        return None;
    };
    let config = NatsEventBusConfig::new(url)
        .with_group_timeouts(Duration::from_secs(3), Duration::from_millis(250))
        .with_join_window(Duration::from_millis(150))
        .with_memory_storage(true);
    Some(NatsEventBus::connect_with(config).await.expect("connect"))
}

async fn nats() -> Option<Arc<dyn EventBus>> {
    Some(Arc::new(connect().await?))
}

openframe_stream::event_bus_conformance!(nats);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_headers_are_rejected_and_keys_survive_binary() {
    let Some(bus) = connect().await else { return };
    let ns = Namespace::new();
    let topic = ns.create_topic(&bus, "reserved", 1).await;
    let result = bus
        .publish(
            Record::new(topic.clone(), b"x".to_vec())
                .with_headers(Headers::new().with("Openframe-Bus-Key", "forged")),
        )
        .await;
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{result:?}"
    );

    let key = vec![0u8, 255, 10, 13];
    bus.publish(Record::new(topic.clone(), b"bin".to_vec()).with_key(key.clone()))
        .await
        .unwrap();
    let mut c = bus
        .consumer(ConsumerSpec::new(ns.group("g"), [topic.clone()]))
        .await
        .unwrap();
    let got = next_within(&mut *c).await;
    assert_eq!(got.record.key, Some(key));
    assert!(got.record.headers.is_empty());
    drop(c);
    ns.cleanup(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_fences_the_old_owner_of_a_moved_partition() {
    let Some(bus) = connect().await else { return };
    let ns = Namespace::new();
    let topic = ns.create_topic(&bus, "fence", 2).await;
    let group = ns.group("g");
    let mut first = bus
        .consumer(ConsumerSpec::new(group.clone(), [topic.clone()]))
        .await
        .unwrap();
    assert_eq!(first.assignment().len(), 2);
    publish(&bus, &topic, None, "p0").await;
    publish(&bus, &topic, None, "p1").await;
    let got = read_n(&mut *first, 2).await;

    let mut second = bus
        .consumer(ConsumerSpec::new(group.clone(), [topic.clone()]))
        .await
        .unwrap();
    let moved = second.assignment();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let lost = got
        .iter()
        .find(|d| d.position.partition == moved[0].1)
        .unwrap();
    let kept = got
        .iter()
        .find(|d| d.position.partition != moved[0].1)
        .unwrap();
    assert!(matches!(
        first.commit_delivered(lost).await,
        Err(Error::Conflict { .. })
    ));
    first.commit_delivered(kept).await.unwrap();
    let again = next_within(&mut *second).await;
    assert_eq!(again.position, lost.position);
    second.commit_delivered(&again).await.unwrap();
    drop((first, second));
    ns.cleanup(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_ends_its_consumers() {
    let Some(bus) = connect().await else { return };
    let ns = Namespace::new();
    let topic = ns.topic("gone");
    bus.ensure_topic(&topic, 1).await.unwrap();
    let mut c = bus
        .consumer(ConsumerSpec::new(ns.group("g"), [topic.clone()]))
        .await
        .unwrap();
    assert!(bus.delete_topic(&topic).await.unwrap());
    let result = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("the consumer ends");
    assert!(matches!(result, Ok(None)), "{result:?}");
}
