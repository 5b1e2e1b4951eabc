//! Integrated tools and machines' tool connections. Tool credentials are never returned:
//! only whether the tool has some.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use openframe_core::{
    IntegratedTool, MachineId, Timestamp, ToolConnection, ToolConnectionId, ToolId,
};
use openframe_data::{
    IntegratedToolFilter, IntegratedToolSort, ToolConnectionFilter, ToolConnectionSort,
};

use super::connection::{SortInput, connection, list_complexity, listed, page_request, sort_spec};
use super::context::caller;
use super::device::{Device, machine_id};
use super::error::GqlResultExt as _;
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;

/// The kind of integrated tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::ToolType")]
pub(crate) enum ToolType {
    /// MeshCentral.
    #[graphql(name = "MESHCENTRAL")]
    MeshCentral,
    /// FleetDM.
    FleetMdm,
    /// TacticalRMM.
    TacticalRmm,
    /// OpenFrame's agent.
    OpenframeRmm,
}

/// State of a tool connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::ConnectionStatus")]
pub(crate) enum ConnectionStatus {
    /// Connected.
    Connected,
    /// Disconnected.
    Disconnected,
    /// In error.
    Error,
}

/// One URL of a tool.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ToolUrlObject {
    /// The URL.
    url: String,
    /// Its kind (API, DASHBOARD, WS, ...).
    kind: String,
}

/// A tool integrated into the tenant.
#[derive(Debug, Clone)]
pub(crate) struct IntegratedToolObject(pub(crate) IntegratedTool);

#[Object(name = "IntegratedTool")]
impl IntegratedToolObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::IntegratedTool, self.0.id.as_str())
    }
    /// The key used in `/tools/{key}/...`.
    async fn key(&self) -> &str {
        &self.0.key
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Kind.
    async fn tool_type(&self) -> ToolType {
        self.0.tool_type.into()
    }
    /// Whether the proxy serves it.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Its URLs.
    async fn urls(&self) -> Vec<ToolUrlObject> {
        self.0
            .urls
            .iter()
            .map(|u| ToolUrlObject {
                url: u.url.clone(),
                kind: u.kind.clone(),
            })
            .collect()
    }
    /// Whether credentials are configured (they are never returned).
    async fn has_credentials(&self) -> bool {
        self.0.has_credentials()
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
}

/// A machine's link to a tool's agent.
#[derive(Debug, Clone)]
pub(crate) struct ToolConnectionObject(pub(crate) ToolConnection);

#[Object(name = "ToolConnection")]
impl ToolConnectionObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::ToolConnection, self.0.id.as_str())
    }
    /// The tool kind.
    async fn tool_type(&self) -> ToolType {
        self.0.tool_type.into()
    }
    /// The tool's own id for the agent.
    async fn agent_tool_id(&self) -> &str {
        &self.0.agent_tool_id
    }
    /// Connection state.
    async fn status(&self) -> ConnectionStatus {
        self.0.status.into()
    }
    /// When it connected.
    async fn connected_at(&self) -> Option<Timestamp> {
        self.0.connected_at
    }
    /// Last sync.
    async fn last_sync_at(&self) -> Option<Timestamp> {
        self.0.last_sync_at
    }
    /// The machine (batched).
    async fn machine(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Device>> {
        let machine = loaders(ctx)?
            .machines
            .load_one(self.0.machine_id.clone())
            .await?;
        Ok(machine.map(Device))
    }
}

connection!(
    IntegratedToolConnection,
    IntegratedToolEdge,
    IntegratedToolObject
);
connection!(
    ToolConnectionConnection,
    ToolConnectionEdge,
    ToolConnectionObject
);

/// Tool list filter.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct ToolFilterInput {
    /// Any of these kinds.
    tool_types: Option<Vec<ToolType>>,
    /// Only enabled (or disabled) tools.
    enabled: Option<bool>,
}

/// Tool connection list filter.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct ToolConnectionFilterInput {
    /// Of these machines (global ids).
    machine_ids: Option<Vec<ID>>,
    /// Any of these kinds.
    tool_types: Option<Vec<ToolType>>,
    /// Any of these states.
    statuses: Option<Vec<ConnectionStatus>>,
}

/// Tool queries.
#[derive(Debug, Default)]
pub(crate) struct ToolQuery;

#[Object]
impl ToolQuery {
    /// A page of integrated tools. Sort fields: id, name.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn integrated_tools(
        &self,
        ctx: &Context<'_>,
        filter: Option<ToolFilterInput>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IntegratedToolConnection> {
        let (caller, state) = caller(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = IntegratedToolFilter {
            tool_types: f.tool_types.into_iter().flatten().map(Into::into).collect(),
            enabled: f.enabled,
            search,
        };
        let sort = sort_spec::<IntegratedToolSort>(sort).gql()?;
        listed!(
            state.repos.tools,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            IntegratedToolConnection,
            IntegratedToolObject
        )
    }

    /// One integrated tool by global id.
    async fn integrated_tool(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<IntegratedToolObject>> {
        let (caller, state) = caller(ctx)?;
        let id = decode_as("id", NodeType::IntegratedTool, &id, ToolId::parse).gql()?;
        Ok(state
            .repos
            .tools
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(IntegratedToolObject))
    }

    /// A page of tool connections. Sort fields: id, createdAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn tool_connections(
        &self,
        ctx: &Context<'_>,
        filter: Option<ToolConnectionFilterInput>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ToolConnectionConnection> {
        let (caller, state) = caller(ctx)?;
        let f = filter.unwrap_or_default();
        let machine_ids = f
            .machine_ids
            .iter()
            .flatten()
            .map(|id| machine_id("machineIds", id))
            .collect::<openframe_core::Result<Vec<MachineId>>>()
            .gql()?;
        let filter = ToolConnectionFilter {
            machine_ids,
            tool_types: f.tool_types.into_iter().flatten().map(Into::into).collect(),
            statuses: f.statuses.into_iter().flatten().map(Into::into).collect(),
        };
        let sort = sort_spec::<ToolConnectionSort>(sort).gql()?;
        listed!(
            state.repos.tool_connections,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            ToolConnectionConnection,
            ToolConnectionObject
        )
    }

    /// One tool connection by global id.
    async fn tool_connection(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ToolConnectionObject>> {
        let (caller, state) = caller(ctx)?;
        let id = decode_as("id", NodeType::ToolConnection, &id, ToolConnectionId::parse).gql()?;
        Ok(state
            .repos
            .tool_connections
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(ToolConnectionObject))
    }
}
