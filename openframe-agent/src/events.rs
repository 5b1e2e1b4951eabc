//! Domain events of the agent plane, emitted to subscribers (the stream issue turns them into
//! unified events).

use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use openframe_core::{MachineId, MachineStatus, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// What happened to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentEventKind {
    /// The machine enrolled (or re-enrolled).
    Registered,
    /// It was heard from after being PENDING or OFFLINE.
    CameOnline,
    /// It stayed silent past the offline threshold.
    WentOffline,
    /// The agent was uninstalled.
    Uninstalled,
}

/// One domain event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentEvent {
    /// The tenant.
    pub tenant: TenantId,
    /// The machine.
    pub machine_id: MachineId,
    /// What happened.
    pub kind: AgentEventKind,
    /// The status before, if it changed.
    pub previous_status: Option<MachineStatus>,
    /// The status after.
    pub status: MachineStatus,
    /// When (server time).
    pub at: Timestamp,
}

/// Receives agent-plane domain events. Implementations must not block for long; a failure is
/// logged by the emitter and does not undo the state change.
#[async_trait]
pub trait AgentEventSink: Send + Sync + Debug + 'static {
    /// Handles one event.
    async fn emit(&self, event: AgentEvent) -> openframe_core::Result<()>;
}

#[async_trait]
impl<T: AgentEventSink + ?Sized> AgentEventSink for std::sync::Arc<T> {
    async fn emit(&self, event: AgentEvent) -> openframe_core::Result<()> {
        self.as_ref().emit(event).await
    }
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct NoopEventSink;

#[async_trait]
impl AgentEventSink for NoopEventSink {
    async fn emit(&self, _event: AgentEvent) -> openframe_core::Result<()> {
        Ok(())
    }
}

/// Keeps events in memory (tests, demos).
#[derive(Debug, Default)]
pub struct RecordingEventSink {
    events: Mutex<Vec<AgentEvent>>,
}

impl RecordingEventSink {
    /// Events so far.
    pub fn events(&self) -> Vec<AgentEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl AgentEventSink for RecordingEventSink {
    async fn emit(&self, event: AgentEvent) -> openframe_core::Result<()> {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
        Ok(())
    }
}

/// Emits `event`, logging (not propagating) a sink failure.
pub async fn emit(sink: &dyn AgentEventSink, event: AgentEvent) {
    let (tenant, machine, kind) = (event.tenant.clone(), event.machine_id.clone(), event.kind);
    if let Err(e) = sink.emit(event).await {
        tracing::warn!(tenant = %tenant, machine = %machine, ?kind, error = %e, "agent event sink failed");
    }
}
