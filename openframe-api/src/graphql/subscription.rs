//! Subscriptions: machine status changes and new unified events of the caller's tenant,
//! fed through in-process broadcast channels.
//!
//! The server wires [`GraphqlEvents::sink`] into the agent plane (presence, enrollment) and
//! calls [`GraphqlEvents::publish_event`] for each stored unified event. A slow subscriber
//! that falls more than the channel capacity behind skips the missed items.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Subscription};
use async_trait::async_trait;
use futures::Stream;
use openframe_agent::events::{AgentEvent, AgentEventSink};
use openframe_core::{TenantId, Timestamp};
use openframe_stream::model::UnifiedEvent;
use tokio::sync::broadcast;

use super::context::caller;
use super::device::DeviceStatus;
use super::event::EventObject;
use super::ids::{NodeType, encode};

/// Default number of buffered items per channel.
const DEFAULT_CAPACITY: usize = 1024;

/// The broadcast channels behind the subscriptions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GraphqlEvents {
    machines: broadcast::Sender<AgentEvent>,
    events: broadcast::Sender<UnifiedEvent>,
}

impl Default for GraphqlEvents {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl GraphqlEvents {
    /// Channels buffering `capacity` items each (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            machines: broadcast::channel(capacity).0,
            events: broadcast::channel(capacity).0,
        }
    }

    /// An [`AgentEventSink`] that feeds `machineStatusChanged`.
    pub fn sink(&self) -> Arc<dyn AgentEventSink> {
        Arc::new(BroadcastSink(self.machines.clone()))
    }

    /// How many `machineStatusChanged` and `eventAdded` streams are open (for metrics).
    pub fn subscriber_counts(&self) -> (usize, usize) {
        (self.machines.receiver_count(), self.events.receiver_count())
    }

    /// Feeds `eventAdded`; events without a tenant are dropped (nobody may see them).
    pub fn publish_event(&self, event: UnifiedEvent) {
        if event.tenant.is_some() {
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }
}

/// Broadcasts agent events.
#[derive(Debug)]
struct BroadcastSink(broadcast::Sender<AgentEvent>);

#[async_trait]
impl AgentEventSink for BroadcastSink {
    async fn emit(&self, event: AgentEvent) -> openframe_core::Result<()> {
        let _ = self.0.send(event);
        Ok(())
    }
}

/// What happened to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_agent::events::AgentEventKind")]
pub(crate) enum MachineEventKind {
    /// Enrolled.
    Registered,
    /// Came online.
    CameOnline,
    /// Went offline.
    WentOffline,
    /// Agent uninstalled.
    Uninstalled,
}

/// A machine's status change.
#[derive(Debug, Clone)]
pub(crate) struct MachineStatusChange(AgentEvent);

#[Object]
impl MachineStatusChange {
    /// The machine's global id.
    async fn id(&self) -> ID {
        encode(NodeType::Machine, self.0.machine_id.as_str())
    }
    /// The agent machine id.
    async fn machine_id(&self) -> &str {
        self.0.machine_id.as_str()
    }
    /// What happened.
    async fn kind(&self) -> MachineEventKind {
        self.0.kind.into()
    }
    /// The status before, if it changed.
    async fn previous_status(&self) -> Option<DeviceStatus> {
        self.0.previous_status.map(Into::into)
    }
    /// The status now.
    async fn status(&self) -> DeviceStatus {
        self.0.status.into()
    }
    /// When.
    async fn at(&self) -> Timestamp {
        self.0.at
    }
}

/// Items of `rx` that `keep` accepts, skipping over lag.
fn tenant_stream<T: Clone + Send + 'static, U: Send + 'static>(
    rx: broadcast::Receiver<T>,
    tenant: TenantId,
    keep: fn(&T, &TenantId) -> bool,
    wrap: fn(T) -> U,
) -> impl Stream<Item = U> {
    futures::stream::unfold(rx, move |mut rx| {
        let tenant = tenant.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(item) if keep(&item, &tenant) => return Some((wrap(item), rx)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "graphql subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
}

/// The subscription root.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Status changes of the caller's tenant's machines.
    async fn machine_status_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = MachineStatusChange>> {
        let (caller, state) = caller(ctx)?;
        Ok(tenant_stream(
            state.events.machines.subscribe(),
            caller.tenant().clone(),
            |e, t| &e.tenant == t,
            MachineStatusChange,
        ))
    }

    /// New unified events of the caller's tenant.
    async fn event_added(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = EventObject>> {
        let (caller, state) = caller(ctx)?;
        Ok(tenant_stream(
            state.events.events.subscribe(),
            caller.tenant().clone(),
            |e, t| e.tenant.as_ref() == Some(t),
            EventObject,
        ))
    }
}
