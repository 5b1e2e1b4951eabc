//! The [`EventBus`] conformance suite: every backend (and every decorator) runs it.
//!
//! Each `check_*` function takes the bus under test and panics on failure, like an assertion.
//! The [`event_bus_conformance!`](crate::event_bus_conformance) macro expands every check into a
//! `#[tokio::test]` for a factory `async fn() -> Option<Arc<dyn EventBus>>` that returns `None`
//! (after printing a `skipped: set OPENFRAME_TEST_..._URL` line) when its service is not
//! configured:
//!
//! ```text
//! async fn make_bus() -> Option<Arc<dyn EventBus>> { Some(Arc::new(InMemoryEventBus::new())) }
//! openframe_stream::event_bus_conformance!(make_bus);
//! ```
//!
//! Every check works in its own random [`Namespace`] (a topic prefix and a group prefix), so
//! checks can run at once against one shared broker, and deletes its topics at the end. The
//! checks assume a consumer's partitions are assigned by the time [`EventBus::consumer`]
//! returns or, at the latest, during its first [`EventConsumer::next`] calls; they read with
//! short timeouts, which [`EventConsumer::next`]'s cancel safety allows.
//!
//! Backpressure is not part of the suite: what a publisher waits for differs per backend (the
//! in-process bus waits for slow groups, a broker for its own buffers).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openframe_core::Error;

use super::{
    ConsumerSpec, Delivered, EventBus, EventConsumer, Headers, PartitionLag, Position, Record,
    StartPosition, TopicSpec,
};

/// How long a check waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long a check waits to conclude that nothing more arrives.
pub const QUIET: Duration = Duration::from_millis(300);

/// A random topic and group prefix for one check; remembers the topics it created so
/// [`Namespace::cleanup`] can delete them.
#[derive(Debug)]
pub struct Namespace {
    /// The prefix of every topic of this namespace.
    pub prefix: String,
    topics: Mutex<Vec<String>>,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespace {
    /// A fresh namespace.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: format!("oftest-{}", &id[..12]),
            topics: Mutex::new(Vec::new()),
        }
    }

    /// A topic name in this namespace.
    pub fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// A group name in this namespace.
    pub fn group(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates the topic `name` of this namespace with `partitions` and returns its full name.
    pub async fn create_topic(&self, bus: &dyn EventBus, name: &str, partitions: u32) -> String {
        let topic = self.topic(name);
        bus.ensure_topics(&[TopicSpec::new(topic.clone(), partitions)])
            .await
            .expect("ensure_topics");
        self.topics.lock().unwrap().push(topic.clone());
        topic
    }

    /// Deletes the topics this namespace created.
    pub async fn cleanup(&self, bus: &dyn EventBus) {
        let topics = std::mem::take(&mut *self.topics.lock().unwrap());
        for topic in topics {
            bus.delete_topic(&topic).await.expect("delete_topic");
        }
    }
}

/// Publishes `payload` with `key` to `topic`.
pub async fn publish(
    bus: &dyn EventBus,
    topic: &str,
    key: Option<&str>,
    payload: &str,
) -> Position {
    let mut record = Record::new(topic, payload.as_bytes().to_vec());
    if let Some(key) = key {
        record = record.with_key(key);
    }
    bus.publish(record).await.expect("publish")
}

/// The next delivery within [`WAIT`]; panics if none comes.
pub async fn next_within(consumer: &mut dyn EventConsumer) -> Delivered {
    match tokio::time::timeout(WAIT, consumer.next()).await {
        Ok(Ok(Some(delivered))) => delivered,
        Ok(Ok(None)) => panic!("the consumer ended"),
        Ok(Err(e)) => panic!("next failed: {e}"),
        Err(_) => panic!("nothing delivered within {WAIT:?}"),
    }
}

/// Reads `n` deliveries, each within [`WAIT`].
pub async fn read_n(consumer: &mut dyn EventConsumer, n: usize) -> Vec<Delivered> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_within(consumer).await);
    }
    out
}

