//! Kafka faults: the broker is killed and restarted mid-stream; nothing is lost, every record
//! is delivered at least once, and the group resumes from its commits.
//!
//! Starts its own tansu broker (from `OPENFRAME_TEST_TANSU_BIN`, else `tansu` on the PATH) with
//! SQLite storage in a temporary directory on a free port, so it can kill and restart it without
//! disturbing other tests. Skipped with a clear line if tansu is not installed
//! (`scripts/test-services.sh` installs it).

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support_tansu;

use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
use openframe_stream::bus::testkit::assert_quiet;
use openframe_stream::bus::{ConsumerSpec, EventBus, EventPublisher, Record};
use support_tansu::Tansu;

const RECORDS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let Some(bin) = Tansu::find() else { return };
    let dir = std::env::temp_dir().join(format!("openframe-kafka-faults-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tansu = Tansu::start(bin, &dir);
    let bus = Arc::new(
        KafkaEventBus::new(
            KafkaEventBusConfig::new([tansu.brokers()])
                .with_client_id("faults")
                .with_group_timeouts(Duration::from_secs(6), Duration::from_millis(500))
                .with_delivery_timeout(Duration::from_secs(60))
                .with_request_timeout(Duration::from_secs(5))
                .with_linger(Duration::from_millis(1)),
        )
        .unwrap(),
    );
    bus.ensure_topic("faults", 2).await.unwrap();

    // The consumer commits every record it processes and stops once it has seen them all.
    let consumer_bus = bus.clone();
    let consumer = tokio::spawn(async move {
        let mut c = consumer_bus
            .consumer(ConsumerSpec::new("faults-group", ["faults"]))
            .await
            .unwrap();
        let mut seen = BTreeSet::new();
        let mut deliveries = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.len() < RECORDS {
            assert!(
                Instant::now() < deadline,
                "only {} records seen",
                seen.len()
            );
            let Ok(next) = tokio::time::timeout(Duration::from_millis(500), c.next()).await else {
                continue;
            };
            let delivered = next.expect("next").expect("consumer ended");
            deliveries += 1;
            seen.insert(String::from_utf8(delivered.record.payload.clone()).unwrap());
            // A commit may fail while the broker is down or the group rebalances; the record
            // then comes again, which at-least-once allows.
            if let Err(e) = c.commit_delivered(&delivered).await {
                assert!(e.is_retryable(), "{e:?}");
            }
        }
        // Drain what a failed commit left behind, committing it for good this time.
        while let Ok(next) = tokio::time::timeout(Duration::from_secs(2), c.next()).await {
            let delivered = next.expect("next").expect("consumer ended");
            deliveries += 1;
            c.commit_delivered(&delivered)
                .await
                .expect("commit after the restart");
        }
        (seen, deliveries, c)
    });

    let mut published = Vec::new();
    for i in 0..RECORDS {
        if i == RECORDS / 2 {
            tansu.kill();
            // Publishing continues while the broker is down: these publishes wait for it.
            let restarter = tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_secs(2));
                tansu.spawn();
                tansu
            });
            let payload = format!("r{i:03}");
            let record =
                Record::new("faults", payload.clone().into_bytes()).with_key(format!("k{}", i % 7));
            let position = bus
                .publish(record)
                .await
                .expect("publish across the restart");
            published.push((payload, position));
            tansu = restarter.await.unwrap();
            continue;
        }
        let payload = format!("r{i:03}");
        let record =
            Record::new("faults", payload.clone().into_bytes()).with_key(format!("k{}", i % 7));
        let position = bus.publish(record).await.expect("publish");
        published.push((payload, position));
    }
    let unique: BTreeSet<_> = published.iter().map(|(_, p)| *p).collect();
    assert_eq!(unique.len(), RECORDS, "every publish got its own position");

    let (seen, deliveries, c) = tokio::time::timeout(Duration::from_secs(150), consumer)
        .await
        .expect("the consumer finishes")
        .unwrap();
    let expected: BTreeSet<String> = published.into_iter().map(|(p, _)| p).collect();
    assert_eq!(seen, expected, "every record was delivered");
    assert!(deliveries >= RECORDS);
    println!("{RECORDS} records, {deliveries} deliveries across a broker restart");
    drop(c);

    // The commits survived the restart: a new member of the group resumes after them.
    let mut c = bus
        .consumer(ConsumerSpec::new("faults-group", ["faults"]))
        .await
        .unwrap();
    bus.publish(Record::new("faults", b"after".to_vec()).with_key("k0"))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), c.next())
        .await
        .expect("delivered after the rejoin")
        .unwrap()
        .unwrap();
    assert_eq!(next.record.payload, b"after", "nothing committed came back");
    c.commit_delivered(&next).await.unwrap();
    assert_quiet(&mut *c).await;
    drop(c);
    drop(tansu);
    let _ = std::fs::remove_dir_all(&dir);
}
