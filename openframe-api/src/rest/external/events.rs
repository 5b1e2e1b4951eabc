//! `/api/v1/events`: the tenant's unified events, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use openframe_core::{Error, MachineId, OrganizationId};
use openframe_stream::model::UnifiedEvent;
use openframe_stream::store::{EventFilter, EventStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{PageInfoDto, rows};
use super::responses::{ItemErrors, ListErrors};
use super::{Caller, ExternalApi, scopes};
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiPath, QueryParams, cursor_errors, rename_field};

/// The event store the routes read.
pub(super) type Events = Arc<dyn EventStore>;

/// One unified event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    /// The event id (UUID).
    pub id: String,
    /// The tool it came from (`MESHCENTRAL`, `FLEET_MDM`, `TACTICAL_RMM`, `OPENFRAME_AGENT`, `OPENFRAME`).
    pub tool: String,
    /// The tool's own type name.
    pub source_type: String,
    /// The category.
    pub category: String,
    /// The unified type, e.g. `SCRIPT_EXECUTED`.
    pub event_type: String,
    /// The severity.
    pub severity: String,
    /// Success or failure, where known.
    pub outcome: Option<String>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The machine, when known.
    pub machine_id: Option<String>,
    /// The machine's organization, when known.
    pub organization_id: Option<String>,
    /// The event named a device no known machine matched.
    pub unknown_machine: bool,
    /// The acting user as the tool names it.
    pub user: Option<String>,
    /// One human line.
    pub summary: String,
    /// Structured details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

fn wire<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<UnifiedEvent> for EventDto {
    fn from(e: UnifiedEvent) -> Self {
        Self {
            id: e.id.to_string(),
            tool: wire(&e.tool),
            source_type: e.source_type,
            category: wire(&e.category),
            event_type: e.event_type,
            severity: wire(&e.severity),
            outcome: e.outcome.as_ref().map(wire),
            occurred_at: e.occurred_at,
            machine_id: e.machine_id.map(|m| m.to_string()),
            organization_id: e.organization_id.map(|o| o.to_string()),
            unknown_machine: e.unknown_machine,
            user: e.user,
            summary: e.summary,
            details: e.details,
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsResponse {
    /// The events, newest first.
    pub events: Vec<EventDto>,
    /// Paging state.
    pub page_info: PageInfoDto,
    /// How many events match the filter.
    pub filtered_count: u64,
}

fn parse_enum<T: DeserializeOwned>(
    field: &'static str,
    allowed: &'static str,
) -> impl Fn(&str) -> openframe_core::Result<T> {
    move |s: &str| {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase()))
            .map_err(|_| Error::invalid(field, format!("must be one of: {allowed}")))
    }
}

fn parse_time(q: &QueryParams, field: &'static str) -> ApiResult<Option<DateTime<Utc>>> {
    q.get(field)?
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

fn events(api: &ExternalApi) -> ApiResult<&Events> {
    api.events
        .as_ref()
        .ok_or_else(|| ApiError::not_found("route"))
}

/// Lists events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(
        ("from" = Option<String>, Query, description = "Events at or after this RFC 3339 instant"),
        ("to" = Option<String>, Query, description = "Events strictly before this RFC 3339 instant"),
        ("machineIds" = Option<Vec<String>>, Query, description = "Any of these machines"),
        ("organizationIds" = Option<Vec<String>>, Query, description = "Any of these organizations"),
        ("eventTypes" = Option<Vec<String>>, Query, description = "Any of these unified types"),
        ("severities" = Option<Vec<String>>, Query, description = "Any of these severities"),
        ("tools" = Option<Vec<String>>, Query, description = "Any of these tools"),
        ("categories" = Option<Vec<String>>, Query, description = "Any of these categories"),
        ("search" = Option<String>, Query, description = "Case-insensitive literal text in summary, source type or user"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's pageInfo.endCursor"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventsResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn list(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<EventsResponse>> {
    caller.require(scopes::EVENTS_READ)?;
    q.only(&[
        "from",
        "to",
        "machineIds",
        "organizationIds",
        "eventTypes",
        "severities",
        "tools",
        "categories",
        "search",
        "limit",
        "cursor",
    ])?;
    let store = events(&api)?;
    let filter = EventFilter {
        from: parse_time(&q, "from")?,
        to: parse_time(&q, "to")?,
        machine_ids: q.parsed_list("machineIds", |s: &str| MachineId::parse(s))?,
        organization_ids: q.parsed_list("organizationIds", |s: &str| OrganizationId::parse(s))?,
        event_types: q
            .list("eventTypes")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        severities: q.parsed_list(
            "severities",
            parse_enum("severities", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        )?,
        tools: q.parsed_list(
            "tools",
            parse_enum(
                "tools",
                "MESHCENTRAL, FLEET_MDM, TACTICAL_RMM, OPENFRAME_AGENT, OPENFRAME",
            ),
        )?,
        categories: q.parsed_list(
            "categories",
            parse_enum("categories", "the event categories"),
        )?,
        text: q.get("search")?.map(str::to_owned),
    };
    filter.validate()?;
    let tenant = caller.tenant();
    let page = q.page()?;
    let (page, count) = tokio::try_join!(
        store.query(tenant, &filter, &page),
        store.count(tenant, &filter)
    )
    .map_err(cursor_errors)?;
    let (events, page_info) = rows(page);
    Ok(Json(EventsResponse {
        page_info,
        events,
        filtered_count: count,
    }))
}

/// One event by id.
#[utoipa::path(
    get,
    path = "/api/v1/events/{eventId}",
    tag = "events",
    params(("eventId" = String, Path, description = "The event id (UUID)")),
    responses(
        (status = 200, description = "The event", body = EventDto),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn get_one(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<EventDto>> {
    caller.require(scopes::EVENTS_READ)?;
    let id = uuid::Uuid::parse_str(&raw).map_err(|_| {
        ApiError::from(rename_field(
            Error::invalid("eventId", "must be a UUID"),
            "eventId",
        ))
    })?;
    events(&api)?
        .get(caller.tenant(), id)
        .await?
        .map(|e| Json(e.into()))
        .ok_or_else(|| ApiError::not_found("event"))
}