/// Asserts that nothing is delivered within [`QUIET`].
pub async fn assert_quiet(consumer: &mut dyn EventConsumer) {
    if let Ok(result) = tokio::time::timeout(QUIET, consumer.next()).await {
        let delivered = result.expect("next");
        panic!("expected nothing more, got {delivered:?}");
    }
}

fn payload_of(delivered: &Delivered) -> String {
    String::from_utf8(delivered.record.payload.clone()).expect("utf-8 payload")
}

fn payloads(delivered: &[Delivered]) -> Vec<String> {
    delivered.iter().map(payload_of).collect()
}

async fn consumer(bus: &dyn EventBus, spec: ConsumerSpec) -> Box<dyn EventConsumer> {
    bus.consumer(spec).await.expect("consumer")
}

/// A record published with key, headers and timestamp comes back unchanged (timestamp to the
/// millisecond) at the position `publish` returned; a record without timestamp gets one.
pub async fn check_round_trip(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "round-trip", 3).await;
    assert_eq!(bus.topic_partitions(&topic).await.unwrap(), Some(3));

    let timestamp = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
    let headers = Headers::new()
        .with("message-type", "COMMAND_EXECUTED")
        .with("x-tag", "a")
        .with("x-tag", "b");
    let sent = Record::new(topic.clone(), b"{\"exitCode\":0}".to_vec())
        .with_key("machine-1")
        .with_headers(headers.clone())
        .with_timestamp(timestamp);
    let position = bus.publish(sent.clone()).await.unwrap();
    assert!(position.partition < 3);
    let unkeyed = bus
        .publish(Record::new(topic.clone(), b"second".to_vec()))
        .await
        .unwrap();

    let mut c = consumer(&*bus, ConsumerSpec::new(ns.group("g"), [topic.clone()])).await;
    let mut got = read_n(&mut *c, 2).await;
    got.sort_by_key(|d| d.record.payload != sent.payload);
    let first = &got[0];
    assert_eq!(first.position, position);
    assert_eq!(first.record.topic, topic);
    assert_eq!(first.record.key.as_deref(), Some(&b"machine-1"[..]));
    assert_eq!(first.record.payload, sent.payload);
    assert_eq!(first.record.headers, headers);
    assert_eq!(first.record.headers.get_all("x-tag"), ["a", "b"]);
    assert_eq!(first.record.timestamp, Some(timestamp));

    let second = &got[1];
    assert_eq!(second.position, unkeyed);
    assert_eq!(second.record.key, None);
    assert!(second.record.headers.is_empty());
    assert!(
        second.record.timestamp.is_some(),
        "the bus stamps a timestamp"
    );
    for d in &got {
        c.commit_delivered(d).await.unwrap();
    }
    drop(c);
    ns.cleanup(&*bus).await;
}

/// Records of one key land on one partition (the one [`partition_for_key`](super::partition_for_key)
/// names) and are delivered in publish order; unkeyed records spread over partitions.
pub async fn check_per_key_order(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "order", 4).await;
    let keys = [
        "machine-a",
        "machine-b",
        "machine-c",
        "machine-d",
        "machine-e",
    ];
    let mut partition_of = BTreeMap::new();
    for i in 0..20 {
        for key in keys {
            let position = publish(&*bus, &topic, Some(key), &format!("{key}:{i}")).await;
            assert_eq!(
                position.partition,
                super::partition_for_key(key.as_bytes(), 4),
                "keyed records use the shared partitioner"
            );
            let previous = partition_of.insert(key, position.partition);
            assert!(previous.is_none_or(|p| p == position.partition));
        }
    }
    let mut c = consumer(&*bus, ConsumerSpec::new(ns.group("g"), [topic.clone()])).await;
    let got = read_n(&mut *c, 100).await;
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut last_offset: BTreeMap<u32, u64> = BTreeMap::new();
    for d in &got {
        let text = payload_of(d);
        let (key, i) = text.split_once(':').unwrap();
        assert_eq!(d.record.key.as_deref(), Some(key.as_bytes()));
        seen.entry(key.to_owned())
            .or_default()
            .push(i.parse().unwrap());
        if let Some(last) = last_offset.insert(d.position.partition, d.position.offset) {
            assert!(
                d.position.offset > last,
                "offsets increase within a partition"
            );
        }
    }
    for key in keys {
        assert_eq!(seen[key], (0..20).collect::<Vec<u32>>(), "order of {key}");
    }
    for d in &got {
        c.commit_delivered(d).await.unwrap();
    }

    let mut partitions = BTreeSet::new();
    for i in 0..16 {
        partitions.insert(
            publish(&*bus, &topic, None, &format!("unkeyed:{i}"))
                .await
                .partition,
        );
    }
    assert!(
        partitions.len() > 1,
        "unkeyed records spread over partitions"
    );
    drop(c);
    ns.cleanup(&*bus).await;
}

