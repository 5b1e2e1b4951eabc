//! Prometheus metrics: HTTP requests by route and status with latency histograms, scheduled
//! job runs, and gauges computed at scrape time (agents online).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i] += 1;
            }
        }
    }
}

/// Outcome counters of one scheduled job.
#[derive(Debug, Default, Clone, Copy)]
struct JobStats {
    runs: u64,
    skipped: u64,
    failures: u64,
    items: u64,
}

/// What one job pass did, for [`Metrics::record_job`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// It ran and handled this many items.
    Ran(usize),
    /// Another replica held the lock.
    Skipped,
    /// It failed.
    Failed,
}

type HttpKey = (String, String, u16);

/// The metrics registry of the server. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    http: Arc<Mutex<BTreeMap<HttpKey, Histogram>>>,
    jobs: Arc<Mutex<BTreeMap<&'static str, JobStats>>>,
}

/// A gauge value read at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name (`openframe_agents_online`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// The value.
    pub value: f64,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one HTTP request. `route` is the matched route template (`/sas/{tenant}/...`),
    /// never the raw path, so ids do not explode the label set.
    pub fn record_http(&self, method: &str, route: &str, status: u16, secs: f64) {
        if let Ok(mut http) = self.http.lock() {
            http.entry((method.to_owned(), route.to_owned(), status))
                .or_default()
                .observe(secs);
        }
    }

    /// Records one pass of a scheduled job.
    pub fn record_job(&self, job: &'static str, outcome: JobOutcome) {
        if let Ok(mut jobs) = self.jobs.lock() {
            let stats = jobs.entry(job).or_default();
            match outcome {
                JobOutcome::Ran(n) => {
                    stats.runs += 1;
                    stats.items += n as u64;
                }
                JobOutcome::Skipped => stats.skipped += 1,
                JobOutcome::Failed => stats.failures += 1,
            }
        }
    }

    /// The Prometheus text exposition, with `gauges` appended.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let http = self.http.lock().map(|h| h.clone()).unwrap_or_default();
        out.push_str(
            "# HELP openframe_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE openframe_http_requests_total counter\n");
        for ((method, route, status), h) in &http {
            let _ = writeln!(
                out,
                "openframe_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP openframe_http_request_duration_seconds HTTP request latency by method, route and status.\n");
        out.push_str("# TYPE openframe_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in &http {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "openframe_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "openframe_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "openframe_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "openframe_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        for (name, help, pick) in [
            (
                "openframe_job_runs_total",
                "Scheduled job passes this replica ran.",
                (|s: &JobStats| s.runs) as fn(&JobStats) -> u64,
            ),
            (
                "openframe_job_skipped_total",
                "Scheduled job passes skipped because another replica held the lock.",
                |s| s.skipped,
            ),
            (
                "openframe_job_failures_total",
                "Scheduled job passes that failed.",
                |s| s.failures,
            ),
            (
                "openframe_job_items_total",
                "Items scheduled jobs handled (machines marked offline, keys rotated, executions timed out).",
                |s| s.items,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (job, stats) in &jobs {
                let _ = writeln!(out, "{name}{{job=\"{job}\"}} {}", pick(stats));
            }
        }
        for g in gauges {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} gauge\n{} {}",
                g.name, g.help, g.name, g.name, g.value
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request under its matched route (`unmatched` for 404s).
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.record_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_jobs_and_gauges() {
        let m = Metrics::new();
        m.record_http("GET", "/sas/{tenant}/oauth2/jwks", 200, 0.003);
        m.record_http("GET", "/sas/{tenant}/oauth2/jwks", 200, 0.3);
        m.record_job("offline-sweep", JobOutcome::Ran(3));
        m.record_job("offline-sweep", JobOutcome::Skipped);
        let text = m.render(&[Gauge {
            name: "openframe_agents_online",
            help: "h",
            value: 7.0,
        }]);
        assert!(text.contains(
            "openframe_http_requests_total{method=\"GET\",route=\"/sas/{tenant}/oauth2/jwks\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("openframe_job_items_total{job=\"offline-sweep\"} 3"));
        assert!(text.contains("openframe_job_skipped_total{job=\"offline-sweep\"} 1"));
        assert!(text.contains("openframe_agents_online 7"));
    }
}
