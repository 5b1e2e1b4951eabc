//! The [`AgentBus`] conformance suite: every backend (and every decorator) runs it.
//!
//! Each check takes the bus under test and panics on failure, like an assertion. The
//! [`agent_bus_conformance!`](crate::agent_bus_conformance) macro expands every check into a
//! `#[tokio::test]` for a factory `async fn() -> Option<Arc<dyn AgentBus>>` that returns `None`
//! (after printing a `skipped: ...` line) when its service is not configured:
//!
//! ```text
//! async fn make_bus() -> Option<Arc<dyn AgentBus>> { Some(Arc::new(InMemoryAgentBus::new())) }
//! openframe_agent::agent_bus_conformance!(make_bus);
//! ```
//!
//! Every check works in its own random [`Namespace`] (a subject prefix and a stream name
//! prefix), so checks can run at once against one shared server, and deletes its streams at the
//! end. Timing checks use `ack_wait`s of a few hundred milliseconds on the real clock (a NATS
//! server cannot follow a manual clock); the whole suite takes a few seconds.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use openframe_core::{Error, ErrorCode, MachineId};

use super::{
    AgentBus, ConsumerSpec, DeliverPolicy, Delivery, DurableConsumer, Headers, Message, PublishAck,
    StreamSpec, agent_consumers, agent_streams, stream_names,
};
use crate::subjects::{self, MachineSubjectKind};

/// How long a check waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// The `ack_wait` of the timing checks.
pub const SHORT_ACK_WAIT: Duration = Duration::from_millis(300);

/// A random subject prefix and stream name prefix for one check; remembers the streams it
/// created so [`Namespace::cleanup`] can delete them.
#[derive(Debug)]
pub struct Namespace {
    /// The first subject token of every subject of this namespace.
    pub token: String,
    /// The prefix of every stream name of this namespace.
    pub stream_prefix: String,
    streams: Mutex<Vec<String>>,
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
            token: format!("oft{}", &id[..12]),
            stream_prefix: format!("OFT{}", id[..12].to_ascii_uppercase()),
            streams: Mutex::new(Vec::new()),
        }
    }

    /// `rest` under this namespace's subject prefix.
    pub fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.token)
    }

    /// `name` under this namespace's stream prefix.
    pub fn stream(&self, name: &str) -> String {
        format!("{}_{name}", self.stream_prefix)
    }

    /// A stream spec named `name` capturing `subjects`, both namespaced.
    pub fn spec(&self, name: &str, subjects: &[&str]) -> StreamSpec {
        StreamSpec::new(self.stream(name), subjects.iter().map(|s| self.subject(s)))
    }

    /// `spec` moved into this namespace.
    pub fn namespaced(&self, spec: &StreamSpec) -> StreamSpec {
        let mut spec = spec.clone();
        spec.name = self.stream(&spec.name);
        spec.subjects = spec.subjects.iter().map(|s| self.subject(s)).collect();
        spec
    }

    /// A consumer `spec` for a stream moved by [`Namespace::namespaced`].
    pub fn namespaced_consumer(&self, spec: &ConsumerSpec) -> ConsumerSpec {
        let mut spec = spec.clone();
        spec.stream = self.stream(&spec.stream);
        spec.filter_subject = spec.filter_subject.as_deref().map(|f| self.subject(f));
        spec
    }

    /// Ensures `specs` and remembers them for cleanup.
    pub async fn ensure(&self, bus: &Arc<dyn AgentBus>, specs: &[StreamSpec]) {
        self.streams
            .lock()
            .unwrap()
            .extend(specs.iter().map(|s| s.name.clone()));
        bus.ensure_streams(specs).await.expect("ensure_streams");
    }

    /// Deletes every stream this namespace created.
    pub async fn cleanup(&self, bus: &Arc<dyn AgentBus>) {
        let names: BTreeSet<String> = self.streams.lock().unwrap().drain(..).collect();
        for name in names {
            bus.delete_stream(&name).await.expect("delete_stream");
        }
    }
}

/// A random machine id.
pub fn random_machine() -> MachineId {
    MachineId::generate()
}

/// The next item of `stream`, or a panic naming `what` after [`WAIT`].
pub async fn next_within<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("{what}: the stream ended"),
        Err(_) => panic!("{what}: nothing arrived within {WAIT:?}"),
    }
}

/// The next delivery of `consumer`.
pub async fn next_delivery(consumer: &mut DurableConsumer, what: &str) -> Delivery {
    next_within(consumer, what)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Asserts that `consumer` delivers nothing for `window`.
pub async fn assert_quiet(consumer: &mut DurableConsumer, window: Duration, what: &str) {
    if let Ok(item) = tokio::time::timeout(window, consumer.next()).await {
        match item {
            Some(Ok(d)) => panic!(
                "{what}: unexpected delivery of {} (seq {}, delivered {})",
                d.message.subject, d.stream_sequence, d.delivered
            ),
            Some(Err(e)) => panic!("{what}: {e}"),
            None => panic!("{what}: the consumer ended"),
        }
    }
}

fn payloads(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

async fn take_messages<S: Stream<Item = Message> + Unpin>(
    stream: &mut S,
    n: usize,
    what: &str,
) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_within(stream, what).await);
    }
    out
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode, what: &str) {
    match result {
        Ok(value) => panic!("{what}: expected {code:?}, got Ok({value:?})"),
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
    }
}

