//! Tool agent definitions, installation publishing and update rollout.

use std::collections::HashSet;
use std::sync::Arc;

use openframe_core::{
    Clock, Error, Machine, MachineId, MachineStatus, PageRequest, Result, SortDirection, SortSpec,
    TenantId, TenantStatus,
};
use openframe_data::TenantRepository;
use openframe_data::store::{CmpOp, DocumentStore, Filter, Partition, Value};
use openframe_data::{DocumentRepository, MachineFilter, MachineRepository, MachineSort};

use super::messages::{
    ClientUpdateMessage, ToolInstallationMessage, ToolUpdateMessage, resolve_all,
};
use super::model::{
    ClientRelease, DownloadConfiguration, IntegratedToolAgent, PublishState, check_https, key,
};
use super::templating::{self, ToolSecretSource};
use crate::bus::{AgentBus, Headers, PublishAck};
use crate::subjects::{AgentSubject, MachineSubjectKind};

/// Most tool agents one tenant may define.
pub const MAX_TOOL_AGENTS: usize = 1000;

/// Machines (or tenants) fetched per page when paging through all of them.
const PAGE: i64 = 100;

/// Most ids one `get_many` call takes.
const GET_MANY_LIMIT: usize = 1000;

/// Settings of [`ToolInstallationService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInstallationConfig {
    /// Substituted for `{assetsBaseUrl}` in links: an `https://` URL, trailing `/` removed.
    pub assets_base_url: String,
    /// Failed update broadcasts are retried by [`ToolInstallationService::republish_pending`]
    /// while their attempts stay below this (default 5).
    pub max_publish_attempts: u32,
    /// Most machine ids in one on-demand install (default 1000).
    pub max_machine_ids: usize,
}

impl ToolInstallationConfig {
    /// The defaults with `assets_base_url`; `InvalidInput` unless it is an https URL.
    ///
    /// ```
    /// use openframe_agent::tools::ToolInstallationConfig;
    /// let c = ToolInstallationConfig::new("https://assets.example/").unwrap();
    /// assert_eq!(c.assets_base_url, "https://assets.example");
    /// assert!(ToolInstallationConfig::new("http://assets.example").is_err());
    /// ```
    pub fn new(assets_base_url: impl Into<String>) -> Result<Self> {
        let url = assets_base_url.into().trim_end_matches('/').to_owned();
        check_https("assetsBaseUrl", &url)?;
        if url.contains(['{', '}']) || url.chars().any(|c| c.is_whitespace()) {
            return Err(Error::invalid("assetsBaseUrl", "must be a plain URL"));
        }
        Ok(Self {
            assets_base_url: url,
            max_publish_attempts: 5,
            max_machine_ids: 1000,
        })
    }

    /// Reads `OPENFRAME_ASSETS_BASE_URL`.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("OPENFRAME_ASSETS_BASE_URL")
            .map_err(|_| Error::invalid("assetsBaseUrl", "OPENFRAME_ASSETS_BASE_URL is not set"))?;
        Self::new(url)
    }

    /// Sets `max_publish_attempts`.
    pub fn with_max_publish_attempts(mut self, attempts: u32) -> Self {
        self.max_publish_attempts = attempts;
        self
    }
}

/// Stores tool agent definitions per tenant (collection `integrated_tool_agents`, the key is
/// unique and is the document id). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToolAgentRepository {
    repo: DocumentRepository<IntegratedToolAgent>,
}

