//! Unified events: the `Event` type, the `events` list and `eventFilters` facets, served
//! from an `openframe_stream::store::EventStore`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use openframe_core::{Error, MachineId, OrganizationId, Timestamp};
use openframe_stream::model::UnifiedEvent;
use openframe_stream::store::{EventFacet, EventFilter, EventStore};

use super::connection::{
    FilterOption, connection, counter, id_options, list_complexity, page_request, selected_facets,
};
use super::context::caller;
use super::device::{Device, machine_id};
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;
use super::state::GraphqlState;

/// The wire name of a serde enum value (e.g. `"HIGH"`).
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Parses wire names into a serde enum, naming `field` in the error.
fn parse_wire<T: serde::de::DeserializeOwned>(
    field: &'static str,
    values: &Option<Vec<String>>,
) -> openframe_core::Result<Vec<T>> {
    values
        .iter()
        .flatten()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_uppercase()))
                .map_err(|_| Error::invalid(field, "unknown value"))
        })
        .collect()
}

/// One normalized event from a tool or an agent.
#[derive(Debug, Clone)]
pub(crate) struct EventObject(pub(crate) UnifiedEvent);

#[Object(name = "Event")]
impl EventObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Event, &self.0.id.to_string())
    }
    /// The event id (a deterministic UUID).
    async fn event_id(&self) -> String {
        self.0.id.to_string()
    }
    /// The source tool.
    async fn tool(&self) -> String {
        wire(&self.0.tool)
    }
    /// The tool's own type name.
    async fn source_type(&self) -> &str {
        &self.0.source_type
    }
    /// The category.
    async fn category(&self) -> String {
        wire(&self.0.category)
    }
    /// The unified type, e.g. `SCRIPT_EXECUTED`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The severity.
    async fn severity(&self) -> String {
        wire(&self.0.severity)
    }
    /// Success or failure, where known.
    async fn outcome(&self) -> Option<String> {
        self.0.outcome.as_ref().map(wire)
    }
    /// When it happened.
    async fn occurred_at(&self) -> Timestamp {
        self.0.occurred_at
    }
    /// The machine id, when known.
    async fn machine_id(&self) -> Option<&str> {
        self.0.machine_id.as_ref().map(|m| m.as_str())
    }
    /// The machine, when known (batched; null on subscriptions).
    async fn machine(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Device>> {
        let (Some(id), Ok(loaders)) = (&self.0.machine_id, loaders(ctx)) else {
            return Ok(None);
        };
        Ok(loaders.machines.load_one(id.clone()).await?.map(Device))
    }
    /// The acting user as the tool names it.
    async fn user(&self) -> Option<&str> {
        self.0.user.as_deref()
    }
    /// One human line.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
}

connection!(EventConnection, EventEdge, EventObject);

/// Event list filter; lists mean "any of", all conditions must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct EventFilterInput {
    /// At or after this instant.
    from: Option<Timestamp>,
    /// Strictly before this instant.
    to: Option<Timestamp>,
    /// Of these machines (global ids).
    machine_ids: Option<Vec<ID>>,
    /// Of these organizations (global ids).
    organization_ids: Option<Vec<ID>>,
    /// Of these unified types.
    event_types: Option<Vec<String>>,
    /// Of these severities (e.g. `ERROR`).
    severities: Option<Vec<String>>,
    /// Of these tools (e.g. `MESHCENTRAL`).
    tools: Option<Vec<String>>,
    /// Of these categories (e.g. `AUTH`).
    categories: Option<Vec<String>>,
}

impl EventFilterInput {
    fn to_filter(&self, search: Option<String>) -> openframe_core::Result<EventFilter> {
        let filter = EventFilter {
            from: self.from,
            to: self.to,
            machine_ids: self
                .machine_ids
                .iter()
                .flatten()
                .map(|id| machine_id("machineIds", id))
                .collect::<openframe_core::Result<_>>()?,
            organization_ids: self
                .organization_ids
                .iter()
                .flatten()
                .map(|id| {
                    decode_as(
                        "organizationIds",
                        NodeType::Organization,
                        id,
                        OrganizationId::parse,
                    )
                })
                .collect::<openframe_core::Result<_>>()?,
            event_types: self.event_types.clone().unwrap_or_default(),
            severities: parse_wire("severities", &self.severities)?,
            tools: parse_wire("tools", &self.tools)?,
            categories: parse_wire("categories", &self.categories)?,
            text: search,
        };
        filter.validate()?;
        Ok(filter)
    }
}

/// Event "filter options": each facet counted under every filter except its own. Only the
/// selected facets are computed.
#[derive(Debug, Clone, Default, SimpleObject)]
pub(crate) struct EventFilters {
    /// Counts per unified type.
    event_types: Vec<FilterOption>,
    /// Counts per severity.
    severities: Vec<FilterOption>,
    /// Counts per tool.
    tools: Vec<FilterOption>,
    /// Counts per category.
    categories: Vec<FilterOption>,
    /// Counts per machine (value: global id, label: hostname).
    machines: Vec<FilterOption>,
    /// Counts per organization (value: global id, label: name).
    organizations: Vec<FilterOption>,
    /// Events matching every filter (only when selected).
    filtered_count: Option<u64>,
}

