//! Opens each backend the configuration selects, and a readiness probe for it.

mod agent_bus;
mod coordination;
mod event_bus;
mod probe;
mod storage;

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::bus::AgentBus;
use openframe_core::{Clock, Error, Result};
use openframe_data::store::DocumentStore;
use openframe_data::{Cache, DistributedLock};
use openframe_security::ratelimit::RateLimiter;
use openframe_stream::bus::EventBus;
use openframe_stream::store::EventStore;

use crate::config::ServerConfig;

pub use probe::{Probe, ProbeOutcome, Readiness};

/// Every backend, opened.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The document store (SQLite, MongoDB or memory).
    pub store: Arc<dyn DocumentStore>,
    /// The cache (Redis or in process).
    pub cache: Arc<dyn Cache>,
    /// Distributed locks of the scheduled jobs (Redis or in process).
    pub lock: Arc<dyn DistributedLock>,
    /// Rate limits (Redis or in process).
    pub limiter: Arc<dyn RateLimiter>,
    /// The agent bus (NATS or in process).
    pub agent_bus: Arc<dyn AgentBus>,
    /// The event bus (in process; Kafka and NATS once their backends land).
    pub event_bus: Arc<dyn EventBus>,
    /// Unified events (on the document store's backend).
    pub event_store: Arc<dyn EventStore>,
    /// One readiness probe per backend.
    pub readiness: Readiness,
}

impl Backends {
    /// Opens every backend of `config`, each within the configured connect timeout. A NATS
    /// agent bus authenticates with `agent_bus_credentials` when given (a credentials file's
    /// content: nats-server in operator mode, see [`crate::nats_proxy`]).
    pub async fn open(
        config: &ServerConfig,
        clock: Arc<dyn Clock>,
        agent_bus_credentials: Option<openframe_core::Secret>,
    ) -> Result<Self> {
        let timeout = Duration::from_secs(config.http.connect_timeout_secs);
        let invalid = |e: crate::config::ConfigError| Error::invalid(e.field, e.reason);
        let storage = config.storage().map_err(invalid)?;
        let (store, store_probe) =
            within(timeout, "database", storage::open(&storage, clock.clone()))
                .await
                .map_err(field("database.url"))?;
        let event_store = within(timeout, "event store", crate::events::open_store(&storage))
            .await
            .map_err(field("database.url"))?;
        let coordination = config.coordination().map_err(invalid)?;
        let (coord, coord_probes) = within(
            timeout,
            "redis",
            coordination::open(&coordination, clock.clone()),
        )
        .await
        .map_err(field("redis.url"))?;
        let agent = config.agent_bus().map_err(invalid)?;
        let (agent_bus, agent_probe) = within(
            timeout,
            "agent bus",
            agent_bus::open(&agent, clock.clone(), agent_bus_credentials),
        )
        .await
        .map_err(field("agent_bus.url"))?;
        let events = config.event_bus().map_err(invalid)?;
        let (event_bus, event_probe) =
            within(timeout, "event bus", event_bus::open(&events, clock))
                .await
                .map_err(field("event_bus.url"))?;
        let mut probes = vec![store_probe];
        probes.extend(coord_probes);
        probes.push(agent_probe);
        probes.push(event_probe);
        Ok(Self {
            store,
            cache: coord.cache,
            lock: coord.lock,
            limiter: coord.limiter,
            agent_bus,
            event_bus,
            event_store,
            readiness: Readiness::new(
                probes,
                Duration::from_secs(config.http.readiness_timeout_secs),
            ),
        })
    }
}

/// Names the configuration field in a driver's `InvalidInput` (a malformed URL, say).
fn field(name: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::InvalidInput { reason, .. } => Error::invalid(name, reason),
        other => other,
    }
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    open: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, open).await {
        Ok(result) => result,
        Err(_) => Err(Error::Unavailable {
            reason: format!("could not connect to the {what} within {timeout:?}").into(),
        }),
    }
}