impl ToolAgentRepository {
    /// A repository over `store`.
    pub fn new(store: Arc<dyn DocumentStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repo: DocumentRepository::new(store, clock),
        }
    }

    /// Inserts (revision 0) or updates (revision current) `agent` after validating it;
    /// `AlreadyExists` for a new agent whose key is taken, `Conflict` for a stale revision.
    pub async fn save(
        &self,
        tenant: &TenantId,
        agent: IntegratedToolAgent,
    ) -> Result<IntegratedToolAgent> {
        agent.validate()?;
        let p = Partition::tenant(tenant);
        if agent.revision == 0 {
            if self.repo.count(&p, &Filter::All).await? >= MAX_TOOL_AGENTS as u64 {
                return Err(Error::invalid("toolAgents", "at most 1000 per tenant"));
            }
            self.repo.insert(&p, agent).await
        } else {
            self.repo.update(&p, agent).await
        }
    }

    /// The tool agent with `key`.
    pub async fn get(&self, tenant: &TenantId, key_: &str) -> Result<Option<IntegratedToolAgent>> {
        key("toolAgentKey", key_)?;
        self.repo.get(&Partition::tenant(tenant), key_).await
    }

    /// Every tool agent of the tenant, by key.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<IntegratedToolAgent>> {
        self.find(tenant, Filter::All).await
    }

    /// The enabled tool agents, by key.
    pub async fn list_enabled(&self, tenant: &TenantId) -> Result<Vec<IntegratedToolAgent>> {
        self.find(tenant, Filter::Eq("enabled", Value::Bool(true)))
            .await
    }

    /// Deletes a tool agent; `NotFound` if absent.
    pub async fn delete(&self, tenant: &TenantId, key_: &str) -> Result<()> {
        key("toolAgentKey", key_)?;
        self.repo
            .delete_hard(&Partition::tenant(tenant), key_)
            .await
    }

    async fn find(&self, tenant: &TenantId, filter: Filter) -> Result<Vec<IntegratedToolAgent>> {
        self.repo
            .find_all(&Partition::tenant(tenant), filter, MAX_TOOL_AGENTS)
            .await
    }

    /// Records the outcome of broadcasting `version` of `key`: success marks it published
    /// (if the version is still current), failure marks it unpublished with one more attempt.
    async fn mark(&self, tenant: &TenantId, key_: &str, version: &str, ok: bool) -> Result<()> {
        let result = self
            .repo
            .modify(&Partition::tenant(tenant), key_, |agent, _| {
                if agent.version != version {
                    return Ok(false);
                }
                agent.publish_state = next_state(agent.publish_state, ok);
                Ok(true)
            })
            .await;
        match result {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Which machines an on-demand install targets (always within one tenant).
#[derive(Debug, Clone, PartialEq)]
pub enum InstallTarget {
    /// These machines (at most [`ToolInstallationConfig::max_machine_ids`]); unknown ids are
    /// reported as skipped.
    Machines(Vec<MachineId>),
    /// Every machine matching the filter (paged through).
    Filter(MachineFilter),
    /// Every machine of the tenant.
    All,
}

/// Why a machine got nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a machine of this tenant.
    NotFound,
    /// DELETED or ARCHIVED.
    Inactive(MachineStatus),
}

/// A machine that got nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMachine {
    /// The machine.
    pub machine_id: MachineId,
    /// Why.
    pub reason: SkipReason,
}

/// An install message stored in the `TOOL_INSTALLATION` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedInstall {
    /// The machine.
    pub machine_id: MachineId,
    /// The subject, `machine.{id}.tool-installation`.
    pub subject: String,
    /// Where it was stored.
    pub ack: PublishAck,
    /// The message, with server-side placeholders (`${server.registrationSecret}`) kept:
    /// the published payload has them resolved, this copy holds no secret.
    pub message: ToolInstallationMessage,
}

/// An install message the bus refused.
#[derive(Debug)]
pub struct FailedInstall {
    /// The machine.
    pub machine_id: MachineId,
    /// The tool agent.
    pub tool_agent_key: String,
    /// The bus error.
    pub error: Error,
}

/// What an install call did, per machine and tool agent.
#[derive(Debug, Default)]
pub struct InstallReport {
    /// Stored in the stream.
    pub published: Vec<PublishedInstall>,
    /// Machines that got nothing.
    pub skipped: Vec<SkippedMachine>,
    /// Refused by the bus (retry the call for these).
    pub failed: Vec<FailedInstall>,
}

