//! Commands and script runs: dispatch to one machine, a list or a filtered batch (at most
//! 100), cancel, and the execution records.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use openframe_agent::executions::{Execution, RunSpec};
use openframe_core::{
    Error, MachineId, PageRequest, SortDirection, SortField, SortSpec, TenantId, Timestamp,
};
use openframe_data::store::{Filter, Partition, SortKey, Value};
use openframe_data::{DocumentRepository, MachineSort, StoreSortField};

use super::connection::{SortInput, connection, list_complexity, page_request, sort_spec};
use super::context::caller;
use super::device::{Device, DeviceFilterInput, machine_id};
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode, encode};
use super::loaders::loaders;
use super::state::GraphqlState;
use super::user::UserObject;

/// Most machines one dispatch may target.
const MAX_TARGETS: usize = 100;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_agent::executions::ExecutionStatus")]
pub(crate) enum ExecutionStatus {
    /// Waiting for an offline machine.
    Queued,
    /// Sent; waiting for the result.
    Running,
    /// Exit code 0.
    Success,
    /// Failed.
    Failed,
    /// No result in time.
    TimedOut,
    /// Cancelled.
    Cancelled,
    /// The machine did not come back in time.
    Expired,
}

/// The shell to run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "ScriptShell", remote = "openframe_agent::executions::Shell")]
#[allow(clippy::enum_variant_names)] // `SHELL` is a wire name.
pub(crate) enum Shell {
    /// PowerShell.
    Powershell,
    /// cmd.
    Cmd,
    /// bash.
    Bash,
    /// Python.
    Python,
    /// Nushell.
    Nushell,
    /// sh.
    Shell,
}

/// The privilege to run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_agent::executions::PrivilegeLevel")]
pub(crate) enum PrivilegeLevel {
    /// The logged-in user.
    User,
    /// Administrator / root.
    Admin,
}

/// One machine's run of a command or script.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionObject(pub(crate) Execution);

#[Object(name = "Execution")]
impl ExecutionObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Execution, &self.0.id)
    }
    /// The batch id shared by every machine of one dispatch.
    async fn execution_id(&self) -> &str {
        &self.0.execution_id
    }
    /// The stored script, for script runs.
    async fn script_id(&self) -> Option<&str> {
        self.0.spec.script_id.as_deref()
    }
    /// The code run.
    async fn code(&self) -> &str {
        &self.0.spec.code
    }
    /// Shell.
    async fn shell(&self) -> Shell {
        self.0.spec.shell.into()
    }
    /// Privilege.
    async fn privilege_level(&self) -> PrivilegeLevel {
        self.0.spec.privilege_level.into()
    }
    /// Timeout, seconds.
    async fn timeout_seconds(&self) -> u32 {
        self.0.spec.timeout_secs
    }
    /// Status.
    async fn status(&self) -> ExecutionStatus {
        self.0.status.into()
    }
    /// When it was sent.
    async fn dispatched_at(&self) -> Option<Timestamp> {
        self.0.dispatched_at
    }
    /// When it finished.
    async fn finished_at(&self) -> Option<Timestamp> {
        self.0.finished_at
    }
    /// Exit code.
    async fn exit_code(&self) -> Option<i64> {
        self.0.exit_code
    }
    /// Standard output (at most 64 KiB).
    async fn stdout(&self) -> &str {
        &self.0.stdout
    }
    /// Whether stdout was cut.
    async fn stdout_truncated(&self) -> bool {
        self.0.stdout_truncated
    }
    /// Standard error (at most 64 KiB).
    async fn stderr(&self) -> &str {
        &self.0.stderr
    }
    /// Whether stderr was cut.
    async fn stderr_truncated(&self) -> bool {
        self.0.stderr_truncated
    }
    /// Run time reported by the agent.
    async fn execution_time_ms(&self) -> Option<i64> {
        self.0.execution_time_ms
    }
    /// Agent- or server-side error.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// The machine (batched).
    async fn machine(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Device>> {
        let m = loaders(ctx)?
            .machines
            .load_one(self.0.machine_id.clone())
            .await?;
        Ok(m.map(Device))
    }
    /// Who started it (batched).
    async fn initiator(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UserObject>> {
        let Some(user) = &self.0.initiated_by else {
            return Ok(None);
        };
        let u = loaders(ctx)?.users.load_one(user.clone()).await?;
        Ok(u.map(UserObject))
    }
}

connection!(ExecutionConnection, ExecutionEdge, ExecutionObject);

/// Sortable execution fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutionSort {
    /// By record id.
    Id,
    /// By creation time (default, newest first).
    CreatedAt,
}

