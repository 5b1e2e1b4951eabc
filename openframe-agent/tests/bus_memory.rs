//! The in-process bus beyond the shared suite: time comes from the injected clock (tests advance
//! a `ManualClock` instead of sleeping for `ack_wait`), slow subscribers lose their oldest
//! messages instead of blocking publishers, and bindings end when their stream is deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::bus::testkit::{assert_quiet, next_delivery, next_within};
use openframe_agent::bus::{AgentBus, ConsumerSpec, Headers, StreamSpec};
use openframe_core::{ErrorCode, ManualClock};

const QUIET: Duration = Duration::from_millis(80);

fn clocked() -> (InMemoryAgentBus, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let bus = InMemoryAgentBus::builder()
        .with_clock(clock.clone())
        .with_tick(Duration::from_millis(2))
        .build()
        .unwrap();
    (bus, clock)
}

async fn with_stream(bus: &InMemoryAgentBus, spec: StreamSpec) {
    bus.ensure_streams(&[spec]).await.unwrap();
}

#[tokio::test]
async fn redelivery_follows_the_clock() {
    let (bus, clock) = clocked();
    with_stream(&bus, StreamSpec::new("S", ["s"])).await;
    let spec = ConsumerSpec::new("S", "c")
        .with_ack_wait(Duration::from_secs(120))
        .with_max_deliver(2);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    bus.publish_durable("s", b"m".to_vec(), Headers::new())
        .await
        .unwrap();
    let first = next_delivery(&mut c, "first").await;
    assert_eq!(first.delivered, 1);

    clock.advance(Duration::from_secs(119));
    assert_quiet(&mut c, QUIET, "before ack_wait").await;
    clock.advance(Duration::from_secs(2));
    let second = next_delivery(&mut c, "redelivery").await;
    assert_eq!(
        (second.stream_sequence, second.delivered),
        (first.stream_sequence, 2)
    );
    assert!(second.is_last_attempt());

    clock.advance(Duration::from_secs(600));
    assert_quiet(&mut c, QUIET, "after max_deliver").await;
}

#[tokio::test]
async fn nak_delay_and_progress_follow_the_clock() {
    let (bus, clock) = clocked();
    with_stream(&bus, StreamSpec::new("S", ["s"])).await;
    let spec = ConsumerSpec::new("S", "c").with_ack_wait(Duration::from_secs(60));
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    bus.publish_durable("s", b"m".to_vec(), Headers::new())
        .await
        .unwrap();

    let d = next_delivery(&mut c, "first").await;
    d.nak(Some(Duration::from_secs(10))).await.unwrap();
    clock.advance(Duration::from_secs(9));
    assert_quiet(&mut c, QUIET, "before the nak delay").await;
    clock.advance(Duration::from_secs(2));
    let d = next_delivery(&mut c, "after the nak delay").await;
    assert_eq!(d.delivered, 2);

    clock.advance(Duration::from_secs(50));
    d.in_progress().await.unwrap();
    clock.advance(Duration::from_secs(50));
    assert_quiet(&mut c, QUIET, "progress restarted ack_wait").await;
    clock.advance(Duration::from_secs(11));
    let again = next_delivery(&mut c, "after the extended ack_wait").await;
    assert_eq!(again.delivered, 3);
    again.ack().await.unwrap();
    drop(d);
    clock.advance(Duration::from_secs(3600));
    assert_quiet(&mut c, QUIET, "after ack").await;
}

#[tokio::test]
async fn max_age_follows_the_clock() {
    let (bus, clock) = clocked();
    with_stream(
        &bus,
        StreamSpec::new("S", ["s.*"]).with_max_age(Duration::from_secs(60)),
    )
    .await;
    bus.publish_durable("s.old", b"old".to_vec(), Headers::new())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    bus.publish_durable("s.new", b"new".to_vec(), Headers::new())
        .await
        .unwrap();
    let mut c = bus
        .durable_consumer(&ConsumerSpec::new("S", "c"))
        .await
        .unwrap();
    let d = next_delivery(&mut c, "the young message").await;
    assert_eq!(d.message.subject, "s.new");
    d.ack().await.unwrap();
    assert_quiet(&mut c, QUIET, "the old message expired").await;
}

