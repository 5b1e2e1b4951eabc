//! Processor settings.

use std::time::Duration;

use openframe_core::{Error, Result};

use crate::bus::{ConsumerSpec, StartPosition, validate_topic};

/// The default dead-letter topic.
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "openframe.dead-letters";
/// The default topic of processed (enriched) events.
pub const DEFAULT_OUTPUT_TOPIC: &str = "openframe.unified-events";
/// The default consumer group.
pub const DEFAULT_GROUP: &str = "openframe-stream-processor";
/// Most lanes (concurrently processed keys).
pub const MAX_CONCURRENCY: usize = 256;
/// The default [`ProcessorConfig::lag_interval`].
pub const DEFAULT_LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Exponential backoff for transient failures (`Error::is_retryable`).
///
/// ```
/// use std::time::Duration;
/// use openframe_stream::processor::RetryPolicy;
/// let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(300));
/// assert_eq!(policy.backoff(1), Duration::from_millis(100));
/// assert_eq!(policy.backoff(2), Duration::from_millis(200));
/// assert_eq!(policy.backoff(3), Duration::from_millis(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The pause after the first failure.
    pub initial_backoff: Duration,
    /// The longest pause; each pause doubles up to it.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 200 ms doubling to 5 s (about 11 s in all).
    fn default() -> Self {
        Self::new(6, Duration::from_millis(200), Duration::from_secs(5))
    }
}

impl RetryPolicy {
    /// A policy.
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts,
            initial_backoff,
            max_backoff,
        }
    }

    /// The pause after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err(Error::invalid("maxAttempts", "must be between 1 and 100"));
        }
        if self.initial_backoff > self.max_backoff || self.max_backoff > Duration::from_secs(600) {
            return Err(Error::invalid(
                "backoff",
                "the initial backoff must not exceed the maximum, which must not exceed 10 minutes",
            ));
        }
        Ok(())
    }
}

/// What a [`Processor`](super::Processor) reads, where it writes and how hard it works.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessorConfig {
    /// The consumer group (default [`DEFAULT_GROUP`]).
    pub group: String,
    /// The source topics (at least one).
    pub topics: Vec<String>,
    /// Where unprocessable records go (default [`DEFAULT_DEAD_LETTER_TOPIC`]).
    pub dead_letter_topic: String,
    /// Where processed events are published, as JSON keyed by machine (default
    /// [`DEFAULT_OUTPUT_TOPIC`]); `None` publishes nothing.
    pub output_topic: Option<String>,
    /// Partitions of the dead-letter and output topics when the processor creates them
    /// (default 3).
    pub topic_partitions: u32,
    /// Lanes processing in parallel; records of one key always use the same lane, so they
    /// are processed in order (default 4, at most [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Records delivered and not yet committed, at most (default 1000).
    pub max_in_flight: usize,
    /// Most records a lane takes at once into one sink write (default 500; a lane takes what
    /// is waiting, so a larger value adds no delay).
    pub batch_size: usize,
    /// Retries of transient failures (default [`RetryPolicy::default`]).
    pub retry: RetryPolicy,
    /// Where a new group starts (default earliest).
    pub start: StartPosition,
    /// How often the consumer lag is asked from the bus, on the processor's clock (default
    /// [`DEFAULT_LAG_INTERVAL`], 100 ms to 1 hour); see
    /// [`MetricsSnapshot::lag_total`](super::MetricsSnapshot::lag_total).
    pub lag_interval: Duration,
}

impl ProcessorConfig {
    /// The defaults, reading `topics`.
    pub fn new<S: Into<String>>(topics: impl IntoIterator<Item = S>) -> Self {
        Self {
            group: DEFAULT_GROUP.to_owned(),
            topics: topics.into_iter().map(Into::into).collect(),
            dead_letter_topic: DEFAULT_DEAD_LETTER_TOPIC.to_owned(),
            output_topic: Some(DEFAULT_OUTPUT_TOPIC.to_owned()),
            topic_partitions: 3,
            concurrency: 4,
            max_in_flight: 1000,
            batch_size: 500,
            retry: RetryPolicy::default(),
            start: StartPosition::Earliest,
            lag_interval: DEFAULT_LAG_INTERVAL,
        }
    }

    /// The consumer spec of this configuration.
    pub(crate) fn consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(self.group.clone(), self.topics.clone())
            .with_start(self.start)
            .with_max_in_flight(self.max_in_flight)
    }

    /// Checks every setting (`InvalidInput`).
    pub fn validate(&self) -> Result<()> {
        self.consumer_spec().validate()?;
        validate_topic(&self.dead_letter_topic)?;
        let mut outputs = vec![&self.dead_letter_topic];
        if let Some(output) = &self.output_topic {
            validate_topic(output)?;
            if output == &self.dead_letter_topic {
                return Err(Error::invalid(
                    "outputTopic",
                    "must differ from the dead-letter topic",
                ));
            }
            outputs.push(output);
        }
        if self.topics.iter().any(|t| outputs.contains(&t)) {
            return Err(Error::invalid(
                "topics",
                "must not include the dead-letter or output topic",
            ));
        }
        if self.topic_partitions == 0 || self.topic_partitions > crate::bus::MAX_PARTITIONS {
            return Err(Error::invalid(
                "topicPartitions",
                "must be between 1 and 1024",
            ));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(Error::invalid("batchSize", "must be between 1 and 10000"));
        }
        if self.lag_interval < Duration::from_millis(100)
            || self.lag_interval > Duration::from_secs(3600)
        {
            return Err(Error::invalid(
                "lagInterval",
                "must be between 100 ms and 1 hour",
            ));
        }
        self.retry.validate()
    }
}
