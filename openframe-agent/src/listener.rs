//! The server side of agent traffic: heartbeats, hostnames and execution results arriving on
//! the [`AgentBus`] are routed to presence and executions.
//!
//! The machine is taken from the subject, and its tenant is looked up on the server
//! ([`MachineTenants`]): nothing the agent puts in a payload or header decides either. Server
//! replicas share the subscriptions through a queue group, so each message is handled once.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use openframe_core::{MachineId, MachineStatus, Result, TenantId};
use openframe_data::MachineRepository;

use crate::bus::{AgentBus, Headers, Message};
use crate::executions::{ExecutionService, MachineChannel, ResultMessage};
use crate::presence::PresenceService;
use crate::subjects::{MachineSubject, MachineSubjectKind};

/// Finds the tenant of a machine.
#[async_trait]
pub trait MachineTenants: Send + Sync + Debug + 'static {
    /// The machine's tenant, if the machine is known.
    async fn tenant_of(&self, machine: &MachineId) -> Result<Option<TenantId>>;
}

#[async_trait]
impl MachineTenants for crate::enrollment::EnrollmentService {
    async fn tenant_of(&self, machine: &MachineId) -> Result<Option<TenantId>> {
        self.tenant_of_client(&crate::enrollment::client_id_for(machine))
            .await
    }
}

/// Remembers resolved machines (a machine never changes tenant).
#[derive(Debug)]
pub struct CachedMachineTenants<T> {
    inner: T,
    known: Mutex<HashMap<MachineId, TenantId>>,
}

impl<T> CachedMachineTenants<T> {
    /// Caches `inner` (at most 100,000 machines; then it starts over).
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            known: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl<T: MachineTenants> MachineTenants for CachedMachineTenants<T> {
    async fn tenant_of(&self, machine: &MachineId) -> Result<Option<TenantId>> {
        if let Some(t) = self.known.lock().ok().and_then(|k| k.get(machine).cloned()) {
            return Ok(Some(t));
        }
        let found = self.inner.tenant_of(machine).await?;
        if let (Some(t), Ok(mut known)) = (&found, self.known.lock()) {
            if known.len() >= 100_000 {
                known.clear();
            }
            known.insert(machine.clone(), t.clone());
        }
        Ok(found)
    }
}

/// Sends execution messages over the agent bus.
#[derive(Debug, Clone)]
pub struct BusChannel(pub Arc<dyn AgentBus>);

#[async_trait]
impl MachineChannel for BusChannel {
    async fn send(&self, subject: &str, payload: Vec<u8>) -> Result<()> {
        self.0.publish(subject, payload, Headers::new()).await
    }
}

/// Routes agent traffic to presence and executions.
#[derive(Debug, Clone)]
pub struct AgentListener {
    tenants: Arc<dyn MachineTenants>,
    presence: PresenceService,
    executions: ExecutionService,
    machines: Arc<dyn MachineRepository>,
}

/// Messages of one subject kind handled at once.
const HANDLER_CONCURRENCY: usize = 32;

/// The queue group server replicas share.
pub const SERVER_QUEUE: &str = "openframe-server";

/// Decodes a JSON payload, also when the agent double-encoded it as a JSON string (as the
/// original agent does for heartbeats and hostnames).
pub fn decode_payload(payload: &[u8]) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match value {
        serde_json::Value::String(inner) => serde_json::from_str(&inner).ok(),
        other => Some(other),
    }
}

impl AgentListener {
    /// A listener.
    pub fn new(
        tenants: Arc<dyn MachineTenants>,
        presence: PresenceService,
        executions: ExecutionService,
        machines: Arc<dyn MachineRepository>,
    ) -> Self {
        Self {
            tenants,
            presence,
            executions,
            machines,
        }
    }

    /// Handles one message. Unknown machines and malformed payloads are dropped with a log
    /// line (never the payload: it may hold script output).
    pub async fn handle(&self, message: &Message) -> Result<()> {
        let Ok(subject) = MachineSubject::parse(&message.subject) else {
            return Ok(());
        };
        let machine = subject.machine_id.clone();
        let Some(tenant) = self.tenants.tenant_of(&machine).await? else {
            tracing::debug!(machine = %machine, "message from an unknown machine dropped");
            return Ok(());
        };
        match subject.kind {
            MachineSubjectKind::Heartbeat => {
                let t = self.presence.heartbeat(&tenant, &machine).await?;
                if t.status_changed() && t.after.status == MachineStatus::Online {
                    self.executions.deliver_queued(&tenant, &machine).await?;
                }
            }
            MachineSubjectKind::Hostname => {
                let hostname = decode_payload(&message.payload).and_then(|v| {
                    v.get("hostname")
                        .and_then(|h| h.as_str())
                        .map(str::to_owned)
                });
                if let Some(hostname) = hostname {
                    self.update_hostname(&tenant, &machine, hostname.trim())
                        .await?;
                }
                self.presence.heartbeat(&tenant, &machine).await?;
            }
            MachineSubjectKind::CommandExecutionResult
            | MachineSubjectKind::ScriptExecutionResult => {
                match decode_payload(&message.payload)
                    .and_then(|v| serde_json::from_value::<ResultMessage>(v).ok())
                {
                    Some(result) => {
                        self.executions
                            .ingest_result(&tenant, &machine, result)
                            .await?;
                    }
                    None => {
                        tracing::warn!(machine = %machine, bytes = message.payload.len(), "malformed execution result dropped")
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn update_hostname(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        hostname: &str,
    ) -> Result<()> {
        if openframe_core::validate::name("hostname", hostname).is_err() {
            return Ok(());
        }
        let Some(mut current) = self.machines.get(tenant, machine).await? else {
            return Ok(());
        };
        if current.hostname == hostname {
            return Ok(());
        }
        current.hostname = hostname.to_owned();
        match self.machines.update(tenant, current).await {
            Ok(_) | Err(openframe_core::Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Subscribes (as queue group [`SERVER_QUEUE`]) to heartbeats, hostnames and results and
    /// handles them until the task is aborted.
    pub async fn spawn(self, bus: Arc<dyn AgentBus>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let kinds = [
            MachineSubjectKind::Heartbeat,
            MachineSubjectKind::Hostname,
            MachineSubjectKind::CommandExecutionResult,
            MachineSubjectKind::ScriptExecutionResult,
        ];
        let mut tasks = Vec::new();
        for kind in kinds {
            let subscription = bus.queue_subscribe(&kind.pattern(), SERVER_QUEUE).await?;
            let listener = self.clone();
            // Bounded concurrency keeps up with bursts (10,000 agents reconnecting at once); each
            // handler is idempotent and `last_seen` never moves backwards, so order does not matter.
            tasks.push(tokio::spawn(async move {
                subscription
                    .for_each_concurrent(HANDLER_CONCURRENCY, |message| {
                        let listener = listener.clone();
                        async move {
                            if let Err(e) = listener.handle(&message).await {
                                tracing::warn!(subject = %message.subject, error = %e, "agent message failed");
                            }
                        }
                    })
                    .await;
            }));
        }
        Ok(tasks)
    }
}
