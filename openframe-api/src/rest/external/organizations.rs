//! `/api/v1/organizations`: list, one organization.

use axum::Json;
use axum::extract::State;
use openframe_core::{OrganizationId, OrganizationStatus, SortSpec};
use openframe_data::{OrganizationFilter, OrganizationSort};

use super::dto::{OrganizationDto, OrganizationsResponse, rows};
use super::responses::{ItemErrors, ListErrors};
use super::{Caller, ExternalApi, scopes};
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiPath, QueryParams, cursor_errors, rename_field};

/// Lists organizations, newest first by default. DELETED ones are hidden unless `statuses`
/// asks for them. `filteredCount` is the true number of matches.
#[utoipa::path(
    get,
    path = "/api/v1/organizations",
    tag = "organizations",
    params(
        ("statuses" = Option<Vec<String>>, Query, description = "Any of ACTIVE, ARCHIVED, DELETED"),
        ("categories" = Option<Vec<String>>, Query, description = "Any of these categories (exact)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of name or category"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's pageInfo.endCursor"),
        ("sortField" = Option<String>, Query, description = "id, name, createdAt (default) or updatedAt"),
        ("sortDirection" = Option<String>, Query, description = "ASC or DESC (default)"),
    ),
    responses(
        (status = 200, description = "A page of organizations", body = OrganizationsResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn list(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<OrganizationsResponse>> {
    caller.require(scopes::ORGANIZATIONS_READ)?;
    q.only(&[
        "statuses",
        "categories",
        "search",
        "limit",
        "cursor",
        "sortField",
        "sortDirection",
    ])?;
    let filter = OrganizationFilter {
        statuses: q.parsed_list("statuses", |s: &str| s.parse::<OrganizationStatus>())?,
        categories: q
            .list("categories")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        search: q.get("search")?.map(str::to_owned),
        ..Default::default()
    };
    let sort = SortSpec::<OrganizationSort>::parse(q.get("sortField")?, q.get("sortDirection")?)?;
    let page = q.page()?;
    let tenant = caller.tenant();
    let (page, count) = tokio::try_join!(
        api.repos.organizations.list(tenant, &filter, sort, &page),
        api.repos.organizations.count(tenant, &filter),
    )
    .map_err(cursor_errors)?;
    let (organizations, page_info) = rows(page);
    Ok(Json(OrganizationsResponse {
        page_info,
        organizations,
        filtered_count: count,
    }))
}

/// One organization by id.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{organizationId}",
    tag = "organizations",
    params(("organizationId" = String, Path, description = "The organization id")),
    responses(
        (status = 200, description = "The organization", body = OrganizationDto),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn get_one(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<OrganizationDto>> {
    caller.require(scopes::ORGANIZATIONS_READ)?;
    let id = OrganizationId::parse(raw).map_err(|e| rename_field(e, "organizationId"))?;
    api.repos
        .organizations
        .get(caller.tenant(), &id)
        .await?
        .map(|o| Json(o.into()))
        .ok_or_else(|| ApiError::not_found("organization"))
}
