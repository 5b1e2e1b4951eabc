//! Scheduled jobs: each runs every interval on every replica, and takes a distributed lock
//! inside its pass so one replica does the work per interval.
//!
//! | job | lock | what |
//! |---|---|---|
//! | `offline-sweep` | `openframe:offline-sweep` | ONLINE machines silent too long become OFFLINE |
//! | `key-rotation` | `openframe:key-rotation` | due signing keys are rotated |
//! | `execution-watchdog` | `openframe:execution-watchdog` | overdue runs time out, old queue entries expire |
//! | `dead-letter-replay` | `openframe:dead-letter-replay` | dead-lettered events go back to their source topic |

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use openframe_agent::executions::ExecutionService;
use openframe_agent::presence::PresenceService;
use openframe_core::{PageRequest, Result};
use openframe_data::{DistributedLock, TenantRepository};
use openframe_security::keys::KeyRotationJob;
use openframe_stream::processor::{Processor, ReplayOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::JobsConfig;
use crate::metrics::{JobOutcome, Metrics};

type RunFn = Arc<dyn Fn() -> BoxFuture<'static, Result<Option<usize>>> + Send + Sync>;

/// The lock name replicas share for the execution watchdog.
pub const WATCHDOG_LOCK: &str = "openframe:execution-watchdog";
/// The lock name replicas share for the dead-letter replay.
pub const REPLAY_LOCK: &str = "openframe:dead-letter-replay";

/// One scheduled job: a pass returns how many items it handled, or `None` when another
/// replica held the lock.
#[derive(Clone)]
pub struct Job {
    /// Name (metrics label and log field).
    pub name: &'static str,
    /// Time between passes.
    pub interval: Duration,
    run: RunFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A job running `run` every `interval`.
    pub fn new<F>(name: &'static str, interval: Duration, run: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<Option<usize>>> + Send + Sync + 'static,
    {
        Self {
            name,
            interval,
            run: Arc::new(run),
        }
    }

    /// Runs one pass now.
    pub async fn run_once(&self) -> Result<Option<usize>> {
        (self.run)().await
    }
}

/// What the jobs work on.
#[derive(Debug, Clone)]
pub struct JobParts {
    /// Presence (offline sweep).
    pub presence: PresenceService,
    /// Key rotation.
    pub rotation: KeyRotationJob,
    /// Executions (watchdog).
    pub executions: ExecutionService,
    /// Every tenant.
    pub tenants: Arc<dyn TenantRepository>,
    /// The lock replicas share.
    pub lock: Arc<dyn DistributedLock>,
    /// The event processor (dead-letter replay).
    pub processor: Processor,
}

/// The server's jobs with the configured intervals (a 0 interval leaves a job out).
pub fn server_jobs(config: &JobsConfig, parts: JobParts) -> Vec<Job> {
    let mut jobs = Vec::new();
    let every = Duration::from_secs;
    if config.offline_sweep_secs > 0 {
        let presence = parts.presence.clone();
        jobs.push(Job::new(
            "offline-sweep",
            every(config.offline_sweep_secs),
            move || {
                let presence = presence.clone();
                async move { presence.sweep_once().await }.boxed()
            },
        ));
    }
    if config.key_rotation_secs > 0 {
        let rotation = parts.rotation.clone();
        jobs.push(Job::new(
            "key-rotation",
            every(config.key_rotation_secs),
            move || {
                let rotation = rotation.clone();
                async move { rotation.run_once().await }.boxed()
            },
        ));
    }
    if config.execution_watchdog_secs > 0 {
        let interval = every(config.execution_watchdog_secs);
        let (executions, tenants, lock) = (parts.executions, parts.tenants, parts.lock.clone());
        jobs.push(Job::new("execution-watchdog", interval, move || {
            let (executions, tenants, lock) = (executions.clone(), tenants.clone(), lock.clone());
            async move { watchdog_pass(&executions, tenants.as_ref(), lock.as_ref(), interval).await }
                .boxed()
        }));
    }
    if config.dead_letter_replay_secs > 0 {
        let interval = every(config.dead_letter_replay_secs);
        let (processor, lock) = (parts.processor, parts.lock);
        jobs.push(Job::new("dead-letter-replay", interval, move || {
            let (processor, lock) = (processor.clone(), lock.clone());
            async move { replay_pass(&processor, lock.as_ref(), interval).await }.boxed()
        }));
    }
    jobs
}

/// One watchdog pass over every tenant under [`WATCHDOG_LOCK`].
// A per-tenant loop under a lock like `PresenceService::sweep_once` and
// `KeyRotationJob::run_once`: `ExecutionService` has only the per-tenant `watchdog`.
pub async fn watchdog_pass(
    executions: &ExecutionService,
    tenants: &dyn TenantRepository,
    lock: &dyn DistributedLock,
    interval: Duration,
) -> Result<Option<usize>> {
    let hold = interval.max(Duration::from_secs(1)) * 5;
    let Some(lease) = lock.try_acquire(WATCHDOG_LOCK, hold).await? else {
        return Ok(None);
    };
    let mut reaped = 0;
    let mut request = PageRequest::first(100);
    let outcome: Result<()> = async {
        loop {
            let page = tenants.list(&request).await?;
            for tenant in page.nodes() {
                match executions.watchdog(&tenant.id).await {
                    Ok(n) => reaped += n,
                    Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "execution watchdog failed for a tenant"),
                }
            }
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => request = PageRequest::first(100).after(cursor),
                _ => return Ok(()),
            }
        }
    }
    .await;
    lock.release(&lease, interval.mul_f32(0.8)).await?;
    outcome.map(|()| Some(reaped))
}

