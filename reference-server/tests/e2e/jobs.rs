//! Scheduled jobs run under the distributed lock: one replica per interval, time from the
//! injected clock.

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::executions::{
    ExecutionConfig, ExecutionService, ExecutionStatus, RunSpec, Shell,
};
use openframe_agent::listener::BusChannel;
use openframe_core::{
    Clock, Machine, MachineId, MachineStatus, ManualClock, OsType, Tenant, TenantId,
};
use openframe_data::memory::{InMemoryDocumentStore, InMemoryLock};
use openframe_data::{DistributedLock, Repositories};
use openframe_server::jobs::{WATCHDOG_LOCK, watchdog_pass};

#[tokio::test]
async fn the_watchdog_times_out_overdue_runs_of_every_tenant_once_per_interval() {
    let clock = Arc::new(ManualClock::default());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::with_clock(store.clone(), dyn_clock.clone());
    let executions = ExecutionService::new(
        store,
        repos.machines.clone(),
        Arc::new(BusChannel(Arc::new(InMemoryAgentBus::new()))),
        dyn_clock.clone(),
        ExecutionConfig::default(),
    );
    let mut runs = Vec::new();
    for name in ["acme", "globex"] {
        let tenant = TenantId::parse(name).unwrap();
        repos
            .tenants
            .insert(Tenant::new(
                tenant.clone(),
                name,
                &format!("{name}.example"),
                clock.now(),
            ))
            .await
            .unwrap();
        let mut machine = Machine::new(MachineId::generate(), "ws-01", OsType::Linux, clock.now());
        machine.status = MachineStatus::Online;
        let machine = repos.machines.insert(&tenant, machine).await.unwrap();
        let run = executions
            .dispatch(
                &tenant,
                std::slice::from_ref(&machine.id),
                RunSpec::command("uptime", Shell::Bash, 60),
                None,
            )
            .await
            .unwrap();
        runs.push((tenant, run[0].clone()));
    }
    let lock = InMemoryLock::new(dyn_clock.clone());
    let interval = Duration::from_secs(30);

    // Not overdue yet: nothing reaped.
    assert_eq!(
        watchdog_pass(&executions, repos.tenants.as_ref(), &lock, interval)
            .await
            .unwrap(),
        Some(0)
    );
    // Past the timeout and grace: both tenants' runs time out...
    clock.advance(Duration::from_secs(60 + 121));
    assert_eq!(
        watchdog_pass(&executions, repos.tenants.as_ref(), &lock, interval)
            .await
            .unwrap(),
        Some(2)
    );
    for (tenant, run) in &runs {
        let stored = executions
            .get(tenant, &run.execution_id, &run.machine_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, ExecutionStatus::TimedOut);
    }
    // ...and another replica right after finds the lock still held (lock_at_least).
    assert_eq!(
        watchdog_pass(&executions, repos.tenants.as_ref(), &lock, interval)
            .await
            .unwrap(),
        None
    );
    // A replica holding the lock blocks the pass entirely.
    clock.advance(interval);
    let held = lock
        .try_acquire(WATCHDOG_LOCK, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        watchdog_pass(&executions, repos.tenants.as_ref(), &lock, interval)
            .await
            .unwrap(),
        None
    );
    lock.release(&held, Duration::ZERO).await.unwrap();
    assert_eq!(
        watchdog_pass(&executions, repos.tenants.as_ref(), &lock, interval)
            .await
            .unwrap(),
        Some(0)
    );
}
