//! `/readyz` reports each configured backend and turns 503 when one is down: a real Redis is
//! started for the test, then stopped under the running server.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Spawned, http};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_redis_when_redis_goes_down() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: redis-server is not on PATH");
        return;
    }
    let port = free_port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let dir = tempfile::tempdir().unwrap();
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let server = Spawned::start(
        &dir.path().join("data"),
        &[],
        &[
            ("OPENFRAME_REDIS_URL", &redis_url),
            ("OPENFRAME_REDIS_KEY_PREFIX", "readyz-test:"),
        ],
    );
    let client = http();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["redis"]["backend"], "redis");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert_eq!(body["checks"]["locks"]["status"], "up");

    redis.kill().unwrap();
    redis.wait().unwrap();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["redis"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    assert!(body["checks"]["redis"]["error"].is_string());
    // Liveness does not depend on backends.
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_buses_run_on_nats_and_readyz_reports_them_down_with_nats() {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: nats-server is not on PATH");
        return;
    }
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let mut nats = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let dir = tempfile::tempdir().unwrap();
    let nats_url = format!("nats://127.0.0.1:{port}");
    let server = Spawned::start(
        &dir.path().join("data"),
        &[],
        &[
            ("OPENFRAME_NATS_URL", &nats_url),
            ("OPENFRAME_EVENT_BUS_URL", &nats_url),
        ],
    );
    let client = http();
    let body: Value = client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["agentBus"]["backend"], "nats");
    assert_eq!(body["checks"]["agentBus"]["status"], "up");
    assert_eq!(body["checks"]["eventBus"]["backend"], "nats");
    assert_eq!(body["checks"]["eventBus"]["status"], "up");

    nats.kill().unwrap();
    nats.wait().unwrap();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["agentBus"]["status"], "down", "{body}");
}
