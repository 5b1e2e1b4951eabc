//! Run with: cargo bench -p openframe-server --bench server
//! (add `--no-default-features` for a lighter build: the embedded defaults need no driver).
//!
//! Starts the server in process on the embedded defaults (SQLite in a temp directory,
//! in-process buses, cache, locks and rate limits), then prints one table:
//! time from start to ready (first start, which hashes the owner password, and a restart),
//! idle RSS, and requests/s with p50/p99 latency for endpoints under a load generator of
//! `CONNECTIONS` concurrent keep-alive connections for `SECONDS` each. `/healthz` is the
//! baseline; every other row alternates one-second slices with it and shows its ratio to the
//! baseline measured in those slices (this host's baseline alone drifts by 2x between minutes).
//! `OPENFRAME_BENCH_ROWS=jwks,devices` runs only the rows whose name contains one of the words.
//!
//! Goals (issue #6): ready < 1 s; idle RSS < 60 MB; an authenticated REST page at least half
//! the baseline's requests/s with p99 < 20 ms.
//!
//! The authenticated rows run against 200 seeded devices of the default tenant: a GraphQL
//! query of 50 devices with the OWNER's bearer token, `/api/v1/devices` pages of 20 and 50
//! devices and one device with an `X-API-Key` (the key's per-minute quota raised so the limiter admits the load;
//! every request still goes through it). Credentials are minted in process from the server's
//! own services, as the login and key-creation flows would.

use std::time::{Duration, Instant};

use openframe_server::config::{ServerConfig, Sources};
use openframe_server::server::{self, RunningServer};

/// Concurrent connections of the load generator.
const CONNECTIONS: usize = 32;
/// Measured seconds per row (after a short warm-up).
const SECONDS: u64 = 4;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn config(data_dir: &std::path::Path, record_usage: bool) -> ServerConfig {
    let mut config = ServerConfig::load(&Sources::default()).expect("defaults");
    config.listen = "127.0.0.1:0".into();
    config.data_dir = data_dir.to_path_buf();
    config.external_api.quota_per_minute = 100_000_000;
    config.external_api.quota_per_hour = 0;
    config.external_api.quota_per_day = 0;
    config.external_api.record_usage = record_usage;
    config
}

/// Seeds 200 devices and returns (OWNER bearer token, API key with `devices:read`, the id of
/// one device).
async fn credentials(server: &RunningServer) -> (String, String, String) {
    use openframe_core::{Machine, MachineId, MachineStatus, OsType};
    use openframe_security::token::AccessTokenRequest;
    let stack = &server.platform.stack;
    let tenant = server.bootstrap.as_ref().expect("bootstrap").tenant.clone();
    let owner = stack
        .repos
        .users
        .find_by_email(&tenant, "owner@default.localhost")
        .await
        .expect("users")
        .expect("the bootstrap owner");
    let now = server.platform.clock.now();
    let mut one = String::new();
    for i in 0..200 {
        let mut m = Machine::new(
            MachineId::generate(),
            format!("host-{i:03}"),
            OsType::Linux,
            now,
        );
        m.status = MachineStatus::Online;
        one = m.id.to_string();
        stack.repos.machines.insert(&tenant, m).await.expect("seed");
    }
    let key = stack
        .api_keys
        .create(
            &tenant,
            owner.id.clone(),
            "bench",
            vec!["devices:read".into()],
            None,
        )
        .await
        .expect("api key");
    let token = stack
        .tokens
        .issue_access_token(AccessTokenRequest {
            user_id: Some(owner.id.clone()),
            roles: vec!["OWNER".into(), "ADMIN".into()],
            ..AccessTokenRequest::new(tenant, owner.id.to_string(), "bench")
        })
        .await
        .expect("token");
    (token.token, key.secret.expose().to_owned(), one)
}

/// Starts the server and waits for `/readyz` to answer 200: the time a load balancer sees.
async fn start(
    data_dir: &std::path::Path,
    client: &reqwest::Client,
    record_usage: bool,
) -> (RunningServer, Duration) {
    let started = Instant::now();
    let server = server::start(config(data_dir, record_usage))
        .await
        .expect("start");
    let url = format!("http://{}/readyz", server.addr);
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (server, started.elapsed())
}

