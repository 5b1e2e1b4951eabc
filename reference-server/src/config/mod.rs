//! The server configuration: defaults, then a TOML file, then `OPENFRAME_*` environment
//! variables, then command-line flags. Every backend is chosen by the scheme of its URL.
//!
//! ```
//! use openframe_server::config::{ServerConfig, Sources};
//! let config = ServerConfig::load(&Sources::default().with_env(|name| {
//!     (name == "OPENFRAME_REDIS_URL").then(|| "redis://:pw@cache:6379".to_owned())
//! }))?;
//! assert!(!format!("{config:?}").contains("pw@"));
//! # Ok::<(), openframe_server::config::ConfigError>(())
//! ```

mod backends;
mod env;
mod sensitive;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

pub use backends::{BusBackend, CoordinationBackend, StorageBackend};
pub use env::ENV_VARS;
pub use sensitive::{REDACTED, Sensitive, ServiceUrl, redact_url};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./openframe-server-data";
/// The SQLite file name inside the data directory.
pub const SQLITE_FILE: &str = "openframe.db";
/// The master key file name inside the data directory (development mode).
pub const MASTER_KEY_FILE: &str = "master.key";
/// The sealed NATS authority (operator and account seeds) inside the data directory.
pub const NATS_AUTHORITY_FILE: &str = "nats-authority.sealed";

/// A configuration value that is not acceptable, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The field (`database.url`) or variable (`OPENFRAME_DATABASE_URL`) at fault.
    pub field: String,
    /// What is wrong, without the value when it may be secret.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Everything the server reads at start. Secrets are redacted in `Debug` and when dumped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`; port 0 picks a free port).
    pub listen: String,
    /// Where the SQLite file and the development master key live (default `./openframe-server-data`).
    pub data_dir: PathBuf,
    /// The URL clients use to reach the server; issuers are `{public_url}/sas/{tenant}`
    /// (default `http://{listen address}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Logging.
    pub log: LogConfig,
    /// The document store.
    pub database: DatabaseConfig,
    /// Cache, distributed locks and rate limits.
    pub redis: RedisConfig,
    /// The event bus (tool and agent events).
    pub event_bus: BusConfig,
    /// The agent bus (heartbeats, commands, tool installation).
    pub agent_bus: BusConfig,
    /// The master key.
    pub security: SecurityConfig,
    /// What the first start creates.
    pub bootstrap: BootstrapConfig,
    /// Scheduled jobs.
    pub jobs: JobsConfig,
    /// HTTP serving.
    pub http: HttpConfig,
    /// The API gateway: CORS origins, body limits, tool proxy timeouts and trusted CAs.
    pub gateway: openframe_api::gateway::GatewayConfig,
    /// The external REST API (`/api/v1`).
    pub external_api: ExternalApiConfig,
    /// The original agent's NATS sockets (`/ws/nats`, `/ws/nats-logs`).
    pub nats_proxy: NatsProxySection,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            public_url: None,
            log: LogConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            event_bus: BusConfig::default(),
            agent_bus: BusConfig::default(),
            security: SecurityConfig::default(),
            bootstrap: BootstrapConfig::default(),
            jobs: JobsConfig::default(),
            http: HttpConfig::default(),
            gateway: openframe_api::gateway::GatewayConfig::default(),
            external_api: ExternalApiConfig::default(),
            nats_proxy: NatsProxySection::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,openframe_agent=debug` (default `info`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Document store settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, `mongodb://...` / `mongodb+srv://...`, or `memory://` (default: the
    /// SQLite file `openframe.db` in the data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<ServiceUrl>,
    /// The MongoDB database name (default `openframe`).
    pub mongodb_database: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            mongodb_database: "openframe".to_owned(),
        }
    }
}

/// Redis settings: when `url` is set, the cache, the distributed locks of the scheduled jobs
/// and the rate limits live in Redis (shared by replicas); otherwise in process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` or `rediss://...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<ServiceUrl>,
    /// Prefix of every key (default `openframe:`), so deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "openframe:".to_owned(),
        }
    }
}

