//! Integrated tools and machines' connections to them.

use async_trait::async_trait;
use openframe_core::{
    ConnectionStatus, FacetCount, IntegratedTool, MachineId, Page, PageRequest, Result,
    SortDirection, SortField, SortSpec, TenantId, ToolConnection, ToolConnectionId,
    ToolCredentials, ToolId, ToolType,
};

use super::{
    DocumentRepository, FacetDimension, QueryFilter, StoreSortField, filter_list, search_filter,
};
use crate::entity::{Entity, entity_basics, serde_body, serde_from_body};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores integrated tools. Keys are unique per tenant. Credentials are persisted but never
/// appear in the serialized `IntegratedTool` handed to clients.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let tool = IntegratedTool::new("meshcentral", "MeshCentral", ToolType::MeshCentral, SystemClock.now());
/// repos.tools.insert(&tenant, tool).await?;
/// assert!(repos.tools.find_by_key(&tenant, "meshcentral").await?.unwrap().enabled);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait IntegratedToolRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new tool; `AlreadyExists` if the key is taken.
    async fn insert(&self, tenant: &TenantId, tool: IntegratedTool) -> Result<IntegratedTool>;
    /// One tool.
    async fn get(&self, tenant: &TenantId, id: &ToolId) -> Result<Option<IntegratedTool>>;
    /// The tool with this key (as in `/tools/{key}/...`), if any.
    async fn find_by_key(&self, tenant: &TenantId, key: &str) -> Result<Option<IntegratedTool>>;
    /// Writes `tool` if its version is current.
    async fn update(&self, tenant: &TenantId, tool: IntegratedTool) -> Result<IntegratedTool>;
    /// Deletes the tool; `NotFound` if absent.
    async fn delete(&self, tenant: &TenantId, id: &ToolId) -> Result<()>;
    /// A page of tools.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &IntegratedToolFilter,
        sort: SortSpec<IntegratedToolSort>,
        page: &PageRequest,
    ) -> Result<Page<IntegratedTool>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &IntegratedToolFilter) -> Result<u64>;
}

/// Integrated tool list filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegratedToolFilter {
    /// Any of these tool types.
    pub tool_types: Vec<ToolType>,
    /// Only enabled (or disabled) tools.
    pub enabled: Option<bool>,
    /// Case-insensitive literal substring of key or name.
    pub search: Option<String>,
}

impl IntegratedToolFilter {
    fn to_filter(&self) -> Result<Filter> {
        filter_list("toolTypes", &self.tool_types)?;
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if !self.tool_types.is_empty() {
            parts.push(Filter::In(
                "tool_type",
                self.tool_types
                    .iter()
                    .map(|t| Value::str(t.as_str()))
                    .collect(),
            ));
        }
        if let Some(e) = self.enabled {
            parts.push(Filter::Eq("enabled", Value::Bool(e)));
        }
        Ok(Filter::and(parts))
    }
}

/// Sortable integrated tool fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegratedToolSort {
    /// By id.
    Id,
    /// By name (default, A to Z).
    Name,
}

impl SortField for IntegratedToolSort {
    const ALL: &'static [Self] = &[Self::Id, Self::Name];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::Name, SortDirection::Asc)
    }
}

impl StoreSortField for IntegratedToolSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Name => SortKey::Field("name"),
        }
    }
}

static TOOL_SCHEMA: Schema = Schema {
    collection: "integrated_tools",
    entity: "integrated tool",
    fields: &[
        FieldDef::required("key", FieldKind::Str),
        FieldDef::required("tool_type", FieldKind::Str),
        FieldDef::required("enabled", FieldKind::Bool),
        FieldDef::required("name", FieldKind::Str),
    ],
    indexes: &[
        IndexDef { fields: &["key"] },
        IndexDef { fields: &["name"] },
    ],
    unique: &[&["key"]],
};

impl Entity for IntegratedTool {
    const SCHEMA: &'static Schema = &TOOL_SCHEMA;
    entity_basics!("integrated tool");
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(&self.key),
            Value::str(self.tool_type.as_str()),
            Value::Bool(self.enabled),
            Value::str(&self.name),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![self.key.as_str(), self.name.as_str()]
    }
    /// The serde form skips credentials; the stored body adds them explicitly.
    fn to_body(&self) -> Result<String> {
        let mut value = serde_json::to_value(self).map_err(|e| {
            openframe_core::Error::Internal(format!("cannot encode tool: {e}").into())
        })?;
        if let (Some(obj), Some(creds)) = (value.as_object_mut(), &self.credentials) {
            obj.insert("credentials".into(), creds.to_storage_json());
        }
        serde_body(&value)
    }
    fn from_body(body: &str) -> Result<Self> {
        let mut value: serde_json::Value = serde_from_body("integrated tool", body)?;
        let creds = value.as_object_mut().and_then(|o| o.remove("credentials"));
        let mut tool: IntegratedTool = serde_from_body("integrated tool", &value.to_string())?;
        tool.credentials = match creds {
            Some(c) if !c.is_null() => {
                Some(serde_json::from_value::<ToolCredentials>(c).map_err(|_| {
                    openframe_core::Error::Internal("corrupt tool credentials".into())
                })?)
            }
            _ => None,
        };
        Ok(tool)
    }
}

