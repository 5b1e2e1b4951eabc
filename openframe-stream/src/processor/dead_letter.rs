//! Dead letters: records the processor could not handle, kept whole on the dead-letter topic
//! with headers saying why and where from, and moved back by [`replay_dead_letters`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use openframe_core::{Error, Headers, Result, Timestamp};

use crate::adapters::AdapterError;
use crate::bus::{ConsumerSpec, Delivered, EventBus, Record, StartPosition, validate_topic};
use crate::enrich::TENANT_FIELD;

/// Header: the [`DeadLetterReason`].
pub const REASON_HEADER: &str = "x-dlq-reason";
/// Header: a short, payload-free description of the failure.
pub const ERROR_HEADER: &str = "x-dlq-error";
/// Header: the topic the record came from.
pub const SOURCE_TOPIC_HEADER: &str = "x-dlq-source-topic";
/// Header: its partition there.
pub const SOURCE_PARTITION_HEADER: &str = "x-dlq-source-partition";
/// Header: its offset there.
pub const SOURCE_OFFSET_HEADER: &str = "x-dlq-source-offset";
/// Header: how many attempts were made.
pub const ATTEMPTS_HEADER: &str = "x-dlq-attempts";
/// Header: when it was dead-lettered (RFC 3339).
pub const FAILED_AT_HEADER: &str = "x-dlq-failed-at";
/// Header kept on replayed records: how many times the record was replayed.
pub const REPLAY_COUNT_HEADER: &str = "x-dlq-replay-count";

/// Longest [`ERROR_HEADER`] value, in characters.
const MAX_ERROR_CHARS: usize = 512;

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The payload cannot be parsed (poison).
    Malformed,
    /// No adapter accepts the record's topic and headers.
    Unsupported,
    /// Nobody could tell the record's tenant.
    TenantUnresolved,
    /// A transient failure outlasted the retries.
    RetriesExhausted,
    /// A step refused the record for good (a non-retryable error).
    Rejected,
}

impl DeadLetterReason {
    /// The header value (`MALFORMED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "MALFORMED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TenantUnresolved => "TENANT_UNRESOLVED",
            Self::RetriesExhausted => "RETRIES_EXHAUSTED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses a header value.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Malformed,
            Self::Unsupported,
            Self::TenantUnresolved,
            Self::RetriesExhausted,
            Self::Rejected,
        ]
        .into_iter()
        .find(|r| r.as_str() == value)
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why and after how many attempts one record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) reason: DeadLetterReason,
    pub(crate) detail: String,
    pub(crate) attempts: u32,
}

impl Failure {
    /// An adapter failure (never retried).
    pub(crate) fn adapter(error: &AdapterError) -> Self {
        let reason = if error.is_poison() {
            DeadLetterReason::Malformed
        } else {
            DeadLetterReason::Unsupported
        };
        Self {
            reason,
            detail: error.to_string(),
            attempts: 1,
        }
    }

    /// A failure of enrichment, the sink or the output topic after `attempts` attempts.
    pub(crate) fn error(error: &Error, attempts: u32) -> Self {
        let reason =
            if error.field() == Some(TENANT_FIELD) && matches!(error, Error::InvalidInput { .. }) {
                DeadLetterReason::TenantUnresolved
            } else if error.is_retryable() {
                DeadLetterReason::RetriesExhausted
            } else {
                DeadLetterReason::Rejected
            };
        Self {
            reason,
            // The public message: no backend detail, no secret, no payload.
            detail: format!("{}: {}", error.code().as_str(), error.public_message()),
            attempts,
        }
    }
}

/// A header value safe to publish: no control characters, trimmed, bounded.
fn header_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "-".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The dead letter of `delivered`: same key, payload, timestamp and headers, plus the
/// `x-dlq-*` headers.
pub(crate) fn dead_letter_record(
    topic: &str,
    delivered: &Delivered,
    failure: &Failure,
    at: Timestamp,
) -> Record {
    let source = &delivered.record;
    let mut headers = source.headers.clone();
    headers.insert(REASON_HEADER, failure.reason.as_str());
    headers.insert(ERROR_HEADER, header_value(&failure.detail));
    headers.insert(SOURCE_TOPIC_HEADER, source.topic.as_str());
    headers.insert(
        SOURCE_PARTITION_HEADER,
        delivered.position.partition.to_string(),
    );
    headers.insert(SOURCE_OFFSET_HEADER, delivered.position.offset.to_string());
    headers.insert(ATTEMPTS_HEADER, failure.attempts.to_string());
    headers.insert(
        FAILED_AT_HEADER,
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let mut record = Record::new(topic, source.payload.clone()).with_headers(headers);
    record.key = source.key.clone();
    record.timestamp = source.timestamp;
    record
}

/// What the headers of a dead letter say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterInfo {
    /// Why it failed.
    pub reason: Option<DeadLetterReason>,
    /// The payload-free error description.
    pub error: Option<String>,
    /// The source topic.
    pub source_topic: Option<String>,
    /// The source partition.
    pub source_partition: Option<u32>,
    /// The source offset.
    pub source_offset: Option<u64>,
    /// Attempts made.
    pub attempts: Option<u32>,
}