fn body(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// Publishes `payload` durably on the namespaced `subject`.
pub async fn put(
    bus: &Arc<dyn AgentBus>,
    ns: &Namespace,
    subject: &str,
    payload: &str,
) -> PublishAck {
    bus.publish_durable(&ns.subject(subject), body(payload), Headers::new())
        .await
        .unwrap_or_else(|e| panic!("durable publish on {subject}: {e}"))
}

/// Publishes `payload` ephemerally on the namespaced `subject`.
pub async fn emit(bus: &Arc<dyn AgentBus>, ns: &Namespace, subject: &str, payload: &str) {
    bus.publish(&ns.subject(subject), body(payload), Headers::new())
        .await
        .unwrap_or_else(|e| panic!("publish on {subject}: {e}"));
}

fn consumer(ns: &Namespace, stream: &str, durable: &str) -> ConsumerSpec {
    ConsumerSpec::new(ns.stream(stream), durable).with_ack_wait(WAIT * 4)
}

// ---- ephemeral ---------------------------------------------------------------------------

/// Ephemeral publishes reach exactly the subscriptions whose pattern matches (`*`, `>`), in
/// publish order, with the published subject.
pub async fn ephemeral_reaches_matching_subscribers(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let mut exact = bus.subscribe(&ns.subject("a.b.c")).await.unwrap();
    let mut star = bus.subscribe(&ns.subject("a.*.c")).await.unwrap();
    let mut tail = bus.subscribe(&ns.subject("a.>")).await.unwrap();
    let mut short = bus.subscribe(&ns.subject("a.*")).await.unwrap();
    let mut other = bus.subscribe(&ns.subject("x.>")).await.unwrap();
    assert_eq!(exact.pattern(), ns.subject("a.b.c"));
    for (subject, payload) in [
        ("a.b.c", "1"),
        ("a.z.c", "2"),
        ("a.b.c.d", "3"),
        ("a.b", "4"),
        ("b.b.c", "5"),
        ("a.b.c", "F1"),
        ("a.f", "F2"),
        ("x.f", "F3"),
    ] {
        emit(&bus, &ns, subject, payload).await;
    }
    let got = take_messages(&mut exact, 2, "a.b.c").await;
    assert_eq!(payloads(&got), ["1", "F1"]);
    assert!(got.iter().all(|m| m.subject == ns.subject("a.b.c")));
    let got = take_messages(&mut star, 3, "a.*.c").await;
    assert_eq!(payloads(&got), ["1", "2", "F1"]);
    assert_eq!(got[1].subject, ns.subject("a.z.c"));
    let got = take_messages(&mut tail, 6, "a.>").await;
    assert_eq!(payloads(&got), ["1", "2", "3", "4", "F1", "F2"]);
    assert_eq!(got[2].subject, ns.subject("a.b.c.d"));
    let got = take_messages(&mut short, 2, "a.*").await;
    assert_eq!(payloads(&got), ["4", "F2"]);
    let got = take_messages(&mut other, 1, "x.>").await;
    assert_eq!(payloads(&got), ["F3"]);
}

/// An ephemeral message published while nobody listens is lost; a dropped subscription gets
/// nothing more and does not disturb the others.
pub async fn ephemeral_without_subscribers_is_lost(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let subject = ns.subject("lost");
    bus.publish(&subject, body("before"), Headers::new())
        .await
        .unwrap();
    let mut sub = bus.subscribe(&subject).await.unwrap();
    let dropped = bus.subscribe(&subject).await.unwrap();
    drop(dropped);
    bus.publish(&subject, body("after"), Headers::new())
        .await
        .unwrap();
    let got = next_within(&mut sub, "after").await;
    assert_eq!(got.payload, body("after"));
}

/// Queue group members share the messages (each to exactly one member) while a plain
/// subscription still gets every message.
pub async fn queue_groups_share_messages(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let pattern = ns.subject("q.*");
    let q1 = bus.queue_subscribe(&pattern, "workers").await.unwrap();
    let q2 = bus.queue_subscribe(&pattern, "workers").await.unwrap();
    let mut plain = bus.subscribe(&pattern).await.unwrap();
    let n = 20;
    for i in 0..n {
        bus.publish(
            &ns.subject(&format!("q.{i}")),
            body(&i.to_string()),
            Headers::new(),
        )
        .await
        .unwrap();
    }
    let all = take_messages(&mut plain, n, "plain subscriber").await;
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(payloads(&all), want);

    let mut group = futures::stream::select(q1, q2);
    let shared = take_messages(&mut group, n, "queue group").await;
    let mut got = payloads(&shared);
    got.sort_by_key(|p| p.parse::<u32>().unwrap());
    assert_eq!(got, want, "each message exactly once across the group");
    emit(&bus, &ns, "q.fence", "fence").await;
    let fence = next_within(&mut group, "fence").await;
    assert_eq!(
        fence.payload,
        body("fence"),
        "a message reached two members"
    );
}

/// Headers (several names, several values, mixed case) arrive as published, ephemeral and
/// durable; no headers arrive as no headers.
pub async fn headers_round_trip(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let headers = Headers::new()
        .with("X-Machine-Id", "0192f7a4-1c2b-7d3e-8f00-123456789abc")
        .with("x-lower", "value with spaces")
        .with("X-Multi", "a")
        .with("X-Multi", "b")
        .with("Content-Type", "application/json");
    let mut sub = bus.subscribe(&ns.subject("h.>")).await.unwrap();
    bus.publish(&ns.subject("h.1"), body("with"), headers.clone())
        .await
        .unwrap();
    emit(&bus, &ns, "h.2", "without").await;
    let with = next_within(&mut sub, "with headers").await;
    assert_eq!(with.headers, headers);
    assert_eq!(with.headers.get_all("X-Multi"), ["a", "b"]);
    let without = next_within(&mut sub, "without headers").await;
    assert!(without.headers.is_empty(), "{:?}", without.headers);

    ns.ensure(&bus, &[ns.spec("H", &["hd.>"])]).await;
    bus.publish_durable(&ns.subject("hd.1"), body("durable"), headers.clone())
        .await
        .unwrap();
    let mut consumer = bus
        .durable_consumer(&consumer(&ns, "H", "headers"))
        .await
        .unwrap();
    let delivery = next_delivery(&mut consumer, "durable with headers").await;
    assert_eq!(delivery.message.headers, headers);
    assert_eq!(delivery.message.payload, body("durable"));
    delivery.ack().await.unwrap();
    drop(consumer);
    ns.cleanup(&bus).await;
}

// ---- durable publish ------------------------------------------------------------------------

/// Durable publishes get increasing sequences in the capturing stream and reach ephemeral
/// subscribers too; an uncaptured subject is `NotFound`; an ephemeral publish on a captured
/// subject is stored as well (the original agent relies on this).
pub async fn durable_publish_is_sequenced(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let spec = ns.spec("S", &["s.>"]);
    ns.ensure(&bus, std::slice::from_ref(&spec)).await;
    let mut sub = bus.subscribe(&ns.subject("s.>")).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..3 {
        let ack = put(&bus, &ns, "s.a", &format!("d{i}")).await;
        assert_eq!(ack.stream, spec.name);
        acks.push(ack.sequence);
    }
    assert_eq!(acks[0], 1, "a new stream starts at 1");
    assert!(acks.windows(2).all(|w| w[0] < w[1]), "{acks:?}");
    emit(&bus, &ns, "s.b", "core").await;
    assert_code(
        bus.publish_durable(&ns.subject("nostream"), body("x"), Headers::new())
            .await,
        ErrorCode::NotFound,
        "durable publish without a stream",
    );

    let got = take_messages(&mut sub, 4, "subscriber of a captured subject").await;
    assert_eq!(payloads(&got), ["d0", "d1", "d2", "core"]);

    let mut consumer = bus
        .durable_consumer(&consumer(&ns, "S", "all"))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for want in ["d0", "d1", "d2", "core"] {
        let d = next_delivery(&mut consumer, want).await;
        assert_eq!(d.message.payload, body(want));
        assert_eq!(d.delivered, 1);
        assert_eq!(d.stream, spec.name);
        seqs.push(d.stream_sequence);
        d.ack().await.unwrap();
    }
    assert_eq!(&seqs[..3], &acks[..]);
    assert!(seqs[3] > seqs[2]);
    drop(consumer);
    ns.cleanup(&bus).await;
}

// ---- durable consumers ------------------------------------------------------------------

/// `DeliverPolicy::All` gets what was published before the consumer existed; `New` only what
/// was published after it was created.
pub async fn deliver_policies(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("D", &["d.*"])]).await;
    for p in ["m1", "m2"] {
        put(&bus, &ns, "d.x", p).await;
    }
    let mut all = bus
        .durable_consumer(&consumer(&ns, "D", "all").with_deliver(DeliverPolicy::All))
        .await
        .unwrap();
    let mut new = bus
        .durable_consumer(&consumer(&ns, "D", "new").with_deliver(DeliverPolicy::New))
        .await
        .unwrap();
    put(&bus, &ns, "d.x", "m3").await;
    for want in ["m1", "m2", "m3"] {
        let d = next_delivery(&mut all, want).await;
        assert_eq!(d.message.payload, body(want));
        d.ack().await.unwrap();
    }
    let d = next_delivery(&mut new, "m3 for New").await;
    assert_eq!(
        d.message.payload,
        body("m3"),
        "New must skip earlier messages"
    );
    d.ack().await.unwrap();
    drop((all, new));
    ns.cleanup(&bus).await;
}

