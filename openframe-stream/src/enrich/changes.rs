//! Entity changes on the bus, so every replica drops its cached lookups.

use std::fmt;

use openframe_core::{MachineId, OrganizationId, Result, TenantId, ToolType};
use serde::{Deserialize, Serialize};

use super::Enricher;
use crate::bus::{
    ConsumerSpec, Delivered, EventBus, EventConsumer, EventPublisher, Position, Record,
    StartPosition, validate_group,
};

/// The default topic of [`EntityChange`]s.
pub const DEFAULT_CHANGES_TOPIC: &str = "openframe.entity-changes";

/// The `message-type` header of a published change.
const MESSAGE_TYPE: &str = "ENTITY_CHANGED";

/// An entity enrichment depends on changed: caches holding it must forget it.
///
/// JSON: `{"entity":"MACHINE","tenant":"acme","machineId":"m-1"}`,
/// `{"entity":"ORGANIZATION","tenant":..,"organizationId":..}`,
/// `{"entity":"TOOL_CONNECTION","tenant":..,"toolType":"FLEET_MDM","agentToolId":"42"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityChange {
    /// A machine changed (organization, deletion, ...).
    #[serde(rename_all = "camelCase")]
    Machine {
        /// The tenant.
        tenant: TenantId,
        /// The machine.
        machine_id: MachineId,
    },
    /// An organization changed (deleted, became the default, ...).
    #[serde(rename_all = "camelCase")]
    Organization {
        /// The tenant.
        tenant: TenantId,
        /// The organization.
        organization_id: OrganizationId,
    },
    /// A machine's connection to a tool was made, moved or removed.
    #[serde(rename_all = "camelCase")]
    ToolConnection {
        /// The tenant.
        tenant: TenantId,
        /// The tool.
        tool_type: ToolType,
        /// The tool's own id of the agent.
        agent_tool_id: String,
    },
}

impl EntityChange {
    /// The tenant of the change.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Machine { tenant, .. }
            | Self::Organization { tenant, .. }
            | Self::ToolConnection { tenant, .. } => tenant,
        }
    }
}

/// Publishes `change` on `topic`, keyed by its tenant, for every replica's [`ChangeListener`].
pub async fn publish_entity_change(
    publisher: &dyn EventPublisher,
    topic: &str,
    change: &EntityChange,
) -> Result<Position> {
    let payload = serde_json::to_vec(change)
        .map_err(|e| openframe_core::Error::Internal(format!("encoding a change: {e}").into()))?;
    publisher
        .publish(
            Record::new(topic, payload)
                .with_key(change.tenant().as_str())
                .with_header("message-type", MESSAGE_TYPE),
        )
        .await
}

/// Consumes the changes topic and invalidates the [`Enricher`]'s cache. Each replica runs one,
/// in its own consumer group (`entity-changes-{replica}`), from the latest change: its cache
/// is only as old as its process.
pub struct ChangeListener {
    enricher: Enricher,
    consumer: Box<dyn EventConsumer>,
    /// A change read but not yet applied and committed (retried first).
    pending: Option<Delivered>,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeListener")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Joins the group `entity-changes-{replica}` on `topic` (created with one partition if
    /// missing). `InvalidInput` if `replica` makes an invalid group name.
    pub async fn subscribe(
        bus: &dyn EventBus,
        topic: &str,
        replica: &str,
        enricher: Enricher,
    ) -> Result<Self> {
        let group = format!("entity-changes-{replica}");
        validate_group(&group)?;
        if bus.topic_partitions(topic).await?.is_none() {
            bus.ensure_topic(topic, 1).await?;
        }
        let consumer = bus
            .consumer(
                ConsumerSpec::new(group, [topic])
                    .with_start(StartPosition::Latest)
                    .with_max_in_flight(1),
            )
            .await?;
        Ok(Self {
            enricher,
            consumer,
            pending: None,
        })
    }

    /// Waits for the next change, applies it and commits it: `Some(Some(change))`. A malformed
    /// change is logged and skipped (`Some(None)`: it names nothing to invalidate); `None` when
    /// the topic is gone. A change whose invalidation or commit failed is retried by the next
    /// call. Cancel-safe between records.
    pub async fn apply_next(&mut self) -> Result<Option<Option<EntityChange>>> {
        let delivered = match self.pending.take() {
            Some(delivered) => delivered,
            None => match self.consumer.next().await? {
                Some(delivered) => delivered,
                None => return Ok(None),
            },
        };
        let change = match serde_json::from_slice::<EntityChange>(&delivered.record.payload) {
            Ok(change) => {
                if let Err(e) = self.enricher.apply(&change).await {
                    self.pending = Some(delivered);
                    return Err(e);
                }
                Some(change)
            }
            Err(_) => {
                tracing::warn!(
                    topic = %delivered.record.topic,
                    partition = delivered.position.partition,
                    offset = delivered.position.offset,
                    "malformed entity change skipped"
                );
                None
            }
        };
        if let Err(e) = self.consumer.commit_delivered(&delivered).await {
            self.pending = Some(delivered);
            return Err(e);
        }
        Ok(Some(change))
    }

    /// Applies changes until `shutdown` completes or the topic is gone; returns how many were
    /// applied. A failed invalidation is retried after a short pause (the change is not
    /// committed until applied).
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<u64> {
        tokio::pin!(shutdown);
        let mut applied = 0u64;
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(applied),
                next = self.apply_next() => match next {
                    Ok(Some(Some(_))) => applied += 1,
                    Ok(Some(None)) => {}
                    Ok(None) => return Ok(applied),
                    Err(e) => {
                        tracing::warn!(error = %e, "entity change not applied; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                },
            }
        }
    }
}
