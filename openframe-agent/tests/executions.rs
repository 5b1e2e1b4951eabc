//! Commands and scripts: dispatch, offline queue, idempotent results, watchdog, cancel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openframe_agent::executions::{
    ExecutionConfig, ExecutionService, ExecutionStatus, MachineChannel, ResultMessage, RunSpec,
    Shell,
};
use openframe_core::{
    Clock, Error, Machine, MachineId, MachineStatus, ManualClock, OsType, Result, TenantId,
};
use openframe_data::Repositories;
use openframe_data::memory::InMemoryDocumentStore;

/// Records what would be published, and can be told to fail.
#[derive(Debug, Default)]
struct Outbox {
    sent: Mutex<Vec<(String, serde_json::Value)>>,
    fail: Mutex<bool>,
}

#[async_trait]
impl MachineChannel for Outbox {
    async fn send(&self, subject: &str, payload: Vec<u8>) -> Result<()> {
        if *self.fail.lock().unwrap() {
            return Err(Error::Unavailable {
                reason: "bus down".into(),
            });
        }
        self.sent.lock().unwrap().push((
            subject.to_owned(),
            serde_json::from_slice(&payload).unwrap(),
        ));
        Ok(())
    }
}

struct World {
    clock: Arc<ManualClock>,
    repos: Repositories,
    outbox: Arc<Outbox>,
    service: ExecutionService,
    tenant: TenantId,
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    let store = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::with_clock(store.clone(), clock.clone());
    let outbox = Arc::new(Outbox::default());
    let service = ExecutionService::new(
        store,
        repos.machines.clone(),
        outbox.clone(),
        clock.clone(),
        ExecutionConfig::default(),
    );
    World {
        clock,
        repos,
        outbox,
        service,
        tenant: TenantId::parse("acme").unwrap(),
    }
}

async fn machine(w: &World, status: MachineStatus) -> MachineId {
    let mut m = Machine::new(MachineId::generate(), "h", OsType::Linux, w.clock.now());
    m.status = status;
    w.repos.machines.insert(&w.tenant, m).await.unwrap().id
}

fn result(execution_id: &str, exit: i64, stdout: &str) -> ResultMessage {
    serde_json::from_value(serde_json::json!({"execution_id": execution_id, "exit_code": exit, "stdout": stdout, "stderr": ""})).unwrap()
}

#[tokio::test]
async fn dispatch_stores_running_before_publishing_and_ingests_once() {
    let w = world();
    let online = machine(&w, MachineStatus::Online).await;
    let runs = w
        .service
        .dispatch(
            &w.tenant,
            std::slice::from_ref(&online),
            RunSpec::command("uname -a", Shell::Bash, 30),
            None,
        )
        .await
        .unwrap();
    assert_eq!(runs[0].status, ExecutionStatus::Running);
    let sent = w.outbox.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, format!("machine.{online}.command-execution"));
    assert_eq!(sent[0].1["executionId"], runs[0].execution_id.as_str());
    assert_eq!(sent[0].1["shell"], "BASH");

    let done = w
        .service
        .ingest_result(
            &w.tenant,
            &online,
            result(&runs[0].execution_id, 0, "Linux"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status, done.stdout.as_str()),
        (ExecutionStatus::Success, "Linux")
    );
    // A retried result changes nothing, even with other content.
    assert!(
        w.service
            .ingest_result(
                &w.tenant,
                &online,
                result(&runs[0].execution_id, 1, "changed")
            )
            .await
            .unwrap()
            .is_none()
    );
    let stored = w
        .service
        .get(&w.tenant, &runs[0].execution_id, &online)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.stdout.as_str(), stored.version),
        (ExecutionStatus::Success, "Linux", done.version)
    );
}

#[tokio::test]
async fn output_is_truncated_with_a_flag_and_failures_are_errors() {
    let w = world();
    let m = machine(&w, MachineStatus::Online).await;
    let runs = w
        .service
        .dispatch(
            &w.tenant,
            std::slice::from_ref(&m),
            RunSpec::command("yes", Shell::Bash, 30),
            None,
        )
        .await
        .unwrap();
    let mut r = result(&runs[0].execution_id, 2, &"y\n".repeat(100_000));
    r.stderr = "ä".repeat(40_000);
    let done = w
        .service
        .ingest_result(&w.tenant, &m, r)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        done.status,
        ExecutionStatus::Failed,
        "a non-zero exit is a failure"
    );
    assert_eq!(done.stdout.len(), 64 * 1024);
    assert!(done.stdout_truncated && done.stderr_truncated);
    assert!(done.stderr.len() <= 64 * 1024);
}

