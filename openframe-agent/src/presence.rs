//! Heartbeats and presence: PENDING → ONLINE on first contact, ONLINE ⇄ OFFLINE by silence.
//!
//! The server stamps every contact with its own clock (agent clocks are not trusted) and never
//! moves `last_seen` backwards. The offline sweep runs under a [`DistributedLock`], so with
//! several replicas one of them does it per interval. Every status change is emitted as an
//! [`AgentEvent`].

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Clock, MachineId, MachineStatus, PageRequest, Result, TenantId};
use openframe_data::{DistributedLock, MachineRepository, StatusTransition, TenantRepository};

use crate::events::{AgentEvent, AgentEventKind, AgentEventSink, emit};

/// Presence settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceConfig {
    /// Silence after which an ONLINE machine is OFFLINE (default 130 s: two missed 60 s
    /// heartbeats plus slack).
    pub offline_after: Duration,
    /// How often the sweep runs (default 60 s).
    pub sweep_interval: Duration,
    /// Machines handled per tenant per sweep batch (default 500).
    pub batch: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            offline_after: Duration::from_secs(130),
            sweep_interval: Duration::from_secs(60),
            batch: 500,
        }
    }
}

/// The lock name replicas share for the sweep.
pub const SWEEP_LOCK: &str = "openframe:offline-sweep";

/// Records heartbeats and runs the offline sweep.
#[derive(Debug, Clone)]
pub struct PresenceService {
    machines: Arc<dyn MachineRepository>,
    tenants: Arc<dyn TenantRepository>,
    lock: Arc<dyn DistributedLock>,
    events: Arc<dyn AgentEventSink>,
    clock: Arc<dyn Clock>,
    config: PresenceConfig,
}

impl PresenceService {
    /// A presence service.
    pub fn new(
        machines: Arc<dyn MachineRepository>,
        tenants: Arc<dyn TenantRepository>,
        lock: Arc<dyn DistributedLock>,
        events: Arc<dyn AgentEventSink>,
        clock: Arc<dyn Clock>,
        config: PresenceConfig,
    ) -> Self {
        Self {
            machines,
            tenants,
            lock,
            events,
            clock,
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// Records a heartbeat (or any contact) from `machine`, stamped with the server's clock.
    /// A PENDING or OFFLINE machine becomes ONLINE and `CameOnline` is emitted.
    pub async fn heartbeat(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
    ) -> Result<StatusTransition> {
        let now = self.clock.now();
        let transition = self.machines.record_contact(tenant, machine, now).await?;
        if transition.status_changed() && transition.after.status == MachineStatus::Online {
            emit(
                self.events.as_ref(),
                AgentEvent {
                    tenant: tenant.clone(),
                    machine_id: machine.clone(),
                    kind: AgentEventKind::CameOnline,
                    previous_status: Some(transition.before.status),
                    status: transition.after.status,
                    at: now,
                },
            )
            .await;
        }
        Ok(transition)
    }

    /// One sweep of one tenant: ONLINE machines silent for longer than `offline_after` become
    /// OFFLINE (conditionally: a heartbeat racing the sweep wins). Returns how many went offline.
    pub async fn sweep_tenant(&self, tenant: &TenantId) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = now
            - chrono::Duration::from_std(self.config.offline_after)
                .unwrap_or(chrono::Duration::zero());
        let mut offline = 0;
        loop {
            let silent = self
                .machines
                .list_silent(tenant, MachineStatus::Online, cutoff, self.config.batch)
                .await?;
            let full = silent.len() == self.config.batch;
            let mut changed_in_batch = 0;
            for machine in silent {
                // Only if it is still ONLINE and still silent at the moment of the write.
                let t = self
                    .machines
                    .mark_offline_if_silent(tenant, &machine.id, cutoff)
                    .await?;
                if !t.applied {
                    continue;
                }
                offline += 1;
                changed_in_batch += 1;
                emit(
                    self.events.as_ref(),
                    AgentEvent {
                        tenant: tenant.clone(),
                        machine_id: machine.id.clone(),
                        kind: AgentEventKind::WentOffline,
                        previous_status: Some(MachineStatus::Online),
                        status: MachineStatus::Offline,
                        at: now,
                    },
                )
                .await;
            }
            if !full || changed_in_batch == 0 {
                return Ok(offline);
            }
        }
    }

    /// One sweep of every tenant under the distributed lock; `None` if another replica holds it.
    pub async fn sweep_once(&self) -> Result<Option<usize>> {
        let hold = self.config.sweep_interval.max(Duration::from_secs(1)) * 5;
        let Some(lease) = self.lock.try_acquire(SWEEP_LOCK, hold).await? else {
            return Ok(None);
        };
        let mut total = 0;
        let mut request = PageRequest::first(100);
        let outcome: Result<()> = async {
            loop {
                let page = self.tenants.list(&request).await?;
                for tenant in page.nodes() {
                    match self.sweep_tenant(&tenant.id).await {
                        Ok(n) => total += n,
                        Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "offline sweep failed for a tenant"),
                    }
                }
                match (page.page_info.has_next_page, page.page_info.end_cursor) {
                    (true, Some(cursor)) => request = PageRequest::first(100).after(cursor),
                    _ => return Ok(()),
                }
            }
        }
        .await;
        // Keep the lease until most of the interval has passed, so no replica sweeps twice.
        self.lock
            .release(&lease, self.config.sweep_interval.mul_f32(0.8))
            .await?;
        outcome.map(|()| Some(total))
    }

    /// Runs the sweep every `sweep_interval` until the task is aborted.
    pub fn spawn_sweeper(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.config.sweep_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match self.sweep_once().await {
                    Ok(Some(n)) if n > 0 => tracing::info!(offline = n, "offline sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "offline sweep failed"),
                }
            }
        })
    }
}