/// A filtered consumer sees only the subjects its filter matches.
pub async fn filtered_consumer(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("F", &["f.>"])]).await;
    for (s, p) in [
        ("f.a.1", "a1"),
        ("f.b.1", "b1"),
        ("f.a.2", "a2"),
        ("f.a", "a"),
    ] {
        put(&bus, &ns, s, p).await;
    }
    let spec = consumer(&ns, "F", "only-a").with_filter(ns.subject("f.a.*"));
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    for want in ["a1", "a2"] {
        let d = next_delivery(&mut c, want).await;
        assert_eq!(d.message.payload, body(want));
        d.ack().await.unwrap();
    }
    put(&bus, &ns, "f.b.2", "b2").await;
    put(&bus, &ns, "f.a.3", "a3").await;
    let d = next_delivery(&mut c, "a3").await;
    assert_eq!(d.message.payload, body("a3"));
    d.ack().await.unwrap();

    let literal = consumer(&ns, "F", "literal").with_filter(ns.subject("f.b.1"));
    let mut c = bus.durable_consumer(&literal).await.unwrap();
    let d = next_delivery(&mut c, "b1").await;
    assert_eq!(d.message.payload, body("b1"));
    d.ack().await.unwrap();
    assert_quiet(&mut c, Duration::from_millis(200), "literal filter").await;
    drop(c);
    ns.cleanup(&bus).await;
}

