//! Live agent sessions (`/ws/agent`, `/ws/nats`) and when they must end.
//!
//! A WebSocket session is admitted with an access token, but it outlives the check at the
//! upgrade. [`AgentSessions`] ends it when it must:
//!
//! - **token expiry**: each [`Session`] sleeps until its token's `exp` on the injected
//!   [`Clock`] (re-reading the clock at least every [`AgentSessions::with_tick`], so a clock that
//!   jumps is noticed) and then ends with [`SessionEnd::TokenExpired`];
//! - **uninstall**: [`ClosingSessions`] wraps the agent plane's [`AgentEventSink`] and ends
//!   every session of a machine on its `Uninstalled` event ([`SessionEnd::Uninstalled`]);
//! - **disabled or deleted machine**: with [`AgentSessions::with_standing`], each session
//!   asks a [`MachineStanding`] every interval whether its machine may still connect
//!   ([`RepositoryStanding`]: not DELETED, its OAuth client enabled) and ends with
//!   [`SessionEnd::Disabled`] otherwise. This also catches changes made by other replicas
//!   or by an administrator, which raise no event here.
//!
//! The transports ([`crate::gateway`], the NATS proxy) select on [`Session::ended`] next to
//! their traffic and close the connection with the reason; the agent reconnects with a fresh
//! token, or is refused if it may no longer connect.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, MachineId, MachineStatus, Result, TenantId, Timestamp};
use openframe_data::Repositories;
use openframe_security::oauth::ClientRegistry;
use tokio::sync::watch;

use crate::enrollment::client_id_for;
use crate::events::{AgentEvent, AgentEventKind, AgentEventSink};

/// Default longest real-time sleep before a session re-reads the clock.
const DEFAULT_TICK: Duration = Duration::from_secs(15);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The access token it was admitted with expired.
    TokenExpired,
    /// The machine was uninstalled.
    Uninstalled,
    /// The machine may no longer connect (deleted, or its client disabled).
    Disabled,
}

impl SessionEnd {
    /// A short, stable description (used as the close reason).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenExpired => "token expired",
            Self::Uninstalled => "machine uninstalled",
            Self::Disabled => "machine disabled",
        }
    }
}

/// Whether a machine may still hold a session.
#[async_trait]
pub trait MachineStanding: Send + Sync + fmt::Debug + 'static {
    /// `Ok(false)` if the machine may no longer connect.
    async fn admits(&self, tenant: &TenantId, machine: &MachineId) -> Result<bool>;
}

/// [`MachineStanding`] from the stored records: the machine exists and is not DELETED, and
/// its OAuth client `agent_<machineId>` exists and is enabled.
#[derive(Debug, Clone)]
pub struct RepositoryStanding {
    repos: Repositories,
    clients: ClientRegistry,
}

impl RepositoryStanding {
    /// Reads machines from `repos` and clients from `clients`.
    pub fn new(repos: Repositories, clients: ClientRegistry) -> Self {
        Self { repos, clients }
    }
}

#[async_trait]
impl MachineStanding for RepositoryStanding {
    async fn admits(&self, tenant: &TenantId, machine: &MachineId) -> Result<bool> {
        let live = self
            .repos
            .machines
            .get(tenant, machine)
            .await?
            .is_some_and(|m| m.status != MachineStatus::Deleted);
        if !live {
            return Ok(false);
        }
        Ok(self
            .clients
            .get(tenant, &client_id_for(machine))
            .await?
            .is_some_and(|c| c.enabled))
    }
}

type Key = (TenantId, MachineId);
type Live = HashMap<Key, HashMap<u64, watch::Sender<Option<SessionEnd>>>>;

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    live: Mutex<Live>,
}

/// The registry of live agent sessions (cheap to clone, clones share the sessions; see the
/// module documentation).
#[derive(Clone)]
pub struct AgentSessions {
    clock: Arc<dyn Clock>,
    tick: Duration,
    standing: Option<(Arc<dyn MachineStanding>, Duration)>,
    registry: Arc<Registry>,
}

