//! The token endpoint under load over real HTTP on loopback.
//!
//! Run with: `cargo bench -p openframe-security --bench http_token`
//! (`OPENFRAME_BENCH_REQUESTS=5000` for a quicker run; default 20,000 per scenario).
//!
//! One server (its own Tokio runtime), one load generator (another runtime, 32 concurrent
//! keep-alive connections). Scenarios: the JWKS document (the baseline: routing, tenant lookup,
//! a cached JSON body) and `client_credentials` on the memory and SQLite stores. Prints a table
//! with requests/s, p50 and p99, and the ratio to the baseline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openframe_core::TenantId;
use openframe_data::store::DocumentStore;
use openframe_security::accounts::{AccountConfig, Argon2Params};
use openframe_security::crypto::MasterKey;
use openframe_security::oauth::{ClientType, GrantType, NewClient};
use openframe_security::stack::SecurityStack;

const CONCURRENCY: usize = 32;

struct Row {
    scenario: String,
    requests: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// Starts a server on `store` in its own runtime; returns its base URL and the agent credentials.
fn start(store: Arc<dyn DocumentStore>) -> (String, String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let accounts = AccountConfig {
                argon2: Argon2Params::fast_for_tests(),
                ..AccountConfig::default()
            };
            let stack = SecurityStack::builder(
                store,
                base.parse().unwrap(),
                MasterKey::generate().unwrap(),
            )
            .with_account_config(accounts)
            .build()
            .unwrap();
            let signed = stack
                .accounts
                .sign_up(
                    serde_json::from_value(serde_json::json!({
                        "tenantId": "bench", "tenantName": "Bench", "domain": "bench.example",
                        "email": "owner@bench.example", "password": "Correct-Horse-42-battery",
                        "firstName": "B", "lastName": "B"
                    }))
                    .unwrap(),
                )
                .await
                .unwrap();
            let tenant: TenantId = signed.tenant.id;
            let (client, secret) = stack
                .clients
                .register(
                    &tenant,
                    NewClient {
                        id: "agent_bench".into(),
                        name: "Bench agent".into(),
                        client_type: ClientType::Confidential,
                        redirect_uris: vec![],
                        post_logout_redirect_uris: vec![],
                        grant_types: vec![GrantType::ClientCredentials],
                        scopes: vec!["agent".into()],
                        roles: vec!["AGENT".into()],
                        machine_id: None,
                        max_refresh_chain: None,
                    },
                )
                .await
                .unwrap();
            tx.send((base, client.id, secret.unwrap().expose().to_owned()))
                .unwrap();
            axum::serve(
                listener,
                stack
                    .router()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
    });
    rx.recv().unwrap()
}

fn load(
    scenario: &str,
    total: usize,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let request = Arc::new(request);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .unwrap();
        // Warm-up.
        for _ in 0..50 {
            let _ = request(&client).send().await;
        }
        let start = Instant::now();
        let per_task = total / CONCURRENCY;
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (client, request) = (client.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                let mut errors = 0;
                for _ in 0..per_task {
                    let t = Instant::now();
                    match request(&client).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => errors += 1,
                    }
                    latencies.push(t.elapsed());
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            latencies.extend(l);
            errors += e;
        }
        let elapsed = start.elapsed();
        latencies.sort();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        Row {
            scenario: scenario.to_owned(),
            requests: latencies.len(),
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(50),
            p99: pct(99),
            errors,
        }
    })
}

fn main() {
    let total: usize = std::env::var("OPENFRAME_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rows = Vec::new();

    let (base, id, secret) = start(Arc::new(
        openframe_data::memory::InMemoryDocumentStore::new(),
    ));
    let jwks = format!("{base}/sas/bench/oauth2/jwks");
    rows.push(load("GET jwks (baseline)", total, move |c| c.get(&jwks)));
    let url = format!("{base}/sas/bench/oauth2/token");
    rows.push(load(
        "POST token client_credentials (memory)",
        total,
        move |c| {
            c.post(&url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
        },
    ));

    let dir = std::env::temp_dir().join(format!("openframe-http-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(openframe_data::sqlite::SqliteDocumentStore::open(
            dir.join("bench.db"),
        ))
        .unwrap();
    let (base, id, secret) = start(Arc::new(sqlite));
    let url = format!("{base}/sas/bench/oauth2/token");
    rows.push(load(
        "POST token client_credentials (sqlite)",
        total,
        move |c| {
            c.post(&url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
        },
    ));
    std::fs::remove_dir_all(&dir).ok();

    let baseline = rows[0].per_sec;
    println!();
    println!("| scenario | requests | req/s | p50 ms | p99 ms | vs baseline | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2}x | {} |",
            r.scenario,
            r.requests,
            r.per_sec,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            r.per_sec / baseline,
            r.errors
        );
    }
}