/// An acknowledged message is not delivered again.
pub async fn ack_prevents_redelivery(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("A", &["a"])]).await;
    let spec = consumer(&ns, "A", "acker").with_ack_wait(SHORT_ACK_WAIT);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "a", "m1").await;
    let d = next_delivery(&mut c, "m1").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("m1"), 1));
    d.ack().await.unwrap();
    assert_quiet(&mut c, SHORT_ACK_WAIT * 3, "after ack").await;
    put(&bus, &ns, "a", "m2").await;
    let d = next_delivery(&mut c, "m2").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("m2"), 1));
    d.ack().await.unwrap();
    drop(c);
    ns.cleanup(&bus).await;
}

/// A message left unacknowledged is redelivered after `ack_wait`, with `delivered = 2`.
pub async fn unacked_message_is_redelivered(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("R", &["r"])]).await;
    let spec = consumer(&ns, "R", "slow")
        .with_ack_wait(SHORT_ACK_WAIT)
        .with_max_deliver(5);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "r", "m1").await;
    let first = next_delivery(&mut c, "first delivery").await;
    let received = Instant::now();
    assert_eq!(first.delivered, 1);
    assert!(!first.is_last_attempt());
    let second = next_delivery(&mut c, "redelivery").await;
    let waited = received.elapsed();
    assert_eq!(second.stream_sequence, first.stream_sequence);
    assert_eq!(second.message, first.message);
    assert_eq!(second.delivered, 2);
    assert!(
        waited >= SHORT_ACK_WAIT - Duration::from_millis(60),
        "redelivered after {waited:?}, before ack_wait"
    );
    second.ack().await.unwrap();
    drop(first);
    assert_quiet(&mut c, SHORT_ACK_WAIT * 2, "after acking the redelivery").await;
    drop(c);
    ns.cleanup(&bus).await;
}

/// After `max_deliver` deliveries a message is not delivered again.
pub async fn max_deliver_stops_redelivery(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("M", &["m"])]).await;
    let spec = consumer(&ns, "M", "twice")
        .with_ack_wait(SHORT_ACK_WAIT)
        .with_max_deliver(2);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "m", "m1").await;
    let d1 = next_delivery(&mut c, "delivery 1").await;
    assert_eq!(d1.delivered, 1);
    let d2 = next_delivery(&mut c, "delivery 2").await;
    assert_eq!((d2.stream_sequence, d2.delivered), (d1.stream_sequence, 2));
    assert!(d2.is_last_attempt());
    assert_quiet(&mut c, SHORT_ACK_WAIT * 3, "after max_deliver").await;
    put(&bus, &ns, "m", "m2").await;
    let d = next_delivery(&mut c, "m2").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("m2"), 1));
    d.ack().await.unwrap();
    drop(c);
    ns.cleanup(&bus).await;
}

/// `nak` redelivers at once, or after its delay; a nak on the last attempt ends it.
pub async fn nak_redelivers(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("N", &["n"])]).await;
    let spec = consumer(&ns, "N", "naker").with_max_deliver(3);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "n", "m1").await;
    let d1 = next_delivery(&mut c, "delivery 1").await;
    let seq = d1.stream_sequence;
    d1.nak(None).await.unwrap();
    let d2 = next_delivery(&mut c, "redelivery after nak").await;
    assert_eq!((d2.stream_sequence, d2.delivered), (seq, 2));
    let delay = Duration::from_millis(300);
    d2.nak(Some(delay)).await.unwrap();
    let naked = Instant::now();
    let d3 = next_delivery(&mut c, "redelivery after delayed nak").await;
    assert_eq!((d3.stream_sequence, d3.delivered), (seq, 3));
    assert!(
        naked.elapsed() >= delay - Duration::from_millis(60),
        "redelivered after {:?}, before the nak delay",
        naked.elapsed()
    );
    assert!(d3.is_last_attempt());
    d3.nak(None).await.unwrap();
    assert_quiet(
        &mut c,
        Duration::from_millis(500),
        "nak on the last attempt",
    )
    .await;
    drop(c);
    ns.cleanup(&bus).await;
}