impl fmt::Debug for AgentSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSessions")
            .field("tick", &self.tick)
            .field("standing", &self.standing)
            .field("machines", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl AgentSessions {
    /// A registry whose sessions expire on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tick: DEFAULT_TICK,
            standing: None,
            registry: Arc::default(),
        }
    }

    /// Longest real-time sleep before a session re-reads the clock (default 15 s; at least
    /// 1 ms), for sessions opened through this value.
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Asks `standing` every `interval` (at least 1 ms) whether a session's machine may still
    /// connect, for sessions opened through this value.
    pub fn with_standing(mut self, standing: Arc<dyn MachineStanding>, interval: Duration) -> Self {
        self.standing = Some((standing, interval.max(Duration::from_millis(1))));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.registry
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session of `machine` admitted with a token expiring at `expires_at`
    /// (`None`: no expiry). It is forgotten when the [`Session`] is dropped.
    /// `Err(SessionEnd::TokenExpired)` if the token has already expired on the clock (an
    /// authenticator may allow some leeway; a session does not).
    pub fn open(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        expires_at: Option<Timestamp>,
    ) -> std::result::Result<Session, SessionEnd> {
        if expires_at.is_some_and(|exp| exp <= self.clock.now()) {
            return Err(SessionEnd::TokenExpired);
        }
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.lock()
            .entry((tenant.clone(), machine.clone()))
            .or_default()
            .insert(id, tx);
        Ok(Session {
            id,
            tenant: tenant.clone(),
            machine: machine.clone(),
            expires_at,
            signal: rx,
            sessions: self.clone(),
        })
    }

    /// Ends every live session of `machine` of `tenant` with `reason`; returns how many.
    pub fn close_machine(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        reason: SessionEnd,
    ) -> usize {
        let key = (tenant.clone(), machine.clone());
        let Some(sessions) = self.lock().remove(&key) else {
            return 0;
        };
        for tx in sessions.values() {
            tx.send_replace(Some(reason));
        }
        sessions.len()
    }

    /// How many sessions `machine` of `tenant` has open.
    pub fn live(&self, tenant: &TenantId, machine: &MachineId) -> usize {
        self.lock()
            .get(&(tenant.clone(), machine.clone()))
            .map_or(0, HashMap::len)
    }

    fn forget(&self, key: &Key, id: u64) {
        let mut live = self.lock();
        if let Some(sessions) = live.get_mut(key) {
            sessions.remove(&id);
            if sessions.is_empty() {
                live.remove(key);
            }
        }
    }
}

/// One live session; see [`Session::ended`]. Dropping it unregisters it.
pub struct Session {
    id: u64,
    tenant: TenantId,
    machine: MachineId,
    expires_at: Option<Timestamp>,
    signal: watch::Receiver<Option<SessionEnd>>,
    sessions: AgentSessions,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.tenant)
            .field("machine", &self.machine)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sessions
            .forget(&(self.tenant.clone(), self.machine.clone()), self.id);
    }
}

impl Session {
    /// When the token it was admitted with expires.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// Resolves when the session must end, with the reason. Cancel-safe (a standing check
    /// in progress is simply asked again).
    pub async fn ended(&mut self) -> SessionEnd {
        let clock = self.sessions.clock.clone();
        let tick = self.sessions.tick;
        let standing = self.sessions.standing.clone();
        let mut next_standing = standing.as_ref().map(|(_, every)| *every);
        let mut open = true;
        loop {
            if let Some(reason) = *self.signal.borrow_and_update() {
                return reason;
            }
            let now = clock.now();
            let mut wait = tick;
            if let Some(exp) = self.expires_at {
                if exp <= now {
                    return SessionEnd::TokenExpired;
                }
                wait = wait.min((exp - now).to_std().unwrap_or(Duration::ZERO));
            }
            if let Some(left) = next_standing {
                wait = wait.min(left);
            }
            tokio::select! {
                changed = self.signal.changed(), if open => {
                    // Err: the registry let go of the sender; whatever it set is final.
                    open = changed.is_ok();
                    continue;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let (Some(left), Some((check, every))) = (next_standing, &standing) else {
                continue;
            };
            let left = left.saturating_sub(wait);
            if !left.is_zero() {
                next_standing = Some(left);
                continue;
            }
            next_standing = Some(*every);
            match check.admits(&self.tenant, &self.machine).await {
                Ok(true) => {}
                Ok(false) => return SessionEnd::Disabled,
                // A failing check keeps the session; the next one decides.
                Err(e) => {
                    tracing::warn!(machine = %self.machine, error = %e, "session standing check failed");
                }
            }
        }
    }
}

/// Waits for the session's end (never, without a session): for a transport's `select!`.
pub(crate) async fn session_end(session: Option<&mut Session>) -> SessionEnd {
    match session {
        Some(session) => session.ended().await,
        None => std::future::pending().await,
    }
}

/// An [`AgentEventSink`] decorator: ends the machine's sessions on `Uninstalled`, then
/// forwards every event to the inner sink.
#[derive(Debug, Clone)]
pub struct ClosingSessions<S> {
    inner: S,
    sessions: AgentSessions,
}

impl<S> ClosingSessions<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, sessions: AgentSessions) -> Self {
        Self { inner, sessions }
    }
}

