//! The streams and agent consumers of the original agent protocol.

use std::time::Duration;

use openframe_core::{MachineId, Result};

use super::{ConsumerSpec, DeliverPolicy, StreamSpec};
use crate::subjects::{self, MachineSubjectKind};

/// The names of the streams in [`agent_streams`], as the original server and agent spell them.
pub mod stream_names {
    /// Tool installs and uninstalls for each machine (`machine.*.tool-installation`,
    /// `machine.*.tool-uninstall`).
    pub const TOOL_INSTALLATION: &str = "TOOL_INSTALLATION";
    /// The OpenFrame client update broadcast (`machine.all.client-update`).
    pub const CLIENT_UPDATE: &str = "CLIENT_UPDATE";
    /// Tool agent update broadcasts (`machine.all.tool.*.update`).
    pub const TOOL_UPDATE: &str = "TOOL_UPDATE";
    /// Client uninstall commands (`machine.*.client-uninstall`).
    pub const CLIENT_UNINSTALL: &str = "CLIENT_UNINSTALL";
    /// Tool connections reported by agents (`machine.*.tool-connection`).
    pub const TOOL_CONNECTIONS: &str = "TOOL_CONNECTIONS";
    /// Installed agents reported by agents (`machine.*.installed-agent`,
    /// `user.*.installed-agent`).
    pub const INSTALLED_AGENTS: &str = "INSTALLED_AGENTS";
    /// Hostnames reported by agents (`machine.*.hostname`).
    pub const MACHINE_HOSTNAME: &str = "MACHINE_HOSTNAME";
    /// Agent log batches (`agents.logs`).
    pub const AGENT_LOGS: &str = "AGENT_LOGS";
}

use stream_names::*;

/// The `ack_wait` of the agent's own consumers (the original agent uses 120 s).
pub const AGENT_ACK_WAIT: Duration = Duration::from_secs(120);

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The streams the original agent expects; the server calls
/// [`AgentBus::ensure_streams`](super::AgentBus::ensure_streams) with them on start.
///
/// | stream | subjects | limits |
/// |---|---|---|
/// | `TOOL_INSTALLATION` | `machine.*.tool-installation`, `machine.*.tool-uninstall` | 100 per subject |
/// | `CLIENT_UPDATE` | `machine.all.client-update` | 10 per subject |
/// | `TOOL_UPDATE` | `machine.all.tool.*.update` | 10 per subject |
/// | `CLIENT_UNINSTALL` | `machine.*.client-uninstall` | 10 per subject |
/// | `TOOL_CONNECTIONS` | `machine.*.tool-connection` | 7 days, 100 per subject |
/// | `INSTALLED_AGENTS` | `machine.*.installed-agent`, `user.*.installed-agent` | 7 days, 100 per subject |
/// | `MACHINE_HOSTNAME` | `machine.*.hostname` | 7 days, 100 per subject |
/// | `AGENT_LOGS` | `agents.logs` | 1 day, 100 000 messages |
///
/// Names and subjects are the original's (the original server captured `machine.*.client-update`
/// and `machine.*.tool.*.update`, but agents only consume the `machine.all…` broadcasts). The
/// limits are ours: the original set none, which an in-memory bus cannot afford. Commands to
/// agents (`command-execution`, `script-execution`, ...) are deliberately not captured: the
/// original agent receives them as core messages only, so a stream would deliver nothing more;
/// the server tracks executions in its own store (RUNNING rows reaped by a watchdog). The
/// agent's heartbeats are not captured either (the agent publishes `machine.*.hostname` as a
/// core message; capturing it in `MACHINE_HOSTNAME` is what lets the server process it
/// durably).
///
/// ```
/// use openframe_agent::bus::{agent_streams, stream_names};
/// let streams = agent_streams();
/// assert_eq!(streams.len(), 8);
/// assert!(streams.iter().all(|s| s.validate().is_ok()));
/// assert_eq!(streams[0].name, stream_names::TOOL_INSTALLATION);
/// ```
pub fn agent_streams() -> Vec<StreamSpec> {
    let per_machine = |kind: MachineSubjectKind| kind.pattern();
    vec![
        StreamSpec::new(
            TOOL_INSTALLATION,
            [
                per_machine(MachineSubjectKind::ToolInstallation),
                per_machine(MachineSubjectKind::ToolUninstall),
            ],
        )
        .with_max_messages_per_subject(100),
        StreamSpec::new(CLIENT_UPDATE, [subjects::CLIENT_UPDATE]).with_max_messages_per_subject(10),
        StreamSpec::new(TOOL_UPDATE, [subjects::TOOL_UPDATE_PATTERN])
            .with_max_messages_per_subject(10),
        StreamSpec::new(
            CLIENT_UNINSTALL,
            [per_machine(MachineSubjectKind::ClientUninstall)],
        )
        .with_max_messages_per_subject(10),
        StreamSpec::new(
            TOOL_CONNECTIONS,
            [per_machine(MachineSubjectKind::ToolConnection)],
        )
        .with_max_age(7 * DAY)
        .with_max_messages_per_subject(100),
        StreamSpec::new(
            INSTALLED_AGENTS,
            [
                per_machine(MachineSubjectKind::InstalledAgent),
                "user.*.installed-agent".to_owned(),
            ],
        )
        .with_max_age(7 * DAY)
        .with_max_messages_per_subject(100),
        StreamSpec::new(
            MACHINE_HOSTNAME,
            [per_machine(MachineSubjectKind::Hostname)],
        )
        .with_max_age(7 * DAY)
        .with_max_messages_per_subject(100),
        StreamSpec::new(AGENT_LOGS, [subjects::AGENT_LOGS])
            .with_max_age(DAY)
            .with_max_messages(100_000),
    ]
}

