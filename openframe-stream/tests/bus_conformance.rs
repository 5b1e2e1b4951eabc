//! The event bus conformance suite on the in-process bus, plus what only it promises:
//! backpressure, retention and rebalancing details.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Error, ManualClock};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::testkit::{assert_quiet, next_within, publish, read_n};
use openframe_stream::bus::{
    ConsumerSpec, EventBus, EventConsumer, EventPublisher, Position, Record,
};

async fn in_memory() -> Option<Arc<dyn EventBus>> {
    Some(Arc::new(InMemoryEventBus::new()))
}

openframe_stream::event_bus_conformance!(in_memory);

/// A bus with a manual clock, a backlog bound of 2 and a retention of 5 records.
fn small_bus() -> (InMemoryEventBus, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let bus = InMemoryEventBus::builder()
        .with_clock(clock.clone())
        .with_tick(Duration::from_millis(5))
        .with_max_backlog(2)
        .with_retention(5)
        .with_publish_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (bus, clock)
}

fn payload(delivered: &openframe_stream::bus::Delivered) -> &[u8] {
    &delivered.record.payload
}

#[tokio::test]
async fn backpressure_waits_for_the_slowest_group_then_times_out() {
    let (bus, clock) = small_bus();
    bus.ensure_topic("bp", 1).await.unwrap();
    let mut slow = bus
        .consumer(ConsumerSpec::new("slow", ["bp"]))
        .await
        .unwrap();
    let mut fast = bus
        .consumer(ConsumerSpec::new("fast", ["bp"]))
        .await
        .unwrap();
    publish(&bus, "bp", None, "r0").await;
    publish(&bus, "bp", None, "r1").await;
    for d in read_n(&mut *fast, 2).await {
        fast.commit_delivered(&d).await.unwrap();
    }

    // The slow group has 2 uncommitted records: the next publish waits for it.
    let pending = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(Record::new("bp", b"r2".to_vec())).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !pending.is_finished(),
        "publish must wait under backpressure"
    );

    // Reading is not enough; committing frees room.
    let d = next_within(&mut *slow).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!pending.is_finished());
    slow.commit_delivered(&d).await.unwrap();
    let position = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("publish resumes after the commit")
        .unwrap()
        .unwrap();
    assert_eq!(position, Position::new(0, 2));

    // Full again: the publish fails with Unavailable once the timeout passes on the clock.
    let pending = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(Record::new("bp", b"r3".to_vec())).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!pending.is_finished());
    clock.advance(Duration::from_secs(11));
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_retryable());
}

#[tokio::test]
async fn groups_without_consumers_do_not_hold_publishers_and_lose_beyond_retention() {
    let (bus, _clock) = small_bus();
    bus.ensure_topic("ret", 1).await.unwrap();
    let c = bus
        .consumer(ConsumerSpec::new("idle", ["ret"]))
        .await
        .unwrap();
    drop(c);
    for i in 0..8 {
        let position = publish(&bus, "ret", None, &format!("r{i}")).await;
        assert_eq!(position.offset, i);
    }
    // Retention 5: r0..r2 were dropped; the idle group resumes at the oldest retained record.
    let mut c = bus
        .consumer(ConsumerSpec::new("idle", ["ret"]))
        .await
        .unwrap();
    let got = read_n(&mut *c, 5).await;
    assert_eq!(payload(&got[0]), b"r3");
    assert_eq!(got[0].position, Position::new(0, 3));
    assert_eq!(payload(&got[4]), b"r7");
}

