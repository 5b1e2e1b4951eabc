//! Tool installation, wire-compatible with the original agent.
//!
//! - [`IntegratedToolAgent`]: a tool agent described as data (downloads per OS, assets with
//!   checksums, command arguments), one per key per tenant, stored through
//!   [`ToolAgentRepository`] with validation (https or relative links, 64-hex SHA-256, at most
//!   100 items per list, bounded arguments).
//! - [`ToolInstallationService`]: builds the [`ToolInstallationMessage`] the agent expects and
//!   publishes it durably on `machine.{id}.tool-installation` at registration and on demand
//!   (machines, a filter, or all; DELETED and ARCHIVED machines skipped, failures reported per
//!   machine); broadcasts client and tool updates on `machine.all.client-update` and
//!   `machine.all.tool.{key}.update` with a publish-state outbox retried by
//!   [`ToolInstallationService::republish_pending`].
//! - [`ToolReportIngestor`]: consumes the agents' `tool-connection` and `installed-agent`
//!   reports from the durable streams and upserts [`ToolConnection`](openframe_core::ToolConnection)s
//!   and [`InstalledAgent`]s idempotently.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_agent::bus::{AgentBus, agent_streams, memory::InMemoryAgentBus};
//! use openframe_agent::tools::*;
//! use openframe_core::{Clock, Machine, MachineId, OsType, SystemClock, TenantId, ToolType};
//! use openframe_data::{Repositories, memory::InMemoryDocumentStore};
//!
//! let bus = Arc::new(InMemoryAgentBus::new());
//! bus.ensure_streams(&agent_streams()).await?;
//! let store = Arc::new(InMemoryDocumentStore::new());
//! let repos = Repositories::new(store.clone());
//! let service = ToolInstallationService::new(
//!     bus, store, repos.machines.clone(), repos.tenants.clone(), Arc::new(SystemClock),
//!     ToolInstallationConfig::new("https://assets.example")?,
//! );
//! let tenant = TenantId::parse("acme")?;
//! let agent = IntegratedToolAgent::new("meshcentral-agent", ToolType::MeshCentral, "1.1.0", SessionType::Service, SystemClock.now());
//! service.agents().save(&tenant, agent).await?;
//! let machine = Machine::new(MachineId::generate(), "web-01", OsType::Linux, SystemClock.now());
//! let machine = repos.machines.insert(&tenant, machine).await?;
//! let report = service.install_on_registration(&tenant, &machine.id).await?;
//! assert_eq!(report.published.len(), 1);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod ingest;
mod messages;
mod model;
mod on_registration;
mod service;
mod templating;

use openframe_data::store::Schema;

pub use ingest::{
    AgentToolIdResolver, INSTALLED_AGENT_CONSUMER, IngestConfig, ReportOutcome, Settlement,
    TOOL_CONNECTION_CONSUMER, ToolReportIngestor, installed_agent_consumer,
    tool_connection_consumer,
};
pub use messages::{
    ClientUpdateMessage, InstallationAsset, InstalledAgentReport, MAX_REPORT_BYTES,
    ToolConnectionReport, ToolInstallationMessage, ToolUpdateMessage, UpdateAsset,
};
pub use model::{
    ASSETS_BASE_URL_PLACEHOLDER, AssetSource, ClientRelease, DownloadConfiguration,
    InstallationType, InstalledAgent, IntegratedToolAgent, LocalFilenameConfiguration, MAX_ARG_LEN,
    MAX_KEY_LEN, MAX_LINK_LEN, PublishState, SessionType, ToolAgentAsset, VERSION_PLACEHOLDER,
    validate_link, validate_sha256,
};
pub use on_registration::InstallOnRegistration;
pub use service::{
    FailedInstall, InstallReport, InstallTarget, MAX_TOOL_AGENTS, PublishedInstall,
    RepublishReport, SkipReason, SkippedMachine, ToolAgentRepository, ToolInstallationConfig,
    ToolInstallationService,
};
pub use templating::{ConfiguredToolSecrets, REGISTRATION_SECRET_PLACEHOLDER, ToolSecretSource};

/// The collections tool installation stores (for backends that create tables up front).
pub fn schemas() -> Vec<&'static Schema> {
    vec![
        &model::TOOL_AGENT_SCHEMA,
        &model::INSTALLED_AGENT_SCHEMA,
        &model::CLIENT_RELEASE_SCHEMA,
    ]
}