#[async_trait]
impl<S: AgentEventSink> AgentEventSink for ClosingSessions<S> {
    async fn emit(&self, event: AgentEvent) -> Result<()> {
        if event.kind == AgentEventKind::Uninstalled {
            let closed = self.sessions.close_machine(
                &event.tenant,
                &event.machine_id,
                SessionEnd::Uninstalled,
            );
            if closed > 0 {
                tracing::info!(tenant = %event.tenant, machine = %event.machine_id, closed, "sessions of an uninstalled machine closed");
            }
        }
        self.inner.emit(event).await
    }
}

pub(crate) use openframe_security::auth::presented_token_expiry;

#[cfg(test)]
mod tests {
    use super::*;
    use openframe_core::ManualClock;

    fn ids() -> (TenantId, MachineId) {
        (
            TenantId::parse("t1").unwrap(),
            MachineId::parse("m1").unwrap(),
        )
    }

    #[tokio::test]
    async fn a_session_ends_when_its_token_expires_on_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let sessions = AgentSessions::new(clock.clone()).with_tick(Duration::from_millis(5));
        let (tenant, machine) = ids();
        let exp = clock.now() + chrono::Duration::seconds(300);
        let mut session = sessions.open(&tenant, &machine, Some(exp)).unwrap();
        assert_eq!(sessions.live(&tenant, &machine), 1);
        let pending = tokio::time::timeout(Duration::from_millis(50), session.ended()).await;
        assert!(pending.is_err(), "still valid");
        clock.advance(Duration::from_secs(301));
        let end = tokio::time::timeout(Duration::from_secs(5), session.ended())
            .await
            .unwrap();
        assert_eq!(end, SessionEnd::TokenExpired);
        drop(session);
        assert_eq!(sessions.live(&tenant, &machine), 0);
        assert_eq!(
            sessions.open(&tenant, &machine, Some(exp)).err(),
            Some(SessionEnd::TokenExpired),
            "an expired token opens no session"
        );
    }

    #[tokio::test]
    async fn uninstall_events_end_only_that_machines_sessions() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let sessions = AgentSessions::new(clock.clone());
        let (tenant, machine) = ids();
        let other = MachineId::parse("m2").unwrap();
        let mut mine = sessions.open(&tenant, &machine, None).unwrap();
        let mut theirs = sessions.open(&tenant, &other, None).unwrap();
        let sink = ClosingSessions::new(
            crate::events::RecordingEventSink::default(),
            sessions.clone(),
        );
        sink.emit(AgentEvent {
            tenant: tenant.clone(),
            machine_id: machine.clone(),
            kind: AgentEventKind::Uninstalled,
            previous_status: None,
            status: MachineStatus::Deleted,
            at: clock.now(),
        })
        .await
        .unwrap();
        assert_eq!(mine.ended().await, SessionEnd::Uninstalled);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), theirs.ended())
                .await
                .is_err()
        );
        assert_eq!(sink.inner.events().len(), 1, "forwarded");
    }
}