impl InstallReport {
    /// Whether every publish succeeded.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What [`ToolInstallationService::republish_pending`] did.
#[derive(Debug, Default)]
pub struct RepublishReport {
    /// Tool updates broadcast: (tenant, tool agent key).
    pub republished: Vec<(TenantId, String)>,
    /// Tool updates that failed again.
    pub failed: Vec<(TenantId, String, Error)>,
    /// The client update, if one was pending: `Ok` if broadcast now.
    pub client_update: Option<Result<PublishAck>>,
}

/// Publishes tool installations and update rollouts over the agent bus, wire-compatible with
/// the original agent. Cheap to clone.
///
/// - install: [`install_on_registration`](Self::install_on_registration) (every enabled tool
///   agent) and [`install`](Self::install) (one tool agent, to machines, a filter or all) publish
///   durably on `machine.{id}.tool-installation` (stream `TOOL_INSTALLATION`); each failure is
///   reported per machine;
/// - rollout: [`publish_client_update`](Self::publish_client_update) on
///   `machine.all.client-update` and [`publish_tool_update`](Self::publish_tool_update) on
///   `machine.all.tool.{key}.update`, with a publish state per definition so
///   [`republish_pending`](Self::republish_pending) (a scheduled job) retries failed
///   broadcasts up to `max_publish_attempts` times.
#[derive(Debug, Clone)]
pub struct ToolInstallationService {
    bus: Arc<dyn AgentBus>,
    agents: ToolAgentRepository,
    releases: DocumentRepository<ClientRelease>,
    machines: Arc<dyn MachineRepository>,
    tenants: Arc<dyn TenantRepository>,
    config: ToolInstallationConfig,
    secrets: Option<Arc<dyn ToolSecretSource>>,
}

impl ToolInstallationService {
    /// A service storing definitions in `store`, reading machines and tenants from the
    /// repositories, publishing on `bus`.
    pub fn new(
        bus: Arc<dyn AgentBus>,
        store: Arc<dyn DocumentStore>,
        machines: Arc<dyn MachineRepository>,
        tenants: Arc<dyn TenantRepository>,
        clock: Arc<dyn Clock>,
        config: ToolInstallationConfig,
    ) -> Self {
        Self {
            bus,
            agents: ToolAgentRepository::new(store.clone(), clock.clone()),
            releases: DocumentRepository::new(store, clock),
            machines,
            tenants,
            config,
            secrets: None,
        }
    }

