//! Heartbeats, the offline sweep and its domain events, on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::events::{AgentEventKind, RecordingEventSink};
use openframe_agent::presence::{PresenceConfig, PresenceService, SWEEP_LOCK};
use openframe_core::{
    Clock, Error, Machine, MachineId, MachineStatus, ManualClock, OsType, Tenant, TenantId,
};
use openframe_data::memory::{InMemoryDocumentStore, InMemoryLock};
use openframe_data::{DistributedLock, Repositories};

struct World {
    clock: Arc<ManualClock>,
    repos: Repositories,
    lock: Arc<InMemoryLock>,
    events: Arc<RecordingEventSink>,
    presence: PresenceService,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    let repos = Repositories::with_clock(Arc::new(InMemoryDocumentStore::new()), clock.clone());
    let lock = Arc::new(InMemoryLock::new(clock.clone()));
    let events = Arc::new(RecordingEventSink::default());
    let presence = PresenceService::new(
        repos.machines.clone(),
        repos.tenants.clone(),
        lock.clone(),
        events.clone(),
        clock.clone(),
        PresenceConfig::default(),
    );
    World {
        clock,
        repos,
        lock,
        events,
        presence,
    }
}

async fn machine(w: &World, tenant: &str) -> (TenantId, MachineId) {
    let t = TenantId::parse(tenant).unwrap();
    if w.repos.tenants.get(&t).await.unwrap().is_none() {
        w.repos
            .tenants
            .insert(Tenant::new(
                t.clone(),
                tenant,
                &format!("{tenant}.example"),
                w.clock.now(),
            ))
            .await
            .unwrap();
    }
    let m = Machine::new(MachineId::generate(), "host", OsType::Linux, w.clock.now());
    let m = w.repos.machines.insert(&t, m).await.unwrap();
    (t, m.id)
}

fn kinds(w: &World) -> Vec<AgentEventKind> {
    w.events.events().into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn pending_online_offline_online() {
    let w = world().await;
    let (t, id) = machine(&w, "acme").await;
    let tr = w.presence.heartbeat(&t, &id).await.unwrap();
    assert_eq!(
        (tr.before.status, tr.after.status),
        (MachineStatus::Pending, MachineStatus::Online)
    );
    assert_eq!(
        tr.after.last_seen,
        Some(w.clock.now()),
        "the server stamps the time"
    );
    assert_eq!(kinds(&w), vec![AgentEventKind::CameOnline]);

    w.clock.advance(Duration::from_secs(129));
    assert_eq!(
        w.presence.sweep_once().await.unwrap(),
        Some(0),
        "not silent long enough"
    );
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(w.presence.sweep_once().await.unwrap(), Some(1));
    assert_eq!(
        w.repos.machines.get(&t, &id).await.unwrap().unwrap().status,
        MachineStatus::Offline
    );
    assert_eq!(
        kinds(&w),
        vec![AgentEventKind::CameOnline, AgentEventKind::WentOffline]
    );

    w.presence.heartbeat(&t, &id).await.unwrap();
    assert_eq!(
        w.repos.machines.get(&t, &id).await.unwrap().unwrap().status,
        MachineStatus::Online
    );
    assert_eq!(kinds(&w).last(), Some(&AgentEventKind::CameOnline));
    // A heartbeat of an ONLINE machine changes no status and emits nothing.
    w.presence.heartbeat(&t, &id).await.unwrap();
    assert_eq!(w.events.events().len(), 3);
}

#[tokio::test]
async fn last_seen_never_moves_backwards() {
    let w = world().await;
    let (t, id) = machine(&w, "acme").await;
    w.presence.heartbeat(&t, &id).await.unwrap();
    let first = w
        .repos
        .machines
        .get(&t, &id)
        .await
        .unwrap()
        .unwrap()
        .last_seen;
    w.clock.set(w.clock.now() - chrono::Duration::seconds(300));
    w.presence.heartbeat(&t, &id).await.unwrap();
    assert_eq!(
        w.repos
            .machines
            .get(&t, &id)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        first,
        "a clock stepping back does not rewind last_seen"
    );
}

#[tokio::test]
async fn sweep_covers_every_tenant_and_respects_the_lock() {
    let w = world().await;
    let mut all = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        for _ in 0..3 {
            let (t, id) = machine(&w, tenant).await;
            w.presence.heartbeat(&t, &id).await.unwrap();
            all.push((t, id));
        }
    }
    w.clock.advance(Duration::from_secs(200));
    let held = w
        .lock
        .try_acquire(SWEEP_LOCK, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        w.presence.sweep_once().await.unwrap(),
        None,
        "another replica is sweeping"
    );
    w.lock.release(&held, Duration::ZERO).await.unwrap();
    assert_eq!(w.presence.sweep_once().await.unwrap(), Some(9));
    for (t, id) in &all {
        assert_eq!(
            w.repos.machines.get(t, id).await.unwrap().unwrap().status,
            MachineStatus::Offline
        );
    }
    assert_eq!(
        w.presence.sweep_once().await.unwrap(),
        None,
        "the lease is kept for most of the interval"
    );
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(
        w.presence.sweep_once().await.unwrap(),
        Some(0),
        "nothing left to sweep"
    );
}

#[tokio::test]
async fn concurrent_replicas_emit_one_event_per_machine() {
    let w = world().await;
    let (t, _) = machine(&w, "acme").await;
    for _ in 0..20 {
        let m = Machine::new(MachineId::generate(), "h", OsType::Windows, w.clock.now());
        let id = w.repos.machines.insert(&t, m).await.unwrap().id;
        w.presence.heartbeat(&t, &id).await.unwrap();
    }
    w.clock.advance(Duration::from_secs(200));
    let other = w.presence.clone();
    let (a, b) = tokio::join!(w.presence.sweep_tenant(&t), other.sweep_tenant(&t));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        20,
        "each machine went offline exactly once"
    );
    let offline = w
        .events
        .events()
        .iter()
        .filter(|e| e.kind == AgentEventKind::WentOffline)
        .count();
    assert_eq!(offline, 20);
}

#[tokio::test]
async fn heartbeats_are_confined_to_their_tenant() {
    let w = world().await;
    let (_, id) = machine(&w, "acme").await;
    let (other, _) = machine(&w, "globex").await;
    assert!(matches!(
        w.presence.heartbeat(&other, &id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(w.events.events().is_empty());
}

#[tokio::test]
async fn archived_and_deleted_machines_stay_put() {
    let w = world().await;
    let (t, id) = machine(&w, "acme").await;
    w.repos
        .machines
        .transition_status(&t, &id, &[MachineStatus::Pending], MachineStatus::Archived)
        .await
        .unwrap();
    let tr = w.presence.heartbeat(&t, &id).await.unwrap();
    assert_eq!(tr.after.status, MachineStatus::Archived);
    assert!(w.events.events().is_empty());
}