/// One dead-letter replay under [`REPLAY_LOCK`]: moves what is in the dead-letter topic back
/// to the source topics (each record at most once per pass, committed on the dead-letter
/// topic), so the processor tries it again.
pub async fn replay_pass(
    processor: &Processor,
    lock: &dyn DistributedLock,
    interval: Duration,
) -> Result<Option<usize>> {
    let hold = interval.max(Duration::from_secs(1)) * 5;
    let Some(lease) = lock.try_acquire(REPLAY_LOCK, hold).await? else {
        return Ok(None);
    };
    let outcome = processor
        .replay_dead_letters(&ReplayOptions::default())
        .await;
    lock.release(&lease, interval.mul_f32(0.8)).await?;
    outcome.map(|report| Some(usize::try_from(report.replayed).unwrap_or(usize::MAX)))
}

/// Running jobs; [`Scheduler::stop`] lets a pass in progress finish.
#[derive(Debug)]
pub struct Scheduler {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Scheduler {
    /// Starts every job; the first pass of each runs after one interval.
    pub fn start(jobs: Vec<Job>, metrics: Metrics) -> Self {
        let (stop, _) = watch::channel(false);
        let tasks = jobs
            .into_iter()
            .map(|job| {
                let mut stopped = stop.subscribe();
                let metrics = metrics.clone();
                let name = job.name;
                let task = tokio::spawn(async move {
                    let mut ticker = tokio::time::interval_at(
                        tokio::time::Instant::now() + job.interval,
                        job.interval,
                    );
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = stopped.changed() => return,
                            _ = ticker.tick() => {}
                        }
                        let outcome = match job.run_once().await {
                            Ok(Some(n)) => {
                                if n > 0 {
                                    tracing::info!(job = job.name, items = n, "scheduled job pass");
                                }
                                JobOutcome::Ran(n)
                            }
                            Ok(None) => JobOutcome::Skipped,
                            Err(e) => {
                                tracing::warn!(job = job.name, error = %e, "scheduled job pass failed");
                                JobOutcome::Failed
                            }
                        };
                        metrics.record_job(job.name, outcome);
                    }
                });
                (name, task)
            })
            .collect();
        Self { stop, tasks }
    }

    /// The names of the running jobs.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(n, _)| *n).collect()
    }

    /// Stops every job, waiting up to `grace` for passes in progress, then aborting them.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        for (name, mut task) in self.tasks {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                tracing::warn!(job = name, "scheduled job did not stop in time; aborted");
                task.abort();
            }
        }
    }
}