/// Two groups each see every record.
pub async fn check_groups_see_everything(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "fanout", 2).await;
    let mut a = consumer(&*bus, ConsumerSpec::new(ns.group("a"), [topic.clone()])).await;
    let mut b = consumer(&*bus, ConsumerSpec::new(ns.group("b"), [topic.clone()])).await;
    let expected: BTreeSet<String> = (0..10).map(|i| format!("r{i}")).collect();
    for (i, text) in expected.iter().enumerate() {
        publish(&*bus, &topic, Some(&format!("k{i}")), text).await;
    }
    for c in [&mut a, &mut b] {
        let got = read_n(&mut **c, 10).await;
        assert_eq!(
            payloads(&got).into_iter().collect::<BTreeSet<_>>(),
            expected
        );
        for d in &got {
            c.commit_delivered(d).await.unwrap();
        }
        assert_quiet(&mut **c).await;
    }
    drop((a, b));
    ns.cleanup(&*bus).await;
}

/// Two consumers of one group split the partitions: together they get every record once, and
/// each gets some.
pub async fn check_group_splits_partitions(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "split", 4).await;
    let group = ns.group("workers");
    let mut consumers = [
        consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await,
        consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await,
    ];
    // Let both join before publishing (a broker rebalances on the first polls).
    for c in consumers.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_millis(50), c.next()).await;
    }
    let keys: Vec<String> = (0..40).map(|i| format!("machine-{i}")).collect();
    let owners: BTreeSet<u32> = keys
        .iter()
        .map(|k| super::partition_for_key(k.as_bytes(), 4))
        .collect();
    assert_eq!(owners.len(), 4, "the keys cover every partition");
    for key in &keys {
        publish(&*bus, &topic, Some(key), key).await;
    }

    let mut got: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + WAIT;
    while got[0].len() + got[1].len() < keys.len() {
        assert!(Instant::now() < deadline, "only {got:?} delivered");
        for (i, c) in consumers.iter_mut().enumerate() {
            if let Ok(result) = tokio::time::timeout(Duration::from_millis(20), c.next()).await {
                let d = result.unwrap().expect("consumer ended");
                c.commit_delivered(&d).await.unwrap();
                got[i].push(payload_of(&d));
            }
        }
    }
    for c in consumers.iter_mut() {
        assert_quiet(&mut **c).await;
    }
    let all: Vec<&String> = got.iter().flatten().collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "no record delivered twice: {got:?}"
    );
    assert_eq!(unique.len(), keys.len());
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both consumers get partitions: {got:?}"
    );
    let a = consumers[0].assignment();
    let b = consumers[1].assignment();
    assert_eq!(a.len() + b.len(), 4, "assignments {a:?} {b:?}");
    assert!(a.iter().all(|tp| !b.contains(tp)));
    drop(consumers);
    ns.cleanup(&*bus).await;
}

