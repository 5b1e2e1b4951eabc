//! `/api/v1/executions`: list and read command runs; run a command with `executions:write`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use openframe_agent::executions::{Execution, ExecutionService, ExecutionStatus, RunSpec, Shell};
use openframe_core::{Clock, Error, MachineId, SortDirection, SortField, SortSpec};
use openframe_data::store::{DocumentStore, Filter, Partition, SortKey, Value};
use openframe_data::{DocumentRepository, StoreSortField};

use super::dto::{
    ExecutionBatchResponse, ExecutionDto, ExecutionsResponse, RunCommandRequest, rows,
};
use super::responses::{ItemErrors, ListErrors};
use super::{Caller, ExternalApi, scopes};
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiJson, ApiPath, QueryParams, cursor_errors, rename_field};

/// The execution service and a reader over its store.
#[derive(Debug, Clone)]
pub(super) struct Executions {
    service: ExecutionService,
    repo: DocumentRepository<Execution>,
}

impl Executions {
    pub(super) fn new(
        service: ExecutionService,
        store: Arc<dyn DocumentStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            service,
            repo: DocumentRepository::new(store, clock),
        }
    }
}

/// Executions sort by creation time only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecutionSort {
    CreatedAt,
}

impl SortField for ExecutionSort {
    const ALL: &'static [Self] = &[Self::CreatedAt];
    fn name(self) -> &'static str {
        "createdAt"
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for ExecutionSort {
    fn key(self) -> SortKey {
        SortKey::Field("created_at")
    }
}

fn parse_status(s: &str) -> openframe_core::Result<ExecutionStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).map_err(|_| {
        Error::invalid(
            "statuses",
            "must be one of: QUEUED, RUNNING, SUCCESS, FAILED, TIMED_OUT, CANCELLED, EXPIRED",
        )
    })
}

fn executions(api: &ExternalApi) -> ApiResult<&Executions> {
    api.executions
        .as_ref()
        .ok_or_else(|| ApiError::not_found("route"))
}

/// Lists executions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/executions",
    tag = "executions",
    params(
        ("machineId" = Option<String>, Query, description = "Only this machine's executions"),
        ("statuses" = Option<Vec<String>>, Query, description = "Any of QUEUED, RUNNING, SUCCESS, FAILED, TIMED_OUT, CANCELLED, EXPIRED"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's pageInfo.endCursor"),
        ("sortDirection" = Option<String>, Query, description = "ASC or DESC (default)"),
    ),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionsResponse),
        ListErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn list(
    State(api): State<ExternalApi>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Json<ExecutionsResponse>> {
    caller.require(scopes::EXECUTIONS_READ)?;
    q.only(&["machineId", "statuses", "limit", "cursor", "sortDirection"])?;
    let ex = executions(&api)?;
    let mut parts = Vec::new();
    if let Some(m) = q.get("machineId")? {
        let m = MachineId::parse(m).map_err(|e| rename_field(e, "machineId"))?;
        parts.push(Filter::Eq("machine_id", Value::str(m.as_str())));
    }
    let statuses = q.parsed_list("statuses", parse_status)?;
    if !statuses.is_empty() {
        parts.push(Filter::In(
            "status",
            statuses.iter().map(|s| Value::str(s.as_str())).collect(),
        ));
    }
    let sort = SortSpec::<ExecutionSort>::parse(None, q.get("sortDirection")?)?;
    let page = ex
        .repo
        .page(
            &Partition::tenant(caller.tenant()),
            Filter::and(parts),
            sort,
            &q.page()?,
        )
        .await
        .map_err(cursor_errors)?;
    let (executions, page_info) = rows(page);
    Ok(Json(ExecutionsResponse {
        page_info,
        executions,
    }))
}

/// Every machine's run of one dispatch.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{executionId}",
    tag = "executions",
    params(("executionId" = String, Path, description = "The batch id returned when the command was run")),
    responses(
        (status = 200, description = "The runs", body = ExecutionBatchResponse),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn get_one(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<ExecutionBatchResponse>> {
    caller.require(scopes::EXECUTIONS_READ)?;
    openframe_core::id::validate_id("executionId", &raw)?;
    let runs = executions(&api)?
        .service
        .list_batch(caller.tenant(), &raw)
        .await?;
    if runs.is_empty() {
        return Err(ApiError::not_found("execution"));
    }
    Ok(Json(ExecutionBatchResponse {
        execution_id: raw,
        executions: runs.into_iter().map(ExecutionDto::from).collect(),
    }))
}

/// Runs a command on 1 to 100 machines of the key's tenant. Online machines get it at once;
/// offline ones queue it. Nothing is stored or sent when any machine is unknown.
#[utoipa::path(
    post,
    path = "/api/v1/executions",
    tag = "executions",
    request_body = RunCommandRequest,
    responses(
        (status = 202, description = "Dispatched", body = ExecutionBatchResponse),
        ItemErrors,
    ),
    security(("ApiKeyAuth" = []))
)]
pub(super) async fn run(
    State(api): State<ExternalApi>,
    caller: Caller,
    ApiJson(body): ApiJson<RunCommandRequest>,
) -> ApiResult<(StatusCode, Json<ExecutionBatchResponse>)> {
    caller.require(scopes::EXECUTIONS_WRITE)?;
    let ex = executions(&api)?;
    openframe_core::validate::list("machineIds", &body.machine_ids)?;
    let machines = body
        .machine_ids
        .iter()
        .map(|m| MachineId::parse(m.as_str()).map_err(|e| rename_field(e, "machineIds")))
        .collect::<openframe_core::Result<Vec<_>>>()?;
    let shell: Shell =
        serde_json::from_value(serde_json::Value::String(body.shell.to_ascii_uppercase()))
            .map_err(|_| {
                Error::invalid(
                    "shell",
                    "must be one of: POWERSHELL, CMD, BASH, PYTHON, NUSHELL, SHELL",
                )
            })?;
    let spec = RunSpec::command(body.command, shell, body.timeout_seconds);
    let runs = ex
        .service
        .dispatch(
            caller.tenant(),
            &machines,
            spec,
            Some(caller.0.key.user_id.clone()),
        )
        .await?;
    let execution_id = runs
        .first()
        .map(|r| r.execution_id.clone())
        .unwrap_or_default();
    tracing::info!(tenant = %caller.tenant(), key_id = %caller.0.key.id, %execution_id, machines = runs.len(), "command dispatched through the external api");
    Ok((
        StatusCode::ACCEPTED,
        Json(ExecutionBatchResponse {
            execution_id,
            executions: runs.into_iter().map(ExecutionDto::from).collect(),
        }),
    ))
}
