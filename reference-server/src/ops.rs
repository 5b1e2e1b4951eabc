//! The server's own endpoints: `/healthz` (liveness), `/readyz` (every backend) and
//! `/metrics` (Prometheus).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openframe_core::{MachineStatus, PageRequest, Result};
use openframe_data::{MachineFilter, MachineRepository, TenantRepository};
use serde_json::json;

use openframe_stream::processor::Processor;

use crate::backends::Readiness;
use crate::events::PublishQueue;
use crate::metrics::{Family, Metrics, processor_families, publish_queue_families};

/// Liveness path.
pub const HEALTHZ: &str = "/healthz";
/// Readiness path.
pub const READYZ: &str = "/readyz";
/// Metrics path.
pub const METRICS: &str = "/metrics";

/// How long a computed "agents online" count is reused.
const ONLINE_TTL: Duration = Duration::from_secs(15);

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct OpsState {
    /// Backend probes and the accepting flag.
    pub readiness: Readiness,
    /// The registry.
    pub metrics: Metrics,
    /// Tenants (for platform-wide gauges).
    pub tenants: Arc<dyn TenantRepository>,
    /// Machines (for the agents-online gauge).
    pub machines: Arc<dyn MachineRepository>,
    /// The event processor whose counters and consumer lag `/metrics` shows.
    pub processor: Option<Processor>,
    /// The queue of events headed for the event bus, whose depth and drops `/metrics` shows.
    pub event_queue: Option<PublishQueue>,
    online: Arc<Mutex<Option<(Instant, u64)>>>,
}

impl OpsState {
    /// The state of the ops endpoints.
    pub fn new(
        readiness: Readiness,
        metrics: Metrics,
        tenants: Arc<dyn TenantRepository>,
        machines: Arc<dyn MachineRepository>,
    ) -> Self {
        Self {
            readiness,
            metrics,
            tenants,
            machines,
            processor: None,
            event_queue: None,
            online: Arc::new(Mutex::new(None)),
        }
    }

    /// Shows `processor`'s metrics in `/metrics`.
    pub fn with_processor(mut self, processor: Processor) -> Self {
        self.processor = Some(processor);
        self
    }

    /// Shows `queue`'s depth and drops in `/metrics`.
    pub fn with_event_queue(mut self, queue: PublishQueue) -> Self {
        self.event_queue = Some(queue);
        self
    }

    /// ONLINE machines over every tenant (recomputed at most every 15 s).
    pub async fn agents_online(&self) -> Result<u64> {
        if let Some((at, n)) = self.online.lock().ok().and_then(|o| *o) {
            if at.elapsed() < ONLINE_TTL {
                return Ok(n);
            }
        }
        let online = MachineFilter {
            statuses: vec![MachineStatus::Online],
            ..Default::default()
        };
        let mut total = 0;
        let mut request = PageRequest::first(100);
        loop {
            let page = self.tenants.list(&request).await?;
            for tenant in page.nodes() {
                total += self.machines.count(&tenant.id, &online).await?;
            }
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => request = PageRequest::first(100).after(cursor),
                _ => break,
            }
        }
        if let Ok(mut cached) = self.online.lock() {
            *cached = Some((Instant::now(), total));
        }
        Ok(total)
    }
}

/// The router of the three endpoints.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .with_state(state)
}

/// Liveness: the process serves HTTP. No backend is touched.
async fn healthz() -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"status": "ok"})),
    )
        .into_response()
}

/// Readiness: every backend answers and the server is not shutting down; 503 otherwise.
async fn readyz(State(state): State<OpsState>) -> Response {
    let outcomes = state.readiness.check().await;
    let accepting = state.readiness.accepting();
    let ready = accepting && outcomes.iter().all(|o| o.is_up());
    let checks: serde_json::Map<String, serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            (
                o.name.to_owned(),
                serde_json::to_value(o).unwrap_or_default(),
            )
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "accepting": accepting,
        "checks": checks,
    });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// Prometheus text format.
async fn metrics(State(state): State<OpsState>) -> Response {
    let mut families = vec![Family::gauge(
        "openframe_ready",
        "1 while the server accepts traffic.",
        if state.readiness.accepting() {
            1.0
        } else {
            0.0
        },
    )];
    match state.agents_online().await {
        Ok(n) => families.push(Family::gauge(
            "openframe_agents_online",
            "Machines whose agent is ONLINE, over every tenant.",
            n as f64,
        )),
        Err(e) => tracing::warn!(error = %e, "cannot count online agents for /metrics"),
    }
    if let Some(processor) = &state.processor {
        families.extend(processor_families(&processor.metrics()));
    }
    if let Some(queue) = &state.event_queue {
        families.extend(publish_queue_families(&queue.stats()));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&families),
    )
        .into_response()
}