impl SortField for ExecutionSort {
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

impl StoreSortField for ExecutionSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::CreatedAt => SortKey::Field("created_at"),
        }
    }
}

/// Execution list filter.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct ExecutionFilterInput {
    /// One batch.
    execution_id: Option<String>,
    /// Of these machines (global ids).
    machine_ids: Option<Vec<ID>>,
    /// Any of these statuses.
    statuses: Option<Vec<ExecutionStatus>>,
}

impl ExecutionFilterInput {
    fn to_filter(&self) -> openframe_core::Result<Filter> {
        let mut parts = Vec::new();
        if let Some(id) = &self.execution_id {
            openframe_core::validate::max_chars("executionId", id, 128)?;
            parts.push(Filter::Eq("execution_id", Value::str(id)));
        }
        if let Some(ids) = &self.machine_ids {
            openframe_core::validate::list("machineIds", ids)?;
            let ids = ids
                .iter()
                .map(|id| machine_id("machineIds", id).map(|m| Value::str(m.as_str())))
                .collect::<openframe_core::Result<Vec<_>>>()?;
            parts.push(Filter::In("machine_id", ids));
        }
        if let Some(statuses) = &self.statuses {
            openframe_core::validate::list("statuses", statuses)?;
            let statuses = statuses
                .iter()
                .map(|s| {
                    let s: openframe_agent::executions::ExecutionStatus = (*s).into();
                    Value::str(s.as_str())
                })
                .collect();
            parts.push(Filter::In("status", statuses));
        }
        Ok(Filter::and(parts))
    }
}

fn repo(state: &GraphqlState) -> DocumentRepository<Execution> {
    DocumentRepository::new(state.store.clone(), state.clock.clone())
}

/// Execution queries.
#[derive(Debug, Default)]
pub(crate) struct ExecutionQuery;