    /// Resolves `${server.registrationSecret}` in command arguments from `secrets`; without a
    /// source, a definition that needs it is refused.
    pub fn with_secrets(mut self, secrets: Arc<dyn ToolSecretSource>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The tool agent definitions.
    pub fn agents(&self) -> &ToolAgentRepository {
        &self.agents
    }

    /// The settings.
    pub fn config(&self) -> &ToolInstallationConfig {
        &self.config
    }

    /// The install message for `agent` (links resolved; server-side placeholders kept, they
    /// are resolved per tenant when the message is published).
    pub fn installation_message(
        &self,
        agent: &IntegratedToolAgent,
        reinstall: bool,
    ) -> ToolInstallationMessage {
        ToolInstallationMessage::build(agent, &self.config.assets_base_url, reinstall)
    }

    /// Installs every enabled tool agent on a machine that just registered (or reinstalled).
    /// `NotFound` if the machine is not the tenant's; a DELETED or ARCHIVED machine is skipped.
    pub async fn install_on_registration(
        &self,
        tenant: &TenantId,
        machine_id: &MachineId,
    ) -> Result<InstallReport> {
        let machine = self
            .machines
            .get(tenant, machine_id)
            .await?
            .ok_or_else(|| Error::not_found("machine"))?;
        let agents = self.agents.list_enabled(tenant).await?;
        let mut report = InstallReport::default();
        let mut prepared = Vec::with_capacity(agents.len());
        for agent in &agents {
            match self.prepare(tenant, agent, false).await {
                Ok(p) => prepared.push(p),
                Err(error) => {
                    tracing::warn!(tenant = %tenant, tool_agent = %agent.key, error = %error, "tool installation not prepared");
                    report.failed.push(FailedInstall {
                        machine_id: machine.id.clone(),
                        tool_agent_key: agent.key.clone(),
                        error,
                    });
                }
            }
        }
        self.install_to(&machine, &prepared, &mut report).await;
        Ok(report)
    }

    /// Installs (or, with `reinstall`, reinstalls) the enabled tool agent `tool_agent_key` on
    /// `target`'s machines of this tenant. DELETED and ARCHIVED machines and ids that are not
    /// the tenant's are skipped; each bus failure is reported in [`InstallReport::failed`].
    /// `NotFound` for an unknown key, `Conflict` for a disabled agent.
    pub async fn install(
        &self,
        tenant: &TenantId,
        target: InstallTarget,
        tool_agent_key: &str,
        reinstall: bool,
    ) -> Result<InstallReport> {
        let agent = self
            .agents
            .get(tenant, tool_agent_key)
            .await?
            .ok_or_else(|| Error::not_found("tool agent"))?;
        if !agent.enabled {
            return Err(Error::conflict("the tool agent is disabled"));
        }
        let prepared = [self.prepare(tenant, &agent, reinstall).await?];
        let mut report = InstallReport::default();
        match target {
            InstallTarget::Machines(ids) => {
                let mut seen = HashSet::new();
                let ids: Vec<MachineId> = ids
                    .into_iter()
                    .filter(|id| seen.insert(id.clone()))
                    .collect();
                if ids.is_empty() || ids.len() > self.config.max_machine_ids {
                    return Err(Error::invalid(
                        "machineIds",
                        format!("must name 1 to {} machines", self.config.max_machine_ids),
                    ));
                }
                let mut found = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(GET_MANY_LIMIT) {
                    found.extend(self.machines.get_many(tenant, chunk).await?);
                }
                for id in &ids {
                    match found.iter().find(|m| &m.id == id) {
                        Some(machine) => self.install_to(machine, &prepared, &mut report).await,
                        None => report.skipped.push(SkippedMachine {
                            machine_id: id.clone(),
                            reason: SkipReason::NotFound,
                        }),
                    }
                }
            }
            InstallTarget::Filter(filter) => {
                self.install_matching(tenant, &filter, &prepared, &mut report)
                    .await?;
            }
            InstallTarget::All => {
                self.install_matching(tenant, &MachineFilter::default(), &prepared, &mut report)
                    .await?;
            }
        }
        Ok(report)
    }

    async fn install_matching(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        prepared: &[Prepared],
        report: &mut InstallReport,
    ) -> Result<()> {
        let sort = SortSpec::new(MachineSort::Id, SortDirection::Asc);
        let mut request = PageRequest::first(PAGE);
        loop {
            let page = self.machines.list(tenant, filter, sort, &request).await?;
            for machine in page.nodes() {
                self.install_to(machine, prepared, report).await;
            }
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => request = PageRequest::first(PAGE).after(cursor),
                _ => return Ok(()),
            }
        }
    }

    /// The message for `agent` with the tenant's server-side placeholders resolved.
    async fn prepare(
        &self,
        tenant: &TenantId,
        agent: &IntegratedToolAgent,
        reinstall: bool,
    ) -> Result<Prepared> {
        let message = self.installation_message(agent, reinstall);
        let resolved =
            templating::resolve(self.secrets.as_deref(), tenant, agent, &message).await?;
        let payload = serde_json::to_vec(&resolved)
            .map_err(|e| Error::Internal(format!("encoding an install message: {e}").into()))?;
        Ok(Prepared { message, payload })
    }