impl DeadLetterInfo {
    /// Reads the `x-dlq-*` headers.
    pub fn from_headers(headers: &Headers) -> Self {
        Self {
            reason: headers.get(REASON_HEADER).and_then(DeadLetterReason::parse),
            error: headers.get(ERROR_HEADER).map(str::to_owned),
            source_topic: headers.get(SOURCE_TOPIC_HEADER).map(str::to_owned),
            source_partition: headers
                .get(SOURCE_PARTITION_HEADER)
                .and_then(|v| v.parse().ok()),
            source_offset: headers
                .get(SOURCE_OFFSET_HEADER)
                .and_then(|v| v.parse().ok()),
            attempts: headers.get(ATTEMPTS_HEADER).and_then(|v| v.parse().ok()),
        }
    }
}

/// How [`replay_dead_letters`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// The consumer group reading the dead-letter topic (default `dead-letter-replay`): each
    /// dead letter is replayed once per group.
    pub group: String,
    /// Publish every dead letter to this topic instead of its source topic.
    pub target: Option<String>,
    /// Stop after this many records (default 10 000).
    pub max_records: usize,
    /// Stop when no dead letter arrived for this long (default 1 s): the bus cannot tell
    /// where a topic ends.
    pub idle: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            group: "dead-letter-replay".to_owned(),
            target: None,
            max_records: 10_000,
            idle: Duration::from_secs(1),
        }
    }
}

impl ReplayOptions {
    /// Sends every replayed record to `topic`.
    pub fn with_target(mut self, topic: impl Into<String>) -> Self {
        self.target = Some(topic.into());
        self
    }

    /// Uses consumer group `group`.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Stops after `max` records.
    pub fn with_max_records(mut self, max: usize) -> Self {
        self.max_records = max;
        self
    }

    /// Stops after `idle` without a record.
    pub fn with_idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Records moved back.
    pub replayed: u64,
    /// Records moved back, per target topic.
    pub by_topic: BTreeMap<String, u64>,
}

/// Moves dead letters from `dead_letter_topic` back to their source topic (or
/// `options.target`), without the `x-dlq-*` headers except [`REPLAY_COUNT_HEADER`], which is
/// incremented; each is committed on the dead-letter topic once republished. Stops after
/// `max_records`, after `idle` without a record, or when the topic ends. A dead letter without
/// source topic (and no target) stops the replay with `InvalidInput`; the ones before it stay
/// replayed.
pub async fn replay_dead_letters(
    bus: &dyn EventBus,
    dead_letter_topic: &str,
    options: &ReplayOptions,
) -> Result<ReplayReport> {
    validate_topic(dead_letter_topic)?;
    if let Some(target) = &options.target {
        validate_topic(target)?;
    }
    let mut report = ReplayReport::default();
    if options.max_records == 0 || bus.topic_partitions(dead_letter_topic).await?.is_none() {
        return Ok(report);
    }
    let mut consumer = bus
        .consumer(
            ConsumerSpec::new(options.group.clone(), [dead_letter_topic])
                .with_start(StartPosition::Earliest)
                .with_max_in_flight(1),
        )
        .await?;
    while (report.replayed as usize) < options.max_records {
        let delivered = match tokio::time::timeout(options.idle, consumer.next()).await {
            Err(_) | Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Some(delivered))) => delivered,
        };
        let record = replayed_record(&delivered, options.target.as_deref())?;
        let target = record.topic.clone();
        bus.publish(record).await?;
        consumer.commit_delivered(&delivered).await?;
        report.replayed += 1;
        *report.by_topic.entry(target).or_default() += 1;
    }
    Ok(report)
}

/// The record to publish for a dead letter.
fn replayed_record(delivered: &Delivered, target: Option<&str>) -> Result<Record> {
    let source = &delivered.record;
    let topic = match target {
        Some(t) => t.to_owned(),
        None => source
            .headers
            .get(SOURCE_TOPIC_HEADER)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid(
                    "target",
                    "a dead letter has no source topic header; give a target topic",
                )
            })?,
    };
    let replays = source
        .headers
        .get(REPLAY_COUNT_HEADER)
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0)
        .saturating_add(1);
    let mut headers = Headers::new();
    for (name, values) in source.headers.entries() {
        if name.starts_with("x-dlq-") {
            continue;
        }
        for value in values {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(REPLAY_COUNT_HEADER, replays.to_string());
    let mut record = Record::new(topic, source.payload.clone()).with_headers(headers);
    record.key = source.key.clone();
    record.timestamp = source.timestamp;
    Ok(record)
}
