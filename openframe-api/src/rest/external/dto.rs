//! The response and request bodies of the external API, with their OpenAPI schemas.

use chrono::{DateTime, Utc};
use openframe_agent::executions::Execution;
use openframe_core::{FacetCount, IntegratedTool, Machine, Organization, Page, PageInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Paging state: pass `endCursor` as `cursor` for the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfoDto {
    /// More rows exist after `endCursor` (exact).
    pub has_next_page: bool,
    /// More rows exist before `startCursor`.
    pub has_previous_page: bool,
    /// Cursor of the first row.
    pub start_cursor: Option<String>,
    /// Cursor of the last row.
    pub end_cursor: Option<String>,
}

/// A page's rows as DTOs, and its paging state.
pub(super) fn rows<T, D: From<T>>(page: Page<T>) -> (Vec<D>, PageInfoDto) {
    let info = page.page_info.clone().into();
    (page.into_nodes().into_iter().map(D::from).collect(), info)
}

impl From<PageInfo> for PageInfoDto {
    fn from(p: PageInfo) -> Self {
        Self {
            has_next_page: p.has_next_page,
            has_previous_page: p.has_previous_page,
            start_cursor: p.start_cursor,
            end_cursor: p.end_cursor,
        }
    }
}

/// The error body of every failure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable code, e.g. `VALIDATION_ERROR`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`.
    pub code: String,
    /// Human-readable, secret-free message.
    pub message: String,
    /// When it happened (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// Per-field problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_errors: Option<Vec<FieldErrorDto>>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldErrorDto {
    /// The field or parameter.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A managed device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDto {
    /// The machine id.
    pub machine_id: String,
    /// Hostname.
    pub hostname: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Operator-given nickname.
    pub nickname: Option<String>,
    /// `PENDING`, `ONLINE`, `OFFLINE`, `ARCHIVED` or `DELETED`.
    pub status: String,
    /// `WINDOWS`, `MAC_OS` or `LINUX`.
    pub os_type: String,
    /// OS version.
    pub os_version: Option<String>,
    /// IP addresses.
    pub ip_addresses: Vec<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Owning organization.
    pub organization_id: Option<String>,
    /// Attached tag ids.
    pub tag_ids: Vec<String>,
    /// Last contact.
    pub last_seen: Option<DateTime<Utc>>,
    /// Enrollment time.
    pub registered_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Machine> for DeviceDto {
    fn from(m: Machine) -> Self {
        Self {
            machine_id: m.id.to_string(),
            hostname: m.hostname,
            display_name: m.display_name,
            nickname: m.nickname,
            status: m.status.as_str().to_owned(),
            os_type: m.os_type.as_str().to_owned(),
            os_version: m.os_version,
            ip_addresses: m.ip_addresses,
            mac_address: m.mac_address,
            agent_version: m.agent_version,
            serial_number: m.serial_number,
            manufacturer: m.manufacturer,
            model: m.model,
            organization_id: m.organization_id.map(|o| o.to_string()),
            tag_ids: m.tags.into_iter().map(|t| t.to_string()).collect(),
            last_seen: m.last_seen,
            registered_at: m.registered_at,
            updated_at: m.updated_at,
        }
    }
}

/// A page of devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicesResponse {
    /// The devices.
    pub devices: Vec<DeviceDto>,
    /// Paging state.
    pub page_info: PageInfoDto,
    /// How many devices match the filter (all pages).
    pub filtered_count: u64,
}

/// One option of a filter, with how many rows it would give.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FilterOption {
    /// The value to filter by.
    pub value: String,
    /// A label to show.
    pub label: String,
    /// Matching rows (each facet ignores its own filter).
    pub count: u64,
}

impl FilterOption {
    /// An option labelled with its value.
    pub fn plain(f: FacetCount) -> Self {
        Self {
            label: f.value.clone(),
            value: f.value,
            count: f.count,
        }
    }
}

/// The filter options of the device list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFiltersResponse {
    /// By status.
    pub statuses: Vec<FilterOption>,
    /// By OS type.
    pub os_types: Vec<FilterOption>,
    /// By organization (labelled with its name).
    pub organization_ids: Vec<FilterOption>,
    /// By tag (labelled with its name).
    pub tag_ids: Vec<FilterOption>,
    /// Devices matching every filter.
    pub filtered_count: u64,
}

