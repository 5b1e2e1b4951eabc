//! Starting and stopping the server: bind, open backends, wire, bootstrap, serve, run jobs;
//! and a graceful stop (stop accepting, drain, stop jobs and listeners, close the store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openframe_core::{Clock, Error, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::backends::Backends;
use crate::bootstrap::{self, BootstrapReport, MasterKeySource};
use crate::config::{ConfigError, ServerConfig};
use crate::jobs::Scheduler;
use crate::platform::Platform;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is wrong (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something else failed: a backend is unreachable, the port is taken (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl StartError {
    /// The process exit code: 2 for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

impl From<Error> for StartError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput { field, reason } => Self::Config(ConfigError::new(field, reason)),
            // Backend detail is in the source chain; show it (drivers never put credentials
            // there, see openframe-data) so an operator sees why a backend failed.
            other => {
                let mut message = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    message.push_str(": ");
                    message.push_str(&s.to_string());
                    source = s.source();
                }
                Self::Failed(message)
            }
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The public URL.
    pub public_url: Url,
    /// What the first-start bootstrap created or found (`None` when disabled).
    pub bootstrap: Option<BootstrapReport>,
    /// Where the master key came from.
    pub master_key: MasterKeySource,
    /// The wired platform.
    pub platform: Platform,
    /// From the start call to accepting traffic.
    pub startup: Duration,
    /// The names of the scheduled jobs.
    pub jobs: Vec<&'static str>,
    stop: watch::Sender<bool>,
    serving: JoinHandle<std::io::Result<()>>,
    scheduler: Scheduler,
    listeners: Vec<JoinHandle<()>>,
    processor_stop: watch::Sender<bool>,
    processor: JoinHandle<()>,
    grace: Duration,
}

/// Starts the server described by `config` (already loaded and validated).
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let started = Instant::now();
    config.validate()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let listen = config.listen_addr()?;
    let listener = openframe_agent::gateway::bind_listener(listen)
        .map_err(|e| StartError::Failed(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Failed(format!("cannot read the bound address: {e}")))?;
    let public_url = config.public_url_for(addr)?;

    let (master, master_key) = bootstrap::master_key(&config)?;
    #[cfg(feature = "nats")]
    let nats_authority = match config.nats_proxy.upstream {
        Some(_) => Some(crate::nats_proxy::load_or_create_authority(&config, &master)?.0),
        None => None,
    };
    #[cfg(feature = "nats")]
    let agent_bus_credentials = nats_authority
        .as_ref()
        .map(crate::nats_proxy::server_credentials)
        .transpose()?;
    #[cfg(not(feature = "nats"))]
    let agent_bus_credentials = None;
    let backends = Backends::open(&config, clock.clone(), agent_bus_credentials).await?;
    #[allow(unused_mut)]
    let mut platform = Platform::new(&config, backends, master, public_url.clone(), clock)?;
    #[cfg(feature = "nats")]
    {
        platform.nats_authority = nats_authority;
    }
    let report = bootstrap::default_tenant(
        &config.bootstrap,
        &platform.stack.accounts,
        &platform.stack.clients,
        platform.stack.repos.tenants.as_ref(),
        platform.enrollment.secrets(),
    )
    .await?;

    // Everything that can fail comes before the first background task, so a failed start
    // leaves nothing running.
    let app = platform
        .router(&config)?
        .into_make_service_with_connect_info::<SocketAddr>();
    crate::events::ensure_topics(platform.backends.event_bus.as_ref(), &platform.processor).await?;
    let listeners = platform.spawn_listener().await?;
    let (processor_stop, mut processor_stopped) = watch::channel(false);
    let events = platform.processor.clone();
    let processor = tokio::spawn(async move {
        let stopped = async move {
            let _ = processor_stopped.changed().await;
        };
        match events.run(stopped).await {
            Ok(end) => tracing::info!(?end, "event processor stopped"),
            Err(e) => tracing::error!(error = %e, "event processor failed"),
        }
    });
    let scheduler = Scheduler::start(platform.jobs(&config), platform.metrics.clone());
    let jobs = scheduler.names();
    let (stop, mut stopped) = watch::channel(false);
    let serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await
    });
    platform.backends.readiness.set_accepting(true);
    tracing::info!(%addr, %public_url, jobs = ?jobs, "openframe-server accepting traffic");
    Ok(RunningServer {
        addr,
        public_url,
        bootstrap: report,
        master_key,
        platform,
        startup: started.elapsed(),
        jobs,
        stop,
        serving,
        scheduler,
        listeners,
        processor_stop,
        processor,
        grace: config.shutdown_grace(),
    })
}

impl RunningServer {
    /// Stops gracefully: `/readyz` turns 503, no new connections are accepted, open requests
    /// get the grace period to finish (then connections are closed), jobs finish their pass,
    /// the agent listener stops, events queued for the event bus get the grace period to go
    /// out, the event processor commits what it finished, and the stores are closed.
    pub async fn shutdown(self) {
        let Self {
            platform,
            stop,
            mut serving,
            scheduler,
            listeners,
            processor_stop,
            mut processor,
            grace,
            ..
        } = self;
        platform.backends.readiness.set_accepting(false);
        tracing::info!("shutting down: draining connections");
        let _ = stop.send(true);
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(Ok(Ok(()))) => tracing::info!("all connections drained"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "connections still open after the grace period; closing them"
                );
                serving.abort();
            }
        }
        scheduler.stop(grace).await;
        for task in listeners {
            task.abort();
        }
        // Agent events and execution results still queued for the event bus get the grace
        // period to go out (nothing produces more now), before the processor stops.
        let queued = platform.event_queue.shutdown(grace).await;
        tracing::info!(
            published = queued.published,
            dropped = queued.dropped_total(),
            "event publish queue stopped"
        );
        // The processor finishes what its lanes hold and commits.
        let _ = processor_stop.send(true);
        if tokio::time::timeout(grace, &mut processor).await.is_err() {
            tracing::warn!("the event processor did not stop in time; aborted");
            processor.abort();
        }
        // API key usage counted in memory since the last background flush.
        let usage = platform.stack.api_keys.usage_recorder().flush().await;
        tracing::debug!(keys = usage.written, "api key usage flushed");
        // Dropping the last handles closes the store (SQLite checkpoints its WAL on close).
        drop(platform);
        tracing::info!("stopped");
    }

    /// Whether the HTTP server stopped by itself (an I/O error on the listener).
    pub fn is_finished(&self) -> bool {
        self.serving.is_finished()
    }
}