/// `term` stops redelivery although the message was not acknowledged.
pub async fn term_stops_redelivery(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("T", &["t"])]).await;
    let spec = consumer(&ns, "T", "termer").with_ack_wait(SHORT_ACK_WAIT);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "t", "poison").await;
    next_delivery(&mut c, "poison").await.term().await.unwrap();
    assert_quiet(&mut c, SHORT_ACK_WAIT * 3, "after term").await;
    put(&bus, &ns, "t", "next").await;
    let d = next_delivery(&mut c, "next").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("next"), 1));
    d.ack().await.unwrap();
    drop(c);
    ns.cleanup(&bus).await;
}

/// `in_progress` restarts the `ack_wait` timer.
pub async fn in_progress_extends_ack_wait(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("P", &["p"])]).await;
    let ack_wait = Duration::from_millis(600);
    let spec = consumer(&ns, "P", "worker").with_ack_wait(ack_wait);
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    put(&bus, &ns, "p", "long job").await;
    let d = next_delivery(&mut c, "job").await;
    let received = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.in_progress().await.unwrap();
    // Without the progress ack it would be redelivered at 600 ms; now not before ~900 ms.
    let quiet_until = received + Duration::from_millis(780);
    assert_quiet(
        &mut c,
        quiet_until.saturating_duration_since(Instant::now()),
        "before the extended ack_wait",
    )
    .await;
    let again = next_delivery(&mut c, "redelivery after the extended ack_wait").await;
    assert_eq!(again.delivered, 2);
    again.ack().await.unwrap();
    drop(d);
    drop(c);
    ns.cleanup(&bus).await;
}

/// Two bindings of one durable consumer share the work: a message delivered to one and not
/// settled is not given to the other, and every message is delivered once overall.
pub async fn shared_durable_splits_work(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("W", &["w.*"])]).await;
    let spec = consumer(&ns, "W", "workers");
    let mut c1 = bus.durable_consumer(&spec).await.unwrap();
    let mut c2 = bus.durable_consumer(&spec).await.unwrap();
    assert_eq!(c1.durable_name(), "workers");
    assert_eq!(c2.stream_name(), ns.stream("W"));
    let n = 10;
    let mut published = BTreeSet::new();
    for i in 0..n {
        let ack = bus
            .publish_durable(
                &ns.subject(&format!("w.{i}")),
                body(&i.to_string()),
                Headers::new(),
            )
            .await
            .unwrap();
        published.insert(ack.sequence);
    }
    let d1 = next_delivery(&mut c1, "first binding").await;
    let d2 = next_delivery(&mut c2, "second binding").await;
    assert_ne!(
        d1.stream_sequence, d2.stream_sequence,
        "an unsettled message went to both bindings"
    );
    let mut seen = vec![d1.stream_sequence, d2.stream_sequence];
    d1.ack().await.unwrap();
    d2.ack().await.unwrap();
    for i in 2..n {
        let c = if i % 2 == 0 { &mut c1 } else { &mut c2 };
        let d = next_delivery(c, "shared work").await;
        assert_eq!(d.delivered, 1);
        seen.push(d.stream_sequence);
        d.ack().await.unwrap();
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a message was delivered twice: {seen:?}"
    );
    assert_eq!(unique, published);
    drop((c1, c2));
    ns.cleanup(&bus).await;
}

/// Binding again continues where the consumer left off; binding with another filter or deliver
/// policy is a `Conflict`; another `ack_wait` or `max_deliver` is accepted.
pub async fn durable_consumer_resumes(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("C", &["c.*"])]).await;
    let spec = consumer(&ns, "C", "resumer").with_filter(ns.subject("c.*"));
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    for p in ["m1", "m2"] {
        put(&bus, &ns, "c.x", p).await;
    }
    for want in ["m1", "m2"] {
        let d = next_delivery(&mut c, want).await;
        assert_eq!(d.message.payload, body(want));
        d.ack().await.unwrap();
    }
    drop(c);
    put(&bus, &ns, "c.x", "m3").await;
    let updated = spec.clone().with_ack_wait(WAIT * 5).with_max_deliver(7);
    let mut c = bus.durable_consumer(&updated).await.unwrap();
    let d = next_delivery(&mut c, "m3 after rebinding").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("m3"), 1));
    assert_eq!(d.max_deliver, 7);
    d.ack().await.unwrap();
    assert_code(
        bus.durable_consumer(&spec.clone().with_filter(ns.subject("c.y")))
            .await,
        ErrorCode::Conflict,
        "rebinding with another filter",
    );
    assert_code(
        bus.durable_consumer(&spec.clone().with_deliver(DeliverPolicy::New))
            .await,
        ErrorCode::Conflict,
        "rebinding with another deliver policy",
    );
    drop(c);
    ns.cleanup(&bus).await;
}

// ---- streams ---------------------------------------------------------------------------

