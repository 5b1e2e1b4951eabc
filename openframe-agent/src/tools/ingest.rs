//! The agents' reports: tool connections and installed agents, from the durable streams.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use openframe_core::{
    Clock, ConnectionStatus, Error, MachineId, MachineStatus, Result, TenantId, ToolConnection,
    ToolType,
};
use openframe_data::store::{DocumentStore, Filter, Partition, Value};
use openframe_data::{DocumentRepository, MachineRepository, ToolConnectionRepository};

use super::messages::{InstalledAgentReport, ToolConnectionReport};
use super::model::{InstalledAgent, key};
use crate::bus::{AgentBus, ConsumerSpec, Delivery, stream_names};
use crate::listener::MachineTenants;
use crate::subjects::{MachineSubject, MachineSubjectKind};

/// The original server's durable name for tool connection reports.
pub const TOOL_CONNECTION_CONSUMER: &str = "tool-connection-processor-v2";
/// The original server's durable name for installed agent reports.
pub const INSTALLED_AGENT_CONSUMER: &str = "installed-agent-processor-v1";

/// How many times an upsert is retried when a concurrent writer wins.
const UPSERT_ATTEMPTS: u32 = 8;

/// The consumer of `machine.*.tool-connection` (stream `TOOL_CONNECTIONS`): explicit ack,
/// deliver all, `ack_wait` 30 s, `max_deliver` 50, as the original server.
pub fn tool_connection_consumer() -> ConsumerSpec {
    ConsumerSpec::new(stream_names::TOOL_CONNECTIONS, TOOL_CONNECTION_CONSUMER)
        .with_filter(MachineSubjectKind::ToolConnection.pattern())
}

/// The consumer of `machine.*.installed-agent` (stream `INSTALLED_AGENTS`), settings as
/// [`tool_connection_consumer`].
pub fn installed_agent_consumer() -> ConsumerSpec {
    ConsumerSpec::new(stream_names::INSTALLED_AGENTS, INSTALLED_AGENT_CONSUMER)
        .with_filter(MachineSubjectKind::InstalledAgent.pattern())
}

/// Maps the id a tool's agent reports to the id the tool itself uses for that agent. The
/// original does this for Fleet: the agent reports the host UUID and the server asks Fleet's
/// API for its numeric host id (`FleetMdmClient.searchHosts`); a Fleet client plugs in here.
#[async_trait]
pub trait AgentToolIdResolver: Send + Sync + Debug + 'static {
    /// The tool's id for the reported `raw` id. `Ok(None)`: the tool does not know the agent
    /// yet (Fleet's enrollment lags the agent's report): the report is retried, and on its
    /// last delivery the raw id is stored, as the original does.
    async fn resolve(&self, tenant: &TenantId, raw: &str) -> Result<Option<String>>;
}

/// Settings of [`ToolReportIngestor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// The MeshCentral domain of node ids: `None` stores `node//<raw>` (the original's legacy
    /// empty domain), `Some(d)` stores `node/<d>/<raw>`.
    pub meshcentral_domain: Option<String>,
    /// How long a report that failed transiently waits before redelivery (default 5 s).
    pub retry_delay: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            meshcentral_domain: None,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// What a report changed.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome<T> {
    /// A new record.
    Created(T),
    /// An existing record changed (id, version or reconnect).
    Updated(T),
    /// Nothing to change (a redelivery).
    Unchanged(T),
    /// The machine is unknown to the tenant, DELETED or ARCHIVED: nothing stored.
    Ignored,
}

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Acknowledged after processing.
    Processed,
    /// Acknowledged without processing (malformed, unknown machine, wrong subject).
    Dropped,
    /// Negatively acknowledged for redelivery (transient failure).
    Retried,
}

/// Stores what agents report about their tools: tool connections (unique per machine and tool
/// type, the tool's id transformed as the original does) and installed agents (one per
/// machine and agent type). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToolReportIngestor {
    connections: Arc<dyn ToolConnectionRepository>,
    installed: DocumentRepository<InstalledAgent>,
    machines: Arc<dyn MachineRepository>,
    clock: Arc<dyn Clock>,
    config: IngestConfig,
    resolvers: HashMap<ToolType, Arc<dyn AgentToolIdResolver>>,
}

