//! End to end over real HTTP against the reference server started in process on the real
//! services of `scripts/test-services.sh`, with no code change, only configuration:
//! Redis (cache, job locks, rate limits), NATS (agent bus), Kafka (event bus) and, when
//! `OPENFRAME_TEST_MONGODB_URL` is set, MongoDB (storage). Each service that is not set is
//! skipped with a "skipped: set X" line; the rest still runs. Every run uses a random namespace
//! (Redis key prefix, Kafka topic and group prefix, MongoDB database).
//!
//! Besides what the API shows, taps on the services prove the traffic really went through them:
//! the agent's heartbeats, the command and its result on NATS; the lifecycle events and the
//! result on the Kafka topics; the API key's rate limit state, the job lock and the enrichment
//! cache in Redis.
//!
//! The agent bus has no namespace: its subjects are the agent protocol's, and every server joins
//! the NATS queue group `openframe-server` for heartbeats, hostnames and results. Two servers of
//! different deployments (or tests) on one NATS server split those messages between them, so
//! this binary runs at most one deployment at a time (the replicas run inside the main test).
//!
//! Two replicas share the store: MongoDB when set, else one SQLite file (a same-host stand-in).
//! The outage tests start a Redis and a NATS of their own (the shared ones must stay up), and
//! bad service URLs are checked without any service.
//!
//! Run with `scripts/test-services.sh cargo nextest run -p openframe-server --test e2e_backends`.

#![cfg(all(feature = "redis", feature = "nats", feature = "kafka"))]

mod e2e_backends_support;
mod e2e_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use e2e_backends_support::{
    KafkaTap, NatsTap, OwnService, PIPELINE_DEADLINE, Services, assert_ready, init_logs,
    master_key, redis, redis_cleanup, redis_keys, text,
};
use e2e_support::agent::{EchoAgent, device_status, fast_presence, start_agent};
use e2e_support::{OWNER_PASSWORD, Server, eventually, gid};
use openframe_agent::presence::SWEEP_LOCK;
use openframe_agent::stream_bridge::{AGENT_EVENTS_TOPIC, AGENT_RESULTS_TOPIC};
use openframe_server::config::{ServerConfig, ServiceUrl};
use serde_json::{Value, json};

/// The per-minute quota of every API key on `/api/v1` (small, so the Redis part reaches it).
const QUOTA_PER_MINUTE: u32 = 5;

/// Fast presence, this run's services, and a small per-minute quota only.
fn configure(services: &Services, config: &mut ServerConfig) {
    fast_presence(config);
    services.configure(config);
    config.external_api.quota_per_minute = QUOTA_PER_MINUTE;
    config.external_api.quota_per_hour = 0;
    config.external_api.quota_per_day = 0;
}

const EVENTS_OF_MACHINE: &str = "query($m: [ID!]) { events(filter: {machineIds: $m}, first: 50) { edges { node { eventType summary machineId } } } }";