crate::timestamped!(IntegratedTool);

#[async_trait]
impl IntegratedToolRepository for DocumentRepository<IntegratedTool> {
    async fn insert(&self, tenant: &TenantId, tool: IntegratedTool) -> Result<IntegratedTool> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), tool).await
    }
    async fn get(&self, tenant: &TenantId, id: &ToolId) -> Result<Option<IntegratedTool>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn find_by_key(&self, tenant: &TenantId, key: &str) -> Result<Option<IntegratedTool>> {
        openframe_core::validate::max_chars("key", key, openframe_core::id::MAX_ID_LEN)?;
        let filter = Filter::Eq("key", Value::str(key));
        Ok(self
            .find_all(&Partition::tenant(tenant), filter, 1)
            .await?
            .into_iter()
            .next())
    }
    async fn update(&self, tenant: &TenantId, tool: IntegratedTool) -> Result<IntegratedTool> {
        DocumentRepository::update(self, &Partition::tenant(tenant), tool).await
    }
    async fn delete(&self, tenant: &TenantId, id: &ToolId) -> Result<()> {
        self.delete_hard(&Partition::tenant(tenant), id.as_str())
            .await
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &IntegratedToolFilter,
        sort: SortSpec<IntegratedToolSort>,
        page: &PageRequest,
    ) -> Result<Page<IntegratedTool>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &IntegratedToolFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
}

/// Stores machines' tool connections; unique per (machine, tool type).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let machine = MachineId::generate();
/// let conn = ToolConnection::new(machine, ToolType::FleetMdm, "host-42", SystemClock.now());
/// repos.tool_connections.insert(&tenant, conn).await?;
/// let found = repos.tool_connections.find_by_agent_tool_id(&tenant, ToolType::FleetMdm, "host-42").await?;
/// assert!(found.is_some());
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait ToolConnectionRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a connection; `AlreadyExists` if the machine already has one for the tool type.
    async fn insert(&self, tenant: &TenantId, connection: ToolConnection)
    -> Result<ToolConnection>;
    /// One connection.
    async fn get(&self, tenant: &TenantId, id: &ToolConnectionId)
    -> Result<Option<ToolConnection>>;
    /// The connection whose tool-side agent id is `agent_tool_id` (event enrichment).
    async fn find_by_agent_tool_id(
        &self,
        tenant: &TenantId,
        tool_type: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<ToolConnection>>;
    /// All connections of one machine.
    async fn find_by_machine(
        &self,
        tenant: &TenantId,
        machine_id: &MachineId,
    ) -> Result<Vec<ToolConnection>>;
    /// Writes `connection` if its version is current.
    async fn update(&self, tenant: &TenantId, connection: ToolConnection)
    -> Result<ToolConnection>;
    /// Deletes the connection; `NotFound` if absent.
    async fn delete(&self, tenant: &TenantId, id: &ToolConnectionId) -> Result<()>;
    /// A page of connections.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ToolConnectionFilter,
        sort: SortSpec<ToolConnectionSort>,
        page: &PageRequest,
    ) -> Result<Page<ToolConnection>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &ToolConnectionFilter) -> Result<u64>;
    /// Self-excluding counts.
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &ToolConnectionFilter,
        dimensions: &[ToolConnectionFacet],
    ) -> Result<Vec<(ToolConnectionFacet, Vec<FacetCount>)>>;
}

/// Tool connection list filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolConnectionFilter {
    /// Any of these machines.
    pub machine_ids: Vec<MachineId>,
    /// Any of these tool types.
    pub tool_types: Vec<ToolType>,
    /// Any of these statuses.
    pub statuses: Vec<ConnectionStatus>,
}

/// Facet dimensions of tool connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolConnectionFacet {
    /// By tool type.
    ToolType,
    /// By status.
    Status,
}

impl FacetDimension for ToolConnectionFacet {
    fn field(self) -> &'static str {
        match self {
            Self::ToolType => "tool_type",
            Self::Status => "status",
        }
    }
}

