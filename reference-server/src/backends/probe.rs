//! Readiness probes: one per backend, checked concurrently with a timeout.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use openframe_core::Result;
use serde::Serialize;

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// One backend check: a name (`database`), the backend (`sqlite`), and the check itself
/// (`None` for in-process backends, which are up while the process is).
#[derive(Clone)]
pub struct Probe {
    /// What it checks (`database`, `redis`, `agentBus`, `eventBus`).
    pub name: &'static str,
    /// Which backend (`sqlite`, `mongodb`, `redis`, `nats`, `in-process`, ...).
    pub backend: &'static str,
    check: Option<CheckFn>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// A probe that runs `check`.
    pub fn new<F>(name: &'static str, backend: &'static str, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<()>> + Send + Sync + 'static,
    {
        Self {
            name,
            backend,
            check: Some(Arc::new(check)),
        }
    }

    /// An in-process backend: always up.
    pub fn in_process(name: &'static str, backend: &'static str) -> Self {
        Self {
            name,
            backend,
            check: None,
        }
    }
}

/// The outcome of one probe, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeOutcome {
    /// What was checked.
    pub name: &'static str,
    /// The backend.
    pub backend: &'static str,
    /// `up` or `down`.
    pub status: &'static str,
    /// How long the check took.
    pub latency_ms: u64,
    /// Why it is down (a public message: never a URL or credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProbeOutcome {
    /// Whether the backend answered.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

/// Every probe, plus the process-level "accepting traffic" flag (false before the first start
/// completed and once shutdown began, so load balancers stop sending requests).
#[derive(Debug, Clone)]
pub struct Readiness {
    probes: Arc<Vec<Probe>>,
    timeout: Duration,
    accepting: Arc<AtomicBool>,
}

impl Readiness {
    /// Probes checked with `timeout` each; not accepting until [`Readiness::set_accepting`].
    pub fn new(probes: Vec<Probe>, timeout: Duration) -> Self {
        Self {
            probes: Arc::new(probes),
            timeout,
            accepting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the server as accepting traffic (or not).
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::SeqCst);
    }

    /// Whether the server accepts traffic.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// The probes.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// Runs every probe concurrently.
    pub async fn check(&self) -> Vec<ProbeOutcome> {
        let timeout = self.timeout;
        futures::future::join_all(self.probes.iter().map(|probe| async move {
            let started = Instant::now();
            let result = match &probe.check {
                None => Ok(()),
                Some(check) => match tokio::time::timeout(timeout, check()).await {
                    Ok(r) => r.map_err(|e| {
                        tracing::warn!(check = probe.name, backend = probe.backend, error = %e, "readiness check failed");
                        e.public_message()
                    }),
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                },
            };
            ProbeOutcome {
                name: probe.name,
                backend: probe.backend,
                status: if result.is_ok() { "up" } else { "down" },
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error: result.err(),
            }
        }))
        .await
    }
}