    async fn install_to(
        &self,
        machine: &Machine,
        prepared: &[Prepared],
        report: &mut InstallReport,
    ) {
        if matches!(
            machine.status,
            MachineStatus::Deleted | MachineStatus::Archived
        ) {
            report.skipped.push(SkippedMachine {
                machine_id: machine.id.clone(),
                reason: SkipReason::Inactive(machine.status),
            });
            return;
        }
        for p in prepared {
            let published = async {
                let subject = MachineSubjectKind::ToolInstallation.subject_for(&machine.id)?;
                let ack = self
                    .bus
                    .publish_durable(&subject, p.payload.clone(), Headers::new())
                    .await?;
                Ok::<_, Error>((subject, ack))
            }
            .await;
            match published {
                Ok((subject, ack)) => report.published.push(PublishedInstall {
                    machine_id: machine.id.clone(),
                    subject,
                    ack,
                    message: p.message.clone(),
                }),
                Err(error) => {
                    tracing::warn!(machine = %machine.id, tool_agent = %p.message.tool_agent_id, error = %error, "tool installation publish failed");
                    report.failed.push(FailedInstall {
                        machine_id: machine.id.clone(),
                        tool_agent_key: p.message.tool_agent_id.clone(),
                        error,
                    });
                }
            }
        }
    }

    /// Broadcasts the OpenFrame client `version` on `machine.all.client-update`. The release
    /// is stored first (platform-wide) with its publish state, so a failed broadcast is
    /// retried by [`republish_pending`](Self::republish_pending); the error is returned too.
    pub async fn publish_client_update(
        &self,
        version: &str,
        download_configurations: Vec<DownloadConfiguration>,
    ) -> Result<PublishAck> {
        let p = Partition::platform();
        let now = self.agents.repo.clock().now();
        let release = ClientRelease {
            id: ClientRelease::ID.to_owned(),
            version: version.to_owned(),
            download_configurations,
            publish_state: PublishState::pending(),
            created_at: now,
            updated_at: now,
            revision: 0,
        };
        release.validate()?;
        let stored = match self.releases.get(&p, ClientRelease::ID).await? {
            None => match self.releases.insert(&p, release.clone()).await {
                Err(Error::AlreadyExists { .. }) => self.replace_release(release).await?,
                other => other?,
            },
            Some(_) => self.replace_release(release).await?,
        };
        self.broadcast_client(&stored).await
    }

    async fn replace_release(&self, release: ClientRelease) -> Result<ClientRelease> {
        let modified = self
            .releases
            .modify(&Partition::platform(), ClientRelease::ID, |current, _| {
                current.version = release.version.clone();
                current.download_configurations = release.download_configurations.clone();
                current.publish_state = PublishState::pending();
                Ok(true)
            })
            .await?;
        Ok(modified.after)
    }

    async fn broadcast_client(&self, release: &ClientRelease) -> Result<PublishAck> {
        let message = ClientUpdateMessage {
            version: release.version.clone(),
            download_configurations: resolve_all(
                &release.download_configurations,
                &release.version,
                &self.config.assets_base_url,
            ),
        };
        let result = self
            .publish_json(crate::subjects::CLIENT_UPDATE, &message)
            .await;
        let ok = result.is_ok();
        let version = release.version.clone();
        let marked = self
            .releases
            .modify(&Partition::platform(), ClientRelease::ID, |current, _| {
                if current.version != version {
                    return Ok(false);
                }
                current.publish_state = next_state(current.publish_state, ok);
                Ok(true)
            })
            .await;
        if let Err(e) = marked {
            tracing::warn!(error = %e, "recording the client update publish state failed");
        }
        if let Err(e) = &result {
            tracing::warn!(version = %release.version, error = %e, "client update publish failed");
        }
        result
    }

    /// Broadcasts tool agent `tool_agent_key` of `tenant` on `machine.all.tool.{key}.update`
    /// and records the outcome in its publish state (a failure counts one attempt and is
    /// retried by [`republish_pending`](Self::republish_pending); the error is returned too).
    pub async fn publish_tool_update(
        &self,
        tenant: &TenantId,
        tool_agent_key: &str,
    ) -> Result<PublishAck> {
        let agent = self
            .agents
            .get(tenant, tool_agent_key)
            .await?
            .ok_or_else(|| Error::not_found("tool agent"))?;
        let subject = AgentSubject::tool_update(agent.key.clone())?.to_string();
        let message = ToolUpdateMessage::build(&agent, &self.config.assets_base_url);
        let result = self.publish_json(&subject, &message).await;
        if let Err(e) = &result {
            tracing::warn!(tenant = %tenant, tool_agent = %agent.key, error = %e, "tool update publish failed");
        }
        if let Err(e) = self
            .agents
            .mark(tenant, &agent.key, &agent.version, result.is_ok())
            .await
        {
            tracing::warn!(tenant = %tenant, tool_agent = %agent.key, error = %e, "recording the tool update publish state failed");
        }
        result
    }

