//! Processor counters and their snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use openframe_core::Timestamp;

/// Live counters, shared by the fetch loop, the lanes and replay.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) processed: AtomicU64,
    pub(crate) events_written: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) started_at: Mutex<Option<Timestamp>>,
    pub(crate) committed: Mutex<BTreeMap<(String, u32), u64>>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_committed(&self, topic: &str, partition: u32, offset: u64) {
        let mut committed = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        committed.insert((topic.to_owned(), partition), offset);
    }

    pub(crate) fn snapshot(&self, now: Timestamp) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let started = *self
            .started_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let elapsed = started
            .and_then(|s| (now - s).to_std().ok())
            .unwrap_or_default();
        let processed = get(&self.processed);
        let secs = elapsed.as_secs_f64();
        let partitions = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((topic, partition), offset)| PartitionProgress {
                topic: topic.clone(),
                partition: *partition,
                committed_offset: *offset,
                lag: None,
            })
            .collect();
        MetricsSnapshot {
            processed,
            events_written: get(&self.events_written),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            replayed: get(&self.replayed),
            in_flight: get(&self.in_flight),
            partitions,
            elapsed,
            throughput_per_sec: if secs > 0.0 {
                processed as f64 / secs
            } else {
                0.0
            },
        }
    }
}

/// Progress on one source partition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PartitionProgress {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The last offset committed by this processor.
    pub committed_offset: u64,
    /// Records after the committed one, where the bus can tell (the `EventBus` trait does not
    /// expose end offsets yet, so this is `None` for now).
    pub lag: Option<u64>,
}

/// A point-in-time copy of a processor's counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Records whose events were written (and published); records that carried no event
    /// (tombstones) count too.
    pub processed: u64,
    /// Events written to the sink.
    pub events_written: u64,
    /// Retries of transient failures (each repeated attempt counts once).
    pub retried: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Dead letters moved back to a source topic.
    pub replayed: u64,
    /// Records delivered to lanes and not finished.
    pub in_flight: u64,
    /// The committed position per source partition, sorted.
    pub partitions: Vec<PartitionProgress>,
    /// Time since the processor started (on its clock).
    pub elapsed: Duration,
    /// `processed / elapsed`, records per second.
    pub throughput_per_sec: f64,
}
