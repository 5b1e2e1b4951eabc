//! The agent SDK (feature `client`): what runs on a managed machine.
//!
//! [`Agent::start`] enrolls the machine and keeps it connected to the server's agent gateway
//! ([`crate::gateway`]):
//!
//! 1. **Registration**, once: without a credentials file it registers
//!    (`POST /clients/api/agents/register` with `X-Initial-Key`, retried with backoff) and
//!    stores `{machineId, clientId, clientSecret}` in the file (mode 0600, written atomically).
//!    With a file it never registers again.
//! 2. **Tokens**: `client_credentials` on `/clients/oauth/token`, renewed before `expiresIn`
//!    (`refresh_token` first, falling back to `client_credentials`).
//! 3. **Connection**: a WebSocket to `/ws/agent` with `Authorization: Bearer`, re-established
//!    with exponential backoff and jitter (with a renewed token after a `401`).
//! 4. **Traffic**: publishes its hostname on connect and a heartbeat
//!    (`machine.{id}.heartbeat`) every [`AgentTiming::heartbeat_interval`] ± jitter; subscribes
//!    to `machine.{id}.command-execution`, `machine.{id}.script-execution` and
//!    `machine.{id}.command-cancel` (which stops that execution's handler), consumes the
//!    durable `machine.{id}.tool-installation`, calls the [`AgentHandler`], and publishes
//!    results on `machine.{id}.command-execution.result` / `script-execution.result`, resending
//!    each until the gateway acknowledges it (across reconnects).
//! 5. **Logs**: [`AgentHandle::logs`] queues log lines; they are shipped in batches of at most
//!    50 to `agents.logs` every [`AgentTiming::log_interval`], like the original agent's log
//!    stream, and resent until acknowledged.
//!
//! Secrets (the registration secret, the client secret, tokens) never appear in logs, `Debug`
//! output or errors.
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::sync::Arc;
//! use openframe_agent::client::{Agent, AgentConfig, AgentHandler};
//! use openframe_agent::executions::{CommandMessage, ResultMessage};
//! use openframe_core::Secret;
//!
//! #[derive(Debug)]
//! struct Runner;
//! #[async_trait::async_trait]
//! impl AgentHandler for Runner {
//!     async fn on_command(&self, command: CommandMessage) -> ResultMessage {
//!         let mut result = openframe_agent::client::result_for(&command.execution_id);
//!         result.exit_code = Some(0);
//!         result.stdout = "done".into();
//!         result
//!     }
//! }
//!
//! let config = AgentConfig::new(
//!     "https://msp.example".parse().unwrap(),
//!     Secret::new("initial-key"),
//!     "/var/lib/openframe/credentials.json",
//!     "vm-01",
//! );
//! let agent = Agent::start(config, Arc::new(Runner)).await?;
//! println!("running as {}", agent.machine_id());
//! agent.shutdown().await;
//! # Ok(()) }
//! ```

mod credentials;
mod http;
mod logs;
mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Error, MachineId, Result, Secret};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

pub use credentials::{Credentials, load as load_credentials, store as store_credentials};
pub use logs::{LogLine, LogShipper, MAX_BATCH, MAX_BUFFERED, MAX_LINE_BYTES};

use crate::enrollment::{RegistrationRequest, TagRequest};
use crate::executions::{CommandMessage, ResultMessage, ScriptMessage};

/// Intervals, jitter and backoff of the agent (configurable so tests run fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentTiming {
    /// Between heartbeats (default 60 s). A connection whose previous heartbeat is still
    /// unanswered at the next one is considered dead and re-established.
    pub heartbeat_interval: Duration,
    /// Each heartbeat interval is varied by up to this much either way (default 5 s).
    pub heartbeat_jitter: Duration,
    /// First retry delay of registration, token and connection attempts (default 1 s).
    pub backoff_initial: Duration,
    /// Longest retry delay (default 60 s, as the original agent's registration retry).
    pub backoff_max: Duration,
    /// Renew tokens this long before they expire (default 5 min; at the latest half-way).
    pub refresh_margin: Duration,
    /// Delay before resending a result the gateway refused with a retryable error
    /// (default 2 s).
    pub result_retry: Duration,
    /// HTTP request timeout (default 30 s).
    pub request_timeout: Duration,
    /// Between log shipments (default 60 s, as the original agent).
    pub log_interval: Duration,
}

impl Default for AgentTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(60),
            heartbeat_jitter: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            refresh_margin: Duration::from_secs(300),
            result_retry: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            log_interval: Duration::from_secs(60),
        }
    }
}

impl AgentTiming {
    /// Sets the heartbeat interval and jitter.
    pub fn with_heartbeat(mut self, interval: Duration, jitter: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_jitter = jitter.min(interval / 2);
        self
    }