#[tokio::test]
async fn offline_machines_queue_until_they_return_or_expire() {
    let w = world();
    let offline = machine(&w, MachineStatus::Offline).await;
    let later = machine(&w, MachineStatus::Pending).await;
    let runs = w
        .service
        .dispatch(
            &w.tenant,
            &[offline.clone(), later.clone()],
            RunSpec::command("hostname", Shell::Shell, 10),
            None,
        )
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.status == ExecutionStatus::Queued));
    assert!(
        w.outbox.sent.lock().unwrap().is_empty(),
        "nothing is sent to offline machines"
    );

    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        w.service.deliver_queued(&w.tenant, &offline).await.unwrap(),
        1,
        "delivered on return"
    );
    let run = w
        .service
        .get(&w.tenant, &runs[0].execution_id, &offline)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, ExecutionStatus::Running);
    assert_eq!(w.outbox.sent.lock().unwrap().len(), 1);
    assert_eq!(
        w.service.deliver_queued(&w.tenant, &offline).await.unwrap(),
        0,
        "delivered once"
    );

    w.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        w.service.deliver_queued(&w.tenant, &later).await.unwrap(),
        0,
        "expired in the queue"
    );
    let expired = w
        .service
        .get(&w.tenant, &runs[0].execution_id, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.status, ExecutionStatus::Expired);
}

#[tokio::test]
async fn watchdog_reaps_overdue_runs_and_results_after_that_are_ignored() {
    let w = world();
    let m = machine(&w, MachineStatus::Online).await;
    let runs = w
        .service
        .dispatch(
            &w.tenant,
            std::slice::from_ref(&m),
            RunSpec::command("sleep 999", Shell::Bash, 60),
            None,
        )
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(60 + 119));
    assert_eq!(
        w.service.watchdog(&w.tenant).await.unwrap(),
        0,
        "within timeout + grace"
    );
    w.clock.advance(Duration::from_secs(2));
    assert_eq!(w.service.watchdog(&w.tenant).await.unwrap(), 1);
    let reaped = w
        .service
        .get(&w.tenant, &runs[0].execution_id, &m)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reaped.status, ExecutionStatus::TimedOut);
    assert!(
        w.service
            .ingest_result(&w.tenant, &m, result(&runs[0].execution_id, 0, "late"))
            .await
            .unwrap()
            .is_none(),
        "a final state is never overwritten"
    );
}