fn store(state: &GraphqlState) -> async_graphql::Result<&std::sync::Arc<dyn EventStore>> {
    state.event_store.as_ref().ok_or_else(|| {
        to_gql(Error::Unavailable {
            reason: "no event store is configured".into(),
        })
    })
}

/// `filter` without the condition of `facet` (facets ignore their own filter).
fn without(filter: &EventFilter, facet: EventFacet) -> EventFilter {
    let mut f = filter.clone();
    match facet {
        EventFacet::EventType => f.event_types.clear(),
        EventFacet::Severity => f.severities.clear(),
        EventFacet::Tool => f.tools.clear(),
        EventFacet::Category => f.categories.clear(),
        EventFacet::MachineId => f.machine_ids.clear(),
        EventFacet::OrganizationId => f.organization_ids.clear(),
    }
    f
}

/// Event queries.
#[derive(Debug, Default)]
pub(crate) struct EventQuery;

#[Object]
impl EventQuery {
    /// A page of events, newest first. `search` matches summary, source type and user.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let (caller, state) = caller(ctx)?;
        let store = store(state)?.clone();
        let filter = filter.unwrap_or_default().to_filter(search).gql()?;
        let page = store
            .query(
                caller.tenant(),
                &filter,
                &page_request(first, after, last, before),
            )
            .await
            .gql()?;
        let tenant = caller.tenant().clone();
        let count = counter(move || {
            let (store, tenant, filter) = (store.clone(), tenant.clone(), filter.clone());
            async move { store.count(&tenant, &filter).await }
        });
        Ok(EventConnection::new(page, EventObject, count))
    }

    /// One event by global id; null if unknown in the caller's tenant.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<EventObject>> {
        let (caller, state) = caller(ctx)?;
        let id = decode_as("id", NodeType::Event, &id, |raw| {
            uuid::Uuid::parse_str(&raw).map_err(|_| Error::invalid("id", "malformed id"))
        })
        .gql()?;
        get_event(state, caller.tenant(), id).await
    }

    /// Filter options for the event list.
    async fn event_filters(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        search: Option<String>,
    ) -> async_graphql::Result<EventFilters> {
        let (caller, state) = caller(ctx)?;
        let store = store(state)?;
        let tenant = caller.tenant();
        let filter = filter.unwrap_or_default().to_filter(search).gql()?;
        let (wanted, count) = selected_facets(
            ctx,
            &[
                ("eventTypes", EventFacet::EventType),
                ("severities", EventFacet::Severity),
                ("tools", EventFacet::Tool),
                ("categories", EventFacet::Category),
                ("machines", EventFacet::MachineId),
                ("organizations", EventFacet::OrganizationId),
            ],
        );
        let mut out = EventFilters::default();
        if count {
            out.filtered_count = Some(store.count(tenant, &filter).await.gql()?);
        }
        let groups = futures::future::try_join_all(wanted.iter().map(|&facet| {
            let f = without(&filter, facet);
            async move { store.facets(tenant, &f, &[facet]).await }
        }))
        .await
        .gql()?;
        let loaders = loaders(ctx)?;
        for group in groups.into_iter().flatten() {
            let counts = group.counts;
            match group.facet {
                EventFacet::EventType => {
                    out.event_types = counts.into_iter().map(FilterOption::plain).collect()
                }
                EventFacet::Severity => {
                    out.severities = counts.into_iter().map(FilterOption::plain).collect()
                }
                EventFacet::Tool => {
                    out.tools = counts.into_iter().map(FilterOption::plain).collect()
                }
                EventFacet::Category => {
                    out.categories = counts.into_iter().map(FilterOption::plain).collect()
                }
                EventFacet::MachineId => {
                    out.machines = id_options(
                        counts,
                        NodeType::Machine,
                        MachineId::parse,
                        &loaders.machines,
                        |m| m.hostname.clone(),
                        false,
                    )
                    .await?;
                }
                EventFacet::OrganizationId => {
                    out.organizations = id_options(
                        counts,
                        NodeType::Organization,
                        OrganizationId::parse,
                        &loaders.organizations,
                        |o| o.name.clone(),
                        false,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }
}

/// One event of `tenant` by id (null when absent or when no store is configured).
pub(crate) async fn get_event(
    state: &GraphqlState,
    tenant: &openframe_core::TenantId,
    id: uuid::Uuid,
) -> async_graphql::Result<Option<EventObject>> {
    let Some(store) = &state.event_store else {
        return Ok(None);
    };
    Ok(store.get(tenant, id).await.gql()?.map(EventObject))
}