/// After a commit, a new consumer of the group resumes right after the committed record.
pub async fn check_commit_then_restart_resumes(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "resume", 1).await;
    let group = ns.group("g");
    for i in 0..10 {
        publish(&*bus, &topic, Some("m"), &format!("r{i}")).await;
    }
    let mut c = consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await;
    let got = read_n(&mut *c, 6).await;
    assert_eq!(payloads(&got), ["r0", "r1", "r2", "r3", "r4", "r5"]);
    c.commit(&topic, &[got[3].position]).await.unwrap();
    drop(c);

    let mut c = consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await;
    let got = read_n(&mut *c, 6).await;
    assert_eq!(payloads(&got), ["r4", "r5", "r6", "r7", "r8", "r9"]);
    c.commit_delivered(&got[5]).await.unwrap();
    drop(c);

    let mut c = consumer(&*bus, ConsumerSpec::new(group, [topic.clone()])).await;
    assert_quiet(&mut *c).await;
    publish(&*bus, &topic, Some("m"), "r10").await;
    assert_eq!(payload_of(&next_within(&mut *c).await), "r10");
    drop(c);
    ns.cleanup(&*bus).await;
}

/// Records not committed when their consumer goes away are delivered again (at least once),
/// at the same positions.
pub async fn check_uncommitted_are_redelivered(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "redeliver", 2).await;
    let group = ns.group("g");
    for i in 0..6 {
        publish(&*bus, &topic, Some(&format!("k{i}")), &format!("r{i}")).await;
    }
    let mut c = consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await;
    let first = read_n(&mut *c, 6).await;
    drop(c);

    let mut c = consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await;
    let again = read_n(&mut *c, 6).await;
    let positions = |d: &[Delivered]| {
        d.iter()
            .map(|d| (d.position, payload_of(d)))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(positions(&first), positions(&again));
    // Commit only what one partition delivered first; the rest comes back once more.
    let committed = &again[0];
    c.commit_delivered(committed).await.unwrap();
    drop(c);

    let mut c = consumer(&*bus, ConsumerSpec::new(group, [topic.clone()])).await;
    let rest: Vec<Delivered> = again
        .iter()
        .filter(|d| {
            d.position.partition != committed.position.partition
                || d.position.offset > committed.position.offset
        })
        .cloned()
        .collect();
    let third = read_n(&mut *c, rest.len()).await;
    assert_eq!(positions(&third), positions(&rest));
    assert_quiet(&mut *c).await;
    drop(c);
    ns.cleanup(&*bus).await;
}

/// A new group starting `Latest` gets only records published after it joined; `Earliest` gets
/// the retained ones too. A group with commits resumes from them whatever its start says.
pub async fn check_latest_and_earliest(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "start", 1).await;
    publish(&*bus, &topic, None, "before").await;

    let spec =
        |name: &str, start| ConsumerSpec::new(ns.group(name), [topic.clone()]).with_start(start);
    let mut latest = consumer(&*bus, spec("latest", StartPosition::Latest)).await;
    let mut earliest = consumer(&*bus, spec("earliest", StartPosition::Earliest)).await;
    // Nothing old reaches `Latest` (this also gives a broker time to assign partitions).
    assert_quiet(&mut *latest).await;
    publish(&*bus, &topic, None, "after").await;

    assert_eq!(payload_of(&next_within(&mut *latest).await), "after");
    assert_quiet(&mut *latest).await;
    let got = read_n(&mut *earliest, 2).await;
    assert_eq!(payloads(&got), ["before", "after"]);
    earliest.commit_delivered(&got[0]).await.unwrap();
    drop(earliest);

    let mut again = consumer(&*bus, spec("earliest", StartPosition::Latest)).await;
    assert_eq!(payload_of(&next_within(&mut *again).await), "after");
    drop((latest, again));
    ns.cleanup(&*bus).await;
}

/// A key that [`partition_for_key`](super::partition_for_key) sends to `partition` of a topic
/// with `partitions` partitions.
pub fn key_for_partition(partition: u32, partitions: u32) -> String {
    (0..)
        .map(|n| format!("key-{n}"))
        .find(|k| super::partition_for_key(k.as_bytes(), partitions) == partition)
        .expect("some key maps to every partition")
}