impl QueryFilter for ToolConnectionFilter {
    type Facet = ToolConnectionFacet;
    fn base(&self) -> Result<Filter> {
        filter_list("machineIds", &self.machine_ids)?;
        if self.machine_ids.is_empty() {
            return Ok(Filter::All);
        }
        let machines = self
            .machine_ids
            .iter()
            .map(|m| Value::str(m.as_str()))
            .collect();
        Ok(Filter::In("machine_id", machines))
    }

    fn conditions(&self) -> Result<Vec<(ToolConnectionFacet, Filter)>> {
        filter_list("toolTypes", &self.tool_types)?;
        filter_list("statuses", &self.statuses)?;
        let mut out = Vec::new();
        if !self.tool_types.is_empty() {
            let types = self
                .tool_types
                .iter()
                .map(|t| Value::str(t.as_str()))
                .collect();
            out.push((
                ToolConnectionFacet::ToolType,
                Filter::In("tool_type", types),
            ));
        }
        if !self.statuses.is_empty() {
            let statuses = self
                .statuses
                .iter()
                .map(|s| Value::str(s.as_str()))
                .collect();
            out.push((ToolConnectionFacet::Status, Filter::In("status", statuses)));
        }
        Ok(out)
    }
}

/// Sortable tool connection fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolConnectionSort {
    /// By id.
    Id,
    /// By creation time (default, newest first).
    CreatedAt,
}

impl SortField for ToolConnectionSort {
    const ALL: &'static [Self] = &[Self::Id, Self::CreatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::CreatedAt => "createdAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for ToolConnectionSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::CreatedAt => SortKey::Field("created_at"),
        }
    }
}

static CONNECTION_SCHEMA: Schema = Schema {
    collection: "tool_connections",
    entity: "tool connection",
    fields: &[
        FieldDef::required("machine_id", FieldKind::Str),
        FieldDef::required("tool_type", FieldKind::Str),
        FieldDef::required("agent_tool_id", FieldKind::Str),
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["machine_id", "tool_type"],
        },
        IndexDef {
            fields: &["tool_type", "agent_tool_id"],
        },
        IndexDef {
            fields: &["created_at"],
        },
    ],
    unique: &[&["machine_id", "tool_type"]],
};

impl Entity for ToolConnection {
    const SCHEMA: &'static Schema = &CONNECTION_SCHEMA;
    entity_basics!("tool connection", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(self.machine_id.as_str()),
            Value::str(self.tool_type.as_str()),
            Value::str(&self.agent_tool_id),
            Value::str(self.status.as_str()),
            Value::time(self.created_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![self.agent_tool_id.as_str()]
    }
}

crate::timestamped!(ToolConnection);

#[async_trait]
impl ToolConnectionRepository for DocumentRepository<ToolConnection> {
    async fn insert(
        &self,
        tenant: &TenantId,
        connection: ToolConnection,
    ) -> Result<ToolConnection> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), connection).await
    }
    async fn get(
        &self,
        tenant: &TenantId,
        id: &ToolConnectionId,
    ) -> Result<Option<ToolConnection>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn find_by_agent_tool_id(
        &self,
        tenant: &TenantId,
        tool_type: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<ToolConnection>> {
        openframe_core::validate::max_chars(
            "agentToolId",
            agent_tool_id,
            openframe_core::validate::MAX_NAME_LEN,
        )?;
        let filter = Filter::and(vec![
            Filter::Eq("tool_type", Value::str(tool_type.as_str())),
            Filter::Eq("agent_tool_id", Value::str(agent_tool_id)),
        ]);
        Ok(self
            .find_all(&Partition::tenant(tenant), filter, 1)
            .await?
            .into_iter()
            .next())
    }
    async fn find_by_machine(
        &self,
        tenant: &TenantId,
        machine_id: &MachineId,
    ) -> Result<Vec<ToolConnection>> {
        let filter = Filter::Eq("machine_id", Value::str(machine_id.as_str()));
        self.find_all(&Partition::tenant(tenant), filter, ToolType::ALL.len())
            .await
    }
    async fn update(
        &self,
        tenant: &TenantId,
        connection: ToolConnection,
    ) -> Result<ToolConnection> {
        DocumentRepository::update(self, &Partition::tenant(tenant), connection).await
    }
    async fn delete(&self, tenant: &TenantId, id: &ToolConnectionId) -> Result<()> {
        self.delete_hard(&Partition::tenant(tenant), id.as_str())
            .await
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ToolConnectionFilter,
        sort: SortSpec<ToolConnectionSort>,
        page: &PageRequest,
    ) -> Result<Page<ToolConnection>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &ToolConnectionFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &ToolConnectionFilter,
        dimensions: &[ToolConnectionFacet],
    ) -> Result<Vec<(ToolConnectionFacet, Vec<FacetCount>)>> {
        DocumentRepository::facets(self, &Partition::tenant(tenant), filter, dimensions).await
    }
}
