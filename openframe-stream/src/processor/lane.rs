//! One lane: takes batches of records (all keys hashed to it, in delivery order) through
//! adapt → enrich → sink → output topic, dead-lettering what cannot be processed.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openframe_core::{Clock, Error, Result};
use tokio::sync::mpsc;

use super::config::ProcessorConfig;
use super::dead_letter::{Failure, dead_letter_record};
use super::metrics::Metrics;
use super::sink::EventSink;
use crate::adapters::{AdapterRegistry, RawRecord};
use crate::bus::{Delivered, EventBus, Position, Record};
use crate::enrich::Enricher;
use crate::model::UnifiedEvent;

/// The `message-type` header of processed events on the output topic.
pub const OUTPUT_MESSAGE_TYPE: &str = "UNIFIED_EVENT";

/// A record a lane is done with.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) topic: String,
    pub(crate) position: Position,
    /// `false`: abandoned (neither processed nor dead-lettered), must not be committed.
    pub(crate) ok: bool,
}

/// Everything a lane needs, shared by all lanes.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) registry: AdapterRegistry,
    pub(crate) enricher: Enricher,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) config: ProcessorConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    /// Set on shutdown: endless retries (of the dead-letter topic) give up.
    pub(crate) stopping: AtomicBool,
}

/// The [`RawRecord`] an adapter sees for a delivered record (first value of each header;
/// position `partition:offset`).
pub fn raw_record(delivered: &Delivered) -> RawRecord {
    let record = &delivered.record;
    RawRecord {
        topic: record.topic.clone(),
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record
            .headers
            .entries()
            .filter_map(|(name, values)| Some((name.clone(), values.first()?.clone())))
            .collect(),
        timestamp: record.timestamp,
        position: Some(format!(
            "{}:{}",
            delivered.position.partition, delivered.position.offset
        )),
    }
}

/// The record of a processed event on the output topic: JSON, keyed by machine (else the
/// tool's device, else the tenant), with `message-type`, `tenant-id` and `event-type` headers.
pub fn output_record(topic: &str, event: &UnifiedEvent) -> Result<Record> {
    let payload = serde_json::to_vec(event)
        .map_err(|e| Error::Internal(format!("encoding an event: {e}").into()))?;
    let key = event
        .machine_id
        .as_ref()
        .map(|m| m.as_str())
        .or(event.tool_agent_id.as_deref())
        .or(event.tenant.as_ref().map(|t| t.as_str()));
    let mut record = Record::new(topic, payload)
        .with_header("message-type", OUTPUT_MESSAGE_TYPE)
        .with_header("event-type", event.event_type.clone())
        .with_timestamp(event.occurred_at);
    if let Some(tenant) = &event.tenant {
        record = record.with_header("tenant-id", tenant.as_str());
    }
    if let Some(key) = key {
        record = record.with_key(key);
    }
    Ok(record)
}

/// Runs one lane until its queue closes.
pub(crate) async fn run_lane(
    pipeline: Arc<Pipeline>,
    mut queue: mpsc::Receiver<Delivered>,
    done: mpsc::UnboundedSender<Finished>,
) {
    let batch_size = pipeline.config.batch_size;
    let mut batch = Vec::with_capacity(batch_size);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < batch_size {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        for (delivered, ok) in pipeline.process(std::mem::take(&mut batch)).await {
            let finished = Finished {
                topic: delivered.record.topic,
                position: delivered.position,
                ok,
            };
            if done.send(finished).is_err() {
                return;
            }
        }
    }
}

impl Pipeline {
    /// Processes a batch; returns each record with whether it may be committed.
    async fn process(&self, batch: Vec<Delivered>) -> Vec<(Delivered, bool)> {
        let mut finished = Vec::with_capacity(batch.len());
        let mut ready: Vec<(Delivered, Range<usize>)> = Vec::with_capacity(batch.len());
        let mut events: Vec<UnifiedEvent> = Vec::with_capacity(batch.len());
        for delivered in batch {
            let start = events.len();
            match self.prepare(&delivered, &mut events).await {
                Ok(()) => ready.push((delivered, start..events.len())),
                Err(failure) => {
                    events.truncate(start);
                    let ok = self.dead_letter(&delivered, &failure).await;
                    finished.push((delivered, ok));
                }
            }
        }
        if ready.is_empty() {
            return finished;
        }
        let (written, attempts) = self.retry(|| self.write(&events)).await;
        match written {
            Ok(()) => {
                Metrics::add(&self.metrics.events_written, events.len() as u64);
                for (delivered, range) in ready {
                    let ok = self.publish(&delivered, &events[range]).await;
                    finished.push((delivered, ok));
                }
            }
            // One record may be what the sink refuses: write them one by one.
            Err(e) if !e.is_retryable() && ready.len() > 1 => {
                for (delivered, range) in ready {
                    let part = &events[range];
                    let (written, attempts) = self.retry(|| self.write(part)).await;
                    let ok = match written {
                        Ok(()) => {
                            Metrics::add(&self.metrics.events_written, part.len() as u64);
                            self.publish(&delivered, part).await
                        }
                        Err(e) => {
                            self.dead_letter(&delivered, &Failure::error(&e, attempts))
                                .await
                        }
                    };
                    finished.push((delivered, ok));
                }
            }
            Err(e) => {
                let failure = Failure::error(&e, attempts);
                for (delivered, _) in ready {
                    let ok = self.dead_letter(&delivered, &failure).await;
                    finished.push((delivered, ok));
                }
            }
        }
        finished
    }