/// The consumer's lag per partition of `topic`: `(partition, committed, lag)`, after checking
/// what holds on every backend (sorted, one entry per assigned partition, `end` past every
/// offset in `delivered` and at or past `committed`).
async fn lag_of(
    consumer: &mut dyn EventConsumer,
    topic: &str,
    delivered: &[Delivered],
) -> Vec<(u32, Option<u64>, u64)> {
    let lag: Vec<PartitionLag> = consumer.lag().await.expect("lag");
    let assigned: Vec<(String, u32)> = lag.iter().map(|l| (l.topic.clone(), l.partition)).collect();
    assert_eq!(
        assigned,
        consumer.assignment(),
        "lag covers the assignment, sorted"
    );
    for l in &lag {
        assert!(l.committed.is_none_or(|c| c <= l.end), "{l:?}");
        for d in delivered
            .iter()
            .filter(|d| d.position.partition == l.partition)
        {
            assert!(d.position.offset < l.end, "end {l:?} past {:?}", d.position);
        }
    }
    lag.into_iter()
        .filter(|l| l.topic == topic)
        .map(|l| (l.partition, l.committed, l.lag))
        .collect()
}

/// [`EventConsumer::lag`] counts exactly the records after the group's committed position of
/// each assigned partition (from the start while nothing is committed): delivered and
/// uncommitted ones, and ones not yet delivered; an empty partition has none. A new member of
/// the group sees the group's commits.
pub async fn check_lag_counts_uncommitted_records(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "lag", 3).await;
    let group = ns.group("g");
    let (k0, k1) = (key_for_partition(0, 3), key_for_partition(1, 3));
    for i in 0..6 {
        publish(&*bus, &topic, Some(&k0), &format!("a{i}")).await;
    }
    for i in 0..4 {
        publish(&*bus, &topic, Some(&k1), &format!("b{i}")).await;
    }
    let mut c = consumer(&*bus, ConsumerSpec::new(group.clone(), [topic.clone()])).await;
    let got = read_n(&mut *c, 10).await;
    assert_quiet(&mut *c).await;
    assert_eq!(
        lag_of(&mut *c, &topic, &got).await,
        [(0, None, 6), (1, None, 4), (2, None, 0)],
        "nothing committed: every record counts, delivered or not"
    );

    let on = |p: u32| got.iter().filter(move |d| d.position.partition == p);
    let a3 = on(0).nth(3).unwrap().position;
    let b_last = on(1).next_back().unwrap().position;
    c.commit(&topic, &[a3, b_last]).await.unwrap();
    assert_eq!(
        lag_of(&mut *c, &topic, &got).await,
        [
            (0, Some(a3.offset + 1), 2),
            (1, Some(b_last.offset + 1), 0),
            (2, None, 0)
        ]
    );
    // Records published and not yet delivered count too.
    for i in 4..7 {
        publish(&*bus, &topic, Some(&k1), &format!("b{i}")).await;
    }
    assert_eq!(
        lag_of(&mut *c, &topic, &got).await,
        [
            (0, Some(a3.offset + 1), 2),
            (1, Some(b_last.offset + 1), 3),
            (2, None, 0)
        ]
    );
    drop(c);

    // A new member resumes from the group's commits and reports the same lag until it commits.
    let mut c = consumer(&*bus, ConsumerSpec::new(group, [topic.clone()])).await;
    let again = read_n(&mut *c, 5).await;
    assert_quiet(&mut *c).await;
    assert_eq!(
        lag_of(&mut *c, &topic, &again).await,
        [
            (0, Some(a3.offset + 1), 2),
            (1, Some(b_last.offset + 1), 3),
            (2, None, 0)
        ]
    );
    for d in &again {
        c.commit_delivered(d).await.unwrap();
    }
    let lag = lag_of(&mut *c, &topic, &again).await;
    assert_eq!(
        lag.iter().map(|(p, _, l)| (*p, *l)).collect::<Vec<_>>(),
        [(0, 0), (1, 0), (2, 0)],
        "everything committed: {lag:?}"
    );
    drop(c);
    ns.cleanup(&*bus).await;
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

