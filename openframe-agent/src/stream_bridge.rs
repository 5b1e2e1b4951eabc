//! Bridge from the agent plane to the event bus: domain events and execution results become
//! records that openframe-stream's adapters turn into unified events.
//!
//! - [`StreamBridge`] is an [`AgentEventSink`]: each [`AgentEvent`] (registered, came online,
//!   went offline, uninstalled) is published as its camelCase JSON on [`AGENT_EVENTS_TOPIC`]
//!   with `message-type: AGENT_EVENT` (the `openframe_events` adapter's format).
//! - It is also an [`ExecutionObserver`]: give it to
//!   [`ExecutionService::with_observer`](crate::executions::ExecutionService::with_observer)
//!   and every execution a result finishes is published on [`AGENT_RESULTS_TOPIC`] as the
//!   agent's snake_case result with `message-type: COMMAND_EXECUTED | SCRIPT_EXECUTED`,
//!   `machine-id` and `tenant-id` headers (the `openframe_agent` adapter's format). A retried
//!   result finishes nothing, so it is not published twice.
//!
//! Records are keyed by machine id, so one machine's events stay in order. The tenant always
//! comes from the server (the event or the service call), never from the agent.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_agent::events::{AgentEvent, AgentEventKind, AgentEventSink};
//! use openframe_agent::stream_bridge::{AGENT_EVENTS_TOPIC, StreamBridge};
//! use openframe_core::{Clock, MachineId, MachineStatus, SystemClock, TenantId};
//! use openframe_stream::bus::{EventBus, memory::InMemoryEventBus};
//!
//! let bus = Arc::new(InMemoryEventBus::new());
//! bus.ensure_topic(AGENT_EVENTS_TOPIC, 3).await?;
//! let bridge = StreamBridge::new(bus.clone());
//! bridge.emit(AgentEvent {
//!     tenant: TenantId::parse("acme")?,
//!     machine_id: MachineId::parse("m-1")?,
//!     kind: AgentEventKind::CameOnline,
//!     previous_status: Some(MachineStatus::Offline),
//!     status: MachineStatus::Online,
//!     at: SystemClock.now(),
//! }).await?;
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use openframe_core::{Error, Result, TenantId};
use openframe_stream::adapters::openframe_agent::{MACHINE_HEADER, TENANT_HEADER};
use openframe_stream::adapters::openframe_events;
use openframe_stream::bus::{EventPublisher, Position, Record, validate_topic};
use serde_json::json;

use crate::events::{AgentEvent, AgentEventSink};
use crate::executions::{Execution, ExecutionObserver, ExecutionStatus};

/// The default topic of agent-plane domain events.
pub const AGENT_EVENTS_TOPIC: &str = "openframe.agent-events";
/// The default topic of execution results.
pub const AGENT_RESULTS_TOPIC: &str = "openframe.agent-results";

/// Publishes agent-plane domain events and execution results on the event bus.
#[derive(Debug, Clone)]
pub struct StreamBridge {
    publisher: Arc<dyn EventPublisher>,
    events_topic: String,
    results_topic: String,
}

impl StreamBridge {
    /// A bridge publishing on [`AGENT_EVENTS_TOPIC`] and [`AGENT_RESULTS_TOPIC`].
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
        Self {
            publisher,
            events_topic: AGENT_EVENTS_TOPIC.to_owned(),
            results_topic: AGENT_RESULTS_TOPIC.to_owned(),
        }
    }

    /// Publishes domain events on `topic` instead; `InvalidInput` for a malformed name.
    pub fn with_events_topic(mut self, topic: impl Into<String>) -> Result<Self> {
        self.events_topic = topic.into();
        validate_topic(&self.events_topic)?;
        Ok(self)
    }

    /// Publishes execution results on `topic` instead; `InvalidInput` for a malformed name.
    pub fn with_results_topic(mut self, topic: impl Into<String>) -> Result<Self> {
        self.results_topic = topic.into();
        validate_topic(&self.results_topic)?;
        Ok(self)
    }

    /// The record of a domain event.
    pub fn event_record(&self, event: &AgentEvent) -> Result<Record> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| Error::Internal(format!("encoding an agent event: {e}").into()))?;
        Ok(Record::new(self.events_topic.clone(), payload)
            .with_key(event.machine_id.as_str())
            .with_header("message-type", openframe_events::MESSAGE_TYPE)
            .with_header(TENANT_HEADER, event.tenant.as_str())
            .with_timestamp(event.at))
    }

    /// The record of a finished execution of `tenant`. `InvalidInput` if it is not final.
    pub fn result_record(&self, tenant: &TenantId, execution: &Execution) -> Result<Record> {
        if !execution.status.is_terminal() {
            return Err(Error::invalid("status", "the execution is not finished"));
        }
        let script_id = execution.spec.script_id.as_deref();
        let message_type = if script_id.is_some() {
            "SCRIPT_EXECUTED"
        } else {
            "COMMAND_EXECUTED"
        };
        let finished_at = execution
            .finished_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let payload = json!({
            "execution_id": execution.execution_id,
            "machine_id": execution.machine_id,
            "script_id": script_id,
            "status": execution.status.as_str(),
            "exit_code": execution.exit_code,
            "execution_time_ms": execution.execution_time_ms,
            "timed_out": execution.status == ExecutionStatus::TimedOut,
            "error": execution.error,
            "stdout": execution.stdout,
            "stderr": execution.stderr,
            "finished_at": finished_at,
        });
        let payload = serde_json::to_vec(&payload)
            .map_err(|e| Error::Internal(format!("encoding a result: {e}").into()))?;
        let mut record = Record::new(self.results_topic.clone(), payload)
            .with_key(execution.machine_id.as_str())
            .with_header("message-type", message_type)
            .with_header(MACHINE_HEADER, execution.machine_id.as_str())
            .with_header(TENANT_HEADER, tenant.as_str());
        if let Some(at) = execution.finished_at {
            record = record.with_timestamp(at);
        }
        Ok(record)
    }

    /// Publishes a finished execution of `tenant`.
    pub async fn publish_result(
        &self,
        tenant: &TenantId,
        execution: &Execution,
    ) -> Result<Position> {
        self.publisher
            .publish(self.result_record(tenant, execution)?)
            .await
    }
}

#[async_trait]
impl AgentEventSink for StreamBridge {
    async fn emit(&self, event: AgentEvent) -> Result<()> {
        self.publisher.publish(self.event_record(&event)?).await?;
        Ok(())
    }
}

#[async_trait]
impl ExecutionObserver for StreamBridge {
    async fn finished(&self, tenant: &TenantId, execution: &Execution) -> Result<()> {
        self.publish_result(tenant, execution).await?;
        Ok(())
    }
}
