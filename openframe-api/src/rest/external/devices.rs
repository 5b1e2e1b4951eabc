//! `/api/v1/devices`: list, filter options, one device.

use axum::Json;
use axum::extract::State;
use openframe_core::{MachineId, MachineStatus, OrganizationId, OsType, SortSpec, TagId};
use openframe_data::{MachineFacet, MachineFilter, MachineSort};

use super::dto::{DeviceDto, DeviceFiltersResponse, DevicesResponse, FilterOption, rows};
use super::responses::{ItemErrors, ListErrors};
use super::{Caller, ExternalApi, scopes};
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiPath, QueryParams, cursor_errors, rename_field};

const FILTER_PARAMS: [&str; 5] = ["statuses", "osTypes", "organizationIds", "tagIds", "search"];

fn filter(q: &QueryParams) -> ApiResult<MachineFilter> {
    Ok(MachineFilter {
        statuses: q.parsed_list("statuses", |s: &str| s.parse::<MachineStatus>())?,
        os_types: q.parsed_list("osTypes", |s: &str| s.parse::<OsType>())?,
        organization_ids: q.parsed_list("organizationIds", |s: &str| OrganizationId::parse(s))?,
        tag_ids: q.parsed_list("tagIds", |s: &str| TagId::parse(s))?,
        search: q.get("search")?.map(str::to_owned),
        ..Default::default()
    })
}

/// Lists devices, newest enrollment first by default. DELETED devices are hidden unless
/// `statuses` asks for them.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    params(
        ("statuses" = Option<Vec<String>>, Query, description = "Any of PENDING, ONLINE, OFFLINE, ARCHIVED, DELETED (repeat or comma-separate)"),
        ("osTypes" = Option<Vec<String>>, Query, description = "Any of WINDOWS, MAC_OS, LINUX"),
        ("organizationIds" = Option<Vec<String>>, Query, description = "Any of these organizations"),
        ("tagIds" = Option<Vec<String>>, Query, description = "Has any of these tags"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of hostname, names, IPs, serial, manufacturer, model"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's pageInfo.endCursor"),
        ("sortField" = Option<String>, Query, description = "id, hostname, status, lastSeen or registeredAt (default)"),
        ("sortDirection" = Option<String>, Query, description = "ASC or DESC (default)"),
    ),
    responses(
        (status = 200, description = "A page of devices", body = DevicesResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn list(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<DevicesResponse>> {
    caller.require(scopes::DEVICES_READ)?;
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.extend(["limit", "cursor", "sortField", "sortDirection"]);
    q.only(&allowed)?;
    let filter = filter(&q)?;
    let sort = SortSpec::<MachineSort>::parse(q.get("sortField")?, q.get("sortDirection")?)?;
    let page = q.page()?;
    let tenant = caller.tenant();
    let (page, count) = api
        .repos
        .machines
        .list_counted(tenant, &filter, sort, &page)
        .await
        .map_err(cursor_errors)?;
    let (devices, page_info) = rows(page);
    Ok(Json(DevicesResponse {
        page_info,
        devices,
        filtered_count: count,
    }))
}

/// Filter options of the device list: counts per status, OS, organization and tag, each
/// ignoring its own filter.
#[utoipa::path(
    get,
    path = "/api/v1/devices/filters",
    tag = "devices",
    params(
        ("statuses" = Option<Vec<String>>, Query, description = "As in the device list"),
        ("osTypes" = Option<Vec<String>>, Query, description = "As in the device list"),
        ("organizationIds" = Option<Vec<String>>, Query, description = "As in the device list"),
        ("tagIds" = Option<Vec<String>>, Query, description = "As in the device list"),
        ("search" = Option<String>, Query, description = "As in the device list"),
    ),
    responses(
        (status = 200, description = "Filter options", body = DeviceFiltersResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn filters(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<DeviceFiltersResponse>> {
    caller.require(scopes::DEVICES_READ)?;
    q.only(&FILTER_PARAMS)?;
    let filter = filter(&q)?;
    let tenant = caller.tenant();
    let dims = [
        MachineFacet::Status,
        MachineFacet::OsType,
        MachineFacet::Organization,
        MachineFacet::Tag,
    ];
    let (facets, count) = tokio::try_join!(
        api.repos.machines.facets(tenant, &filter, &dims),
        api.repos.machines.count(tenant, &filter),
    )?;
    let mut out = DeviceFiltersResponse {
        statuses: Vec::new(),
        os_types: Vec::new(),
        organization_ids: Vec::new(),
        tag_ids: Vec::new(),
        filtered_count: count,
    };
    for (dim, counts) in facets {
        match dim {
            MachineFacet::Status => {
                out.statuses = counts.into_iter().map(FilterOption::plain).collect()
            }
            MachineFacet::OsType => {
                out.os_types = counts.into_iter().map(FilterOption::plain).collect()
            }
            MachineFacet::Organization => {
                let ids: Vec<OrganizationId> = counts
                    .iter()
                    .filter_map(|c| OrganizationId::parse(c.value.as_str()).ok())
                    .take(1000)
                    .collect();
                let orgs = api.repos.organizations.get_many(tenant, &ids).await?;
                out.organization_ids = counts
                    .into_iter()
                    .map(|c| {
                        let label = orgs
                            .iter()
                            .find(|o| o.id.as_str() == c.value)
                            .map_or_else(|| c.value.clone(), |o| o.name.clone());
                        FilterOption {
                            label,
                            value: c.value,
                            count: c.count,
                        }
                    })
                    .collect();
            }
            MachineFacet::Tag => {
                let ids: Vec<TagId> = counts
                    .iter()
                    .filter_map(|c| TagId::parse(c.value.as_str()).ok())
                    .take(1000)
                    .collect();
                let tags = api.repos.tags.get_many(tenant, &ids).await?;
                out.tag_ids = counts
                    .into_iter()
                    .map(|c| {
                        let label = tags
                            .iter()
                            .find(|t| t.id.as_str() == c.value)
                            .map_or_else(|| c.value.clone(), |t| t.name.clone());
                        FilterOption {
                            label,
                            value: c.value,
                            count: c.count,
                        }
                    })
                    .collect();
            }
        }
    }
    Ok(Json(out))
}

/// One device by machine id.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{machineId}",
    tag = "devices",
    params(("machineId" = String, Path, description = "The machine id")),
    responses(
        (status = 200, description = "The device", body = DeviceDto),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn get_one(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<DeviceDto>> {
    caller.require(scopes::DEVICES_READ)?;
    let id = MachineId::parse(raw).map_err(|e| rename_field(e, "machineId"))?;
    api.repos
        .machines
        .get(caller.tenant(), &id)
        .await?
        .map(|m| Json(m.into()))
        .ok_or_else(|| ApiError::not_found("device"))
}