    /// Adapts and enriches one record, appending its events to `out`.
    async fn prepare(
        &self,
        delivered: &Delivered,
        out: &mut Vec<UnifiedEvent>,
    ) -> std::result::Result<(), Failure> {
        let raw = raw_record(delivered);
        let adapted = self
            .registry
            .adapt(&raw)
            .map_err(|e| Failure::adapter(&e))?;
        for mut event in adapted {
            let mut attempt = 1;
            loop {
                match self.enricher.enrich_in_place(&raw, &mut event).await {
                    Ok(()) => break,
                    Err(e) if self.pause_before_retry(&e, attempt).await => attempt += 1,
                    Err(e) => return Err(Failure::error(&e, attempt)),
                }
            }
            out.push(event);
        }
        Ok(())
    }

    async fn write(&self, events: &[UnifiedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.sink.write(events).await
    }

    /// Publishes a written record's events to the output topic; dead-letters the record if
    /// that fails for good. Returns whether the record may be committed.
    async fn publish(&self, delivered: &Delivered, events: &[UnifiedEvent]) -> bool {
        if let Some(topic) = &self.config.output_topic {
            for event in events {
                let record = match output_record(topic, event) {
                    Ok(record) => record,
                    Err(e) => return self.dead_letter(delivered, &Failure::error(&e, 1)).await,
                };
                let (published, attempts) = self.retry(|| self.bus.publish(record.clone())).await;
                if let Err(e) = published {
                    return self
                        .dead_letter(delivered, &Failure::error(&e, attempts))
                        .await;
                }
            }
        }
        Metrics::add(&self.metrics.processed, 1);
        true
    }

    /// Publishes the dead letter of `delivered`, retrying transient failures until it is
    /// stored or the processor stops. Returns whether it was stored.
    async fn dead_letter(&self, delivered: &Delivered, failure: &Failure) -> bool {
        let record = dead_letter_record(
            &self.config.dead_letter_topic,
            delivered,
            failure,
            self.clock.now(),
        );
        let mut attempt = 1u32;
        loop {
            match self.bus.publish(record.clone()).await {
                Ok(_) => {
                    Metrics::add(&self.metrics.dead_lettered, 1);
                    tracing::warn!(
                        topic = %delivered.record.topic,
                        partition = delivered.position.partition,
                        offset = delivered.position.offset,
                        reason = %failure.reason,
                        attempts = failure.attempts,
                        "record dead-lettered"
                    );
                    return true;
                }
                Err(e) if e.is_retryable() && !self.stopping.load(Ordering::Relaxed) => {
                    Metrics::add(&self.metrics.retried, 1);
                    tokio::time::sleep(self.config.retry.backoff(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => {
                    tracing::error!(
                        topic = %delivered.record.topic,
                        partition = delivered.position.partition,
                        offset = delivered.position.offset,
                        error = %e,
                        "the dead-letter topic refused a record; it stays uncommitted"
                    );
                    return false;
                }
            }
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the retry policy is spent; returns the
    /// result and the attempts made.
    async fn retry<T, F, Fut>(&self, mut op: F) -> (Result<T>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if self.pause_before_retry(&e, attempt).await => attempt += 1,
                other => return (other, attempt),
            }
        }
    }

    /// Whether to retry after `error` on attempt `attempt`; if so, counts the retry and waits
    /// the backoff first.
    async fn pause_before_retry(&self, error: &Error, attempt: u32) -> bool {
        if !error.is_retryable() || attempt >= self.config.retry.max_attempts {
            return false;
        }
        Metrics::add(&self.metrics.retried, 1);
        tracing::debug!(error = %error, attempt, "transient failure; retrying");
        tokio::time::sleep(self.config.retry.backoff(attempt)).await;
        true
    }
}
