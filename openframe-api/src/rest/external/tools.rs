//! `/api/v1/tools`: the tenant's integrated tools, never with their credentials.

use axum::Json;
use axum::extract::State;
use openframe_core::{SortSpec, ToolId, ToolType};
use openframe_data::{IntegratedToolFilter, IntegratedToolSort};

use super::dto::{ToolDto, ToolsResponse, rows};
use super::responses::{ItemErrors, ListErrors};
use super::{Caller, ExternalApi, scopes};
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiPath, QueryParams, cursor_errors, rename_field};

/// Lists integrated tools, by name by default. Credentials are never returned.
#[utoipa::path(
    get,
    path = "/api/v1/tools",
    tag = "tools",
    params(
        ("enabled" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) tools"),
        ("toolTypes" = Option<Vec<String>>, Query, description = "Any of MESHCENTRAL, FLEET_MDM, TACTICAL_RMM, OPENFRAME_RMM"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of key or name"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's pageInfo.endCursor"),
        ("sortField" = Option<String>, Query, description = "id or name (default)"),
        ("sortDirection" = Option<String>, Query, description = "ASC (default) or DESC"),
    ),
    responses(
        (status = 200, description = "A page of tools", body = ToolsResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn list(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<ToolsResponse>> {
    caller.require(scopes::TOOLS_READ)?;
    q.only(&[
        "enabled",
        "toolTypes",
        "search",
        "limit",
        "cursor",
        "sortField",
        "sortDirection",
    ])?;
    let filter = IntegratedToolFilter {
        tool_types: q.parsed_list("toolTypes", |s: &str| s.parse::<ToolType>())?,
        enabled: q.bool("enabled")?,
        search: q.get("search")?.map(str::to_owned),
    };
    let sort = SortSpec::<IntegratedToolSort>::parse(q.get("sortField")?, q.get("sortDirection")?)?;
    let page = q.page()?;
    let tenant = caller.tenant();
    let (page, count) = tokio::try_join!(
        api.repos.tools.list(tenant, &filter, sort, &page),
        api.repos.tools.count(tenant, &filter),
    )
    .map_err(cursor_errors)?;
    let (tools, page_info) = rows(page);
    Ok(Json(ToolsResponse {
        page_info,
        tools,
        filtered_count: count,
    }))
}

/// One tool by id (without credentials).
#[utoipa::path(
    get,
    path = "/api/v1/tools/{toolId}",
    tag = "tools",
    params(("toolId" = String, Path, description = "The tool id")),
    responses(
        (status = 200, description = "The tool", body = ToolDto),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn get_one(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<ToolDto>> {
    caller.require(scopes::TOOLS_READ)?;
    let id = ToolId::parse(raw).map_err(|e| rename_field(e, "toolId"))?;
    api.repos
        .tools
        .get(caller.tenant(), &id)
        .await?
        .map(|t| Json(t.into()))
        .ok_or_else(|| ApiError::not_found("tool"))
}