    /// Moves every tool agent of `tenant` that follows the release version
    /// (`release_version`) to `version` and marks it for broadcast (the next
    /// [`republish_pending`](Self::republish_pending) publishes it). Idempotent: agents already
    /// at `version` are left alone. Returns the agents changed.
    pub async fn apply_release_version(
        &self,
        tenant: &TenantId,
        version: &str,
    ) -> Result<Vec<IntegratedToolAgent>> {
        openframe_core::validate::name("version", version)?;
        let p = Partition::tenant(tenant);
        let following = self
            .agents
            .find(tenant, Filter::Eq("release_version", Value::Bool(true)))
            .await?;
        let mut changed = Vec::new();
        for agent in following {
            let modified = self
                .agents
                .repo
                .modify(&p, &agent.key, |a, _| {
                    if a.version == version || !a.release_version {
                        return Ok(false);
                    }
                    a.version = version.to_owned();
                    a.publish_state = PublishState::pending();
                    Ok(true)
                })
                .await?;
            if modified.applied {
                changed.push(modified.after);
            }
        }
        Ok(changed)
    }

    /// Retries every broadcast not yet published with fewer than `max_publish_attempts`
    /// failed attempts: the client release and each tenant's tool agents (tenants paged
    /// through, DELETED ones skipped). For a scheduled job (the original ran every 30 s).
    pub async fn republish_pending(&self) -> Result<RepublishReport> {
        let mut report = RepublishReport::default();
        let max = i64::from(self.config.max_publish_attempts);
        if let Some(release) = self
            .releases
            .get(&Partition::platform(), ClientRelease::ID)
            .await?
        {
            if !release.publish_state.published && i64::from(release.publish_state.attempts) < max {
                report.client_update = Some(self.broadcast_client(&release).await);
            }
        }
        let pending = Filter::and(vec![
            Filter::Eq("published", Value::Bool(false)),
            Filter::Cmp("publish_attempts", CmpOp::Lt, Value::Int(max)),
        ]);
        let mut request = PageRequest::first(PAGE);
        loop {
            let page = self.tenants.list(&request).await?;
            for tenant in page.nodes() {
                if tenant.status == TenantStatus::Deleted {
                    continue;
                }
                for agent in self.agents.find(&tenant.id, pending.clone()).await? {
                    match self.publish_tool_update(&tenant.id, &agent.key).await {
                        Ok(_) => report.republished.push((tenant.id.clone(), agent.key)),
                        Err(e) => report.failed.push((tenant.id.clone(), agent.key, e)),
                    }
                }
            }
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => request = PageRequest::first(PAGE).after(cursor),
                _ => return Ok(report),
            }
        }
    }

    async fn publish_json<T: serde::Serialize>(
        &self,
        subject: &str,
        message: &T,
    ) -> Result<PublishAck> {
        let payload = serde_json::to_vec(message)
            .map_err(|e| Error::Internal(format!("encoding a rollout message: {e}").into()))?;
        self.bus
            .publish_durable(subject, payload, Headers::new())
            .await
    }
}

/// An install message encoded once for many machines: the template (server-side
/// placeholders kept, for reports) and the payload sent (placeholders resolved; may hold a
/// secret, so no `Debug`).
struct Prepared {
    message: ToolInstallationMessage,
    payload: Vec<u8>,
}

fn next_state(state: PublishState, ok: bool) -> PublishState {
    if ok {
        PublishState {
            published: true,
            attempts: 0,
        }
    } else {
        PublishState {
            published: false,
            attempts: state.attempts.saturating_add(1),
        }
    }
}