/// Resident set size of this process, from /proc (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

struct Load {
    requests: usize,
    errors: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// Mean response body size.
    body_bytes: usize,
}

/// One request of a row.
#[derive(Clone)]
struct Target {
    url: String,
    headers: Vec<(&'static str, String)>,
    /// A JSON body: POST instead of GET.
    body: Option<String>,
}

impl Target {
    /// The request, ready to send.
    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut request = match &self.body {
            Some(body) => client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body.clone()),
            None => client.get(&self.url),
        };
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request
    }

    fn get(url: String) -> Self {
        Self {
            url,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// What the workers of one slice saw.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
    bytes: usize,
    elapsed: Duration,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
    }

    fn into_load(mut self) -> Load {
        self.latencies.sort_unstable();
        let latencies = &self.latencies;
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Load {
            requests: latencies.len(),
            errors: self.errors,
            rps: latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            p50: pct(0.50),
            p99: pct(0.99),
            body_bytes: self.bytes / latencies.len().max(1),
        }
    }
}

/// `CONNECTIONS` workers issue the request back to back for `duration`.
async fn run_for(client: &reqwest::Client, target: &Target, duration: Duration) -> Samples {
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut bytes = 0usize;
                while Instant::now() < deadline {
                    let request = target.request(&client);
                    let t = Instant::now();
                    match request.send().await {
                        Ok(r) if r.status().is_success() => {
                            bytes += r.bytes().await.map_or(0, |b| b.len());
                            latencies.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors, bytes)
            })
        })
        .collect();
    let started = Instant::now();
    let mut samples = Samples::default();
    for w in workers {
        let (latencies, errors, bytes) = w.await.expect("worker");
        samples.latencies.extend(latencies);
        samples.errors += errors;
        samples.bytes += bytes;
    }
    samples.elapsed = started.elapsed();
    samples
}

/// The baseline alone: a warm-up, then `SECONDS`.
async fn load(client: &reqwest::Client, target: &Target) -> Load {
    run_for(client, target, Duration::from_secs(1)).await;
    run_for(client, target, Duration::from_secs(SECONDS))
        .await
        .into_load()
}

/// `target` and the baseline in alternating one-second slices (`SECONDS` of each), so both
/// see the same machine: on this shared 2-core host the baseline alone swings from 50k to
/// 90k req/s between minutes. Returns the target's load and the baseline's rate meanwhile.
async fn load_paired(client: &reqwest::Client, target: &Target, baseline: &Target) -> (Load, f64) {
    run_for(client, target, Duration::from_secs(1)).await;
    let slice = Duration::from_secs(1);
    let (mut measured, mut base) = (Samples::default(), Samples::default());
    for _ in 0..SECONDS {
        base.add(run_for(client, baseline, slice).await);
        measured.add(run_for(client, target, slice).await);
    }
    (measured.into_load(), base.into_load().rps)
}