#[tokio::test]
async fn cancel_and_batches() {
    let w = world();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(machine(&w, MachineStatus::Online).await);
    }
    ids.push(machine(&w, MachineStatus::Offline).await);
    let runs = w
        .service
        .dispatch(
            &w.tenant,
            &ids,
            RunSpec::command("long", Shell::Bash, 600),
            None,
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter().all(|r| r.execution_id == runs[0].execution_id),
        "one batch id"
    );
    w.service
        .ingest_result(&w.tenant, &ids[0], result(&runs[0].execution_id, 0, "done"))
        .await
        .unwrap();
    let cancelled = w
        .service
        .cancel(&w.tenant, &runs[0].execution_id)
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 3, "the finished one stays finished");
    let cancels = w
        .outbox
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s.ends_with(".command-cancel"))
        .count();
    assert_eq!(cancels, 2, "cancel messages only to running machines");
    assert!(matches!(
        w.service.cancel(&w.tenant, "unknown").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn bad_input_and_tenant_isolation() {
    let w = world();
    let m = machine(&w, MachineStatus::Online).await;
    let spec = RunSpec::command("ok", Shell::Bash, 30);
    assert!(matches!(
        w.service.dispatch(&w.tenant, &[], spec.clone(), None).await,
        Err(Error::InvalidInput { .. })
    ));
    let many: Vec<MachineId> = (0..101).map(|_| MachineId::generate()).collect();
    assert!(matches!(
        w.service
            .dispatch(&w.tenant, &many, spec.clone(), None)
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        w.service
            .dispatch(
                &w.tenant,
                std::slice::from_ref(&m),
                RunSpec::command("x", Shell::Bash, 0),
                None
            )
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        w.service
            .dispatch(
                &w.tenant,
                std::slice::from_ref(&m),
                RunSpec::command(" ", Shell::Bash, 5),
                None
            )
            .await,
        Err(Error::InvalidInput { .. })
    ));
    // An unknown machine in the batch refuses the whole batch: nothing stored, nothing sent.
    let err = w
        .service
        .dispatch(
            &w.tenant,
            &[m.clone(), MachineId::generate()],
            spec.clone(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(w.outbox.sent.lock().unwrap().is_empty());
    // Another tenant can neither run on, see, cancel nor report for acme's machine.
    let other = TenantId::parse("globex").unwrap();
    assert!(matches!(
        w.service
            .dispatch(&other, std::slice::from_ref(&m), spec.clone(), None)
            .await,
        Err(Error::NotFound { .. })
    ));
    let runs = w
        .service
        .dispatch(&w.tenant, std::slice::from_ref(&m), spec, None)
        .await
        .unwrap();
    assert!(
        w.service
            .list_batch(&other, &runs[0].execution_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        w.service.cancel(&other, &runs[0].execution_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        w.service
            .ingest_result(&other, &m, result(&runs[0].execution_id, 0, "x"))
            .await
            .unwrap()
            .is_none()
    );
    // A machine reporting another machine's execution changes nothing.
    let intruder = machine(&w, MachineStatus::Online).await;
    assert!(
        w.service
            .ingest_result(
                &w.tenant,
                &intruder,
                result(&runs[0].execution_id, 0, "forged")
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        w.service
            .get(&w.tenant, &runs[0].execution_id, &m)
            .await
            .unwrap()
            .unwrap()
            .status,
        ExecutionStatus::Running
    );
}

#[tokio::test]
async fn a_failed_publish_fails_the_execution() {
    let w = world();
    let m = machine(&w, MachineStatus::Online).await;
    *w.outbox.fail.lock().unwrap() = true;
    let runs = w
        .service
        .dispatch(&w.tenant, &[m], RunSpec::command("x", Shell::Bash, 5), None)
        .await
        .unwrap();
    assert_eq!(runs[0].status, ExecutionStatus::Failed);
    assert!(runs[0].error.is_some());
}

#[tokio::test]
async fn a_stored_script_is_dispatched_by_id_with_its_defaults() {
    use openframe_agent::executions::{PrivilegeLevel, ScriptRun};
    use openframe_core::{Script, ScriptShell, ScriptStatus};

    let w = world();
    let service = w.service.clone().with_scripts(w.repos.scripts.clone());
    let online = machine(&w, MachineStatus::Online).await;
    let mut script = Script::new("Disk usage", ScriptShell::Bash, "df \"$1\"", w.clock.now());
    script.default_args = vec!["/".into()];
    script.default_timeout_secs = 120;
    script.privilege_level = PrivilegeLevel::User;
    let script = w.repos.scripts.insert(&w.tenant, script).await.unwrap();

    let runs = service
        .dispatch_script(
            &w.tenant,
            std::slice::from_ref(&online),
            ScriptRun::new(script.id.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, ExecutionStatus::Running);
    assert_eq!(runs[0].spec.script_id.as_deref(), Some(script.id.as_str()));
    let (subject, message) = w.outbox.sent.lock().unwrap()[0].clone();
    assert_eq!(subject, format!("machine.{online}.script-execution"));
    assert_eq!(message["scriptId"], script.id.as_str());
    assert_eq!(message["code"], "df \"$1\"");
    assert_eq!(message["shell"], "BASH");
    assert_eq!(message["privilegeLevel"], "USER");
    assert_eq!(message["args"], serde_json::json!(["/"]));
    assert_eq!(message["timeoutSeconds"], 120);

    // A run may override the defaults; a later edit of the script changes no run in flight.
    let mut run = ScriptRun::new(script.id.clone());
    run.args = Some(vec!["/home".into()]);
    run.timeout_secs = Some(30);
    let second = service
        .dispatch_script(&w.tenant, std::slice::from_ref(&online), run, None)
        .await
        .unwrap();
    let mut edited = w
        .repos
        .scripts
        .get(&w.tenant, &script.id)
        .await
        .unwrap()
        .unwrap();
    edited.code = "rm -rf /".into();
    w.repos.scripts.update(&w.tenant, edited).await.unwrap();
    let stored = service
        .get(&w.tenant, &second[0].execution_id, &online)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.spec.code, "df \"$1\"");
    assert_eq!(stored.spec.args, vec!["/home".to_owned()]);
    assert_eq!(stored.spec.timeout_secs, 30);
    let sent = w.outbox.sent.lock().unwrap().len();
    assert_eq!(sent, 2);

    // Another tenant's script, a missing one, a deleted one: NotFound; archived: refused.
    // Nothing is stored or sent for any of them.
    let other = TenantId::parse("other").unwrap();
    let foreign = w
        .repos
        .scripts
        .insert(
            &other,
            Script::new("Theirs", ScriptShell::Bash, "id", w.clock.now()),
        )
        .await
        .unwrap();
    for id in [foreign.id.clone(), openframe_core::ScriptId::generate()] {
        let r = service
            .dispatch_script(
                &w.tenant,
                std::slice::from_ref(&online),
                ScriptRun::new(id),
                None,
            )
            .await;
        assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    }
    let mut archived = w
        .repos
        .scripts
        .get(&w.tenant, &script.id)
        .await
        .unwrap()
        .unwrap();
    archived.status = ScriptStatus::Archived;
    w.repos.scripts.update(&w.tenant, archived).await.unwrap();
    let r = service
        .dispatch_script(
            &w.tenant,
            std::slice::from_ref(&online),
            ScriptRun::new(script.id.clone()),
            None,
        )
        .await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    w.repos.scripts.delete(&w.tenant, &script.id).await.unwrap();
    let r = service
        .dispatch_script(
            &w.tenant,
            std::slice::from_ref(&online),
            ScriptRun::new(script.id.clone()),
            None,
        )
        .await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert_eq!(
        w.outbox.sent.lock().unwrap().len(),
        sent,
        "nothing more sent"
    );

    // Without a script repository the service says so instead of guessing.
    let r = w
        .service
        .dispatch_script(&w.tenant, &[online], ScriptRun::new(foreign.id), None)
        .await;
    assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
}
