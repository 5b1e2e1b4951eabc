//! The real services of `scripts/test-services.sh` (from `OPENFRAME_TEST_*`), a random
//! namespace per run, and taps that watch the services directly: the NATS subjects the agent
//! plane uses, the Kafka topics the event pipeline uses, and the Redis keys of the rate limits;
//! plus [`OwnService`]: a Redis, NATS or tansu process of a test's own, for outages.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use openframe_agent::bus::AgentBus as _;
use openframe_agent::bus::nats::{NatsAgentBus, NatsAgentBusOptions};
use openframe_server::config::{Sensitive, ServerConfig, ServiceUrl};
use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
use openframe_stream::bus::{ConsumerSpec, EventBus as _, EventConsumer, Record};
use serde_json::Value;
use tokio::task::JoinHandle;

/// Variables read, as `scripts/test-services.sh` exports them.
pub const REDIS_VAR: &str = "OPENFRAME_TEST_REDIS_URL";
pub const NATS_VAR: &str = "OPENFRAME_TEST_NATS_URL";
pub const KAFKA_VAR: &str = "OPENFRAME_TEST_KAFKA_BROKERS";
pub const MONGODB_VAR: &str = "OPENFRAME_TEST_MONGODB_URL";

/// How long a poll against the event pipeline may take (consumer group joins included).
pub const PIPELINE_DEADLINE: Duration = Duration::from_secs(60);

/// The services that are set, each `None` (with a "skipped: set X" line) when not.
#[derive(Debug, Clone)]
pub struct Services {
    pub redis: Option<String>,
    pub nats: Option<String>,
    /// `host:port[,host:port]`, as the variable holds it.
    pub kafka: Option<String>,
    pub mongodb: Option<String>,
    /// The namespace of this run: key prefix, topic prefix, database name.
    pub namespace: String,
}

impl Services {
    /// Reads the environment; prints what is skipped.
    pub fn from_env() -> Self {
        let read = |var: &str, what: &str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            _ => {
                println!("skipped: set {var} ({what})");
                None
            }
        };
        Self {
            redis: read(REDIS_VAR, "the Redis cache, locks and rate limits"),
            nats: read(NATS_VAR, "the NATS agent bus"),
            kafka: read(KAFKA_VAR, "the Kafka event bus"),
            mongodb: read(MONGODB_VAR, "MongoDB storage"),
            namespace: format!("e2e{:08x}", rand::random::<u32>()),
        }
    }

    /// The same services in another namespace (`{namespace}{suffix}`).
    pub fn renamed(&self, suffix: &str) -> Self {
        Self {
            namespace: format!("{}{suffix}", self.namespace),
            ..self.clone()
        }
    }

    /// Whether at least one service is set (otherwise there is nothing to test here:
    /// `e2e_platform` covers the embedded defaults).
    pub fn any(&self) -> bool {
        self.redis.is_some()
            || self.nats.is_some()
            || self.kafka.is_some()
            || self.mongodb.is_some()
    }

    /// The Redis key prefix of this run.
    pub fn redis_prefix(&self) -> String {
        format!("{}:", self.namespace)
    }

    /// The Kafka topic (and consumer group) prefix of this run.
    pub fn topic_prefix(&self) -> String {
        format!("{}.", self.namespace)
    }

    /// The `kafka://` URL of the server's event bus: this run's topic prefix and short group
    /// timeouts (a join then takes a few seconds on tansu instead of ten).
    pub fn kafka_url(&self) -> Option<String> {
        self.kafka.as_ref().map(|brokers| {
            format!(
                "kafka://{brokers}?topic_prefix={}&session_timeout_ms=6000&heartbeat_interval_ms=500",
                self.topic_prefix()
            )
        })
    }

    /// Points `config` at every set service, in this run's namespace.
    pub fn configure(&self, config: &mut ServerConfig) {
        if let Some(url) = &self.redis {
            config.redis.url = Some(ServiceUrl::new(url.clone()));
            config.redis.key_prefix = self.redis_prefix();
        }
        if let Some(url) = &self.nats {
            config.agent_bus.url = Some(ServiceUrl::new(url.clone()));
        }
        if let Some(url) = self.kafka_url() {
            config.event_bus.url = Some(ServiceUrl::new(url));
        }
        if let Some(url) = &self.mongodb {
            config.database.url = Some(ServiceUrl::new(url.clone()));
            config.database.mongodb_database = self.namespace.clone();
        }
    }

    /// The `(check, backend)` pairs `/readyz` must report up.
    pub fn expected_checks(&self) -> Vec<(&'static str, &'static str)> {
        let mut checks = vec![(
            "database",
            if self.mongodb.is_some() {
                "mongodb"
            } else {
                "sqlite"
            },
        )];
        if self.redis.is_some() {
            checks.push(("redis", "redis"));
            checks.push(("locks", "redis"));
        }
        if self.nats.is_some() {
            checks.push(("agentBus", "nats"));
        }
        if self.kafka.is_some() {
            checks.push(("eventBus", "kafka"));
        }
        checks
    }
}