#[tokio::test]
async fn a_slow_subscriber_loses_its_oldest_messages_and_never_blocks() {
    let bus = InMemoryAgentBus::builder()
        .with_subscriber_capacity(3)
        .build()
        .unwrap();
    let mut slow = bus.subscribe("m.>").await.unwrap();
    for i in 0..10 {
        tokio::time::timeout(
            Duration::from_secs(1),
            bus.publish(&format!("m.{i}"), vec![i], Headers::new()),
        )
        .await
        .expect("a full subscriber blocked the publisher")
        .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_within(&mut slow, "queued").await.payload[0]);
    }
    assert_eq!(got, [7, 8, 9]);
    bus.publish("m.fence", vec![42], Headers::new())
        .await
        .unwrap();
    assert_eq!(next_within(&mut slow, "fence").await.payload, [42]);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let bus = InMemoryAgentBus::new();
    let sub = bus.subscribe("a.*").await.unwrap();
    let other = bus.subscribe("a.b").await.unwrap();
    assert!(format!("{bus:?}").contains("subscriptions: 2"), "{bus:?}");
    drop(sub);
    assert!(format!("{bus:?}").contains("subscriptions: 1"), "{bus:?}");
    drop(other);
    assert!(format!("{bus:?}").contains("subscriptions: 0"), "{bus:?}");
}

#[tokio::test]
async fn deleting_the_stream_ends_its_bindings() {
    let bus = InMemoryAgentBus::new();
    with_stream(&bus, StreamSpec::new("S", ["s"])).await;
    let mut c = bus
        .durable_consumer(&ConsumerSpec::new("S", "c"))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { c.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(bus.delete_stream("S").await.unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the binding did not end")
        .unwrap();
    assert!(ended);
}

#[tokio::test]
async fn a_binding_of_a_recreated_stream_does_not_revive() {
    let bus = InMemoryAgentBus::new();
    let spec = StreamSpec::new("S", ["s"]);
    with_stream(&bus, spec.clone()).await;
    let consumer = ConsumerSpec::new("S", "c");
    let mut old = bus.durable_consumer(&consumer).await.unwrap();
    bus.publish_durable("s", b"1".to_vec(), Headers::new())
        .await
        .unwrap();
    let stale = next_delivery(&mut old, "before deletion").await;
    bus.delete_stream("S").await.unwrap();
    with_stream(&bus, spec).await;
    let mut new = bus.durable_consumer(&consumer).await.unwrap();
    assert!(old.next().await.is_none(), "a binding outlived its stream");
    stale.ack().await.unwrap();
    bus.publish_durable("s", b"2".to_vec(), Headers::new())
        .await
        .unwrap();
    let d = next_delivery(&mut new, "after recreation").await;
    assert_eq!(
        (d.message.payload.as_slice(), d.stream_sequence),
        (&b"2"[..], 1)
    );
}

#[tokio::test]
async fn clones_share_one_bus() {
    let bus = InMemoryAgentBus::new();
    let agent_side: Arc<dyn AgentBus> = Arc::new(bus.clone());
    let mut sub = bus.subscribe("machine.*.heartbeat").await.unwrap();
    agent_side
        .publish("machine.m1.heartbeat", b"\"{}\"".to_vec(), Headers::new())
        .await
        .unwrap();
    assert_eq!(
        next_within(&mut sub, "heartbeat").await.subject,
        "machine.m1.heartbeat"
    );
}

#[test]
fn builder_rejects_out_of_range_settings() {
    for (builder, field) in [
        (
            InMemoryAgentBus::builder().with_tick(Duration::ZERO),
            "tick",
        ),
        (
            InMemoryAgentBus::builder().with_tick(Duration::from_secs(60)),
            "tick",
        ),
        (
            InMemoryAgentBus::builder().with_subscriber_capacity(0),
            "subscriberCapacity",
        ),
        (
            InMemoryAgentBus::builder().with_max_payload(0),
            "maxPayload",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert_eq!(err.field(), Some(field));
    }
}

#[tokio::test]
async fn max_payload_is_configurable() {
    let bus = InMemoryAgentBus::builder()
        .with_max_payload(16)
        .build()
        .unwrap();
    bus.publish("a", vec![0; 16], Headers::new()).await.unwrap();
    let err = bus
        .publish("a", vec![0; 17], Headers::new())
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("payload"));
}
