//! What the run measures: listener timings, warnings logged, process memory and limits.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openframe_agent::subjects::{MachineSubject, MachineSubjectKind};
use openframe_core::MachineId;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

/// Server-side record of the messages the listener handled.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    state: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    /// When each machine's last heartbeat or hostname was handled (both record presence).
    contacts: HashMap<MachineId, Instant>,
    /// Heartbeats handled in the current window, and how long each took (µs).
    heartbeats: u64,
    latencies_us: Vec<u64>,
    failures: u64,
}

/// Heartbeats handled in a window.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) heartbeats: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Tracker {
    /// Records one handled message (received at `received`, handled now).
    pub(crate) fn record(
        &self,
        subject: &str,
        kind: MachineSubjectKind,
        received: Instant,
        ok: bool,
    ) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !ok {
            state.failures += 1;
            return;
        }
        if kind == MachineSubjectKind::Heartbeat {
            state.heartbeats += 1;
            let took = now.duration_since(received).as_micros();
            state.latencies_us.push(took.try_into().unwrap_or(u64::MAX));
        }
        let contact = matches!(
            kind,
            MachineSubjectKind::Heartbeat | MachineSubjectKind::Hostname
        );
        if let (true, Ok(parsed)) = (contact, MachineSubject::parse(subject)) {
            state.contacts.insert(parsed.machine_id, now);
        }
    }

    /// How many machines had a contact handled at or after `since`.
    pub(crate) fn contacted_since(&self, since: Instant) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.contacts.values().filter(|at| **at >= since).count()
    }

    /// Messages the listener failed to handle.
    pub(crate) fn failures(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures
    }

    /// The heartbeats since the last call, and starts a new window.
    pub(crate) fn take_window(&self) -> Window {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut latencies = std::mem::take(&mut state.latencies_us);
        let heartbeats = std::mem::take(&mut state.heartbeats);
        drop(state);
        latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
            Duration::from_micros(latencies.get(i).copied().unwrap_or(0))
        };
        Window {
            heartbeats,
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// A `tracing` subscriber that counts events by message (INFO and above) instead of printing
/// them: the SDK and the server report connection failures, retries and dropped messages as
/// warnings, which is what "errors" means in the report.
#[derive(Debug, Default)]
pub(crate) struct LogCounter {
    warnings: AtomicU64,
    by_message: Mutex<HashMap<(Level, String), u64>>,
}

impl LogCounter {
    /// WARN and ERROR events so far.
    pub(crate) fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// How often `message` was logged (any level).
    pub(crate) fn count(&self, message: &str) -> u64 {
        let counts = self.by_message.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .filter(|((_, m), _)| m == message)
            .map(|(_, n)| n)
            .sum()
    }

    /// The WARN and ERROR messages with their counts, most frequent first.
    pub(crate) fn warning_messages(&self) -> Vec<(String, u64)> {
        let counts = self.by_message.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(String, u64)> = counts
            .iter()
            .filter(|((level, _), _)| *level <= Level::WARN)
            .map(|((level, m), n)| (format!("{level} {m}"), *n))
            .collect();
        list.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        list
    }
}

/// Takes the `message` of an event, with its `error` or `reason` if it has one.
struct MessageField(String);

impl Visit for MessageField {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "message" => self.0.insert_str(0, &format!("{value:?}")),
            "error" | "reason" => self.0.push_str(&format!(" ({value:?})")),
            _ => {}
        }
    }
}

impl Subscriber for LogCounter {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let level = *event.metadata().level();
        if level <= Level::WARN {
            self.warnings.fetch_add(1, Ordering::Relaxed);
        }
        let mut message = MessageField(String::new());
        event.record(&mut message);
        let mut counts = self.by_message.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((level, message.0)).or_default() += 1;
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The resident set size of this process, MiB (`VmRSS`), and its peak (`VmHWM`).
pub(crate) fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The soft limit on open files (`Max open files` in `/proc/self/limits`), if known.
pub(crate) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