/// Logs of the server and the agent to the test output, filtered by `RUST_LOG` (errors only
/// when unset).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A random 32-byte master key in base64 (replicas sharing a store must share it).
pub fn master_key() -> Sensitive {
    let bytes: [u8; 32] = rand::random();
    Sensitive::new(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Asserts `/readyz` is 200 and reports every expected backend by name as up.
pub async fn assert_ready(http: &reqwest::Client, base: &str, expected: &[(&str, &str)]) {
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "/readyz: {body}");
    assert_eq!(body["status"], "ready", "{body}");
    for (check, backend) in expected {
        let c = &body["checks"][check];
        assert_eq!(c["backend"], *backend, "/readyz check {check}: {body}");
        assert_eq!(c["status"], "up", "/readyz check {check}: {body}");
    }
}

/// Subjects seen on the real NATS server (subject and payload of each message).
#[derive(Debug)]
pub struct NatsTap {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: JoinHandle<()>,
}

impl NatsTap {
    /// Subscribes to every machine subject (`machine.>`) on `url`.
    pub async fn start(url: &str) -> Self {
        let bus = NatsAgentBus::connect_with(url, NatsAgentBusOptions::new().with_name("e2e-tap"))
            .await
            .expect("the tap connects to NATS");
        let mut subscription = bus.subscribe("machine.>").await.expect("subscribe");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let _bus = bus;
            while let Some(m) = subscription.next().await {
                let payload = String::from_utf8_lossy(&m.payload).into_owned();
                sink.lock().unwrap().push((m.subject, payload));
            }
        });
        Self { seen, task }
    }

    /// Every subject seen, in order.
    pub fn subjects(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The payloads seen on `subject`.
    pub fn payloads(&self, subject: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == subject)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl Drop for NatsTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A consumer of the server's Kafka topics in this run's namespace, in its own group.
pub struct KafkaTap {
    bus: KafkaEventBus,
    consumer: Box<dyn EventConsumer>,
    records: Vec<Record>,
}

impl std::fmt::Debug for KafkaTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTap")
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl KafkaTap {
    /// Reads `topics` (which the server created) from the earliest record.
    pub async fn start(brokers: &str, topic_prefix: &str, topics: &[&str]) -> Self {
        let config = KafkaEventBusConfig::new(brokers.split(',').map(str::trim))
            .with_topic_prefix(topic_prefix)
            .with_group_timeouts(Duration::from_secs(6), Duration::from_millis(500));
        let bus = KafkaEventBus::new(config).expect("a Kafka client");
        let consumer = bus
            .consumer(ConsumerSpec::new("e2e-tap", topics.iter().copied()))
            .await
            .expect("the tap joins its group");
        Self {
            bus,
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads until `done` holds for the records keyed by `key`, or the deadline passes.
    pub async fn until(
        &mut self,
        what: &str,
        key: &str,
        done: impl Fn(&[&Record]) -> bool,
    ) -> Vec<Record> {
        let deadline = Instant::now() + PIPELINE_DEADLINE;
        loop {
            let mine: Vec<&Record> = self
                .records
                .iter()
                .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
                .collect();
            if done(&mine) {
                return mine.into_iter().cloned().collect();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting on Kafka for: {what} (records of {key}: {})",
                mine.len()
            );
            match tokio::time::timeout(left.min(Duration::from_secs(1)), self.consumer.next()).await
            {
                Ok(Ok(Some(delivered))) => self.records.push(delivered.record),
                Ok(Ok(None)) => panic!("the Kafka tap ended"),
                Ok(Err(e)) => panic!("the Kafka tap failed: {e}"),
                Err(_) => {}
            }
        }
    }

    /// Leaves the group and deletes `topics` of this run's namespace (failures are printed:
    /// the namespace is random, so leftovers harm nobody).
    pub async fn cleanup(self, topics: &[String]) {
        let Self { bus, consumer, .. } = self;
        drop(consumer);
        for topic in topics {
            if let Err(e) = bus.delete_topic(topic).await {
                println!("could not delete the Kafka topic {topic}: {e}");
            }
        }
    }
}

/// The payload of `record` as text.
pub fn text(record: &Record) -> String {
    String::from_utf8_lossy(&record.payload).into_owned()
}

/// A Redis connection to the test server.
pub async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Every key matching `pattern` (SCAN, not KEYS).
pub async fn redis_keys(con: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Deletes every key of this run's prefix (the namespace is random, so nothing else matches).
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let mut con = redis(url).await;
    for key in redis_keys(&mut con, &format!("{prefix}*")).await {
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut con)
            .await
            .expect("DEL");
    }
}

/// A service process of the test's own (for outages: the shared ones must stay up), on a free
/// loopback port with its files in a temporary directory; killed on drop.
#[derive(Debug)]
pub struct OwnService {
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
    dir: tempfile::TempDir,
}

impl OwnService {
    /// `redis-server` without persistence; `None` (with a "skipped" line) if it is missing.
    pub async fn redis() -> Option<Self> {
        Self::start("redis-server", |port, _| {
            format!("--bind 127.0.0.1 --port {port} --save '' --appendonly no --loglevel warning")
        })
        .await
    }

    /// `nats-server` with JetStream (its store survives restarts); `None` (with a "skipped"
    /// line) if it is missing.
    pub async fn nats() -> Option<Self> {
        Self::start("nats-server", |port, dir| {
            format!("-js -a 127.0.0.1 -p {port} -sd {}", dir.display())
        })
        .await
    }

    /// A tansu broker (the Kafka protocol) with in-memory storage; `None` (with a "skipped"
    /// line) if `tansu` is missing (`OPENFRAME_TEST_TANSU_BIN` or on `PATH`).
    pub async fn kafka() -> Option<Self> {
        let program = std::env::var("OPENFRAME_TEST_TANSU_BIN").unwrap_or_else(|_| "tansu".into());
        Self::start(&program, |port, _| {
            format!(
                "broker --listener-url tcp://127.0.0.1:{port} \
                 --advertised-listener-url tcp://127.0.0.1:{port} --storage-engine memory://tansu/"
            )
        })
        .await
    }

    async fn start(program: &str, args: impl Fn(u16, &Path) -> String) -> Option<Self> {
        let Some(program) = find_program(program) else {
            println!("skipped: {program} not found (the outage tests start their own)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().unwrap();
        let args = args(port, dir.path())
            .split_whitespace()
            .map(|a| a.trim_matches('\'').to_owned())
            .collect();
        let mut service = Self {
            port,
            program,
            args,
            child: None,
            dir,
        };
        service.restart().await;
        Some(service)
    }

    /// `{scheme}://127.0.0.1:{port}`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// (Re)starts it on its port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the service");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                self.program.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills it and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the service");
        }
    }
}

/// `name` on `PATH` or in the sbin directories (Debian installs nats-server in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    if Path::new(name).is_absolute() {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    let home_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .chain(home_cargo)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
