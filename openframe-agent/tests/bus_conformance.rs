//! Every `AgentBus` backend against the shared conformance suite.
//!
//! The in-process bus always runs. The NATS bus runs (with `--features nats`) when
//! `OPENFRAME_TEST_NATS_URL` is set (`scripts/test-services.sh` starts a throwaway nats-server
//! with JetStream and sets it); otherwise each of its tests prints a `skipped:` line and passes.
//! Every check works in its own random subject and stream namespace and deletes its streams.

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::bus::AgentBus;
use openframe_agent::bus::memory::InMemoryAgentBus;

/// The in-process bus on the system clock with a fine tick (the suite's timing checks use
/// ack waits of a few hundred milliseconds).
async fn memory_bus() -> Option<Arc<dyn AgentBus>> {
    let bus = InMemoryAgentBus::builder()
        .with_tick(Duration::from_millis(5))
        .build()
        .expect("in-memory bus");
    Some(Arc::new(bus))
}

mod memory {
    openframe_agent::agent_bus_conformance!(super::memory_bus);
}

#[cfg(feature = "nats")]
mod nats {
    use std::sync::Arc;

    use openframe_agent::bus::AgentBus;
    use openframe_agent::bus::nats::{NatsAgentBus, NatsAgentBusOptions};

    const URL_VAR: &str = "OPENFRAME_TEST_NATS_URL";

    async fn nats_bus() -> Option<Arc<dyn AgentBus>> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => {
                let options =
                    NatsAgentBusOptions::new().with_name("openframe-agent-bus-conformance");
                let bus = NatsAgentBus::connect_with(&url, options)
                    .await
                    .expect("connect to the test NATS server");
                Some(Arc::new(bus))
            }
            _ => {
                println!("skipped: set {URL_VAR} to run the NATS agent bus suite");
                None
            }
        }
    }

    openframe_agent::agent_bus_conformance!(nats_bus);
}

#[cfg(not(feature = "nats"))]
#[test]
fn nats_suite_needs_the_feature() {
    println!(
        "skipped: build with --features nats (and set OPENFRAME_TEST_NATS_URL) to run the NATS agent bus suite"
    );
}
