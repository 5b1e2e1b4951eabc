//! Processor counters and their snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use openframe_core::Timestamp;

use crate::bus::PartitionLag;

/// The last lag the bus reported: when, and the records behind per partition.
type LagReport = (Timestamp, BTreeMap<(String, u32), u64>);

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
    lag: Mutex<Option<LagReport>>,
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

    /// Replaces the lag with what the bus reported at `at` (the assigned partitions).
    pub(crate) fn set_lag(&self, at: Timestamp, lag: &[PartitionLag]) {
        let partitions = lag
            .iter()
            .map(|l| ((l.topic.clone(), l.partition), l.lag))
            .collect();
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner) = Some((at, partitions));
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
        let committed = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (lag_updated_at, lag) = self
            .lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unzip();
        let lag = lag.unwrap_or_default();
        let mut keys: Vec<&(String, u32)> = committed.keys().chain(lag.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        let partitions = keys
            .into_iter()
            .map(|tp| PartitionProgress {
                topic: tp.0.clone(),
                partition: tp.1,
                committed_offset: committed.get(tp).copied(),
                lag: lag.get(tp).copied(),
            })
            .collect();
        let lag_total = (!lag.is_empty()).then(|| lag.values().sum());
        MetricsSnapshot {
            processed,
            events_written: get(&self.events_written),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            replayed: get(&self.replayed),
            in_flight: get(&self.in_flight),
            partitions,
            lag_total,
            lag_updated_at,
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
    /// The offset of the last record this processor committed, `None` if it committed none
    /// on the partition (yet).
    pub committed_offset: Option<u64>,
    /// Records of the partition the group has not committed yet (delivered or not), as the bus
    /// reported at [`MetricsSnapshot::lag_updated_at`] (see
    /// [`PartitionLag::lag`](crate::bus::PartitionLag::lag)); `None` if the partition was not
    /// assigned to this processor then.
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
    /// The source partitions this processor committed on or was last assigned, sorted.
    pub partitions: Vec<PartitionProgress>,
    /// The sum of [`PartitionProgress::lag`]: records of the assigned partitions not committed
    /// yet. Refreshed every [`ProcessorConfig::lag_interval`](super::ProcessorConfig::lag_interval)
    /// of the processor's clock while it runs; `None` before the first report and while no
    /// partition is assigned (a Kafka consumer has none until it joined its group).
    pub lag_total: Option<u64>,
    /// When the bus last reported the lag (on the processor's clock).
    pub lag_updated_at: Option<Timestamp>,
    /// Time since the processor started (on its clock).
    pub elapsed: Duration,
    /// `processed / elapsed`, records per second.
    pub throughput_per_sec: f64,
}