/// `ensure_streams` is idempotent, updates subjects while keeping the messages, and refuses
/// duplicates and overlaps.
pub async fn ensure_streams_is_idempotent(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let a = ns.spec("A", &["a.>"]);
    ns.ensure(&bus, std::slice::from_ref(&a)).await;
    ns.ensure(&bus, std::slice::from_ref(&a)).await;
    let first = put(&bus, &ns, "a.1", "1").await;
    let widened = ns.spec("A", &["a.>", "b.>"]);
    ns.ensure(&bus, std::slice::from_ref(&widened)).await;
    let second = put(&bus, &ns, "b.1", "2").await;
    assert_eq!(second.stream, a.name);
    assert_eq!(
        second.sequence,
        first.sequence + 1,
        "messages kept across an update"
    );

    assert_code(
        bus.ensure_streams(&[ns.spec("B", &["a.x"])]).await,
        ErrorCode::Conflict,
        "a stream overlapping another",
    );
    assert_code(
        bus.ensure_streams(&[ns.spec("X", &["x"]), ns.spec("X", &["y"])])
            .await,
        ErrorCode::ValidationError,
        "duplicate names",
    );
    assert_code(
        bus.ensure_streams(&[ns.spec("X", &["c.>"]), ns.spec("Y", &["c.d"])])
            .await,
        ErrorCode::ValidationError,
        "specs overlapping each other",
    );
    assert_code(
        bus.publish_durable(&ns.subject("x"), body("?"), Headers::new())
            .await,
        ErrorCode::NotFound,
        "nothing of a refused call was created",
    );
    ns.cleanup(&bus).await;
}

/// `max_messages_per_subject` and `max_messages` discard the oldest messages.
pub async fn stream_limits_discard_oldest(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(
        &bus,
        &[
            ns.spec("PS", &["ps.*"]).with_max_messages_per_subject(2),
            ns.spec("TOT", &["tot.*"]).with_max_messages(3),
        ],
    )
    .await;
    for (s, p) in [
        ("ps.a", "a1"),
        ("ps.a", "a2"),
        ("ps.a", "a3"),
        ("ps.b", "b1"),
    ] {
        put(&bus, &ns, s, p).await;
    }
    for (s, p) in [
        ("tot.a", "1"),
        ("tot.b", "2"),
        ("tot.a", "3"),
        ("tot.c", "4"),
    ] {
        put(&bus, &ns, s, p).await;
    }
    for (stream, want) in [("PS", ["a2", "a3", "b1"]), ("TOT", ["2", "3", "4"])] {
        let mut c = bus
            .durable_consumer(&consumer(&ns, stream, "reader"))
            .await
            .unwrap();
        for w in want {
            let d = next_delivery(&mut c, w).await;
            assert_eq!(
                String::from_utf8_lossy(&d.message.payload),
                w,
                "stream {stream}"
            );
            d.ack().await.unwrap();
        }
        assert_quiet(&mut c, Duration::from_millis(200), stream).await;
    }
    ns.cleanup(&bus).await;
}

/// A deleted stream is gone with its messages; deleting twice reports `false`.
pub async fn delete_stream_removes_it(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let spec = ns.spec("G", &["g"]);
    ns.ensure(&bus, std::slice::from_ref(&spec)).await;
    put(&bus, &ns, "g", "1").await;
    assert!(bus.delete_stream(&spec.name).await.unwrap());
    assert!(!bus.delete_stream(&spec.name).await.unwrap());
    assert_code(
        bus.publish_durable(&ns.subject("g"), body("2"), Headers::new())
            .await,
        ErrorCode::NotFound,
        "publish into a deleted stream",
    );
    assert_code(
        bus.durable_consumer(&consumer(&ns, "G", "late")).await,
        ErrorCode::NotFound,
        "consumer of a deleted stream",
    );
    ns.ensure(&bus, std::slice::from_ref(&spec)).await;
    let ack = put(&bus, &ns, "g", "3").await;
    assert_eq!(ack.sequence, 1, "a recreated stream starts empty");
    ns.cleanup(&bus).await;
}