#[tokio::test]
async fn a_joining_consumer_takes_partitions_and_their_uncommitted_records() {
    let bus = InMemoryEventBus::new();
    bus.ensure_topic("rb", 2).await.unwrap();
    let mut first = bus.consumer(ConsumerSpec::new("g", ["rb"])).await.unwrap();
    assert_eq!(first.assignment().len(), 2);
    // One unkeyed record per partition (round-robin).
    publish(&bus, "rb", None, "p0").await;
    publish(&bus, "rb", None, "p1").await;
    let got = read_n(&mut *first, 2).await;

    let mut second = bus.consumer(ConsumerSpec::new("g", ["rb"])).await.unwrap();
    let moved = second.assignment();
    assert_eq!(moved.len(), 1);
    assert_eq!(first.assignment().len(), 1);
    let moved_partition = moved[0].1;
    let lost = got
        .iter()
        .find(|d| d.position.partition == moved_partition)
        .unwrap();
    let kept = got
        .iter()
        .find(|d| d.position.partition != moved_partition)
        .unwrap();

    // The old owner can no longer commit the moved partition; the new owner gets its record.
    assert!(matches!(
        first.commit_delivered(lost).await,
        Err(Error::Conflict { .. })
    ));
    first.commit_delivered(kept).await.unwrap();
    let again = next_within(&mut *second).await;
    assert_eq!(again.position, lost.position);
    second.commit_delivered(&again).await.unwrap();
    assert_quiet(&mut *first).await;

    // When the second leaves, the first gets the partition back from the commit.
    drop(second);
    assert_eq!(first.assignment().len(), 2);
    assert_quiet(&mut *first).await;
}

#[tokio::test]
async fn commits_are_checked_and_in_flight_is_bounded() {
    let bus = InMemoryEventBus::new();
    bus.ensure_topic("inflight", 1).await.unwrap();
    for i in 0..3 {
        publish(&bus, "inflight", None, &format!("r{i}")).await;
    }
    let mut c = bus
        .consumer(ConsumerSpec::new("g", ["inflight"]).with_max_in_flight(2))
        .await
        .unwrap();
    let got = read_n(&mut *c, 2).await;
    assert!(matches!(c.next().await, Err(Error::Conflict { .. })));
    assert!(matches!(
        c.commit("inflight", &[Position::new(0, 2)]).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        c.commit("inflight", &[Position::new(3, 0)]).await,
        Err(Error::Conflict { .. })
    ));
    c.commit_delivered(&got[1]).await.unwrap();
    // An older commit does not move the position back.
    c.commit_delivered(&got[0]).await.unwrap();
    assert_eq!(payload(&next_within(&mut *c).await), b"r2");
    drop(c);
    let mut c = bus
        .consumer(ConsumerSpec::new("g", ["inflight"]))
        .await
        .unwrap();
    assert_eq!(payload(&next_within(&mut *c).await), b"r2");
}

#[tokio::test]
async fn deleting_a_topic_ends_its_consumers() {
    let bus = InMemoryEventBus::new();
    bus.ensure_topic("gone", 1).await.unwrap();
    let mut c = bus
        .consumer(ConsumerSpec::new("g", ["gone"]))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { c.next().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(bus.delete_topic("gone").await.unwrap());
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Ok(None)), "{result:?}");
}

#[test]
fn builder_rejects_out_of_range_settings() {
    for builder in [
        InMemoryEventBus::builder().with_retention(0),
        InMemoryEventBus::builder()
            .with_retention(5)
            .with_max_backlog(6),
        InMemoryEventBus::builder().with_max_backlog(0),
        InMemoryEventBus::builder().with_tick(Duration::ZERO),
        InMemoryEventBus::builder().with_max_record_bytes(0),
    ] {
        assert!(matches!(builder.build(), Err(Error::InvalidInput { .. })));
    }
}

#[tokio::test]
async fn publishers_are_usable_as_trait_objects() {
    let bus: Arc<dyn EventBus> = Arc::new(InMemoryEventBus::new());
    bus.ensure_topic("dyn", 1).await.unwrap();
    let mut c: Box<dyn EventConsumer> =
        bus.consumer(ConsumerSpec::new("g", ["dyn"])).await.unwrap();
    bus.publish(Record::new("dyn", b"x".to_vec()).with_key("k"))
        .await
        .unwrap();
    assert_eq!(payload(&next_within(&mut *c).await), b"x");
}