/// A message bus: `kafka://` or `nats://` (event bus), `nats://` (agent bus); unset means
/// the in-process bus.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// The bus URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<ServiceUrl>,
}

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The master key itself (32 bytes, base64). Prefer `OPENFRAME_MASTER_KEY` or a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<Sensitive>,
    /// A file holding the base64 master key (must exist). When neither is set, the key is
    /// generated on first start into `{data_dir}/master.key` (development mode, with a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
}

/// The default tenant and its OWNER, created on the first start only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Whether to create the default tenant at all (default `true`).
    pub enabled: bool,
    /// Its id (default `default`): the issuer is `{public_url}/sas/{tenant_id}`.
    pub tenant_id: String,
    /// Its display name.
    pub tenant_name: String,
    /// Its domain.
    pub domain: String,
    /// The OWNER's email.
    pub owner_email: String,
    /// The OWNER's password; when unset a random one is generated and printed once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_password: Option<Sensitive>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tenant_id: "default".to_owned(),
            tenant_name: "Default MSP".to_owned(),
            domain: "default.localhost".to_owned(),
            owner_email: "owner@default.localhost".to_owned(),
            owner_password: None,
        }
    }
}

/// Intervals of the scheduled jobs, in seconds (0 disables a job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// How often ONLINE machines that went silent are marked OFFLINE (default 60).
    pub offline_sweep_secs: u64,
    /// Silence after which a machine is OFFLINE (default 130).
    pub offline_after_secs: u64,
    /// How often due signing keys are rotated (default 3600).
    pub key_rotation_secs: u64,
    /// How often overdue command and script executions are timed out (default 30).
    pub execution_watchdog_secs: u64,
    /// How often dead-lettered events are replayed (default 300; needs the event processor).
    pub dead_letter_replay_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            offline_sweep_secs: 60,
            offline_after_secs: 130,
            key_rotation_secs: 3600,
            execution_watchdog_secs: 30,
            dead_letter_replay_secs: 300,
        }
    }
}

/// HTTP serving settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// How long shutdown waits for open requests and connections (default 10).
    pub shutdown_grace_secs: u64,
    /// How long one backend check of `/readyz` may take (default 2).
    pub readiness_timeout_secs: u64,
    /// How long connecting to each backend may take at start (default 10).
    pub connect_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 10,
            readiness_timeout_secs: 2,
            connect_timeout_secs: 10,
        }
    }
}

/// Longest accepted `external_api.key_cache_secs`.
pub const MAX_KEY_CACHE_SECS: u64 = 300;

/// Rate limits of every API key on `/api/v1` (0 leaves a period out; at least one is needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalApiConfig {
    /// Requests per minute (default 100).
    pub quota_per_minute: u32,
    /// Requests per hour (default 1,000).
    pub quota_per_hour: u32,
    /// Requests per day (default 10,000).
    pub quota_per_day: u32,
    /// Count every request in the key's usage statistics (default true; counted in memory and
    /// written once per key per flush).
    pub record_usage: bool,
    /// How long a verified API key is trusted without reading the store again, in seconds
    /// (default 5; 0 reads the store on every request). Revoking or disabling a key applies at
    /// once on the replica that did it, and within this time on the others.
    pub key_cache_secs: u64,
}

impl Default for ExternalApiConfig {
    fn default() -> Self {
        Self {
            quota_per_minute: 100,
            quota_per_hour: 1_000,
            quota_per_day: 10_000,
            record_usage: true,
            key_cache_secs: 5,
        }
    }
}

impl ExternalApiConfig {
    /// The quotas with a non-zero limit.
    pub fn quotas(&self) -> Vec<openframe_security::ratelimit::Quota> {
        use openframe_security::ratelimit::Quota;
        [
            (self.quota_per_minute, Quota::per_minute as fn(u32) -> Quota),
            (self.quota_per_hour, Quota::per_hour),
            (self.quota_per_day, Quota::per_day),
        ]
        .into_iter()
        .filter(|(limit, _)| *limit > 0)
        .map(|(limit, quota)| quota(limit))
        .collect()
    }
}