/// Malformed topic and group names, specs and headers are `InvalidInput`; missing topics are
/// `NotFound`; re-creating a topic with another partition count is `Conflict`.
pub async fn check_bad_input_is_rejected(bus: Arc<dyn EventBus>) {
    let ns = Namespace::new();
    let topic = ns.create_topic(&*bus, "valid", 2).await;
    let long = "t".repeat(250);
    for name in ["", "a b", "a/b", ".", "..", "ünï", "a*", long.as_str()] {
        assert_invalid(
            bus.ensure_topics(&[TopicSpec::new(name, 1)]).await,
            &format!("topic {name:?}"),
        );
        assert_invalid(
            bus.publish(Record::new(name, b"x".to_vec())).await,
            &format!("publish to {name:?}"),
        );
    }
    for partitions in [0, super::MAX_PARTITIONS + 1] {
        assert_invalid(
            bus.ensure_topics(&[TopicSpec::new(ns.topic("p"), partitions)])
                .await,
            &format!("{partitions} partitions"),
        );
    }
    assert_invalid(
        bus.ensure_topics(&[
            TopicSpec::new(ns.topic("d"), 1),
            TopicSpec::new(ns.topic("d"), 1),
        ])
        .await,
        "duplicate specs",
    );
    assert!(matches!(
        bus.ensure_topics(&[TopicSpec::new(topic.clone(), 3)]).await,
        Err(Error::Conflict { .. })
    ));
    bus.ensure_topics(&[TopicSpec::new(topic.clone(), 2)])
        .await
        .expect("ensure_topics is idempotent");

    let long_group = "g".repeat(129);
    for group in ["", "a b", "a.b", "a*", "a>", long_group.as_str()] {
        assert_invalid(
            bus.consumer(ConsumerSpec::new(group, [topic.clone()]))
                .await,
            &format!("group {group:?}"),
        );
    }
    assert_invalid(
        bus.consumer(ConsumerSpec::new(ns.group("g"), Vec::<String>::new()))
            .await,
        "no topics",
    );
    assert_invalid(
        bus.consumer(ConsumerSpec::new(
            ns.group("g"),
            [topic.clone(), topic.clone()],
        ))
        .await,
        "duplicate topics",
    );
    assert_invalid(
        bus.consumer(ConsumerSpec::new(ns.group("g"), [topic.clone()]).with_max_in_flight(0))
            .await,
        "max_in_flight 0",
    );
    for headers in [
        Headers::new().with("", "v"),
        Headers::new().with("a:b", "v"),
        Headers::new().with("Nats-Msg-Id", "1"),
        Headers::new().with("x", "line\nbreak"),
        Headers::new().with("x", " padded"),
    ] {
        assert_invalid(
            bus.publish(Record::new(topic.clone(), b"x".to_vec()).with_headers(headers.clone()))
                .await,
            &format!("headers {headers:?}"),
        );
    }
    assert_invalid(
        bus.publish(Record::new(
            topic.clone(),
            vec![0u8; 2 * super::DEFAULT_MAX_RECORD_BYTES],
        ))
        .await,
        "oversized record",
    );

    let missing = ns.topic("missing");
    assert!(matches!(
        bus.publish(Record::new(missing.clone(), b"x".to_vec()))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        bus.consumer(ConsumerSpec::new(ns.group("g"), [missing.clone()]))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(bus.topic_partitions(&missing).await.unwrap(), None);
    assert!(!bus.delete_topic(&missing).await.unwrap());
    ns.cleanup(&*bus).await;
}

/// Expands the [`EventBus`] suite into `#[tokio::test]`s for `$factory`, an
/// `async fn() -> Option<Arc<dyn EventBus>>`.
#[macro_export]
macro_rules! event_bus_conformance {
    ($factory:path) => {
        $crate::__event_bus_checks!($factory:
            check_round_trip, check_per_key_order, check_groups_see_everything,
            check_group_splits_partitions, check_commit_then_restart_resumes,
            check_uncommitted_are_redelivered, check_latest_and_earliest,
            check_lag_counts_uncommitted_records, check_bad_input_is_rejected
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __event_bus_checks {
    ($factory:path: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(bus) = $factory().await {
                    $crate::bus::testkit::$check(bus).await;
                }
            }
        )+
    };
}