/// An organization (a customer of the MSP).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDto {
    /// The organization id.
    pub organization_id: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category: Option<String>,
    /// The tenant's default organization.
    pub is_default: bool,
    /// `ACTIVE`, `ARCHIVED` or `DELETED`.
    pub status: String,
    /// Website.
    pub website_url: Option<String>,
    /// Head count.
    pub number_of_employees: Option<u32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Organization> for OrganizationDto {
    fn from(o: Organization) -> Self {
        Self {
            organization_id: o.id.to_string(),
            name: o.name,
            category: o.category,
            is_default: o.is_default,
            status: o.status.as_str().to_owned(),
            website_url: o.website_url,
            number_of_employees: o.number_of_employees,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A page of organizations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationsResponse {
    /// The organizations.
    pub organizations: Vec<OrganizationDto>,
    /// Paging state.
    pub page_info: PageInfoDto,
    /// How many match the filter (all pages; the original returned the page size).
    pub filtered_count: u64,
}

/// One URL of a tool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolUrlDto {
    /// The URL.
    pub url: String,
    /// What it serves (`API`, `DASHBOARD`, `WS`, ...).
    pub kind: String,
}

/// An integrated tool. Credentials are never included; `hasCredentials` tells whether some
/// are configured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolDto {
    /// The tool id.
    pub id: String,
    /// The key used in proxy paths (`/tools/{key}/...`).
    pub key: String,
    /// Name.
    pub name: String,
    /// `MESHCENTRAL`, `FLEET_MDM`, `TACTICAL_RMM` or `OPENFRAME_RMM`.
    pub tool_type: String,
    /// Disabled tools are not proxied.
    pub enabled: bool,
    /// The tool's URLs.
    pub urls: Vec<ToolUrlDto>,
    /// Whether credentials are configured.
    pub has_credentials: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<IntegratedTool> for ToolDto {
    fn from(t: IntegratedTool) -> Self {
        Self {
            has_credentials: t.has_credentials(),
            id: t.id.to_string(),
            key: t.key,
            name: t.name,
            tool_type: t.tool_type.as_str().to_owned(),
            enabled: t.enabled,
            urls: t
                .urls
                .into_iter()
                .map(|u| ToolUrlDto {
                    url: u.url,
                    kind: u.kind,
                })
                .collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A page of tools.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolsResponse {
    /// The tools.
    pub tools: Vec<ToolDto>,
    /// Paging state.
    pub page_info: PageInfoDto,
    /// How many match the filter.
    pub filtered_count: u64,
}

/// One run of a command on one machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDto {
    /// The batch id shared by every machine of one dispatch.
    pub execution_id: String,
    /// The machine.
    pub machine_id: String,
    /// `QUEUED`, `RUNNING`, `SUCCESS`, `FAILED`, `TIMED_OUT`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    /// The command or script body.
    pub code: String,
    /// The shell.
    pub shell: String,
    /// Timeout, seconds.
    pub timeout_seconds: u32,
    /// Who started it.
    pub initiated_by: Option<String>,
    /// When it was sent to the agent.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Standard output (at most 64 KiB).
    pub stdout: String,
    /// Standard error (at most 64 KiB).
    pub stderr: String,
    /// An agent-side or server-side error.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<Execution> for ExecutionDto {
    fn from(e: Execution) -> Self {
        let shell = serde_json::to_value(e.spec.shell)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            execution_id: e.execution_id,
            machine_id: e.machine_id.to_string(),
            status: e.status.as_str().to_owned(),
            code: e.spec.code,
            shell,
            timeout_seconds: e.spec.timeout_secs,
            initiated_by: e.initiated_by.map(|u| u.to_string()),
            dispatched_at: e.dispatched_at,
            finished_at: e.finished_at,
            exit_code: e.exit_code,
            stdout: e.stdout,
            stderr: e.stderr,
            error: e.error,
            created_at: e.created_at,
        }
    }
}

/// A page of executions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionsResponse {
    /// The executions, newest first.
    pub executions: Vec<ExecutionDto>,
    /// Paging state.
    pub page_info: PageInfoDto,
}

/// Every machine's run of one dispatch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionBatchResponse {
    /// The batch id.
    pub execution_id: String,
    /// One run per machine.
    pub executions: Vec<ExecutionDto>,
}

/// Runs a command on 1 to 100 machines.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunCommandRequest {
    /// The machines.
    pub machine_ids: Vec<String>,
    /// The command line.
    pub command: String,
    /// `POWERSHELL`, `CMD`, `BASH`, `PYTHON`, `NUSHELL` or `SHELL`.
    pub shell: String,
    /// Timeout, 1 to 3600 seconds.
    pub timeout_seconds: u32,
}

pub use super::events::{EventDto, EventsResponse};
