//! The event bus: NATS JetStream or Kafka when configured, else in process.

use std::sync::Arc;

use openframe_core::{Clock, Error, Result};
use openframe_stream::bus::EventBus;
use openframe_stream::bus::memory::InMemoryEventBus;

use super::Probe;
use crate::config::BusBackend;

/// A topic nobody creates: asking for its partitions is a round trip to the broker.
#[cfg(any(feature = "nats", feature = "kafka"))]
const PROBE_TOPIC: &str = "openframe.readyz";

/// Opens the event bus.
pub(super) async fn open(
    backend: &BusBackend,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn EventBus>, Probe)> {
    match backend {
        BusBackend::InProcess => Ok((
            Arc::new(InMemoryEventBus::builder().with_clock(clock).build()?),
            Probe::in_process("eventBus", "in-process"),
        )),
        #[cfg(feature = "nats")]
        BusBackend::Nats(url) => remote(
            Arc::new(
                openframe_stream::bus::nats::NatsEventBus::connect(url.expose())
                    .await?
                    .with_clock(clock),
            ),
            backend,
        ),
        #[cfg(feature = "kafka")]
        BusBackend::Kafka(url) => {
            use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
            // `kafka://host:9092,host2:9092?topic_prefix=acme.&session_timeout_ms=6000`: the
            // brokers and the bus settings (an unknown setting is a configuration error).
            let config = KafkaEventBusConfig::from_url(url.expose())?;
            remote(
                Arc::new(KafkaEventBus::new(config)?.with_clock(clock)),
                backend,
            )
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::invalid(
            "event_bus.url",
            format!(
                "this build has no {} event bus (feature `{}` of openframe-server)",
                other.name(),
                other.name()
            ),
        )),
    }
}

/// A broker-backed bus and its probe.
#[cfg(any(feature = "nats", feature = "kafka"))]
fn remote(bus: Arc<dyn EventBus>, backend: &BusBackend) -> Result<(Arc<dyn EventBus>, Probe)> {
    use futures::FutureExt;
    let probe_bus = bus.clone();
    let probe = Probe::new("eventBus", backend.name(), move || {
        let bus = probe_bus.clone();
        async move { bus.topic_partitions(PROBE_TOPIC).await.map(drop) }.boxed()
    });
    Ok((bus, probe))
}
