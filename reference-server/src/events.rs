//! Unified events: the event store (next to the document store: SQLite file, MongoDB or
//! memory) and the event processor (source topics on the event bus → adapt → enrich → store,
//! with a dead-letter topic), whose dead letters the `dead-letter-replay` job moves back; and
//! the [`QueuedBridge`] that hands agent events and execution results to the bus through a
//! [`PublishQueue`], so no request waits on the bus.

mod publish_queue;

pub use publish_queue::{DropReason, PublishQueue, PublishQueueConfig, PublishQueueStats};

use std::sync::Arc;

use async_trait::async_trait;
use openframe_agent::events::{AgentEvent, AgentEventSink};
use openframe_agent::executions::{Execution, ExecutionObserver};
use openframe_agent::stream_bridge::{AGENT_EVENTS_TOPIC, AGENT_RESULTS_TOPIC, StreamBridge};
use openframe_core::{Clock, Result, TenantId};
use openframe_data::{Cache, Repositories};
use openframe_stream::adapters::{fleetdm, meshcentral, openframe_events};
use openframe_stream::bus::{EventBus, EventPublisher, Position, Record, TopicSpec};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::processor::{Processor, ProcessorConfig, StoreSink};
use openframe_stream::store::EventStore;
use openframe_stream::store::memory::InMemoryEventStore;
use openframe_stream::store::sqlite::SqliteEventStore;

use crate::config::StorageBackend;

/// The event store file next to the SQLite document store.
pub const SQLITE_EVENTS_FILE: &str = "events.db";

/// The source topics the processor reads by default: the agent plane's domain events and
/// execution results (published by the [`StreamBridge`]), and the tools' change streams with a
/// fixed topic name.
pub fn default_topics() -> Vec<String> {
    [
        AGENT_EVENTS_TOPIC,
        AGENT_RESULTS_TOPIC,
        openframe_events::TOPIC,
        meshcentral::TOPIC,
        fleetdm::TOPIC_EVENTS,
        fleetdm::TOPIC_ACTIVITIES,
        fleetdm::TOPIC_QUERY_RESULTS,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Opens the event store on the same backend as the document store.
pub async fn open_store(storage: &StorageBackend) -> Result<Arc<dyn EventStore>> {
    Ok(match storage {
        StorageBackend::Sqlite(path) => {
            let file = path.with_file_name(SQLITE_EVENTS_FILE);
            Arc::new(SqliteEventStore::open(file).await?)
        }
        #[cfg(feature = "mongodb")]
        StorageBackend::Mongo { url, database } => Arc::new(
            openframe_stream::store::mongodb::MongoEventStore::connect(url.expose(), database)
                .await?,
        ),
        #[cfg(not(feature = "mongodb"))]
        StorageBackend::Mongo { .. } => {
            return Err(openframe_core::Error::invalid(
                "database.url",
                "this build has no MongoDB support (feature `mongodb` of openframe-server)",
            ));
        }
        StorageBackend::Memory => Arc::new(InMemoryEventStore::new()),
    })
}

/// Creates the processor's source, dead-letter and output topics (idempotent).
pub async fn ensure_topics(bus: &dyn EventBus, processor: &Processor) -> Result<()> {
    let config = processor.config();
    let specs: Vec<TopicSpec> = config
        .topics
        .iter()
        .chain(std::iter::once(&config.dead_letter_topic))
        .chain(config.output_topic.iter())
        .map(|name| TopicSpec::new(name.as_str(), config.topic_partitions))
        .collect();
    bus.ensure_topics(&specs).await
}

/// The processor over `bus`, enriching from the repositories through `cache`, writing to
/// `store`.
pub fn processor(
    bus: Arc<dyn EventBus>,
    repos: &Repositories,
    cache: Arc<dyn Cache>,
    store: Arc<dyn EventStore>,
    topics: Vec<String>,
    clock: Arc<dyn Clock>,
) -> Result<Processor> {
    // A local level of a few seconds in front of the (possibly shared) cache: invalidations on
    // this replica clear it at once.
    let enricher = Enricher::builder(
        Arc::new(RepositoryDirectory::from_repositories(repos)),
        cache,
    )
    .with_local_cache(std::time::Duration::from_secs(5))
    .build()?;
    Processor::builder(bus, enricher, Arc::new(StoreSink::new(store)))
        .with_config(ProcessorConfig::new(topics))
        .with_clock(clock)
        .build()
}

/// Sends each agent event to every sink (GraphQL subscriptions and the [`StreamBridge`]); a
/// failing sink is logged and does not keep the event from the others.
// A fan-out decorator like this belongs next to `AgentEventSink` in openframe-agent.
#[derive(Debug, Clone)]
pub struct FanOutSink(pub Vec<Arc<dyn AgentEventSink>>);

#[async_trait]
impl AgentEventSink for FanOutSink {
    async fn emit(&self, event: AgentEvent) -> Result<()> {
        for sink in &self.0 {
            if let Err(e) = sink.emit(event.clone()).await {
                tracing::warn!(machine = %event.machine_id, error = %e, "an agent event sink failed");
            }
        }
        Ok(())
    }
}

/// The [`StreamBridge`]'s records (agent events, execution results) handed to a
/// [`PublishQueue`]: `emit` and `finished` only encode the record and queue it, so a request
/// never waits on the event bus. Encoding errors are returned; bus trouble is the queue's.
#[derive(Debug, Clone)]
pub struct QueuedBridge {
    bridge: StreamBridge,
    queue: PublishQueue,
}

impl QueuedBridge {
    /// Queues `bridge`'s records on `queue`.
    pub fn new(bridge: StreamBridge, queue: PublishQueue) -> Self {
        Self { bridge, queue }
    }

    /// The queue.
    pub fn queue(&self) -> &PublishQueue {
        &self.queue
    }
}

#[async_trait]
impl AgentEventSink for QueuedBridge {
    async fn emit(&self, event: AgentEvent) -> Result<()> {
        self.queue.push(self.bridge.event_record(&event)?);
        Ok(())
    }
}

#[async_trait]
impl ExecutionObserver for QueuedBridge {
    async fn finished(&self, tenant: &TenantId, execution: &Execution) -> Result<()> {
        self.queue
            .push(self.bridge.result_record(tenant, execution)?);
        Ok(())
    }
}

/// The bridge queueing agent events and execution results for `bus` (starts the queue's
/// publishing task on the current runtime; see [`PublishQueue::start`]).
pub fn bridge(bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>) -> Result<Arc<QueuedBridge>> {
    let publisher: Arc<dyn EventPublisher> = Arc::new(BusPublisher(bus));
    let queue = PublishQueue::start(publisher.clone(), clock, PublishQueueConfig::default())?;
    Ok(Arc::new(QueuedBridge::new(
        StreamBridge::new(publisher),
        queue,
    )))
}

/// An event bus seen as a plain publisher (no trait upcasting on the MSRV).
#[derive(Debug)]
struct BusPublisher(Arc<dyn EventBus>);

#[async_trait]
impl EventPublisher for BusPublisher {
    async fn publish(&self, record: Record) -> Result<Position> {
        self.0.publish(record).await
    }
}