    /// Sets the retry backoff bounds.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Sets the token refresh margin.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Sets the log shipping interval (at least 10 ms).
    pub fn with_log_interval(mut self, interval: Duration) -> Self {
        self.log_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets the result resend delay.
    pub fn with_result_retry(mut self, delay: Duration) -> Self {
        self.result_retry = delay;
        self
    }

    /// The delay before retry number `attempt` (0-based): exponential from
    /// `backoff_initial`, capped at `backoff_max`, with "equal jitter" (between half and all of
    /// it).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        let full = self
            .backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max);
        full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
    }

    /// The next heartbeat delay: the interval ± up to the jitter.
    pub fn next_heartbeat(&self) -> Duration {
        let jitter = self.heartbeat_jitter.min(self.heartbeat_interval / 2);
        let spread = jitter.mul_f64(rand::random::<f64>() * 2.0);
        (self.heartbeat_interval + spread).saturating_sub(jitter)
    }
}

/// How to enroll and reach the server. `Debug` redacts the registration secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The server's base URL (`https://…`; `http://` for tests or behind a local proxy).
    pub server_url: Url,
    /// The tenant's registration secret (the `X-Initial-Key`); used only to register.
    pub registration_secret: Secret,
    /// Where the credentials are kept.
    pub credentials_path: PathBuf,
    /// The machine's hostname.
    pub hostname: String,
    /// `WINDOWS`, `MAC_OS` or `LINUX`.
    pub os_type: String,
    /// The agent's version.
    pub agent_version: String,
    /// The organization to enroll into (the tenant's default one when absent).
    pub organization_id: Option<String>,
    /// Tags to attach at registration.
    pub tags: Vec<TagRequest>,
    /// Intervals and backoff.
    pub timing: AgentTiming,
}

impl AgentConfig {
    /// A configuration with this platform's OS type, this crate's version as the agent
    /// version, no organization, no tags and the default timing.
    pub fn new(
        server_url: Url,
        registration_secret: Secret,
        credentials_path: impl Into<PathBuf>,
        hostname: impl Into<String>,
    ) -> Self {
        let os_type = match std::env::consts::OS {
            "windows" => "WINDOWS",
            "macos" => "MAC_OS",
            _ => "LINUX",
        };
        Self {
            server_url,
            registration_secret,
            credentials_path: credentials_path.into(),
            hostname: hostname.into(),
            os_type: os_type.to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            organization_id: None,
            tags: Vec::new(),
            timing: AgentTiming::default(),
        }
    }

    /// Sets the OS type.
    pub fn with_os_type(mut self, os_type: impl Into<String>) -> Self {
        self.os_type = os_type.into();
        self
    }

    /// Sets the agent version.
    pub fn with_agent_version(mut self, version: impl Into<String>) -> Self {
        self.agent_version = version.into();
        self
    }

    /// Sets the organization.
    pub fn with_organization(mut self, organization_id: impl Into<String>) -> Self {
        self.organization_id = Some(organization_id.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: TagRequest) -> Self {
        self.tags.push(tag);
        self
    }

    /// Sets the timing.
    pub fn with_timing(mut self, timing: AgentTiming) -> Self {
        self.timing = timing;
        self
    }

    fn registration_request(&self) -> RegistrationRequest {
        RegistrationRequest {
            hostname: Some(self.hostname.clone()),
            agent_version: Some(self.agent_version.clone()),
            organization_id: self
                .organization_id
                .clone()
                .filter(|o| !o.trim().is_empty()),
            os_type: Some(self.os_type.clone()),
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
            ..RegistrationRequest::default()
        }
    }

    /// The gateway URL: `ws(s)://host/ws/agent`.
    fn gateway_url(&self) -> Result<Url> {
        let mut url = self
            .server_url
            .join(crate::gateway::GATEWAY_PATH)
            .map_err(|_| Error::invalid("serverUrl", "is not a base URL"))?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            _ => return Err(Error::invalid("serverUrl", "must be http:// or https://")),
        };
        url.set_scheme(scheme)
            .map_err(|_| Error::invalid("serverUrl", "must be http:// or https://"))?;
        Ok(url)
    }
}

/// What the agent does with the server's requests. Every method has a default, so an agent
/// implements only what it supports.
#[async_trait]
pub trait AgentHandler: Send + Sync + fmt::Debug + 'static {
    /// Runs a command; the result is published on `machine.{id}.command-execution.result`
    /// (its `machine_id` is set by the SDK). Default: an error result "not supported".
    async fn on_command(&self, command: CommandMessage) -> ResultMessage {
        unsupported(&command.execution_id, "commands")
    }

    /// Runs a script; the result is published on `machine.{id}.script-execution.result`.
    /// Default: an error result "not supported".
    async fn on_script(&self, script: ScriptMessage) -> ResultMessage {
        let mut result = unsupported(&script.execution_id, "scripts");
        result.script_id = script.script_id;
        result
    }

    /// Installs a tool (a durable delivery of `machine.{id}.tool-installation`). `Ok`
    /// acknowledges it; `InvalidInput` terminates it (never redelivered); any other error asks
    /// for redelivery. Default: `InvalidInput` (not supported).
    async fn on_tool_installation(&self, request: serde_json::Value) -> Result<()> {
        let _ = request;
        Err(Error::invalid(
            "toolInstallation",
            "not supported by this agent",
        ))
    }
}