/// Deleting a durable consumer drops its state and ends its bindings; deleting a stream ends
/// the bindings of its consumers.
pub async fn deleting_ends_bindings(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    ns.ensure(&bus, &[ns.spec("E", &["e"])]).await;
    put(&bus, &ns, "e", "1").await;
    let spec = consumer(&ns, "E", "doomed");
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    next_delivery(&mut c, "before deletion")
        .await
        .ack()
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { c.next().await.map(|d| d.map(|d| d.delivered)) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(bus.delete_consumer(&spec.stream, "doomed").await.unwrap());
    assert!(!bus.delete_consumer(&spec.stream, "doomed").await.unwrap());
    let ended = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("a binding outlived its consumer")
        .unwrap();
    assert!(
        ended.is_none(),
        "the binding yielded {ended:?} instead of ending"
    );
    assert_code(
        bus.delete_consumer(&ns.stream("MISSING"), "doomed").await,
        ErrorCode::NotFound,
        "delete a consumer of a missing stream",
    );
    assert_code(
        bus.delete_consumer(&spec.stream, "a.b").await,
        ErrorCode::ValidationError,
        "delete a consumer by a bad name",
    );

    // Recreated, the consumer starts afresh.
    let mut c = bus.durable_consumer(&spec).await.unwrap();
    let d = next_delivery(&mut c, "after recreation").await;
    assert_eq!((d.message.payload.clone(), d.delivered), (body("1"), 1));
    d.ack().await.unwrap();

    let waiting = tokio::spawn(async move { c.next().await.map(|d| d.map(|d| d.delivered)) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(bus.delete_stream(&spec.stream).await.unwrap());
    let ended = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("a binding outlived its stream")
        .unwrap();
    assert!(
        ended.is_none(),
        "the binding yielded {ended:?} instead of ending"
    );
    ns.cleanup(&bus).await;
}

// ---- bad input -------------------------------------------------------------------------

/// Malformed subjects, patterns, names, specs, headers and oversized messages are
/// `InvalidInput`; a consumer of a missing stream is `NotFound`.
pub async fn malformed_input_is_rejected(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let invalid = ErrorCode::ValidationError;
    for subject in [
        String::new(),
        "a..b".into(),
        ".a".into(),
        "a.".into(),
        "a.*".into(),
        "a.>".into(),
        "a b".into(),
        "a\tb".into(),
        "a\r\nPUB x 1".into(),
        "$JS.API.INFO".into(),
        "_INBOX.x".into(),
        "x".repeat(600),
    ] {
        assert_code(
            bus.publish(&subject, body("x"), Headers::new()).await,
            invalid,
            &format!("publish on {subject:?}"),
        );
        assert_code(
            bus.publish_durable(&subject, body("x"), Headers::new())
                .await,
            invalid,
            &format!("durable publish on {subject:?}"),
        );
    }
    for pattern in ["", "a.>.b", "a.b*", "a..b", "a b", "$SYS.>"] {
        assert_code(
            bus.subscribe(pattern).await,
            invalid,
            &format!("subscribe to {pattern:?}"),
        );
        assert_code(
            bus.queue_subscribe(pattern, "g").await,
            invalid,
            &format!("queue subscribe to {pattern:?}"),
        );
    }
    for group in ["", "a b", "a.b", "a*"] {
        assert_code(
            bus.queue_subscribe(&ns.subject("q"), group).await,
            invalid,
            &format!("queue group {group:?}"),
        );
    }
    for headers in [
        Headers::new().with("", "v"),
        Headers::new().with("a b", "v"),
        Headers::new().with("a:b", "v"),
        Headers::new().with("X-Bad", "line\r\nbreak"),
        Headers::new().with("X-Bad", " padded"),
        Headers::new().with("Nats-Msg-Id", "1"),
        Headers::new().with("nats-expected-stream", "S"),
    ] {
        assert_code(
            bus.publish(&ns.subject("h"), body("x"), headers.clone())
                .await,
            invalid,
            &format!("headers {headers:?}"),
        );
    }
    assert_code(
        bus.publish(&ns.subject("big"), vec![0; 2 * 1024 * 1024], Headers::new())
            .await,
        invalid,
        "a 2 MiB message",
    );

    let good = ns.spec("V", &["v.>"]);
    for spec in [
        ns.spec("V", &[]),
        StreamSpec::new("", [ns.subject("v")]),
        StreamSpec::new("a.b", [ns.subject("v")]),
        StreamSpec::new("a b", [ns.subject("v")]),
        StreamSpec::new("a*", [ns.subject("v")]),
        StreamSpec::new("x".repeat(200), [ns.subject("v")]),
        ns.spec("V", &["v..x"]),
        ns.spec("V", &["v.>.x"]),
        ns.spec("V", &["v.*", "v.a"]),
        good.clone().with_max_age(Duration::from_millis(1)),
        good.clone().with_max_messages(0),
        good.clone().with_max_messages_per_subject(0),
    ] {
        assert_code(
            bus.ensure_streams(std::slice::from_ref(&spec)).await,
            invalid,
            &format!("stream spec {spec:?}"),
        );
    }
    assert_code(
        bus.delete_stream("a.b").await,
        invalid,
        "delete a stream by a bad name",
    );

    ns.ensure(&bus, std::slice::from_ref(&good)).await;
    let base = consumer(&ns, "V", "c");
    for spec in [
        ConsumerSpec::new("", "c"),
        ConsumerSpec::new(ns.stream("V"), ""),
        ConsumerSpec::new(ns.stream("V"), "a.b"),
        ConsumerSpec::new(ns.stream("V"), "a b"),
        base.clone().with_ack_wait(Duration::ZERO),
        base.clone()
            .with_ack_wait(Duration::from_secs(3 * 24 * 3600)),
        base.clone().with_max_deliver(0),
        base.clone().with_filter(ns.subject("v..x")),
        base.clone().with_filter(ns.subject("w.>")),
    ] {
        assert_code(
            bus.durable_consumer(&spec).await,
            invalid,
            &format!("consumer spec {spec:?}"),
        );
    }
    assert_code(
        bus.durable_consumer(&consumer(&ns, "MISSING", "c")).await,
        ErrorCode::NotFound,
        "consumer of a missing stream",
    );

    // A long nak delay is refused before reaching the backend.
    put(&bus, &ns, "v.1", "x").await;
    let mut c = bus.durable_consumer(&base).await.unwrap();
    let d = next_delivery(&mut c, "v.1").await;
    assert_code(
        d.nak(Some(Duration::from_secs(3 * 24 * 3600))).await,
        invalid,
        "a three-day nak delay",
    );
    drop(c);
    ns.cleanup(&bus).await;
}

// ---- the agent protocol -----------------------------------------------------------------

/// The standard streams and the agent's consumers route the original protocol: a tool
/// installation reaches only its machine, a client update reaches every machine, the agent's
/// core hostname publish is captured for the server, log batches are acknowledged.
pub async fn agent_protocol_routing(bus: Arc<dyn AgentBus>) {
    let ns = Namespace::new();
    let streams: Vec<StreamSpec> = agent_streams().iter().map(|s| ns.namespaced(s)).collect();
    ns.ensure(&bus, &streams).await;
    ns.ensure(&bus, &streams).await;
    let a = random_machine();
    let b = random_machine();
    let bind = |machine: &MachineId, stream: &str| {
        let spec = agent_consumers(machine)
            .unwrap()
            .into_iter()
            .find(|c| c.stream == stream && c.durable_name.ends_with("_tool-installation_consumer"))
            .unwrap();
        ns.namespaced_consumer(&spec)
    };
    let mut a_install = bus
        .durable_consumer(&bind(&a, stream_names::TOOL_INSTALLATION))
        .await
        .unwrap();
    let mut b_install = bus
        .durable_consumer(&bind(&b, stream_names::TOOL_INSTALLATION))
        .await
        .unwrap();
    let update_of = |machine: &MachineId| {
        let spec = agent_consumers(machine)
            .unwrap()
            .into_iter()
            .find(|c| c.stream == stream_names::CLIENT_UPDATE)
            .unwrap();
        ns.namespaced_consumer(&spec)
    };
    let mut a_update = bus.durable_consumer(&update_of(&a)).await.unwrap();
    let mut b_update = bus.durable_consumer(&update_of(&b)).await.unwrap();

    let install_a = MachineSubjectKind::ToolInstallation
        .subject_for(&a)
        .unwrap();
    let install_b = MachineSubjectKind::ToolInstallation
        .subject_for(&b)
        .unwrap();
    let ack = bus
        .publish_durable(
            &ns.subject(&install_a),
            body("install on a"),
            Headers::new(),
        )
        .await
        .unwrap();
    assert_eq!(ack.stream, ns.stream(stream_names::TOOL_INSTALLATION));
    bus.publish_durable(
        &ns.subject(&install_b),
        body("install on b"),
        Headers::new(),
    )
    .await
    .unwrap();
    let d = next_delivery(&mut a_install, "a's installation").await;
    assert_eq!(d.message.payload, body("install on a"));
    d.ack().await.unwrap();
    let d = next_delivery(&mut b_install, "b's installation").await;
    assert_eq!(
        d.message.payload,
        body("install on b"),
        "b got a's installation"
    );
    d.ack().await.unwrap();

    let ack = bus
        .publish_durable(
            &ns.subject(subjects::CLIENT_UPDATE),
            body("v2"),
            Headers::new(),
        )
        .await
        .unwrap();
    assert_eq!(ack.stream, ns.stream(stream_names::CLIENT_UPDATE));
    for (who, c) in [("a", &mut a_update), ("b", &mut b_update)] {
        let d = next_delivery(c, &format!("client update for {who}")).await;
        assert_eq!(d.message.payload, body("v2"));
        d.ack().await.unwrap();
    }

    let hostname = MachineSubjectKind::Hostname.subject_for(&a).unwrap();
    bus.publish(
        &ns.subject(&hostname),
        body("\"{\\\"hostname\\\":\\\"vm\\\"}\""),
        Headers::new(),
    )
    .await
    .unwrap();
    let server = ConsumerSpec::new(stream_names::MACHINE_HOSTNAME, "machine-hostname-processor")
        .with_filter(MachineSubjectKind::Hostname.pattern());
    let mut server = bus
        .durable_consumer(&ns.namespaced_consumer(&server))
        .await
        .unwrap();
    let d = next_delivery(&mut server, "captured hostname").await;
    assert_eq!(d.message.subject, ns.subject(&hostname));
    d.ack().await.unwrap();

    let ack = bus
        .publish_durable(
            &ns.subject(subjects::AGENT_LOGS),
            body("{\"logs\":[]}"),
            Headers::new(),
        )
        .await
        .unwrap();
    assert_eq!(ack.stream, ns.stream(stream_names::AGENT_LOGS));
    drop((a_install, b_install, a_update, b_update, server));
    ns.cleanup(&bus).await;
}

/// Expands the [`AgentBus`] conformance suite into `#[tokio::test]`s for `$factory`, an
/// `async fn() -> Option<Arc<dyn AgentBus>>`. Invoke it once per module.
#[macro_export]
macro_rules! agent_bus_conformance {
    ($factory:path) => {
        $crate::__agent_bus_checks!($factory:
            ephemeral_reaches_matching_subscribers, ephemeral_without_subscribers_is_lost,
            queue_groups_share_messages, headers_round_trip, durable_publish_is_sequenced,
            deliver_policies, filtered_consumer, ack_prevents_redelivery,
            unacked_message_is_redelivered, max_deliver_stops_redelivery, nak_redelivers,
            term_stops_redelivery, in_progress_extends_ack_wait, shared_durable_splits_work,
            durable_consumer_resumes, ensure_streams_is_idempotent, stream_limits_discard_oldest,
            delete_stream_removes_it, deleting_ends_bindings, malformed_input_is_rejected,
            agent_protocol_routing
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __agent_bus_checks {
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
