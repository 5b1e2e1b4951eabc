//! The few lookups enrichment needs, and their implementation over openframe-data's
//! repositories.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use openframe_core::{MachineId, Organization, OrganizationId, Result, TenantId, ToolType};
use openframe_data::{
    MachineRepository, OrganizationRepository, Repositories, ToolConnectionRepository,
};
use serde::{Deserialize, Serialize};

/// What enrichment keeps of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineInfo {
    /// The machine.
    pub id: MachineId,
    /// Its organization, if assigned.
    pub organization_id: Option<OrganizationId>,
}

/// What enrichment keeps of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationInfo {
    /// The organization.
    pub id: OrganizationId,
    /// Its display name.
    pub name: String,
}

/// Tenant-scoped lookups behind enrichment. [`RepositoryDirectory`] implements them over the
/// repositories; the [`Enricher`](super::Enricher) caches every answer.
#[async_trait]
pub trait EntityDirectory: Send + Sync + Debug + 'static {
    /// The machine whose connection to `tool` has the tool-side agent id `agent_tool_id`.
    async fn machine_for_tool_agent(
        &self,
        tenant: &TenantId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<MachineId>>;
    /// One machine.
    async fn machine(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<MachineInfo>>;
    /// One organization.
    async fn organization(
        &self,
        tenant: &TenantId,
        id: &OrganizationId,
    ) -> Result<Option<OrganizationInfo>>;
    /// The tenant's default organization (where machines without one belong).
    async fn default_organization(&self, tenant: &TenantId) -> Result<Option<OrganizationInfo>>;
}

/// [`EntityDirectory`] over the tool connection, machine and organization repositories.
#[derive(Debug, Clone)]
pub struct RepositoryDirectory {
    tool_connections: Arc<dyn ToolConnectionRepository>,
    machines: Arc<dyn MachineRepository>,
    organizations: Arc<dyn OrganizationRepository>,
}

impl RepositoryDirectory {
    /// A directory over these repositories.
    pub fn new(
        tool_connections: Arc<dyn ToolConnectionRepository>,
        machines: Arc<dyn MachineRepository>,
        organizations: Arc<dyn OrganizationRepository>,
    ) -> Self {
        Self {
            tool_connections,
            machines,
            organizations,
        }
    }

    /// A directory over a [`Repositories`] set.
    pub fn from_repositories(repos: &Repositories) -> Self {
        Self::new(
            repos.tool_connections.clone(),
            repos.machines.clone(),
            repos.organizations.clone(),
        )
    }
}

#[async_trait]
impl EntityDirectory for RepositoryDirectory {
    async fn machine_for_tool_agent(
        &self,
        tenant: &TenantId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<MachineId>> {
        Ok(self
            .tool_connections
            .find_by_agent_tool_id(tenant, tool, agent_tool_id)
            .await?
            .map(|c| c.machine_id))
    }

    async fn machine(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<MachineInfo>> {
        Ok(self.machines.get(tenant, id).await?.map(|m| MachineInfo {
            id: m.id,
            organization_id: m.organization_id,
        }))
    }

    async fn organization(
        &self,
        tenant: &TenantId,
        id: &OrganizationId,
    ) -> Result<Option<OrganizationInfo>> {
        Ok(self.organizations.get(tenant, id).await?.map(org_info))
    }

    async fn default_organization(&self, tenant: &TenantId) -> Result<Option<OrganizationInfo>> {
        Ok(self.organizations.find_default(tenant).await?.map(org_info))
    }
}

fn org_info(org: Organization) -> OrganizationInfo {
    OrganizationInfo {
        id: org.id,
        name: org.name,
    }
}
