//! The embedded server: security stack, enrollment, the agent gateway over the in-process bus,
//! presence and the listener, on a loopback port, with a SQLite store in a temp directory.
//!
//! The listener is the real [`AgentListener`], but instead of [`AgentListener::spawn`] this
//! module subscribes itself so it can time every [`AgentListener::handle`] call (bus receive
//! to presence write done) for the benchmark.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::bus::{AgentBus, agent_streams};
use openframe_agent::enrollment::{self, EnrollmentParts, EnrollmentService, RegistrationSecrets};
use openframe_agent::events::NoopEventSink;
use openframe_agent::executions::{ExecutionConfig, ExecutionService};
use openframe_agent::gateway;
use openframe_agent::listener::{AgentListener, BusChannel, CachedMachineTenants, SERVER_QUEUE};
use openframe_agent::presence::{PresenceConfig, PresenceService};
use openframe_agent::subjects::MachineSubjectKind;
use openframe_core::{Clock, MachineStatus, Result, Secret, SystemClock, TenantId};
use openframe_data::memory::InMemoryLock;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::{MachineFilter, MachineRepository};
use openframe_security::accounts::SignUp;
use openframe_security::crypto::MasterKey;
use openframe_security::stack::SecurityStack;

use crate::metrics::Tracker;

/// A running embedded server with one tenant.
pub(crate) struct Embedded {
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    /// The tenant's registration secret.
    pub(crate) key: Secret,
    /// What the listener handled.
    pub(crate) tracker: Arc<Tracker>,
    machines: Arc<dyn MachineRepository>,
    tenant: TenantId,
}

impl Embedded {
    /// Starts the server with its database in `dir`, signs up tenant `fleet` and creates its
    /// registration secret.
    pub(crate) async fn start(dir: &Path) -> Result<Self> {
        let listener = gateway::bind_listener(([127, 0, 0, 1], 0).into()).map_err(io)?;
        let url = format!("http://{}", listener.local_addr().map_err(io)?);
        let store = Arc::new(SqliteDocumentStore::open(dir.join("openframe.db")).await?);
        let master = MasterKey::generate()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let stack = SecurityStack::builder(store.clone(), url.parse().map_err(io)?, master.clone())
            .with_clock(clock.clone())
            .build()?;
        let secrets = RegistrationSecrets::new(store.clone(), &master, clock.clone());
        let service = EnrollmentService::new(EnrollmentParts::from_stack(
            &stack,
            store.clone(),
            secrets,
            Arc::new(NoopEventSink),
            clock.clone(),
        ));
        let bus = Arc::new(InMemoryAgentBus::new());
        bus.ensure_streams(&agent_streams()).await?;

        let machines = stack.repos.machines.clone();
        let presence = PresenceService::new(
            machines.clone(),
            stack.repos.tenants.clone(),
            Arc::new(InMemoryLock::new(clock.clone())),
            Arc::new(NoopEventSink),
            clock.clone(),
            PresenceConfig::default(),
        );
        presence.clone().spawn_sweeper();
        let executions = ExecutionService::new(
            store,
            machines.clone(),
            Arc::new(BusChannel(bus.clone())),
            clock,
            ExecutionConfig::default(),
        );
        let listener_service = AgentListener::new(
            Arc::new(CachedMachineTenants::new(service.clone())),
            presence,
            executions,
            machines.clone(),
        );
        let tracker = Arc::new(Tracker::default());
        spawn_timed_listener(listener_service, bus.clone(), tracker.clone()).await?;

        let app = stack
            .router()
            .merge(enrollment::router(service.clone()))
            .merge(gateway::router(bus, service.authenticator().clone()))
            .layer(axum::middleware::map_response(close_http));
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("embedded server stopped: {e}");
            }
        });

        let tenant = TenantId::parse("fleet")?;
        stack
            .accounts
            .sign_up(SignUp {
                tenant_id: Some(tenant.clone()),
                tenant_name: "Fleet MSP".into(),
                domain: "fleet.example".into(),
                email: "owner@fleet.example".into(),
                // A throwaway in-process server: the owner never signs in.
                password: Secret::new("Correct-Horse-42-battery"),
                first_name: "Fleet".into(),
                last_name: "Owner".into(),
            })
            .await?;
        let key = service.secrets().ensure(&tenant).await?;
        Ok(Self {
            url,
            key,
            tracker,
            machines,
            tenant,
        })
    }

    /// How many of the tenant's machines the store says are ONLINE.
    pub(crate) async fn online_in_store(&self) -> Result<u64> {
        let online = MachineFilter {
            statuses: vec![MachineStatus::Online],
            ..Default::default()
        };
        self.machines.count(&self.tenant, &online).await
    }
}

/// Asks the agent to close its HTTP connection after each answer (WebSocket upgrades aside).
/// An agent speaks HTTP only to register and to renew its token; without this, its idle
/// keep-alive connection would hold a file descriptor on both ends for another 90 s, which
/// halves how many agents fit under the open-file limit.
async fn close_http(mut response: Response) -> Response {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// What [`AgentListener::spawn`] does, plus timing: one task per subject kind (in the server
/// queue group), each handling its messages in order.
async fn spawn_timed_listener(
    listener: AgentListener,
    bus: Arc<InMemoryAgentBus>,
    tracker: Arc<Tracker>,
) -> Result<()> {
    let kinds = [
        MachineSubjectKind::Heartbeat,
        MachineSubjectKind::Hostname,
        MachineSubjectKind::CommandExecutionResult,
        MachineSubjectKind::ScriptExecutionResult,
    ];
    for kind in kinds {
        let mut subscription = bus.queue_subscribe(&kind.pattern(), SERVER_QUEUE).await?;
        let (listener, tracker) = (listener.clone(), tracker.clone());
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let received = Instant::now();
                let outcome = listener.handle(&message).await;
                tracker.record(&message.subject, kind, received, outcome.is_ok());
                if let Err(e) = outcome {
                    tracing::warn!(subject = %message.subject, error = %e, "agent message failed");
                }
            }
        });
    }
    Ok(())
}

fn io(e: impl std::fmt::Display) -> openframe_core::Error {
    openframe_core::Error::Internal(e.to_string().into())
}