/// An empty result for `execution_id` (no exit code, no output), for handlers to fill in.
pub fn result_for(execution_id: &str) -> ResultMessage {
    ResultMessage {
        execution_id: execution_id.to_owned(),
        machine_id: None,
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        execution_time_ms: None,
        timed_out: false,
        error: None,
        script_id: None,
    }
}

fn unsupported(execution_id: &str, what: &str) -> ResultMessage {
    let mut result = result_for(execution_id);
    result.error = Some(format!("{what} are not supported by this agent"));
    result
}

/// Where the agent's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Getting a token or connecting (or waiting to retry).
    Connecting,
    /// Connected, with its subscriptions in place.
    Connected,
    /// Shut down.
    Stopped,
}

/// The agent SDK's entry point.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Starts the agent: loads its credentials or registers (retrying with backoff until it
    /// succeeds; this call returns once the machine has credentials), then runs the
    /// connection in the background. Errors: an unreadable or invalid credentials file, a
    /// configuration error.
    pub async fn start(config: AgentConfig, handler: Arc<dyn AgentHandler>) -> Result<AgentHandle> {
        let gateway = config.gateway_url()?;
        let http = reqwest::Client::builder()
            .timeout(config.timing.request_timeout)
            .build()
            .map_err(|_| Error::Internal("cannot build the HTTP client".into()))?;
        let credentials = match credentials::load(&config.credentials_path).await? {
            Some(credentials) => {
                tracing::info!(machine_id = %credentials.machine_id, "using stored agent credentials");
                credentials
            }
            None => register(&http, &config).await?,
        };
        let machine_id = credentials.machine_id.clone();
        let tokens = http::TokenManager::new(
            http,
            &config.server_url,
            credentials,
            config.timing.refresh_margin,
        )?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (status_tx, status) = watch::channel(AgentStatus::Connecting);
        let logs = LogShipper::default();
        let runner = session::Runner::new(
            machine_id.clone(),
            gateway,
            config.hostname.clone(),
            config.timing,
            tokens,
            handler,
            status_tx,
            shutdown_rx,
            logs.clone(),
        )?;
        let task = tokio::spawn(runner.run());
        Ok(AgentHandle {
            machine_id,
            shutdown,
            status,
            logs,
            task: Some(task),
        })
    }
}

async fn register(http: &reqwest::Client, config: &AgentConfig) -> Result<Credentials> {
    let request = config.registration_request();
    let mut attempt = 0u32;
    loop {
        match http::register(
            http,
            &config.server_url,
            &config.registration_secret,
            &request,
        )
        .await
        {
            Ok(credentials) => {
                credentials::store(&config.credentials_path, &credentials).await?;
                tracing::info!(machine_id = %credentials.machine_id, "agent registered");
                return Ok(credentials);
            }
            Err(error) => {
                let delay = config.timing.backoff(attempt);
                tracing::warn!(error = %error, retry_in = ?delay, "agent registration failed");
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// A running agent. Dropping it stops the agent too (without waiting).
#[derive(Debug)]
pub struct AgentHandle {
    machine_id: MachineId,
    shutdown: watch::Sender<bool>,
    status: watch::Receiver<AgentStatus>,
    logs: LogShipper,
    task: Option<JoinHandle<()>>,
}

impl AgentHandle {
    /// Ships log lines to the server (`agents.logs`, see [`LogShipper`]).
    pub fn logs(&self) -> LogShipper {
        self.logs.clone()
    }

    /// The machine id.
    pub fn machine_id(&self) -> &MachineId {
        &self.machine_id
    }

    /// Where the connection stands now.
    pub fn status(&self) -> AgentStatus {
        *self.status.borrow()
    }

    /// Waits until the agent is connected with its subscriptions in place (returns at once
    /// if it is); `Unavailable` if it stopped.
    pub async fn wait_connected(&self) -> Result<()> {
        let mut status = self.status.clone();
        let reached = status
            .wait_for(|s| matches!(s, AgentStatus::Connected | AgentStatus::Stopped))
            .await
            .map(|s| *s);
        match reached {
            Ok(AgentStatus::Connected) => Ok(()),
            _ => Err(Error::Unavailable {
                reason: "the agent stopped".into(),
            }),
        }
    }

    /// Stops the agent: closes the connection, cancels running handlers, and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
