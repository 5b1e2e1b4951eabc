//! The settings of a [`KafkaEventBus`](super::KafkaEventBus) and how they become librdkafka
//! client properties.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use openframe_core::{Error, Result};
use rdkafka::ClientConfig;

use crate::bus::{DEFAULT_MAX_RECORD_BYTES, MAX_TOPIC_LEN, StartPosition};

/// Settings of a [`KafkaEventBus`](super::KafkaEventBus). Producers always use `acks=all` with
/// idempotence, so retries never duplicate or reorder records. `Debug` shows the names of the
/// extra [`properties`](Self::properties), never their values (they may hold SASL passwords).
///
/// ```
/// use std::time::Duration;
/// use openframe_stream::bus::kafka::KafkaEventBusConfig;
/// let config = KafkaEventBusConfig::new(["127.0.0.1:9092"])
///     .with_client_id("stream-service")
///     .with_topic_prefix("acme.")
///     .with_group_timeouts(Duration::from_secs(6), Duration::from_millis(500));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct KafkaEventBusConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// The client id brokers see (logs, quotas). Default `openframe`.
    pub client_id: String,
    /// Prepended to every topic name on the broker (empty by default); callers never see it.
    pub topic_prefix: String,
    /// A group member that sends no heartbeat for this long is removed (`session.timeout.ms`).
    /// Default 10 s.
    pub session_timeout: Duration,
    /// How often group members send heartbeats (`heartbeat.interval.ms`); below a third of the
    /// session timeout. Default 1 s.
    pub heartbeat_interval: Duration,
    /// How often a failed produce request is retried within the delivery timeout. Default
    /// `i32::MAX` (bounded by the delivery timeout only).
    pub retries: u32,
    /// The first wait before a retry (`retry.backoff.ms`); doubles up to
    /// [`retry_backoff_max`](Self::retry_backoff_max). Default 100 ms.
    pub retry_backoff: Duration,
    /// The longest wait between retries. Default 1 s.
    pub retry_backoff_max: Duration,
    /// How long a publish may take, retries included, before it fails with `Unavailable`
    /// (`delivery.timeout.ms`). Default 30 s.
    pub delivery_timeout: Duration,
    /// How long an admin or metadata request may take. Default 10 s.
    pub request_timeout: Duration,
    /// How long the producer waits to batch records (`linger.ms`). Default 1 ms: a publish
    /// waits for its acknowledgement, so the linger is paid on every sequential publish;
    /// concurrent publishes batch anyway.
    pub linger: Duration,
    /// How long the broker may hold a fetch waiting for records (`fetch.wait.max.ms`); bounds
    /// the delivery latency on brokers that do not answer fetches early. Default 100 ms.
    pub fetch_wait_max: Duration,
    /// Largest record (key, payload, headers) accepted by `publish`. Default 1 MiB.
    pub max_record_bytes: usize,
    /// The replication factor of created topics; `None` uses the broker's default.
    pub replication_factor: Option<u16>,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`), applied to every client after the settings above.
    pub properties: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaEventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaEventBusConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("linger", &self.linger)
            .field("fetch_wait_max", &self.fetch_wait_max)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Librdkafka properties the bus sets itself; overriding them would break its guarantees.
const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "auto.offset.reset",
    "partition.assignment.strategy",
    "group.protocol",
];

impl KafkaEventBusConfig {
    /// The defaults for `brokers`.
    pub fn new<S: Into<String>>(brokers: impl IntoIterator<Item = S>) -> Self {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            client_id: "openframe".to_owned(),
            topic_prefix: String::new(),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(1),
            fetch_wait_max: Duration::from_millis(100),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            replication_factor: None,
            properties: BTreeMap::new(),
        }
    }

    /// Parses `kafka://host:port[,host:port...][?name=value&...]`. Query names: `client_id`,
    /// `topic_prefix`, `session_timeout_ms`, `heartbeat_interval_ms`, `retries`,
    /// `retry_backoff_ms`, `retry_backoff_max_ms`, `delivery_timeout_ms`, `request_timeout_ms`,
    /// `linger_ms`, `fetch_wait_max_ms`, `max_record_bytes`, `replication_factor`. Credentials
    /// belong in [`properties`](Self::properties), not in the URL.
    ///
    /// ```
    /// use openframe_stream::bus::kafka::KafkaEventBusConfig;
    /// let config = KafkaEventBusConfig::from_url(
    ///     "kafka://k1:9092,k2:9092?client_id=stream&session_timeout_ms=6000",
    /// )
    /// .unwrap();
    /// assert_eq!(config.brokers, ["k1:9092", "k2:9092"]);
    /// assert_eq!(config.session_timeout.as_millis(), 6000);
    /// assert!(KafkaEventBusConfig::from_url("kafka://k1:9092?bogus=1").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| Error::invalid("url", "must start with kafka://"))?;
        let (hosts, settings) = super::super::url_settings::split(rest);
        let hosts = hosts.trim_end_matches('/');
        if hosts.contains('@') {
            return Err(Error::invalid(
                "url",
                "credentials are not accepted in the URL; use the sasl.* properties",
            ));
        }
        let brokers: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        let mut config = Self::new(brokers);
        for (name, value) in settings {
            config.apply_setting(name, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_setting(&mut self, name: &str, value: &str) -> Result<()> {
        use super::super::url_settings::{millis, number, unknown};
        match name {
            "client_id" => self.client_id = value.to_owned(),
            "topic_prefix" => self.topic_prefix = value.to_owned(),
            "session_timeout_ms" => self.session_timeout = millis(name, value)?,
            "heartbeat_interval_ms" => self.heartbeat_interval = millis(name, value)?,
            "retries" => {
                self.retries = u32::try_from(number(name, value)?)
                    .map_err(|_| Error::invalid("retries", "out of range"))?;
            }
            "retry_backoff_ms" => self.retry_backoff = millis(name, value)?,
            "retry_backoff_max_ms" => self.retry_backoff_max = millis(name, value)?,
            "delivery_timeout_ms" => self.delivery_timeout = millis(name, value)?,
            "request_timeout_ms" => self.request_timeout = millis(name, value)?,
            "linger_ms" => self.linger = millis(name, value)?,
            "fetch_wait_max_ms" => self.fetch_wait_max = millis(name, value)?,
            "max_record_bytes" => {
                self.max_record_bytes = usize::try_from(number(name, value)?)
                    .map_err(|_| Error::invalid("max_record_bytes", "out of range"))?;
            }
            "replication_factor" => {
                self.replication_factor = Some(
                    u16::try_from(number(name, value)?)
                        .map_err(|_| Error::invalid("replication_factor", "out of range"))?,
                );
            }
            _ => return Err(unknown(name)),
        }
        Ok(())
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets the topic prefix.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets the session timeout and the heartbeat interval of consumer groups. Short values
    /// make joins and failovers fast (e.g. 6 s and 500 ms in tests).
    pub fn with_group_timeouts(mut self, session: Duration, heartbeat: Duration) -> Self {
        self.session_timeout = session;
        self.heartbeat_interval = heartbeat;
        self
    }

    /// Sets the retries and the backoff between them.
    pub fn with_retries(mut self, retries: u32, backoff: Duration, backoff_max: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self.retry_backoff_max = backoff_max;
        self
    }

    /// Sets the delivery timeout.
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets the admin and metadata request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the producer linger.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets the longest fetch wait.
    pub fn with_fetch_wait_max(mut self, wait: Duration) -> Self {
        self.fetch_wait_max = wait;
        self
    }

    /// Sets the record size limit.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets the replication factor of created topics.
    pub fn with_replication_factor(mut self, factor: u16) -> Self {
        self.replication_factor = Some(factor);
        self
    }

    /// Adds an extra librdkafka property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Checks the settings (`InvalidInput`).
    pub fn validate(&self) -> Result<()> {
        if self.brokers.is_empty() {
            return Err(Error::invalid("brokers", "at least one broker is needed"));
        }
        for broker in &self.brokers {
            let valid = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(Error::invalid("brokers", "each broker must be host:port"));
            }
        }
        if self.client_id.is_empty() || self.client_id.len() > 255 {
            return Err(Error::invalid("clientId", "must be 1 to 255 characters"));
        }
        if self.topic_prefix.len() >= MAX_TOPIC_LEN
            || !self
                .topic_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::invalid(
                "topicPrefix",
                "may contain only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        let ms = |d: Duration| d.as_millis();
        if !(1_000..=3_600_000).contains(&ms(self.session_timeout)) {
            return Err(Error::invalid(
                "sessionTimeout",
                "must be between 1 s and 1 h",
            ));
        }
        if ms(self.heartbeat_interval) == 0
            || ms(self.heartbeat_interval) * 3 > ms(self.session_timeout)
        {
            return Err(Error::invalid(
                "heartbeatInterval",
                "must be positive and at most a third of the session timeout",
            ));
        }
        if ms(self.retry_backoff) == 0 || self.retry_backoff > self.retry_backoff_max {
            return Err(Error::invalid(
                "retryBackoff",
                "must be positive and at most the maximum backoff",
            ));
        }
        if ms(self.retry_backoff_max) > 60_000 {
            return Err(Error::invalid("retryBackoffMax", "must be at most 60 s"));
        }
        if ms(self.delivery_timeout) < 100 || ms(self.delivery_timeout) > i32::MAX as u128 {
            return Err(Error::invalid(
                "deliveryTimeout",
                "must be 100 ms to 24 days",
            ));
        }
        if ms(self.request_timeout) < 100 || ms(self.request_timeout) > 900_000 {
            return Err(Error::invalid("requestTimeout", "must be 100 ms to 15 min"));
        }
        if ms(self.linger) > 900_000 {
            return Err(Error::invalid("linger", "must be at most 15 min"));
        }
        if ms(self.fetch_wait_max) > 300_000 {
            return Err(Error::invalid("fetchWaitMax", "must be at most 5 min"));
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > 512 * 1024 * 1024 {
            return Err(Error::invalid(
                "maxRecordBytes",
                "must be 1 byte to 512 MiB",
            ));
        }
        if self.replication_factor == Some(0) {
            return Err(Error::invalid("replicationFactor", "must be at least 1"));
        }
        if let Some(name) = self
            .properties
            .keys()
            .find(|k| RESERVED_PROPERTIES.contains(&k.as_str()))
        {
            return Err(Error::invalid(
                "properties",
                format!("{name} is set by the bus and cannot be overridden"),
            ));
        }
        Ok(())
    }

    /// Properties shared by every client.
    fn common(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id)
            .set("socket.timeout.ms", millis(self.request_timeout))
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000");
        config
    }

    fn apply_extra(&self, config: &mut ClientConfig) {
        for (name, value) in &self.properties {
            config.set(name, value);
        }
    }

    /// The producer's properties: idempotent, `acks=all`, no topic auto-creation.
    pub(super) fn producer(&self) -> ClientConfig {
        let mut config = self.common();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("allow.auto.create.topics", "false")
            .set(
                "message.send.max.retries",
                self.retries.min(i32::MAX as u32).to_string(),
            )
            .set("retry.backoff.ms", millis(self.retry_backoff))
            .set("retry.backoff.max.ms", millis(self.retry_backoff_max))
            .set("delivery.timeout.ms", millis(self.delivery_timeout))
            .set("request.timeout.ms", millis(self.request_timeout))
            .set("linger.ms", millis(self.linger))
            // Well above the bus limit so the bus check decides; batching overhead fits.
            .set(
                "message.max.bytes",
                (self.max_record_bytes.saturating_add(64 * 1024)).to_string(),
            );
        self.apply_extra(&mut config);
        config
    }

    /// The admin client's properties.
    pub(super) fn admin(&self) -> ClientConfig {
        let mut config = self.common();
        self.apply_extra(&mut config);
        config
    }

    /// A group member's properties: manual commits only, eager rebalancing.
    pub(super) fn consumer(&self, group: &str, start: StartPosition) -> ClientConfig {
        let mut config = self.common();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set(
                "auto.offset.reset",
                match start {
                    StartPosition::Earliest => "earliest",
                    StartPosition::Latest => "latest",
                },
            )
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("heartbeat.interval.ms", millis(self.heartbeat_interval))
            .set("fetch.wait.max.ms", millis(self.fetch_wait_max))
            .set("fetch.message.max.bytes", {
                let bytes = self.max_record_bytes.saturating_add(64 * 1024);
                bytes.min(1_000_000_000).to_string()
            });
        self.apply_extra(&mut config);
        config
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().min(i32::MAX as u128).to_string()
}
