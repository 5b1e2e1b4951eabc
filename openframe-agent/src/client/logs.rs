//! Log shipping: the agent's log lines, batched to `agents.logs` as the original agent sends
//! them (`{"machineId","hostname","tenantDomain","logs":[{"level","ts","msg"}]}`, at most
//! [`MAX_BATCH`] lines per batch), resent until the gateway acknowledges each batch.
//!
//! [`LogShipper::log`] never blocks and never fails: lines wait in a bounded buffer
//! ([`MAX_BUFFERED`] lines; when it is full the oldest are dropped and counted) until the
//! connection flushes them every [`super::AgentTiming::log_interval`]. The gateway stamps
//! the token's tenant and machine on each batch, so the server never trusts the ids inside.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openframe_core::{Clock, SystemClock};
use serde::Serialize;

/// Most lines in one batch (the original agent's limit).
pub const MAX_BATCH: usize = 50;
/// Most lines kept while waiting to be shipped.
pub const MAX_BUFFERED: usize = 1000;
/// Longest line shipped, in bytes (longer ones are cut at a character boundary).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub level: String,
    /// When, RFC 3339.
    pub ts: String,
    /// The message.
    pub msg: String,
}

/// The batch payload on `agents.logs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogBatch<'a> {
    pub(super) machine_id: &'a str,
    pub(super) hostname: &'a str,
    pub(super) tenant_domain: &'a str,
    pub(super) logs: Vec<LogLine>,
}

#[derive(Default)]
struct Buffer {
    lines: Mutex<VecDeque<LogLine>>,
    dropped: AtomicU64,
}

/// Queues log lines for shipping (cheap to clone; see the module documentation).
#[derive(Clone)]
pub struct LogShipper {
    buffer: Arc<Buffer>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for LogShipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogShipper")
            .field("buffered", &self.buffered())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Default for LogShipper {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl LogShipper {
    /// An empty shipper stamping lines with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            buffer: Arc::default(),
            clock,
        }
    }

    /// Queues a line (`level` upper-cased; `msg` cut at [`MAX_LINE_BYTES`]).
    pub fn log(&self, level: &str, msg: &str) {
        let mut cut = msg.len().min(MAX_LINE_BYTES);
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        let line = LogLine {
            level: level.trim().to_ascii_uppercase(),
            ts: self.clock.now().to_rfc3339(),
            msg: msg[..cut].to_owned(),
        };
        let Ok(mut lines) = self.buffer.lines.lock() else {
            return;
        };
        if lines.len() >= MAX_BUFFERED {
            lines.pop_front();
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
        }
        lines.push_back(line);
    }

    /// Lines waiting to be shipped.
    pub fn buffered(&self) -> usize {
        self.buffer.lines.lock().map_or(0, |l| l.len())
    }

    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped.load(Ordering::Relaxed)
    }

    /// Takes the oldest lines, at most [`MAX_BATCH`].
    pub(super) fn take_batch(&self) -> Vec<LogLine> {
        let Ok(mut lines) = self.buffer.lines.lock() else {
            return Vec::new();
        };
        let n = lines.len().min(MAX_BATCH);
        lines.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_bounded_and_batches_are_small() {
        let shipper = LogShipper::default();
        for i in 0..MAX_BUFFERED + 5 {
            shipper.log("info", &format!("line {i}"));
        }
        assert_eq!(shipper.buffered(), MAX_BUFFERED);
        assert_eq!(shipper.dropped(), 5);
        let batch = shipper.take_batch();
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(batch[0].msg, "line 5", "the oldest were dropped");
        assert_eq!(batch[0].level, "INFO");
        shipper.log("warn", &"é".repeat(MAX_LINE_BYTES));
        let all: Vec<LogLine> = std::iter::from_fn(|| {
            let b = shipper.take_batch();
            (!b.is_empty()).then_some(b)
        })
        .flatten()
        .collect();
        let last = all.last().unwrap();
        assert!(last.msg.len() <= MAX_LINE_BYTES);
        assert_eq!(shipper.buffered(), 0);
    }
}
