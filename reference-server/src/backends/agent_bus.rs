//! The agent bus: NATS JetStream when configured, else in process. The agent streams are
//! created (or updated) on open.

use std::sync::Arc;

use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::bus::{AgentBus, agent_streams};
use openframe_core::{Clock, Result};

use super::Probe;
use crate::config::BusBackend;

#[cfg(feature = "nats")]
/// A subject no one publishes on: subscribing to it and flushing is the NATS round trip.
const PROBE_SUBJECT: &str = "openframe.readyz";

/// Opens the bus and ensures the agent streams exist.
pub(super) async fn open(
    backend: &BusBackend,
    clock: Arc<dyn Clock>,
    credentials: Option<openframe_core::Secret>,
) -> Result<(Arc<dyn AgentBus>, Probe)> {
    #[cfg(not(feature = "nats"))]
    drop(credentials);
    let (bus, probe): (Arc<dyn AgentBus>, Probe) = match backend {
        #[cfg(feature = "nats")]
        BusBackend::Nats(url) => {
            use openframe_agent::bus::nats::{NatsAgentBus, NatsAgentBusOptions};
            let mut options = NatsAgentBusOptions::new().with_name("openframe-server");
            if let Some(credentials) = credentials {
                options = options.with_credentials(credentials);
            }
            let bus: Arc<dyn AgentBus> =
                Arc::new(NatsAgentBus::connect_with(url.expose(), options).await?);
            let probe_bus = bus.clone();
            use futures::FutureExt;
            let probe = Probe::new("agentBus", "nats", move || {
                let bus = probe_bus.clone();
                async move { bus.subscribe(PROBE_SUBJECT).await.map(drop) }.boxed()
            });
            (bus, probe)
        }
        #[cfg(not(feature = "nats"))]
        BusBackend::Nats(_) => {
            return Err(openframe_core::Error::invalid(
                "agent_bus.url",
                "this build has no NATS support (feature `nats` of openframe-server)",
            ));
        }
        // Kafka is refused for the agent bus by configuration validation; credentials are
        // only ever made for a NATS agent bus.
        BusBackend::InProcess | BusBackend::Kafka(_) => (
            Arc::new(InMemoryAgentBus::builder().with_clock(clock).build()?),
            Probe::in_process("agentBus", "in-process"),
        ),
    };
    bus.ensure_streams(&agent_streams()).await?;
    Ok((bus, probe))
}