/// The original agent's NATS sockets, proxied to a nats-server in operator mode (see
/// `openframe_agent::nats_proxy` and `openframe-server nats-config`). Unset `upstream`: the
/// two routes answer 503 `NATS_PROXY_NOT_CONFIGURED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsProxySection {
    /// nats-server's WebSocket listener (`ws://host:port` or `wss://...`). Needs
    /// `agent_bus.url` on the same nats-server: the server connects there as the authority's
    /// privileged user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Where the operator and account seeds are kept, sealed with the master key (default
    /// `{data_dir}/nats-authority.sealed`, created on first use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_file: Option<PathBuf>,
    /// The operator's name (default `openframe`).
    pub operator_name: String,
    /// Longest life of one proxied connection before the agent reconnects (default 3600).
    pub max_session_secs: u64,
}

impl Default for NatsProxySection {
    fn default() -> Self {
        Self {
            upstream: None,
            authority_file: None,
            operator_name: "openframe".to_owned(),
            max_session_secs: 3600,
        }
    }
}

impl NatsProxySection {
    /// The upstream WebSocket URL, when the proxy is configured.
    pub fn upstream_url(&self) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = &self.upstream else {
            return Ok(None);
        };
        let field = "nats_proxy.upstream";
        let url = Url::parse(raw)
            .map_err(|_| ConfigError::new(field, "must be a ws:// or wss:// URL"))?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
            return Err(ConfigError::new(field, "must be a ws:// or wss:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                field,
                "must not carry credentials: the proxy presents its own per connection",
            ));
        }
        Ok(Some(url))
    }
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--owner-email`.
    pub owner_email: Option<String>,
    /// `--owner-password` (prefer the environment: flags are visible to other users).
    pub owner_password: Option<Sensitive>,
}

type EnvFn = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the configuration is read from.
pub struct Sources {
    /// The TOML file (`--config`), if any.
    pub file: Option<PathBuf>,
    /// Reads an environment variable (the process environment by default).
    pub env: EnvFn,
    /// Command-line overrides.
    pub overrides: Overrides,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("file", &self.file)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            file: None,
            env: Box::new(|_| None),
            overrides: Overrides::default(),
        }
    }
}

impl Sources {
    /// The process environment, `file` and `overrides`.
    pub fn process(file: Option<PathBuf>, overrides: Overrides) -> Self {
        Self {
            file,
            env: Box::new(|name| std::env::var(name).ok()),
            overrides,
        }
    }

    /// Reads variables through `env` instead.
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Reads `file` too.
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl ServerConfig {
    /// Reads defaults, the file, the environment and the overrides, in that order, and
    /// validates the result.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut config = match &sources.file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        env::apply(&mut config, sources.env.as_ref())?;
        config.apply(&sources.overrides);
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml(&text)
    }

    /// Parses TOML text (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            // The message names the key and the line; values are not echoed for secrets.
            ConfigError::new(
                "config file",
                e.message().to_owned() + &span_hint(text, e.span()),
            )
        })
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.listen {
            self.listen = v.clone();
        }
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.public_url {
            self.public_url = Some(v.clone());
        }
        if let Some(v) = o.log_format {
            self.log.format = v;
        }
        if let Some(v) = &o.owner_email {
            self.bootstrap.owner_email = v.clone();
        }
        if let Some(v) = &o.owner_password {
            self.bootstrap.owner_password = Some(v.clone());
        }
    }

    /// Checks every field; the first problem is returned with its field name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.public_url_for(SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", e.to_string()))?;
        self.storage()?;
        self.coordination()?;
        self.event_bus()?;
        self.agent_bus()?;
        if let Some(key) = &self.security.master_key {
            openframe_security::crypto::MasterKey::from_base64(key.expose()).map_err(|_| {
                ConfigError::new(
                    "security.master_key",
                    "must be 32 random bytes in base64 (generate one with `openssl rand -base64 32`)",
                )
            })?;
        }
        if self.bootstrap.enabled {
            openframe_core::TenantId::parse(&self.bootstrap.tenant_id).map_err(|_| {
                ConfigError::new(
                    "bootstrap.tenant_id",
                    "must be 1-64 ASCII letters, digits, '-' or '_', not starting with '-' or '_'",
                )
            })?;
            if !self.bootstrap.owner_email.contains('@') {
                return Err(ConfigError::new(
                    "bootstrap.owner_email",
                    "must be an email address",
                ));
            }
        }
        let jobs = &self.jobs;
        if jobs.offline_sweep_secs > 0 && jobs.offline_after_secs < jobs.offline_sweep_secs {
            return Err(ConfigError::new(
                "jobs.offline_after_secs",
                "must be at least jobs.offline_sweep_secs",
            ));
        }
        self.gateway.validate().map_err(|e| match e {
            openframe_core::Error::InvalidInput { field, reason } => {
                ConfigError::new(format!("gateway.{field}"), reason)
            }
            other => ConfigError::new("gateway", other.to_string()),
        })?;
        if self.external_api.quotas().is_empty() {
            return Err(ConfigError::new(
                "external_api",
                "at least one of quota_per_minute, quota_per_hour, quota_per_day must be above 0",
            ));
        }
        if self.external_api.key_cache_secs > MAX_KEY_CACHE_SECS {
            return Err(ConfigError::new(
                "external_api.key_cache_secs",
                format!(
                    "must be at most {MAX_KEY_CACHE_SECS}: a revoked key keeps working on other replicas that long"
                ),
            ));
        }
        if self.nats_proxy.upstream_url()?.is_some() {
            if !cfg!(feature = "nats") {
                return Err(ConfigError::new(
                    "nats_proxy.upstream",
                    "this build has no NATS support (feature `nats` of openframe-server)",
                ));
            }
            if !matches!(self.agent_bus()?, BusBackend::Nats(_)) {
                return Err(ConfigError::new(
                    "nats_proxy.upstream",
                    "needs agent_bus.url on the same nats-server (nats://)",
                ));
            }
            if self.nats_proxy.max_session_secs < 60 {
                return Err(ConfigError::new(
                    "nats_proxy.max_session_secs",
                    "must be at least 60",
                ));
            }
            if self.nats_proxy.operator_name.trim().is_empty() {
                return Err(ConfigError::new(
                    "nats_proxy.operator_name",
                    "must not be empty",
                ));
            }
        }
        if self.http.readiness_timeout_secs == 0 || self.http.connect_timeout_secs == 0 {
            return Err(ConfigError::new(
                "http",
                "timeouts must be at least 1 second",
            ));
        }
        Ok(())
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.trim().parse().map_err(|_| {
            ConfigError::new(
                "listen",
                "must be an IP address and port such as 127.0.0.1:8080",
            )
        })
    }

    /// The public URL, defaulting to `http://{bound}`. No path, query or credentials.
    pub fn public_url_for(&self, bound: SocketAddr) -> Result<Url, ConfigError> {
        let raw = match &self.public_url {
            Some(raw) => raw.trim().trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        };
        let url: Url = raw.parse().map_err(|_| {
            ConfigError::new(
                "public_url",
                "must be an absolute http(s) URL such as https://msp.example",
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::new(
                "public_url",
                "must be an http or https URL with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(ConfigError::new(
                "public_url",
                "must not hold credentials or a query",
            ));
        }
        Ok(url)
    }

    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.http.shutdown_grace_secs)
    }

    /// The sealed NATS authority file (`nats_proxy.authority_file`, else the data directory).
    pub fn nats_authority_path(&self) -> PathBuf {
        self.nats_proxy
            .authority_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(NATS_AUTHORITY_FILE))
    }

    /// The development master key file (used when no key is configured).
    pub fn master_key_path(&self) -> PathBuf {
        self.security
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(MASTER_KEY_FILE))
    }

    /// The configuration as TOML with secrets redacted and defaults filled in (for
    /// `openframe-server config`).
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.database.url.is_none() {
            shown.database.url = Some(ServiceUrl::new(format!(
                "sqlite://{}",
                self.data_dir.join(SQLITE_FILE).display()
            )));
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// ` (line N)` for a parse error span.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
