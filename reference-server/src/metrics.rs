//! Prometheus metrics: HTTP requests by route and status with latency histograms, scheduled
//! job runs, and families read at scrape time (agents online, the event processor, the queue
//! of events headed for the event bus).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use openframe_stream::processor::MetricsSnapshot;

use crate::events::{DropReason, PublishQueueStats};

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

/// The Prometheus type of a [`Family`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// One value of a [`Family`], with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values (values are escaped when rendered).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// A metric read at scrape time: name, help, type and samples. A family without samples
/// renders its `HELP` and `TYPE` lines only.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Metric name (`openframe_agents_online`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The values.
    pub samples: Vec<Sample>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// A gauge with one unlabelled value.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Self::new(name, help, Kind::Gauge).with(Vec::new(), value)
    }

    /// A counter with one unlabelled value.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self::new(name, help, Kind::Counter).with(Vec::new(), value as f64)
    }

    /// Adds a sample.
    pub fn with(mut self, labels: Vec<(&'static str, String)>, value: f64) -> Self {
        self.samples.push(Sample { labels, value });
        self
    }

    fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(
            out,
            "# HELP {name} {}\n# TYPE {name} {}",
            self.help,
            self.kind.as_str()
        );
        for sample in &self.samples {
            if sample.labels.is_empty() {
                let _ = writeln!(out, "{name} {}", sample.value);
            } else {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), sample.value);
            }
        }
    }
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

    /// The Prometheus text exposition, with `families` (read at scrape time) appended.
    pub fn render(&self, families: &[Family]) -> String {
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
            jobs.iter()
                .fold(Family::new(name, help, Kind::Counter), |f, (job, stats)| {
                    f.with(vec![("job", (*job).to_owned())], pick(stats) as f64)
                })
                .render(&mut out);
        }
        for family in families {
            family.render(&mut out);
        }
        out
    }
}

/// The event processor's counters, gauges and consumer lag by source partition (a partition
/// appears once the bus reported its lag; the total once any lag was reported).
pub fn processor_families(m: &MetricsSnapshot) -> Vec<Family> {
    let mut lag = Family::new(
        "openframe_event_consumer_lag",
        "Records of a source partition the processor's group has not committed yet.",
        Kind::Gauge,
    );
    let mut committed = Family::new(
        "openframe_event_consumer_committed_offset",
        "The offset of the last record the processor committed, by source partition.",
        Kind::Gauge,
    );
    for p in &m.partitions {
        let labels = || {
            vec![
                ("topic", p.topic.clone()),
                ("partition", p.partition.to_string()),
            ]
        };
        if let Some(n) = p.lag {
            lag = lag.with(labels(), n as f64);
        }
        if let Some(offset) = p.committed_offset {
            committed = committed.with(labels(), offset as f64);
        }
    }
    let mut lag_total = Family::new(
        "openframe_event_consumer_lag_total",
        "Records of every assigned source partition not committed yet.",
        Kind::Gauge,
    );
    if let Some(n) = m.lag_total {
        lag_total = lag_total.with(Vec::new(), n as f64);
    }
    vec![
        Family::counter(
            "openframe_events_processed_total",
            "Source records the event processor finished (written, or carrying no event).",
            m.processed,
        ),
        Family::counter(
            "openframe_events_written_total",
            "Unified events the event processor wrote to the event store.",
            m.events_written,
        ),
        Family::counter(
            "openframe_events_retried_total",
            "Repeated attempts of the event processor after transient failures.",
            m.retried,
        ),
        Family::counter(
            "openframe_events_dead_lettered_total",
            "Source records the event processor sent to the dead-letter topic.",
            m.dead_lettered,
        ),
        Family::counter(
            "openframe_events_replayed_total",
            "Dead letters moved back to their source topic.",
            m.replayed,
        ),
        Family::gauge(
            "openframe_events_in_flight",
            "Source records delivered to the event processor and not finished.",
            m.in_flight as f64,
        ),
        Family::gauge(
            "openframe_events_throughput_per_second",
            "Source records processed per second since the processor started.",
            m.throughput_per_sec,
        ),
        lag,
        lag_total,
        committed,
    ]
}

/// The queue of agent events and execution results headed for the event bus.
pub fn publish_queue_families(s: &PublishQueueStats) -> Vec<Family> {
    let dropped = DropReason::ALL.iter().fold(
        Family::new(
            "openframe_event_publish_dropped_total",
            "Events headed for the event bus that were dropped, by reason (full, expired, rejected, shutdown).",
            Kind::Counter,
        ),
        |f, reason| {
            f.with(
                vec![("reason", reason.as_str().to_owned())],
                s.dropped(*reason) as f64,
            )
        },
    );
    vec![
        Family::gauge(
            "openframe_event_publish_queue_depth",
            "Events waiting for (or being published to) the event bus.",
            s.depth as f64,
        ),
        Family::gauge(
            "openframe_event_publish_queue_capacity",
            "The most events the publish queue holds; more are dropped.",
            s.capacity as f64,
        ),
        Family::counter(
            "openframe_event_publish_published_total",
            "Events the publish queue handed to the event bus.",
            s.published,
        ),
        Family::counter(
            "openframe_event_publish_retries_total",
            "Repeated publish attempts after transient event bus failures.",
            s.retried,
        ),
        dropped,
    ]
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
        let text = m.render(&[Family::gauge("openframe_agents_online", "h", 7.0)]);
        assert!(text.contains(
            "openframe_http_requests_total{method=\"GET\",route=\"/sas/{tenant}/oauth2/jwks\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("openframe_job_items_total{job=\"offline-sweep\"} 3"));
        assert!(text.contains("openframe_job_skipped_total{job=\"offline-sweep\"} 1"));
        assert!(text.contains("openframe_agents_online 7"));
    }

    #[test]
    fn renders_the_publish_queue_with_a_drop_counter_per_reason() {
        let stats = PublishQueueStats {
            depth: 3,
            capacity: 10,
            published: 5,
            retried: 2,
            dropped: [1, 4, 0, 0],
        };
        let text = Metrics::new().render(&publish_queue_families(&stats));
        assert!(text.contains("# TYPE openframe_event_publish_queue_depth gauge\nopenframe_event_publish_queue_depth 3\n"), "{text}");
        assert!(text.contains("# TYPE openframe_event_publish_published_total counter\nopenframe_event_publish_published_total 5\n"));
        assert!(text.contains("openframe_event_publish_retries_total 2\n"));
        assert!(text.contains("openframe_event_publish_dropped_total{reason=\"full\"} 1\n"));
        assert!(text.contains("openframe_event_publish_dropped_total{reason=\"expired\"} 4\n"));
        assert!(text.contains("openframe_event_publish_dropped_total{reason=\"shutdown\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let family = Family::new("openframe_x", "h", Kind::Gauge).with(
            vec![
                ("topic", "a\"b\\c\nd".to_owned()),
                ("partition", "0".to_owned()),
            ],
            1.0,
        );
        let text = Metrics::new().render(&[family]);
        assert!(
            text.contains("openframe_x{topic=\"a\\\"b\\\\c\\nd\",partition=\"0\"} 1\n"),
            "{text}"
        );
    }
}