/// Runs `command` on `machine` through GraphQL; returns the finished execution (`status`,
/// `exitCode`, `stdout`, `machine { machineId }`).
async fn run_command(server: &Server, token: &str, machine: &str, command: &str) -> Value {
    let run = server
        .graphql(
            token,
            "mutation($ids: [ID!], $c: String!) { runCommand(input: {target: {machineIds: $ids}, command: $c, shell: BASH, timeoutSeconds: 30}) { executions { id } } }",
            json!({"ids": [gid("Machine", machine)], "c": command}),
        )
        .await;
    let execution = run["runCommand"]["executions"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an execution: {run}"))
        .to_owned();
    eventually("the command's result is stored", || async {
        let data = server
            .graphql(
                token,
                "query($id: ID!) { execution(id: $id) { status exitCode stdout machine { machineId } } }",
                json!({"id": execution}),
            )
            .await;
        let e = data["execution"].clone();
        (e["status"] != "RUNNING" && e["status"] != "QUEUED").then_some(e)
    })
    .await
}

/// Waits until `machine` is ONLINE in GraphQL on `server`.
async fn wait_online(server: &Server, token: &str, machine: &str) {
    eventually("the device is ONLINE in GraphQL", || async {
        (device_status(server, token, machine).await.as_deref() == Some("ONLINE")).then_some(())
    })
    .await;
}

/// Waits until a heartbeat moves the device's `lastSeen` past its current value.
async fn wait_for_heartbeat(server: &Server, token: &str, machine: &str) {
    let seen = last_seen(server, token, machine).await;
    eventually("a heartbeat moves lastSeen", || async {
        (last_seen(server, token, machine).await > seen).then_some(())
    })
    .await;
}

/// Polls `/readyz` until `ready` holds for its status and body; returns the body.
async fn wait_readyz(server: &Server, what: &str, ready: impl Fn(u16, &Value) -> bool) -> Value {
    eventually(what, || async {
        let r = server.http.get(server.url("/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        ready(status, &body).then_some(body)
    })
    .await
}

/// The device's `lastSeen` in GraphQL.
async fn last_seen(server: &Server, token: &str, machine: &str) -> Option<DateTime<FixedOffset>> {
    let data = server
        .graphql(
            token,
            "query($m: String!) { deviceByMachineId(machineId: $m) { lastSeen } }",
            json!({"m": machine}),
        )
        .await;
    data["deviceByMachineId"]["lastSeen"]
        .as_str()
        .map(|t| DateTime::parse_from_rfc3339(t).expect("an RFC 3339 lastSeen"))
}

/// Polls GraphQL `events` of `machine` until every type of `wanted` is there.
async fn wait_for_event_types(server: &Server, token: &str, machine: &str, wanted: &[&str]) {
    let deadline = Instant::now() + PIPELINE_DEADLINE;
    loop {
        let data = server
            .graphql(
                token,
                EVENTS_OF_MACHINE,
                json!({"m": [gid("Machine", machine)]}),
            )
            .await;
        let types: BTreeSet<String> = data["events"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|e| assert_eq!(e["node"]["machineId"], machine, "{data}"))
            .filter_map(|e| e["node"]["eventType"].as_str().map(str::to_owned))
            .collect();
        if wanted.iter().all(|w| types.contains(*w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the events {wanted:?} of {machine}; stored: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// One server on every set service: readiness, an agent over NATS, events over Kafka, rate
// limits in Redis, tenant isolation.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_runs_on_the_real_services_with_configuration_only() {
    init_logs();
    let services = Services::from_env();
    if !services.any() {
        println!("skipped: no service set (e2e_platform covers the embedded defaults)");
        return;
    }
    let server = Server::start(|c| configure(&services, c)).await;

    // 1. /readyz names every configured backend, each up.
    assert_ready(&server.http, &server.base, &services.expected_checks()).await;

    let token = server.owner_token().await;
    let nats_tap = match &services.nats {
        Some(url) => Some(NatsTap::start(url).await),
        None => None,
    };

    // 2. An SDK agent enrolls with the bootstrapped registration secret and connects...
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(EchoAgent::default());
    let agent = start_agent(&server, dir.path(), "vm-backends-01", handler.clone()).await;
    let machine = agent.machine_id().to_string();
    wait_online(&server, &token, &machine).await;
    // ...heartbeats (over NATS when set), and each heartbeat moves the device's lastSeen.
    if let Some(tap) = &nats_tap {
        let subject = format!("machine.{machine}.heartbeat");
        eventually("a heartbeat on NATS", || async {
            (!tap.payloads(&subject).is_empty()).then_some(())
        })
        .await;
    }
    wait_for_heartbeat(&server, &token, &machine).await;

    // A command dispatched through GraphQL runs on the agent; its result is queryable.
    let finished = run_command(&server, &token, &machine, "echo hello-backends").await;
    assert_eq!(finished["status"], "SUCCESS", "{finished}");
    assert_eq!(finished["exitCode"], 0);
    assert_eq!(finished["stdout"], "hello-backends");
    assert_eq!(finished["machine"]["machineId"], machine.as_str());
    assert_eq!(
        *handler.received.lock().unwrap(),
        vec!["echo hello-backends".to_owned()],
        "the agent ran the command once"
    );
    // ...and the command and its result crossed the real NATS server.
    if let Some(tap) = &nats_tap {
        let commands = tap.payloads(&format!("machine.{machine}.command-execution"));
        assert_eq!(commands.len(), 1, "the command on NATS: {commands:?}");
        assert!(
            commands[0].contains("echo hello-backends"),
            "{}",
            commands[0]
        );
        let results = tap.payloads(&format!("machine.{machine}.command-execution.result"));
        assert!(
            results.iter().any(|r| r.contains("hello-backends")),
            "the agent's result on NATS: {results:?}"
        );
    }

    // Silence: the offline sweep (a scheduled job under the distributed lock, in Redis when
    // set) marks the machine OFFLINE.
    agent.shutdown().await;
    eventually("the device goes OFFLINE after silence", || async {
        (device_status(&server, &token, &machine).await.as_deref() == Some("OFFLINE")).then_some(())
    })
    .await;

    // 3. The lifecycle events and the command's result went through the event bus and the
    //    processor into the event store: queryable through GraphQL `events`.
    wait_for_event_types(
        &server,
        &token,
        &machine,
        &[
            "DEVICE_REGISTERED",
            "DEVICE_ONLINE",
            "COMMAND_EXECUTED",
            "DEVICE_OFFLINE",
        ],
    )
    .await;

    // ...and they are records on this run's Kafka topics.
    let mut kafka_tap = None;
    if let Some(brokers) = &services.kafka {
        let mut tap = KafkaTap::start(
            brokers,
            &services.topic_prefix(),
            &[AGENT_EVENTS_TOPIC, AGENT_RESULTS_TOPIC],
        )
        .await;
        let kinds = ["\"REGISTERED\"", "\"CAME_ONLINE\"", "\"WENT_OFFLINE\""];
        let records = tap
            .until("the machine's events and result", &machine, |records| {
                kinds
                    .iter()
                    .all(|k| records.iter().any(|r| text(r).contains(k)))
                    && records.iter().any(|r| r.topic == AGENT_RESULTS_TOPIC)
            })
            .await;
        let result = records
            .iter()
            .find(|r| r.topic == AGENT_RESULTS_TOPIC)
            .unwrap();
        assert!(text(result).contains("hello-backends"), "{}", text(result));
        assert!(
            records
                .iter()
                .filter(|r| r.topic == AGENT_EVENTS_TOPIC)
                .all(|r| text(r).contains(server.tenant.as_str())),
            "every event of the machine names its tenant"
        );
        kafka_tap = Some(tap);
    }

    // 5. The API key's rate limit is counted in Redis, in this run's key prefix.
    if let Some(url) = &services.redis {
        let key = server.api_key(&token, &["devices:read"]).await;
        let key_id = key.split('.').next().unwrap().to_owned();
        for i in 0..QUOTA_PER_MINUTE {
            let r = server.get_key("/api/v1/devices?limit=1", &key).await;
            assert_eq!(r.status(), 200, "request {i} within the quota");
        }
        let r = server.get_key("/api/v1/devices?limit=1", &key).await;
        assert_eq!(r.status(), 429, "over the quota");

        let mut con = redis(url).await;
        let pattern = format!("{}rl:*api-key*{key_id}", services.redis_prefix());
        let keys = redis_keys(&mut con, &pattern).await;
        assert_eq!(
            keys.len(),
            1,
            "one Redis hash for the key ({pattern}): {keys:?}"
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(ttl > 0, "the limit state expires in Redis (PTTL {ttl})");
        // Deleting the state in Redis (not in the server) gives the key its quota back.
        let _: () = redis::cmd("DEL")
            .arg(&keys[0])
            .query_async(&mut con)
            .await
            .unwrap();
        let r = server.get_key("/api/v1/devices?limit=1", &key).await;
        assert_eq!(r.status(), 200, "the quota lives in Redis");
        assert_eq!(
            r.headers()
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok()),
            Some((QUOTA_PER_MINUTE - 1).to_string().as_str())
        );
        // The offline sweep's job lock is a Redis hash (kept between passes, so one replica
        // sweeps per interval)...
        let sweep_lock = format!("{}of:lock:{}", services.redis_prefix(), SWEEP_LOCK);
        eventually("the offline sweep's lock in Redis", || {
            let mut con = con.clone();
            let sweep_lock = sweep_lock.clone();
            async move {
                let owner: Option<String> = redis::cmd("HGET")
                    .arg(&sweep_lock)
                    .arg("t")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                owner.filter(|t| !t.is_empty())
            }
        })
        .await;
        // ...and the event processor's enrichment cached the machine in Redis.
        let cached = format!(
            "{}of:{{{}}}:enrich-machine:{machine}",
            services.redis_prefix(),
            server.tenant
        );
        let exists: bool = redis::cmd("EXISTS")
            .arg(&cached)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(exists, "the enrichment cache entry {cached} in Redis");
    }

    // Tenant isolation on these backends: a second tenant sees none of it.
    let other = format!("b{}", &services.namespace[3..]);
    server.sign_up(&other).await;
    let other_token = server
        .login(&other, &format!("owner@{other}.example"), OWNER_PASSWORD)
        .await;
    let data = server
        .graphql(
            &other_token,
            EVENTS_OF_MACHINE,
            json!({"m": [gid("Machine", &machine)]}),
        )
        .await;
    assert_eq!(data["events"]["edges"], json!([]), "{data}");
    assert_eq!(
        device_status(&server, &other_token, &machine).await,
        None,
        "tenant {other} sees no device of the default tenant"
    );
    let data = server
        .graphql(&other_token, "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(data["devices"]["filteredCount"], 0);

    drop(nats_tap);
    let topics = server_topics(&server);
    server.shutdown().await;
    if let Some(tap) = kafka_tap {
        tap.cleanup(&topics).await;
    }
    if let Some(url) = &services.redis {
        redis_cleanup(url, &services.redis_prefix()).await;
    }

    // 4. Two replicas, in this test so that no other server of this binary joins the agent
    //    bus's queue group meanwhile (the agent bus has no namespace; see the module docs).
    if services.nats.is_some() {
        two_replicas_share_storage_and_buses(&services.renamed("r")).await;
    } else {
        println!(
            "skipped: set OPENFRAME_TEST_NATS_URL for two replicas (they share the agent bus)"
        );
    }
}

/// The topics the server created on the event bus (the processor's sources, dead letters and
/// output).
fn server_topics(server: &Server) -> Vec<String> {
    let config = server.running.platform.processor.config();
    config
        .topics
        .iter()
        .chain(std::iter::once(&config.dead_letter_topic))
        .chain(config.output_topic.iter())
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// 4. Two replicas on shared storage: an agent on one, a command dispatched through the other
//    (run by the test above when NATS is set).
// ---------------------------------------------------------------------------------------

/// Two replicas (two `start` calls, each with its own data directory) on `services` and one
/// store: MongoDB when set, else one SQLite file both open (a stand-in: replicas on several
/// hosts need MongoDB), with one master key.
async fn two_replicas_share_storage_and_buses(services: &Services) {
    let key = master_key();
    let shared = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", shared.path().join("shared.db").display());
    if services.mongodb.is_none() {
        println!("two replicas on one SQLite file (set OPENFRAME_TEST_MONGODB_URL for MongoDB)");
    }
    let tweak = |c: &mut ServerConfig| {
        configure(services, c);
        c.security.master_key = Some(key.clone());
        if services.mongodb.is_none() {
            c.database.url = Some(ServiceUrl::new(sqlite.clone()));
        }
    };
    let a = Server::start(tweak).await;
    let b = Server::start(tweak).await;
    assert_eq!(a.tenant, b.tenant);
    assert_eq!(
        a.registration_secret.expose(),
        b.registration_secret.expose(),
        "the second replica finds the first one's registration secret"
    );
    assert_ready(&b.http, &b.base, &services.expected_checks()).await;

    let token_b = b.owner_token().await;
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(EchoAgent::default());
    let agent = start_agent(&a, dir.path(), "vm-replica-01", handler.clone()).await;
    let machine = agent.machine_id().to_string();
    wait_online(&b, &token_b, &machine).await;

    let run = b
        .graphql(
            &token_b,
            "mutation($ids: [ID!]) { runCommand(input: {target: {machineIds: $ids}, command: \"echo via-b\", shell: BASH, timeoutSeconds: 30}) { executions { id } } }",
            json!({"ids": [gid("Machine", &machine)]}),
        )
        .await;
    let execution = run["runCommand"]["executions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_a = a.owner_token().await;
    let finished: Value = eventually("the command sent through B ran on A's agent", || async {
        let data = a
            .graphql(
                &token_a,
                "query($id: ID!) { execution(id: $id) { status stdout } }",
                json!({"id": execution}),
            )
            .await;
        let e = data["execution"].clone();
        (e["status"] != "RUNNING" && e["status"] != "QUEUED").then_some(e)
    })
    .await;
    assert_eq!(finished["status"], "SUCCESS", "{finished}");
    assert_eq!(finished["stdout"], "via-b");
    assert_eq!(
        *handler.received.lock().unwrap(),
        vec!["echo via-b".to_owned()]
    );

    // Whichever replica's processor handled them, the events are in the shared event store.
    wait_for_event_types(
        &b,
        &token_b,
        &machine,
        &["DEVICE_REGISTERED", "DEVICE_ONLINE", "COMMAND_EXECUTED"],
    )
    .await;

    agent.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    if let Some(url) = &services.redis {
        redis_cleanup(url, &services.redis_prefix()).await;
    }
}

// ---------------------------------------------------------------------------------------
// Unreachable or malformed service URLs: start fails with a clear error naming the backend,
// and never shows the credentials of the URL. Needs no service.
// ---------------------------------------------------------------------------------------

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One service URL that must keep the server from starting.
struct BadUrl {
    what: &'static str,
    /// `redis`, `agent_bus` or `event_bus`.
    setting: &'static str,
    url: String,
    /// A credential in the URL that no message may show ("" for none).
    secret: &'static str,
    /// Words the error must hold (lowercase).
    words: &'static [&'static str],
    /// Exit code 2 (configuration) rather than 1 (unavailable).
    config_error: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_malformed_service_urls_fail_start_without_leaking_credentials() {
    init_logs();
    let port = closed_port();
    let cases = [
        BadUrl {
            what: "unreachable Redis",
            setting: "redis",
            url: format!("redis://:hunter2-redis@127.0.0.1:{port}/"),
            secret: "hunter2-redis",
            words: &["redis"],
            config_error: false,
        },
        BadUrl {
            what: "unreachable NATS",
            setting: "agent_bus",
            url: format!("nats://agent:hunter2-nats@127.0.0.1:{port}"),
            secret: "hunter2-nats",
            words: &["nats"],
            config_error: false,
        },
        BadUrl {
            what: "unreachable Kafka",
            setting: "event_bus",
            url: format!("kafka://127.0.0.1:{port}?request_timeout_ms=1000"),
            secret: "",
            words: &["kafka"],
            config_error: false,
        },
        BadUrl {
            what: "Kafka credentials in the URL",
            setting: "event_bus",
            url: "kafka://svc:hunter2-kafka@127.0.0.1:9092".to_owned(),
            secret: "hunter2-kafka",
            words: &["event_bus.url", "credentials"],
            config_error: true,
        },
        BadUrl {
            what: "an unknown Kafka setting",
            setting: "event_bus",
            url: "kafka://127.0.0.1:9092?bogus_setting=1".to_owned(),
            secret: "",
            words: &["event_bus.url", "bogus_setting"],
            config_error: true,
        },
        BadUrl {
            what: "a Redis URL of another scheme",
            setting: "redis",
            url: "http://:hunter2-http@127.0.0.1:6379".to_owned(),
            secret: "hunter2-http",
            words: &["redis.url", "redis://"],
            config_error: true,
        },
    ];
    for BadUrl {
        what,
        setting,
        url,
        secret,
        words,
        config_error,
    } in cases
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        config.http.connect_timeout_secs = 3;
        let url = Some(ServiceUrl::new(url));
        match setting {
            "redis" => config.redis.url = url,
            "agent_bus" => config.agent_bus.url = url,
            _ => config.event_bus.url = url,
        }
        let started = Instant::now();
        let error = match openframe_server::server::start(config).await {
            Ok(running) => {
                running.shutdown().await;
                panic!("{what}: the server started");
            }
            Err(e) => e,
        };
        let message = error.to_string();
        println!("{what}: exit code {}: {message}", error.exit_code());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: start gave up after {:?}",
            started.elapsed()
        );
        if !secret.is_empty() {
            assert!(!message.contains(secret), "{what}: {message}");
            assert!(!format!("{error:?}").contains(secret), "{what}: {error:?}");
        }
        for word in words {
            assert!(
                message.contains(word),
                "{what}: {message} should name {word}"
            );
        }
        assert_eq!(
            error.exit_code(),
            if config_error { 2 } else { 1 },
            "{what}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// A Redis outage (on a Redis of the test's own): /readyz turns 503 naming redis, the external
// API keeps answering (rate limits fail open), and both recover when Redis is back.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_turns_readyz_down_and_the_api_keeps_answering() {
    init_logs();
    let Some(mut redis) = OwnService::redis().await else {
        return;
    };
    let url = redis.url("redis");
    let server = Server::start(|c| {
        c.redis.url = Some(ServiceUrl::new(url.clone()));
        c.redis.key_prefix = "outage:".into();
        c.external_api.quota_per_minute = 2;
        c.external_api.quota_per_hour = 0;
        c.external_api.quota_per_day = 0;
    })
    .await;
    let checks = [("redis", "redis"), ("locks", "redis")];
    assert_ready(&server.http, &server.base, &checks).await;
    let token = server.owner_token().await;
    let key = server.api_key(&token, &["devices:read"]).await;
    let devices = "/api/v1/devices?limit=1";
    assert_eq!(server.get_key(devices, &key).await.status(), 200);

    redis.kill().await;
    let body = wait_readyz(&server, "/readyz reports redis down", |status, body| {
        status == 503 && body["checks"]["redis"]["status"] == "down"
    })
    .await;
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["checks"]["redis"]["backend"], "redis");
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    assert!(
        !body.to_string().contains(&redis.port.to_string()),
        "no address in /readyz: {body}"
    );
    // More requests than the quota, all answered: the limiter fails open, never a 500.
    for i in 0..4 {
        let started = Instant::now();
        let r = server.get_key(devices, &key).await;
        assert_eq!(r.status(), 200, "request {i} during the outage");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    let data = server
        .graphql(&token, "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(data["devices"]["filteredCount"], 0);

    redis.restart().await;
    wait_readyz(&server, "/readyz recovers with Redis", |status, _| {
        status == 200
    })
    .await;
    // The limits count again (the restarted Redis is empty: a full quota).
    let statuses = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(server.get_key(devices, &key).await.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses, vec![200, 200, 429]);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// A NATS restart (on a NATS of the test's own): /readyz turns 503 naming the agent bus, and
// once NATS is back the connected agent heartbeats and runs commands again.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_is_survived_by_the_agent_plane() {
    init_logs();
    let Some(mut nats) = OwnService::nats().await else {
        return;
    };
    let url = nats.url("nats");
    let server = Server::start(|c| c.agent_bus.url = Some(ServiceUrl::new(url.clone()))).await;
    assert_ready(&server.http, &server.base, &[("agentBus", "nats")]).await;
    let token = server.owner_token().await;
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(EchoAgent::default());
    let agent = start_agent(&server, dir.path(), "vm-nats-restart", handler.clone()).await;
    let machine = agent.machine_id().to_string();
    wait_online(&server, &token, &machine).await;
    let before = run_command(&server, &token, &machine, "echo before").await;
    assert_eq!(before["stdout"], "before", "{before}");

    nats.kill().await;
    let body = wait_readyz(
        &server,
        "/readyz reports the agent bus down",
        |status, body| status == 503 && body["checks"]["agentBus"]["status"] == "down",
    )
    .await;
    assert_eq!(body["checks"]["agentBus"]["backend"], "nats", "{body}");

    nats.restart().await;
    wait_readyz(&server, "/readyz recovers with NATS", |status, _| {
        status == 200
    })
    .await;
    // Heartbeats reach the server again...
    wait_for_heartbeat(&server, &token, &machine).await;
    // ...and a command reaches the agent and its result the server.
    let after = run_command(&server, &token, &machine, "echo after").await;
    assert_eq!(after["status"], "SUCCESS", "{after}");
    assert_eq!(after["stdout"], "after", "{after}");
    assert_eq!(
        *handler.received.lock().unwrap(),
        vec!["echo before".to_owned(), "echo after".to_owned()]
    );
    agent.shutdown().await;
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// A Kafka outage (on a tansu broker of the test's own): /readyz turns 503 naming the event bus
// while the API keeps answering; enrolling an agent must not wait for the broker.
// ---------------------------------------------------------------------------------------

/// A server on a broker of its own, with the broker killed once `/readyz` saw it up; `None`
/// (with a "skipped" line) without tansu.
async fn server_after_a_kafka_outage() -> Option<(Server, OwnService)> {
    let mut kafka = OwnService::kafka().await?;
    let url = format!(
        "{}?session_timeout_ms=6000&heartbeat_interval_ms=500",
        kafka.url("kafka")
    );
    let server = Server::start(|c| c.event_bus.url = Some(ServiceUrl::new(url.clone()))).await;
    assert_ready(&server.http, &server.base, &[("eventBus", "kafka")]).await;
    kafka.kill().await;
    let body = wait_readyz(
        &server,
        "/readyz reports the event bus down",
        |status, body| status == 503 && body["checks"]["eventBus"]["status"] == "down",
    )
    .await;
    assert_eq!(body["checks"]["eventBus"]["backend"], "kafka", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    Some((server, kafka))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_outage_turns_readyz_down_and_the_api_keeps_answering() {
    init_logs();
    let Some((server, _kafka)) = server_after_a_kafka_outage().await else {
        return;
    };
    let token = server.owner_token().await;
    let data = server
        .graphql(&token, "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(data["devices"]["filteredCount"], 0);
    server.shutdown().await;
}

// Issue #6: registration used to await the Kafka publish of its REGISTERED event (up to the
// 30 s delivery timeout, so the SDK retried and registered the machine twice). Events for the
// bus now wait in the publish queue instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_outage_does_not_hold_up_agent_registration() {
    init_logs();
    let Some((server, _kafka)) = server_after_a_kafka_outage().await else {
        return;
    };
    let token = server.owner_token().await;
    let patient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = patient
        .post(server.url("/clients/api/agents/register"))
        .header("x-initial-key", server.registration_secret.expose())
        .json(&json!({"hostname": "vm-kafka-down", "osType": "LINUX", "agentVersion": "1.0.0"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        took < Duration::from_secs(5),
        "registration took {took:?} while the event bus was down"
    );
    let data = server
        .graphql(&token, "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(data["devices"]["filteredCount"], 1);
    // The REGISTERED event waits in the publish queue (nothing dropped), shown in /metrics.
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert!(
        value("openframe_event_publish_queue_depth") >= 1.0,
        "{metrics}"
    );
    assert_eq!(value("openframe_event_publish_published_total"), 0.0);
    assert_eq!(
        value(r#"openframe_event_publish_dropped_total{reason="full"}"#),
        0.0
    );
    let queue = server.running.platform.event_queue.clone();
    server.shutdown().await;
    // Shutdown gave the queue its grace period, then counted what the bus never took.
    let stats = queue.stats();
    assert_eq!(stats.depth, 0);
    assert!(stats.dropped(openframe_server::events::DropReason::Shutdown) >= 1);
}