/// One request must succeed with `needle` in the body, or the row would measure errors.
async fn check(client: &reqwest::Client, target: &Target, needle: &str) {
    let response = target.request(client).send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success() && text.contains(needle),
        "{} answered {status}: {}",
        target.url,
        text.chars().take(300).collect::<String>()
    );
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");

    let (first, first_ready) = start(dir.path(), &client, true).await;
    first.shutdown().await;
    let (server, ready) = start(dir.path(), &client, true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_mib();
    let base = format!("http://{}", server.addr);
    let tenant = server
        .bootstrap
        .as_ref()
        .map(|b| b.tenant.to_string())
        .unwrap_or_else(|| "default".into());

    let (bearer, api_key, device) = credentials(&server).await;
    let query = r#"{"query":"{ devices(first: 50) { edges { cursor node { id hostname status } } pageInfo { hasNextPage endCursor } } }"}"#;
    let graphql = Target {
        url: format!("{base}/api/graphql"),
        headers: vec![("authorization", format!("Bearer {bearer}"))],
        body: Some(query.to_owned()),
    };
    let rest = Target {
        url: format!("{base}/api/v1/devices?limit=50"),
        headers: vec![("x-api-key", api_key)],
        body: None,
    };
    check(&client, &graphql, "\"hostname\"").await;
    check(&client, &rest, "host-").await;
    let rest_target = rest.clone();

    let mut rows: Vec<(String, (Load, f64))> = Vec::new();
    let endpoints: Vec<(&str, Target)> = vec![
        (
            "GET /healthz (baseline)",
            Target::get(format!("{base}/healthz")),
        ),
        (
            "GET /readyz (SQLite round trip)",
            Target::get(format!("{base}/readyz")),
        ),
        (
            "GET /sas/{tenant}/oauth2/jwks",
            Target::get(format!("{base}/sas/{tenant}/oauth2/jwks")),
        ),
        ("POST /api/graphql: 50 devices, bearer token", graphql),
        (
            "GET /api/v1/devices (default page: 20), X-API-Key",
            Target {
                url: format!("{base}/api/v1/devices"),
                ..rest.clone()
            },
        ),
        ("GET /api/v1/devices?limit=50, X-API-Key", rest.clone()),
        (
            "GET /api/v1/devices/{id} (one device), X-API-Key",
            Target {
                url: format!("{base}/api/v1/devices/{device}"),
                ..rest
            },
        ),
    ];
    // `OPENFRAME_BENCH_ROWS=jwks,devices` runs only the rows whose name contains one of the
    // words (the baseline always runs): for profiling one endpoint.
    let only: Vec<String> = std::env::var("OPENFRAME_BENCH_ROWS")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let healthz = Target::get(format!("{base}/healthz"));
    for (i, (name, target)) in endpoints.into_iter().enumerate() {
        if i > 0 && !only.is_empty() && !only.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let row = if i == 0 {
            let load = load(&client, &target).await;
            let rps = load.rps;
            (load, rps)
        } else {
            load_paired(&client, &target, &healthz).await
        };
        rows.push((name.to_owned(), row));
    }
    // The same page on a restart with usage recording off: what recording API key usage (in
    // memory, flushed in batches) costs.
    server.shutdown().await;
    let (server, _) = start(dir.path(), &client, false).await;
    let rest = Target {
        url: format!("http://{}/api/v1/devices?limit=50", server.addr),
        ..rest_target
    };
    check(&client, &rest, "host-").await;
    let healthz = Target::get(format!("http://{}/healthz", server.addr));
    rows.push((
        "GET /api/v1/devices?limit=50, X-API-Key, record_usage = false".to_owned(),
        load_paired(&client, &rest, &healthz).await,
    ));
    let loaded_rss = rss_mib();

    println!();
    println!(
        "openframe-server benchmark ({CONNECTIONS} connections, {SECONDS} s per row, load generator in the same process)"
    );
    println!();
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| start to ready, first start (creates tenant, hashes owner password) | {} | < 1 s |",
        ms(first_ready)
    );
    println!("| start to ready, restart | {} | < 1 s |", ms(ready));
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.1} MiB"));
    println!(
        "| idle RSS (server + bench harness) | {} | < 60 MB |",
        show(idle_rss)
    );
    println!("| RSS after the load rows | {} | |", show(loaded_rss));
    println!();
    println!(
        "Each row after the baseline alternates one-second slices with `/healthz` and is divided by the baseline measured in those slices."
    );
    println!();
    println!(
        "| endpoint | requests | errors | body bytes | req/s | baseline req/s meanwhile | ratio to baseline | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, (l, baseline)) in &rows {
        println!(
            "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {} |",
            l.requests,
            l.errors,
            l.body_bytes,
            l.rps,
            baseline,
            l.rps / baseline.max(f64::MIN_POSITIVE),
            ms(l.p50),
            ms(l.p99)
        );
    }
    println!();
    println!("Goal for the REST page: ratio >= 0.50 and p99 < 20 ms.");
    server.shutdown().await;
}
