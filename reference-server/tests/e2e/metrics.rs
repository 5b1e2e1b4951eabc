//! `/metrics` shows the event processor (counters, consumer lag by source partition) and the
//! queue of events headed for the event bus, over the real binary on its embedded defaults.

use std::time::{Duration, Instant};

use crate::support::{Spawned, enroll, http};

/// The value of the sample whose line starts with `series ` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// The values of every sample whose line starts with `prefix`.
fn samples(metrics: &str, prefix: &str) -> Vec<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

const AGENT_EVENTS_LAG: &str = r#"openframe_event_consumer_lag{topic="openframe.agent-events","#;
const AGENT_EVENTS_COMMITTED: &str =
    r#"openframe_event_consumer_committed_offset{topic="openframe.agent-events","#;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_event_processor_and_the_publish_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(&dir.path().join("data"), &[], &[]);
    let client = http();
    let scrape = || async {
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    assert_eq!(
        sample(&before, "openframe_event_publish_published_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "openframe_events_processed_total"),
        Some(0.0)
    );
    assert!(before.contains("# TYPE openframe_events_processed_total counter"));
    assert!(before.contains("# TYPE openframe_event_consumer_lag gauge"));
    assert!(before.contains("# TYPE openframe_event_publish_queue_depth gauge"));
    assert_eq!(
        sample(
            &before,
            r#"openframe_event_publish_dropped_total{reason="full"}"#
        ),
        Some(0.0)
    );

    // Registering a machine emits its REGISTERED event: queued, published on the event
    // bus, then processed into a unified event.
    let secret = server.get("registration secret").unwrap().to_owned();
    let (status, body) = enroll(&server, &secret).await;
    assert_eq!(status, 200, "{body}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let text = scrape().await;
        let published = sample(&text, "openframe_event_publish_published_total");
        let processed = sample(&text, "openframe_events_processed_total");
        // Every agent-events partition reported, nothing left to consume, one committed.
        let lag = samples(&text, AGENT_EVENTS_LAG);
        let committed = samples(&text, AGENT_EVENTS_COMMITTED);
        if published == Some(1.0)
            && processed >= Some(1.0)
            && !lag.is_empty()
            && lag.iter().all(|n| *n == 0.0)
            && committed.len() == 1
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the REGISTERED event did not show in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        sample(&after, "openframe_event_publish_queue_depth"),
        Some(0.0)
    );
    assert!(
        sample(&after, "openframe_events_written_total") >= Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "openframe_events_dead_lettered_total"),
        Some(0.0)
    );
    assert!(
        sample(&after, "openframe_event_consumer_lag_total").is_some(),
        "{after}"
    );
    assert!(!after.contains("ws-01"), "no event content in the metrics");
}