impl ToolReportIngestor {
    /// An ingestor storing installed agents in `store`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        connections: Arc<dyn ToolConnectionRepository>,
        machines: Arc<dyn MachineRepository>,
        clock: Arc<dyn Clock>,
        config: IngestConfig,
    ) -> Result<Self> {
        if let Some(domain) = &config.meshcentral_domain {
            key("meshcentralDomain", domain)?;
        }
        Ok(Self {
            connections,
            installed: DocumentRepository::new(store, clock.clone()),
            machines,
            clock,
            config,
            resolvers: HashMap::new(),
        })
    }

    /// Resolves the ids reported by `tool_type`'s agents with `resolver` (see
    /// [`AgentToolIdResolver`]).
    pub fn with_resolver(
        mut self,
        tool_type: ToolType,
        resolver: Arc<dyn AgentToolIdResolver>,
    ) -> Self {
        self.resolvers.insert(tool_type, resolver);
        self
    }

    /// The id to store: the resolver's answer; the raw id on the last attempt when it has
    /// none (or fails); otherwise `Unavailable`, so the report is retried.
    async fn resolved_id(
        &self,
        tenant: &TenantId,
        tool_type: ToolType,
        raw: String,
        last_attempt: bool,
    ) -> Result<String> {
        let Some(resolver) = self.resolvers.get(&tool_type) else {
            return Ok(raw);
        };
        let reason = match resolver.resolve(tenant, &raw).await {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => Error::Unavailable {
                reason: "the tool does not know this agent yet".into(),
            },
            Err(e) => e,
        };
        if last_attempt {
            tracing::warn!(tenant = %tenant, tool = %tool_type, error = %reason, "agent tool id unresolved on the last attempt; storing the reported id");
            return Ok(raw);
        }
        Err(reason)
    }

    /// The id stored for a tool's raw agent id: MeshCentral's `node/<domain>/<raw>` (the
    /// domain empty unless configured; a raw id that already is a node id is kept), others
    /// unchanged.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use openframe_agent::tools::{IngestConfig, ToolReportIngestor};
    /// # use openframe_core::{SystemClock, ToolType};
    /// # use openframe_data::{Repositories, memory::InMemoryDocumentStore};
    /// # let store = Arc::new(InMemoryDocumentStore::new());
    /// # let repos = Repositories::new(store.clone());
    /// # let ingestor = ToolReportIngestor::new(store, repos.tool_connections, repos.machines, Arc::new(SystemClock), IngestConfig::default()).unwrap();
    /// assert_eq!(ingestor.transform_agent_tool_id(ToolType::MeshCentral, "abc"), "node//abc");
    /// assert_eq!(ingestor.transform_agent_tool_id(ToolType::FleetMdm, "abc"), "abc");
    /// ```
    pub fn transform_agent_tool_id(&self, tool_type: ToolType, raw: &str) -> String {
        match tool_type {
            ToolType::MeshCentral if !raw.starts_with("node/") => format!(
                "node/{}/{raw}",
                self.config.meshcentral_domain.as_deref().unwrap_or("")
            ),
            _ => raw.to_owned(),
        }
    }

    /// Whether `machine` is an active machine of `tenant`.
    async fn machine_is_active(&self, tenant: &TenantId, machine: &MachineId) -> Result<bool> {
        Ok(self
            .machines
            .get(tenant, machine)
            .await?
            .is_some_and(|m| !matches!(m.status, MachineStatus::Deleted | MachineStatus::Archived)))
    }

    /// Upserts the tool connection `payload` (`{toolType, agentToolId}`) reports for
    /// `machine`: new → CONNECTED; DISCONNECTED or ERROR → reconnected with the reported id;
    /// CONNECTED with another id → id updated. A redelivery changes nothing. `InvalidInput`
    /// for a malformed payload; `Unavailable` while an [`AgentToolIdResolver`] cannot
    /// resolve the id yet (see [`handle_tool_connection_attempt`](Self::handle_tool_connection_attempt)).
    pub async fn handle_tool_connection(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        payload: &[u8],
    ) -> Result<ReportOutcome<ToolConnection>> {
        self.handle_tool_connection_attempt(tenant, machine, payload, false)
            .await
    }

    /// [`handle_tool_connection`](Self::handle_tool_connection) for a delivery that is
    /// (`last_attempt`) or is not the last one: on the last, an unresolved id is stored raw.
    pub async fn handle_tool_connection_attempt(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        payload: &[u8],
        last_attempt: bool,
    ) -> Result<ReportOutcome<ToolConnection>> {
        let report = ToolConnectionReport::parse(payload)?;
        let agent_tool_id = self.transform_agent_tool_id(report.tool_type, &report.agent_tool_id);
        openframe_core::validate::name("agentToolId", &agent_tool_id)?;
        if !self.machine_is_active(tenant, machine).await? {
            return Ok(ReportOutcome::Ignored);
        }
        let agent_tool_id = self
            .resolved_id(tenant, report.tool_type, agent_tool_id, last_attempt)
            .await?;
        openframe_core::validate::name("agentToolId", &agent_tool_id)?;
        for _ in 0..UPSERT_ATTEMPTS {
            let now = self.clock.now();
            let existing = self
                .connections
                .find_by_machine(tenant, machine)
                .await?
                .into_iter()
                .find(|c| c.tool_type == report.tool_type);
            let result = match existing {
                None => {
                    let mut connection =
                        ToolConnection::new(machine.clone(), report.tool_type, &agent_tool_id, now);
                    connection.last_sync_at = Some(now);
                    self.connections
                        .insert(tenant, connection)
                        .await
                        .map(ReportOutcome::Created)
                }
                Some(current)
                    if current.status == ConnectionStatus::Connected
                        && current.agent_tool_id == agent_tool_id =>
                {
                    return Ok(ReportOutcome::Unchanged(current));
                }
                Some(mut current) => {
                    if current.status != ConnectionStatus::Connected {
                        current.status = ConnectionStatus::Connected;
                        current.connected_at = Some(now);
                        current.disconnected_at = None;
                    }
                    current.agent_tool_id = agent_tool_id.clone();
                    current.last_sync_at = Some(now);
                    self.connections
                        .update(tenant, current)
                        .await
                        .map(ReportOutcome::Updated)
                }
            };
            match result {
                Err(Error::Conflict { .. } | Error::AlreadyExists { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::conflict(
            "the tool connection is being changed concurrently",
        ))
    }

    /// Upserts the installed agent `payload` (`{agentType, version}`) reports for `machine`
    /// (status CONNECTED). A redelivery changes nothing. `InvalidInput` for a malformed
    /// payload.
    pub async fn handle_installed_agent(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        payload: &[u8],
    ) -> Result<ReportOutcome<InstalledAgent>> {
        let report = InstalledAgentReport::parse(payload)?;
        if !self.machine_is_active(tenant, machine).await? {
            return Ok(ReportOutcome::Ignored);
        }
        let p = Partition::tenant(tenant);
        let id = InstalledAgent::record_id(machine, &report.agent_type);
        for _ in 0..UPSERT_ATTEMPTS {
            if self.installed.get(&p, &id).await?.is_none() {
                let now = self.clock.now();
                let record = InstalledAgent {
                    id: id.clone(),
                    machine_id: machine.clone(),
                    agent_type: report.agent_type.clone(),
                    version: report.version.clone(),
                    status: ConnectionStatus::Connected,
                    created_at: now,
                    updated_at: now,
                    revision: 0,
                };
                match self.installed.insert(&p, record).await {
                    Ok(stored) => return Ok(ReportOutcome::Created(stored)),
                    Err(Error::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            let modified = self
                .installed
                .modify(&p, &id, |current, _| {
                    if current.version == report.version
                        && current.status == ConnectionStatus::Connected
                    {
                        return Ok(false);
                    }
                    current.version = report.version.clone();
                    current.status = ConnectionStatus::Connected;
                    Ok(true)
                })
                .await;
            return match modified {
                Ok(m) if m.applied => Ok(ReportOutcome::Updated(m.after)),
                Ok(m) => Ok(ReportOutcome::Unchanged(m.after)),
                Err(Error::NotFound { .. }) => continue,
                Err(e) => Err(e),
            };
        }
        Err(Error::conflict(
            "the installed agent is being changed concurrently",
        ))
    }

    /// The agents installed on `machine`, by agent type.
    pub async fn installed_agents(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
    ) -> Result<Vec<InstalledAgent>> {
        let filter = Filter::Eq("machine_id", Value::str(machine.as_str()));
        self.installed
            .find_all(&Partition::tenant(tenant), filter, 1000)
            .await
    }

    /// Processes one delivery of either stream and settles it: acked when processed, when
    /// malformed (logged without the payload), when the machine is unknown or when the subject
    /// is not a report; nak'ed (after `retry_delay`) when storage or tenant lookup fails
    /// transiently.
    pub async fn process(&self, tenants: &dyn MachineTenants, delivery: Delivery) -> Settlement {
        let settlement = self.decide(tenants, &delivery).await;
        let settled = match settlement {
            Settlement::Retried => delivery.nak(Some(self.config.retry_delay)).await,
            Settlement::Processed | Settlement::Dropped => delivery.ack().await,
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "settling a tool report failed");
        }
        settlement
    }

    async fn decide(&self, tenants: &dyn MachineTenants, delivery: &Delivery) -> Settlement {
        let message = &delivery.message;
        let Ok(subject) = MachineSubject::parse(&message.subject) else {
            tracing::warn!(subject = %message.subject, "report on an unexpected subject dropped");
            return Settlement::Dropped;
        };
        let machine = &subject.machine_id;
        let tenant = match tenants.tenant_of(machine).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                tracing::debug!(machine = %machine, "report from an unknown machine dropped");
                return Settlement::Dropped;
            }
            Err(e) => return self.failed(delivery, machine, &e),
        };
        let result = match subject.kind {
            MachineSubjectKind::ToolConnection => self
                .handle_tool_connection_attempt(
                    &tenant,
                    machine,
                    &message.payload,
                    delivery.is_last_attempt(),
                )
                .await
                .map(|_| ()),
            MachineSubjectKind::InstalledAgent => self
                .handle_installed_agent(&tenant, machine, &message.payload)
                .await
                .map(|_| ()),
            _ => {
                tracing::warn!(subject = %message.subject, "report on an unexpected subject dropped");
                return Settlement::Dropped;
            }
        };
        match result {
            Ok(()) => Settlement::Processed,
            Err(e) => self.failed(delivery, machine, &e),
        }
    }

    fn failed(&self, delivery: &Delivery, machine: &MachineId, error: &Error) -> Settlement {
        if error.is_retryable() {
            if delivery.is_last_attempt() {
                tracing::error!(machine = %machine, subject = %delivery.message.subject, error = %error, "tool report failed on its last delivery");
            } else {
                tracing::warn!(machine = %machine, subject = %delivery.message.subject, error = %error, "tool report failed; will retry");
            }
            Settlement::Retried
        } else {
            tracing::warn!(machine = %machine, subject = %delivery.message.subject, bytes = delivery.message.payload.len(), error = %error, "tool report dropped");
            Settlement::Dropped
        }
    }

    /// Binds [`tool_connection_consumer`] and [`installed_agent_consumer`] on `bus` and
    /// processes their deliveries until both bindings end (their consumers or streams are
    /// deleted); cancel by dropping the future (e.g. aborting its task): an unsettled delivery
    /// is redelivered after `ack_wait`. Binding errors are returned (the streams come from
    /// [`agent_streams`](crate::bus::agent_streams)).
    pub async fn run(
        &self,
        bus: Arc<dyn AgentBus>,
        tenants: Arc<dyn MachineTenants>,
    ) -> Result<()> {
        let connections = bus.durable_consumer(&tool_connection_consumer()).await?;
        let installed = bus.durable_consumer(&installed_agent_consumer()).await?;
        let mut deliveries = futures::stream::select(connections, installed);
        while let Some(next) = deliveries.next().await {
            match next {
                Ok(delivery) => {
                    self.process(tenants.as_ref(), delivery).await;
                }
                Err(e) => tracing::warn!(error = %e, "tool report consumer failed; continuing"),
            }
        }
        Ok(())
    }
}
