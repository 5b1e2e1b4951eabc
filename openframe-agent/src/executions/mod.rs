//! Commands and scripts: dispatch to one machine or a batch, results, watchdog, cancellation,
//! and a queue for offline machines.
//!
//! Every execution is stored RUNNING (or QUEUED) **before** anything is published, so the
//! watchdog can always reap it. Results are ingested idempotently: a retried result changes
//! nothing and a final state is never overwritten. Output is cut at 64 KiB with a flag. Unlike
//! the original, a command for an offline machine is not lost: it is queued and delivered when
//! the machine comes back, until its expiry.

mod model;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{
    Clock, Error, MachineId, MachineStatus, Result, ScriptId, ScriptStatus, TenantId, Timestamp,
    UserId,
};
use openframe_data::store::{CmpOp, DocumentStore, Filter, Partition, Value};
use openframe_data::{DocumentRepository, MachineRepository, ScriptRepository};

pub use model::{
    CancelMessage, CommandMessage, Execution, ExecutionStatus, MAX_CODE_BYTES, MAX_OUTPUT_BYTES,
    MAX_TIMEOUT_SECS, PrivilegeLevel, ResultMessage, RunSpec, ScriptMessage, Shell, truncate,
};

use crate::subjects::MachineSubjectKind;

/// Sends a message to one machine (implemented over the agent bus).
#[async_trait]
pub trait MachineChannel: Send + Sync + Debug + 'static {
    /// Publishes `payload` on `subject` (ephemeral: the agent must be connected).
    async fn send(&self, subject: &str, payload: Vec<u8>) -> Result<()>;
}

/// Told about every execution an agent result finished (e.g. to publish it as an event; see
/// `stream_bridge`). A failure is logged and does not undo the stored result.
#[async_trait]
pub trait ExecutionObserver: Send + Sync + Debug + 'static {
    /// Called once per execution, after its final state is stored.
    async fn finished(&self, tenant: &TenantId, execution: &Execution) -> Result<()>;
}

/// Execution settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionConfig {
    /// Most machines in one dispatch (default 100).
    pub max_batch: usize,
    /// Extra time after the timeout before the watchdog reaps a run (default 120 s).
    pub grace: Duration,
    /// How long a command waits for an offline machine (default 24 h).
    pub queue_ttl: Duration,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            max_batch: 100,
            grace: Duration::from_secs(120),
            queue_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// A run of a stored script: what a run may override of the script's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRun {
    /// The stored script (must be ACTIVE).
    pub script_id: ScriptId,
    /// Arguments (`None`: the script's `default_args`).
    pub args: Option<Vec<String>>,
    /// Timeout, seconds (`None`: the script's `default_timeout_secs`).
    pub timeout_secs: Option<u32>,
    /// Privilege (`None`: the script's `privilege_level`).
    pub privilege_level: Option<PrivilegeLevel>,
}

impl ScriptRun {
    /// A run of `script_id` with the script's defaults.
    pub fn new(script_id: ScriptId) -> Self {
        Self {
            script_id,
            args: None,
            timeout_secs: None,
            privilege_level: None,
        }
    }
}

/// Dispatches commands and scripts and tracks their executions.
#[derive(Debug, Clone)]
pub struct ExecutionService {
    repo: DocumentRepository<Execution>,
    scripts: Option<Arc<dyn ScriptRepository>>,
    machines: Arc<dyn MachineRepository>,
    channel: Arc<dyn MachineChannel>,
    clock: Arc<dyn Clock>,
    config: ExecutionConfig,
    observer: Option<Arc<dyn ExecutionObserver>>,
}

fn add(at: Timestamp, d: Duration) -> Timestamp {
    openframe_data::lock::add(at, d)
}

