//! Publishes tool installations when a machine registers or reinstalls, as an event sink.

use async_trait::async_trait;
use openframe_core::Result;

use super::ToolInstallationService;
use crate::events::{AgentEvent, AgentEventKind, AgentEventSink};

/// An [`AgentEventSink`] decorator: on `Registered` (registration and reinstall) it publishes
/// every enabled tool agent to the machine, then passes the event on to `inner`.
#[derive(Debug, Clone)]
pub struct InstallOnRegistration<S> {
    tools: ToolInstallationService,
    inner: S,
}

impl<S> InstallOnRegistration<S> {
    /// Wraps `inner`.
    pub fn new(tools: ToolInstallationService, inner: S) -> Self {
        Self { tools, inner }
    }
}

#[async_trait]
impl<S: AgentEventSink> AgentEventSink for InstallOnRegistration<S> {
    async fn emit(&self, event: AgentEvent) -> Result<()> {
        if event.kind == AgentEventKind::Registered {
            match self
                .tools
                .install_on_registration(&event.tenant, &event.machine_id)
                .await
            {
                Ok(report) if !report.failed.is_empty() => {
                    tracing::warn!(tenant = %event.tenant, machine = %event.machine_id, failed = report.failed.len(), "some tool installations were not published");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tenant = %event.tenant, machine = %event.machine_id, error = %e, "tool installation at registration failed")
                }
            }
        }
        self.inner.emit(event).await
    }
}
