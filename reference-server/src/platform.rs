//! The platform wired from the libraries: security stack, enrollment, presence, executions,
//! the agent listener and gateway, over the opened backends.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use openframe_agent::enrollment::{EnrollmentParts, EnrollmentService, RegistrationSecrets};
use openframe_agent::events::AgentEventSink;
use openframe_agent::executions::{ExecutionConfig, ExecutionService};
use openframe_agent::listener::{AgentListener, BusChannel, CachedMachineTenants};
use openframe_agent::presence::{PresenceConfig, PresenceService};
use openframe_agent::sessions::{AgentSessions, ClosingSessions, RepositoryStanding};
use openframe_api::graphql::GraphqlEvents;
use openframe_core::{Clock, Result};
use openframe_security::crypto::MasterKey;
use openframe_security::keys::KeyRotationJob;
use openframe_security::stack::SecurityStack;
use openframe_stream::processor::Processor;
use tokio::task::JoinHandle;
use url::Url;

use crate::backends::Backends;
use crate::config::ServerConfig;
use crate::events::PublishQueue;
use crate::jobs::{Job, JobParts, server_jobs};
use crate::metrics::Metrics;
use crate::ops::{self, OpsState};

/// Every service of the platform, wired.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The clock every service uses.
    pub clock: Arc<dyn Clock>,
    /// The opened backends.
    pub backends: Backends,
    /// Security: tenants, users, OAuth/OIDC, API keys, rate limits.
    pub stack: SecurityStack,
    /// Agent enrollment and tokens.
    pub enrollment: EnrollmentService,
    /// Heartbeats and the offline sweep.
    pub presence: PresenceService,
    /// Commands and scripts.
    pub executions: ExecutionService,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Machine status changes for GraphQL subscriptions.
    pub graphql_events: GraphqlEvents,
    /// The live agent sessions: each ends when its token expires, its machine is uninstalled,
    /// or its machine or OAuth client is disabled (checked every minute).
    pub sessions: AgentSessions,
    /// The event processor (source topics → unified events in the event store).
    pub processor: Processor,
    /// The queue of agent events and execution results headed for the event bus.
    pub event_queue: PublishQueue,
    /// The public URL (issuers are `{public_url}/sas/{tenant}`).
    pub public_url: Url,
    /// The NATS authority when `nats_proxy.upstream` is set (see [`crate::nats_proxy`]).
    #[cfg(feature = "nats")]
    pub nats_authority: Option<openframe_agent::nats_proxy::NatsAuthority>,
}

impl Platform {
    /// Wires every service over `backends`.
    pub fn new(
        config: &ServerConfig,
        backends: Backends,
        master: MasterKey,
        public_url: Url,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let store = backends.store.clone();
        let secrets = RegistrationSecrets::new(store.clone(), &master, clock.clone());
        let stack = SecurityStack::builder(store.clone(), public_url.clone(), master)
            .with_clock(clock.clone())
            .with_rate_limiter(backends.limiter.clone())
            .with_api_key_cache_ttl(Duration::from_secs(config.external_api.key_cache_secs))
            .build()?;
        // Agent events (registered, online, offline, uninstalled) feed GraphQL subscriptions
        // and, through the stream bridge, the event bus (and so the unified events). Records
        // for the bus go through a bounded queue, so no request waits on the bus; GraphQL
        // subscribers get the events at once.
        let graphql_events = GraphqlEvents::default();
        let bridge = crate::events::bridge(backends.event_bus.clone(), clock.clone())?;
        let event_queue = bridge.queue().clone();
        let sessions = AgentSessions::new(clock.clone()).with_standing(
            Arc::new(RepositoryStanding::new(
                stack.repos.clone(),
                stack.clients.clone(),
            )),
            Duration::from_secs(60),
        );
        let events: Arc<dyn AgentEventSink> = Arc::new(ClosingSessions::new(
            crate::events::FanOutSink(vec![graphql_events.sink(), bridge.clone()]),
            sessions.clone(),
        ));
        let enrollment = EnrollmentService::new(EnrollmentParts::from_stack(
            &stack,
            store.clone(),
            secrets,
            events.clone(),
            clock.clone(),
        ));
        let presence = PresenceService::new(
            stack.repos.machines.clone(),
            stack.repos.tenants.clone(),
            backends.lock.clone(),
            events,
            clock.clone(),
            PresenceConfig {
                offline_after: Duration::from_secs(config.jobs.offline_after_secs),
                sweep_interval: Duration::from_secs(config.jobs.offline_sweep_secs.max(1)),
                ..PresenceConfig::default()
            },
        );
        let processor = crate::events::processor(
            backends.event_bus.clone(),
            &stack.repos,
            backends.cache.clone(),
            backends.event_store.clone(),
            crate::events::default_topics(),
            clock.clone(),
        )?;
        let executions = ExecutionService::new(
            store,
            stack.repos.machines.clone(),
            Arc::new(BusChannel(backends.agent_bus.clone())),
            clock.clone(),
            ExecutionConfig::default(),
        )
        .with_observer(bridge);
        Ok(Self {
            clock,
            backends,
            stack,
            enrollment,
            presence,
            executions,
            metrics: Metrics::new(),
            graphql_events,
            sessions,
            processor,
            event_queue,
            public_url,
            #[cfg(feature = "nats")]
            nats_authority: None,
        })
    }

    /// Subscribes the agent listener (heartbeats, hostnames, results) to the agent bus.
    pub async fn spawn_listener(&self) -> Result<Vec<JoinHandle<()>>> {
        AgentListener::new(
            Arc::new(CachedMachineTenants::new(self.enrollment.clone())),
            self.presence.clone(),
            self.executions.clone(),
            self.stack.repos.machines.clone(),
        )
        .spawn(self.backends.agent_bus.clone())
        .await
    }

    /// The scheduled jobs.
    pub fn jobs(&self, config: &ServerConfig) -> Vec<Job> {
        server_jobs(
            &config.jobs,
            JobParts {
                presence: self.presence.clone(),
                rotation: KeyRotationJob::new(
                    self.stack.keys.clone(),
                    self.stack.repos.tenants.clone(),
                    self.backends.lock.clone(),
                ),
                executions: self.executions.clone(),
                tenants: self.stack.repos.tenants.clone(),
                lock: self.backends.lock.clone(),
                processor: self.processor.clone(),
            },
        )
    }

    /// Every route: the API gateway (identity, `/api`, `/api/v1`, GraphQL, `/clients`,
    /// `/ws/agent`, `/ws/nats`, `/ws/nats-logs`, `/tools`; see [`crate::api`]) and `/healthz`, `/readyz`, `/metrics`; every
    /// request is counted in the metrics. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self, config: &ServerConfig) -> Result<Router> {
        let app = crate::api::router(self, config)?.merge(ops::router(
            OpsState::new(
                self.backends.readiness.clone(),
                self.metrics.clone(),
                self.stack.repos.tenants.clone(),
                self.stack.repos.machines.clone(),
            )
            .with_processor(self.processor.clone())
            .with_event_queue(self.event_queue.clone()),
        ));
        Ok(app.layer(axum::middleware::from_fn_with_state(
            self.metrics.clone(),
            crate::metrics::track,
        )))
    }
}