impl ExecutionService {
    /// An execution service storing in `store`, sending through `channel`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        machines: Arc<dyn MachineRepository>,
        channel: Arc<dyn MachineChannel>,
        clock: Arc<dyn Clock>,
        config: ExecutionConfig,
    ) -> Self {
        Self {
            repo: DocumentRepository::new(store, clock.clone()),
            scripts: None,
            machines,
            channel,
            clock,
            config,
            observer: None,
        }
    }

    /// Tells `observer` about every execution a result finishes.
    pub fn with_observer(mut self, observer: Arc<dyn ExecutionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Resolves stored scripts from `scripts` (for [`dispatch_script`](Self::dispatch_script)).
    pub fn with_scripts(mut self, scripts: Arc<dyn ScriptRepository>) -> Self {
        self.scripts = Some(scripts);
        self
    }

    /// Runs the stored script `run.script_id` of `tenant` on `machines`, as
    /// [`dispatch`](Self::dispatch) does. The script's code and shell are copied into each
    /// execution (a later edit of the script does not change a run in flight); arguments,
    /// timeout and privilege default to the script's. A script of another tenant, a deleted
    /// one or an unknown id is `NotFound`; an archived one is `InvalidInput` on `scriptId`;
    /// without [`with_scripts`](Self::with_scripts) it is `Internal` (a wiring mistake).
    pub async fn dispatch_script(
        &self,
        tenant: &TenantId,
        machines: &[MachineId],
        run: ScriptRun,
        initiated_by: Option<UserId>,
    ) -> Result<Vec<Execution>> {
        let Some(scripts) = &self.scripts else {
            return Err(Error::Internal(
                "stored scripts are not configured on this execution service".into(),
            ));
        };
        let script = match scripts.get(tenant, &run.script_id).await? {
            Some(s) if s.status != ScriptStatus::Deleted => s,
            _ => return Err(Error::not_found("script")),
        };
        if !script.is_runnable() {
            return Err(Error::invalid("scriptId", "the script is not active"));
        }
        let spec = RunSpec {
            script_id: Some(script.id.to_string()),
            code: script.code,
            shell: script.shell,
            privilege_level: run.privilege_level.unwrap_or(script.privilege_level),
            args: run.args.unwrap_or(script.default_args),
            timeout_secs: run.timeout_secs.unwrap_or(script.default_timeout_secs),
        };
        self.dispatch(tenant, machines, spec, initiated_by).await
    }

    /// Runs `spec` on `machines` (1 to 100, all of this tenant and not deleted or archived;
    /// otherwise nothing is stored or sent). Online machines get it now; the others queue it.
    pub async fn dispatch(
        &self,
        tenant: &TenantId,
        machines: &[MachineId],
        spec: RunSpec,
        initiated_by: Option<UserId>,
    ) -> Result<Vec<Execution>> {
        spec.validate()?;
        let mut ids: Vec<MachineId> = machines.to_vec();
        ids.sort();
        ids.dedup();
        if ids.is_empty() || ids.len() > self.config.max_batch {
            return Err(Error::invalid(
                "machineIds",
                format!("must name 1 to {} machines", self.config.max_batch),
            ));
        }
        let found = self.machines.get_many(tenant, &ids).await?;
        let usable = |m: &openframe_core::Machine| {
            !matches!(m.status, MachineStatus::Deleted | MachineStatus::Archived)
        };
        if found.len() != ids.len() || !found.iter().all(usable) {
            return Err(Error::not_found("machine"));
        }
        let execution_id = uuid::Uuid::now_v7().simple().to_string();
        let now = self.clock.now();
        let p = Partition::tenant(tenant);
        let mut out = Vec::with_capacity(found.len());
        for machine in found {
            let online = machine.status == MachineStatus::Online;
            let record = Execution {
                id: Execution::record_id(&execution_id, &machine.id),
                execution_id: execution_id.clone(),
                machine_id: machine.id.clone(),
                spec: spec.clone(),
                status: if online {
                    ExecutionStatus::Running
                } else {
                    ExecutionStatus::Queued
                },
                initiated_by: initiated_by.clone(),
                dispatched_at: online.then_some(now),
                queued_until: (!online).then(|| add(now, self.config.queue_ttl)),
                deadline: online.then(|| {
                    add(
                        now,
                        Duration::from_secs(u64::from(spec.timeout_secs)) + self.config.grace,
                    )
                }),
                finished_at: None,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                execution_time_ms: None,
                error: None,
                created_at: now,
                updated_at: now,
                version: 0,
            };
            let stored = self.repo.insert(&p, record).await?;
            out.push(stored);
        }
        for e in out.iter_mut() {
            if e.status == ExecutionStatus::Running {
                *e = self.send(tenant, e.clone()).await?;
            }
        }
        Ok(out)
    }

    /// Publishes a RUNNING execution; a failed publish fails the execution (never silently lost).
    async fn send(&self, tenant: &TenantId, execution: Execution) -> Result<Execution> {
        let (kind, payload) = match &execution.spec.script_id {
            None => (
                MachineSubjectKind::CommandExecution,
                serde_json::to_vec(&CommandMessage {
                    execution_id: execution.execution_id.clone(),
                    code: execution.spec.code.clone(),
                    shell: execution.spec.shell,
                    privilege_level: execution.spec.privilege_level,
                    timeout: execution.spec.timeout_secs,
                }),
            ),
            Some(script) => (
                MachineSubjectKind::ScriptExecution,
                serde_json::to_vec(&ScriptMessage {
                    execution_id: execution.execution_id.clone(),
                    schedule_id: None,
                    script_id: Some(script.clone()),
                    machine_id: execution.machine_id.to_string(),
                    code: execution.spec.code.clone(),
                    shell: execution.spec.shell,
                    privilege_level: execution.spec.privilege_level,
                    args: execution.spec.args.clone(),
                    timeout_seconds: execution.spec.timeout_secs,
                }),
            ),
        };
        let payload =
            payload.map_err(|e| Error::Internal(format!("encoding an execution: {e}").into()))?;
        let subject = kind.subject_for(&execution.machine_id)?;
        match self.channel.send(&subject, payload).await {
            Ok(()) => Ok(execution),
            Err(e) => {
                tracing::warn!(tenant = %tenant, machine = %execution.machine_id, error = %e, "dispatch failed");
                self.finish(
                    tenant,
                    &execution.id,
                    ExecutionStatus::Failed,
                    Some("the command could not be sent to the agent".into()),
                )
                .await
            }
        }
    }

    /// Moves a non-final execution to a final state (no-op on a final one).
    async fn finish(
        &self,
        tenant: &TenantId,
        id: &str,
        status: ExecutionStatus,
        error: Option<String>,
    ) -> Result<Execution> {
        let m = self
            .repo
            .modify(&Partition::tenant(tenant), id, |e, now| {
                if e.status.is_terminal() {
                    return Ok(false);
                }
                e.status = status;
                e.error = error.clone();
                e.finished_at = Some(now);
                Ok(true)
            })
            .await?;
        Ok(m.after)
    }

    /// Sends the queued, unexpired executions of `machine` (call it when the machine comes
    /// online); expired ones become EXPIRED. Returns how many were sent.
    pub async fn deliver_queued(&self, tenant: &TenantId, machine: &MachineId) -> Result<usize> {
        let p = Partition::tenant(tenant);
        let filter = Filter::and(vec![
            Filter::Eq("machine_id", Value::str(machine.as_str())),
            Filter::Eq("status", Value::str(ExecutionStatus::Queued.as_str())),
        ]);
        let queued = self.repo.find_all(&p, filter, 1000).await?;
        let mut sent = 0;
        for e in queued {
            let timeout = Duration::from_secs(u64::from(e.spec.timeout_secs)) + self.config.grace;
            let m = self
                .repo
                .modify(&p, &e.id, |e, now| {
                    if e.status != ExecutionStatus::Queued {
                        return Ok(false);
                    }
                    if e.queued_until.is_some_and(|until| until <= now) {
                        e.status = ExecutionStatus::Expired;
                        e.finished_at = Some(now);
                        e.error =
                            Some("the machine did not come back before the queue expired".into());
                    } else {
                        e.status = ExecutionStatus::Running;
                        e.dispatched_at = Some(now);
                        e.deadline = Some(add(now, timeout));
                    }
                    Ok(true)
                })
                .await?;
            if m.applied && m.after.status == ExecutionStatus::Running {
                self.send(tenant, m.after).await?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Ingests a result from `machine` (the subject's machine, never the payload's). Returns the
    /// execution if this result finished it; `None` if it was already final (a retried result)
    /// or unknown.
    pub async fn ingest_result(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        mut result: ResultMessage,
    ) -> Result<Option<Execution>> {
        if result.execution_id.is_empty() || result.execution_id.len() > 128 {
            return Err(Error::invalid("execution_id", "malformed"));
        }
        let stdout_truncated = truncate(&mut result.stdout, MAX_OUTPUT_BYTES);
        let stderr_truncated = truncate(&mut result.stderr, MAX_OUTPUT_BYTES);
        if let Some(err) = &mut result.error {
            truncate(err, 4096);
        }
        let id = Execution::record_id(&result.execution_id, machine);
        let outcome = self
            .repo
            .modify(&Partition::tenant(tenant), &id, |e, now| {
                if e.status.is_terminal() {
                    return Ok(false);
                }
                e.status = if result.timed_out {
                    ExecutionStatus::TimedOut
                } else if result.exit_code == Some(0) && result.error.is_none() {
                    ExecutionStatus::Success
                } else {
                    ExecutionStatus::Failed
                };
                e.exit_code = result.exit_code;
                e.stdout = result.stdout.clone();
                e.stderr = result.stderr.clone();
                e.stdout_truncated = stdout_truncated;
                e.stderr_truncated = stderr_truncated;
                e.execution_time_ms = result.execution_time_ms;
                e.error = result.error.clone();
                e.finished_at = Some(now);
                Ok(true)
            })
            .await;
        match outcome {
            Ok(m) if m.applied => {
                if let Some(observer) = &self.observer {
                    if let Err(e) = observer.finished(tenant, &m.after).await {
                        tracing::warn!(tenant = %tenant, machine = %machine, error = %e, "execution observer failed");
                    }
                }
                Ok(Some(m.after))
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Cancels every non-final execution of a batch; running ones get a cancel message.
    pub async fn cancel(&self, tenant: &TenantId, execution_id: &str) -> Result<Vec<Execution>> {
        let p = Partition::tenant(tenant);
        let all = self.list_batch(tenant, execution_id).await?;
        if all.is_empty() {
            return Err(Error::not_found("execution"));
        }
        let mut cancelled = Vec::new();
        for e in all {
            let m = self
                .repo
                .modify(&p, &e.id, |e, now| {
                    if e.status.is_terminal() {
                        return Ok(false);
                    }
                    e.status = ExecutionStatus::Cancelled;
                    e.finished_at = Some(now);
                    Ok(true)
                })
                .await?;
            if m.applied {
                if m.before.status == ExecutionStatus::Running {
                    let payload = serde_json::to_vec(&CancelMessage {
                        execution_id: execution_id.to_owned(),
                    })
                    .map_err(|e| Error::Internal(format!("encoding a cancel: {e}").into()))?;
                    let subject =
                        MachineSubjectKind::CommandCancel.subject_for(&m.after.machine_id)?;
                    if let Err(e) = self.channel.send(&subject, payload).await {
                        tracing::warn!(tenant = %tenant, error = %e, "cancel message not delivered");
                    }
                }
                cancelled.push(m.after);
            }
        }
        Ok(cancelled)
    }

    /// Every execution of a batch.
    pub async fn list_batch(
        &self,
        tenant: &TenantId,
        execution_id: &str,
    ) -> Result<Vec<Execution>> {
        if execution_id.is_empty() || execution_id.len() > 128 {
            return Err(Error::invalid("executionId", "malformed"));
        }
        self.repo
            .find_all(
                &Partition::tenant(tenant),
                Filter::Eq("execution_id", Value::str(execution_id)),
                1000,
            )
            .await
    }

    /// One execution.
    pub async fn get(
        &self,
        tenant: &TenantId,
        execution_id: &str,
        machine: &MachineId,
    ) -> Result<Option<Execution>> {
        self.repo
            .get(
                &Partition::tenant(tenant),
                &Execution::record_id(execution_id, machine),
            )
            .await
    }

    /// Reaps RUNNING executions past their deadline (TIMED_OUT) and QUEUED ones past their
    /// expiry (EXPIRED). Returns how many were finished.
    pub async fn watchdog(&self, tenant: &TenantId) -> Result<usize> {
        let now = self.clock.now();
        let p = Partition::tenant(tenant);
        let overdue = Filter::Or(vec![
            Filter::and(vec![
                Filter::Eq("status", Value::str(ExecutionStatus::Running.as_str())),
                Filter::Cmp("deadline", CmpOp::Lt, Value::time(now)),
            ]),
            Filter::and(vec![
                Filter::Eq("status", Value::str(ExecutionStatus::Queued.as_str())),
                Filter::Cmp("queued_until", CmpOp::Lte, Value::time(now)),
            ]),
        ]);
        let mut reaped = 0;
        for e in self.repo.find_all(&p, overdue, 1000).await? {
            let (status, error) = if e.status == ExecutionStatus::Running {
                (
                    ExecutionStatus::TimedOut,
                    "no result received before the timeout",
                )
            } else {
                (
                    ExecutionStatus::Expired,
                    "the machine did not come back before the queue expired",
                )
            };
            let m = self
                .repo
                .modify(&p, &e.id, |x, now| {
                    if x.status != e.status {
                        return Ok(false);
                    }
                    x.status = status;
                    x.error = Some(error.to_owned());
                    x.finished_at = Some(now);
                    Ok(true)
                })
                .await?;
            if m.applied {
                reaped += 1;
            }
        }
        Ok(reaped)
    }
}