#[Object]
impl ExecutionQuery {
    /// A page of executions. Sort fields: id, createdAt (default createdAt DESC).
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn executions(
        &self,
        ctx: &Context<'_>,
        filter: Option<ExecutionFilterInput>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ExecutionConnection> {
        let (caller, state) = caller(ctx)?;
        let filter = filter.unwrap_or_default().to_filter().gql()?;
        let sort = sort_spec::<ExecutionSort>(sort).gql()?;
        let repo = repo(state);
        let partition = Partition::tenant(caller.tenant());
        let page = repo
            .page(
                &partition,
                filter.clone(),
                sort,
                &page_request(first, after, last, before),
            )
            .await
            .gql()?;
        let count = super::connection::counter(move || {
            let (repo, partition, filter) = (repo.clone(), partition.clone(), filter.clone());
            async move { repo.count(&partition, &filter).await }
        });
        Ok(ExecutionConnection::new(page, ExecutionObject, count))
    }

    /// One execution by global id.
    async fn execution(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ExecutionObject>> {
        let (caller, state) = caller(ctx)?;
        let raw = decode("id", NodeType::Execution, &id).gql()?;
        get_execution(state, caller.tenant(), &raw).await
    }
}

/// One execution record of `tenant` by its record id.
pub(crate) async fn get_execution(
    state: &GraphqlState,
    tenant: &TenantId,
    raw: &str,
) -> async_graphql::Result<Option<ExecutionObject>> {
    Ok(repo(state)
        .get(&Partition::tenant(tenant), raw)
        .await
        .gql()?
        .map(ExecutionObject))
}

/// Which machines to run on: a list of ids, or every device matching a filter (at most 100).
#[derive(Debug, Clone, InputObject)]
pub(crate) struct TargetInput {
    /// These machines (global ids).
    machine_ids: Option<Vec<ID>>,
    /// Every device matching this filter.
    filter: Option<DeviceFilterInput>,
    /// Search within the filter.
    search: Option<String>,
}

/// A command to run.
#[derive(Debug, InputObject)]
pub(crate) struct RunCommandInput {
    /// Where.
    target: TargetInput,
    /// The command.
    command: String,
    /// The shell.
    shell: Shell,
    /// The privilege (default ADMIN).
    privilege_level: Option<PrivilegeLevel>,
    /// Timeout in seconds (default 300).
    timeout_seconds: Option<u32>,
}

/// The result of a dispatch.
#[derive(SimpleObject)]
pub(crate) struct DispatchResult {
    /// The batch id.
    execution_id: String,
    /// One record per machine (RUNNING, or QUEUED for offline machines).
    executions: Vec<ExecutionObject>,
}

/// Resolves a target to machine ids of the caller's tenant.
pub(crate) async fn resolve_target(
    state: &GraphqlState,
    tenant: &TenantId,
    target: &TargetInput,
) -> openframe_core::Result<Vec<MachineId>> {
    match (&target.machine_ids, &target.filter) {
        (Some(ids), None) => {
            if ids.len() > MAX_TARGETS {
                return Err(Error::invalid("machineIds", "at most 100 machines"));
            }
            ids.iter().map(|id| machine_id("machineIds", id)).collect()
        }
        (None, Some(filter)) => {
            let filter = filter.to_filter(target.search.clone())?;
            let matched = state.repos.machines.count(tenant, &filter).await?;
            if matched == 0 || matched > MAX_TARGETS as u64 {
                return Err(Error::invalid(
                    "filter",
                    "must match between 1 and 100 devices",
                ));
            }
            let page = state
                .repos
                .machines
                .list(
                    tenant,
                    &filter,
                    SortSpec::new(MachineSort::Id, SortDirection::Asc),
                    &PageRequest::first(MAX_TARGETS as i64),
                )
                .await?;
            Ok(page.into_nodes().into_iter().map(|m| m.id).collect())
        }
        _ => Err(Error::invalid(
            "target",
            "give exactly one of machineIds or filter",
        )),
    }
}

/// Execution mutations.
#[derive(Debug, Default)]
pub(crate) struct ExecutionMutation;

#[Object]
impl ExecutionMutation {
    /// Runs a command on one machine, a list, or every device of a filter (1 to 100). All
    /// machines must belong to the caller's tenant, or nothing runs (`NOT_FOUND`).
    async fn run_command(
        &self,
        ctx: &Context<'_>,
        input: RunCommandInput,
    ) -> async_graphql::Result<DispatchResult> {
        let (caller, state) = caller(ctx)?;
        let machines = resolve_target(state, caller.tenant(), &input.target)
            .await
            .gql()?;
        let mut spec = RunSpec::command(
            input.command,
            input.shell.into(),
            input.timeout_seconds.unwrap_or(300),
        );
        if let Some(p) = input.privilege_level {
            spec.privilege_level = p.into();
        }
        dispatch(
            state,
            caller.tenant(),
            &machines,
            spec,
            caller.user_id().cloned(),
        )
        .await
    }

    /// Cancels every unfinished execution of a batch.
    async fn cancel_execution(
        &self,
        ctx: &Context<'_>,
        execution_id: String,
    ) -> async_graphql::Result<Vec<ExecutionObject>> {
        let (caller, state) = caller(ctx)?;
        let cancelled = state
            .executions
            .cancel(caller.tenant(), &execution_id)
            .await
            .gql()?;
        Ok(cancelled.into_iter().map(ExecutionObject).collect())
    }
}

/// Dispatches `spec` and shapes the result.
pub(crate) async fn dispatch(
    state: &GraphqlState,
    tenant: &TenantId,
    machines: &[MachineId],
    spec: RunSpec,
    initiated_by: Option<openframe_core::UserId>,
) -> async_graphql::Result<DispatchResult> {
    let executions = state
        .executions
        .dispatch(tenant, machines, spec, initiated_by)
        .await
        .gql()?;
    let execution_id = executions
        .first()
        .map(|e| e.execution_id.clone())
        .ok_or_else(|| to_gql(Error::Internal("dispatch returned nothing".into())))?;
    Ok(DispatchResult {
        execution_id,
        executions: executions.into_iter().map(ExecutionObject).collect(),
    })
}