/// The durable consumers the original agent creates for `machine_id` (all explicit ack,
/// `ack_wait` 120 s), with its durable names:
///
/// | stream | filter | deliver | max deliver | durable name |
/// |---|---|---|---|---|
/// | `TOOL_INSTALLATION` | `machine.{id}.tool-installation` | all | 10 | `machine_{id}_tool-installation_consumer` |
/// | `TOOL_INSTALLATION` | `machine.{id}.tool-uninstall` | all | 20 | `machine_{id}_tool-uninstall_consumer` |
/// | `CLIENT_UPDATE` | `machine.all.client-update` | new | 10 | `machine_{id}_client-update_consumer_v2` |
/// | `TOOL_UPDATE` | `machine.all.tool.*.update` | new | 10 | `machine_{id}_tool_update_consumer` |
/// | `CLIENT_UNINSTALL` | `machine.{id}.client-uninstall` | new | 10 | `machine_{id}_client-uninstall_consumer` |
///
/// An agent built on this crate binds these; the server can use them to pre-create an agent's
/// consumers. (The original agent creates them as NATS push consumers; the NATS bus binds pull
/// consumers, so it reports a `Conflict` if the original agent already created one of these
/// names.) `InvalidInput` if the machine id is reserved.
pub fn agent_consumers(machine_id: &MachineId) -> Result<Vec<ConsumerSpec>> {
    let subject = |kind: MachineSubjectKind| kind.subject_for(machine_id);
    let durable = |suffix: &str| format!("machine_{machine_id}_{suffix}");
    let spec = |stream: &str, suffix: &str, filter: String, deliver, max_deliver| {
        ConsumerSpec::new(stream, durable(suffix))
            .with_filter(filter)
            .with_deliver(deliver)
            .with_ack_wait(AGENT_ACK_WAIT)
            .with_max_deliver(max_deliver)
    };
    Ok(vec![
        spec(
            TOOL_INSTALLATION,
            "tool-installation_consumer",
            subject(MachineSubjectKind::ToolInstallation)?,
            DeliverPolicy::All,
            10,
        ),
        spec(
            TOOL_INSTALLATION,
            "tool-uninstall_consumer",
            subject(MachineSubjectKind::ToolUninstall)?,
            DeliverPolicy::All,
            20,
        ),
        spec(
            CLIENT_UPDATE,
            "client-update_consumer_v2",
            subjects::CLIENT_UPDATE.to_owned(),
            DeliverPolicy::New,
            10,
        ),
        spec(
            TOOL_UPDATE,
            "tool_update_consumer",
            subjects::TOOL_UPDATE_PATTERN.to_owned(),
            DeliverPolicy::New,
            10,
        ),
        spec(
            CLIENT_UNINSTALL,
            "client-uninstall_consumer",
            subject(MachineSubjectKind::ClientUninstall)?,
            DeliverPolicy::New,
            10,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::overlap;

    #[test]
    fn streams_are_valid_and_disjoint() {
        let streams = agent_streams();
        for (i, a) in streams.iter().enumerate() {
            a.validate().unwrap();
            for b in &streams[..i] {
                assert_ne!(a.name, b.name);
                for x in &a.subjects {
                    for y in &b.subjects {
                        assert!(!overlap(x, y), "{x} overlaps {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn agent_consumers_fit_their_streams() {
        let id = MachineId::generate();
        let streams = agent_streams();
        let consumers = agent_consumers(&id).unwrap();
        assert_eq!(consumers.len(), 5);
        for consumer in &consumers {
            consumer.validate().unwrap();
            let stream = streams.iter().find(|s| s.name == consumer.stream).unwrap();
            let filter = consumer.filter_subject.as_deref().unwrap();
            assert!(stream.subjects.iter().any(|s| overlap(s, filter)));
            assert!(consumer.durable_name.starts_with(&format!("machine_{id}_")));
        }
        assert!(agent_consumers(&MachineId::parse("all").unwrap()).is_err());
    }
}
