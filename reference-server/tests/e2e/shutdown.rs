//! SIGTERM stops the server cleanly: exit 0, the drain, the job stop and the publish queue's
//! flush are logged, the port is released, and the data survives.

use crate::support::{Spawned, http};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_stops_jobs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(&dir.path().join("data"), &[], &[]);
    let url = server.url("/healthz");
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    let (status, stderr) = server.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stop requested"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(stderr.contains("all connections drained"), "{stderr}");
    assert!(stderr.contains("event publish queue stopped"), "{stderr}");
    assert!(stderr.contains("event processor stopped"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    // Nothing listens any more.
    assert!(http().get(&url).send().await.is_err());
}
