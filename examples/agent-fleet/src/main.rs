//! Run with: cargo run -p example-agent-fleet
//!
//! Simulates a fleet of agents with the real agent SDK (`openframe-agent`, feature `client`):
//! every simulated machine is an [`Agent`] that registers, gets tokens, connects to the
//! agent gateway and sends heartbeats, exactly as an agent on a managed machine would.
//!
//! By default (`--embedded`) the server runs in this process on a loopback port (SQLite in a
//! temp directory, the in-process bus, the security stack, enrollment, gateway, presence and
//! the listener; see `server.rs`). With `--server-url URL --registration-secret KEY` (or
//! `OPENFRAME_REGISTRATION_SECRET`) the agents talk to a running server instead, and only
//! client-side numbers are reported.
//!
//! ```text
//! --agents N              how many agents (default 100; 10,000 with --bench)
//! --heartbeat-secs A-B    heartbeat every A to B seconds, jittered (default 30-60)
//! --duration-secs S       how long to measure steady heartbeats (default 2 × B)
//! --storm                 after the steady phase, every agent drops its connection at once
//!                         (SDK shutdown) and reconnects (start again on the same credentials)
//! --bench                 the benchmark: --storm, 10,000 agents unless --agents says
//!                         otherwise, and a markdown table against the goals
//! --serve                 only the embedded server (no agents), until Ctrl-C: prints its URL
//!                         and registration secret, and every 5 s a row of server-side numbers
//! ```
//!
//! For example: `cargo run --release -p example-agent-fleet -- --bench --agents 1000
//! --heartbeat-secs 3-6 --duration-secs 30`.
//!
//! Every agent holds a WebSocket: one file descriptor in the agents' process and one in the
//! server's. In embedded mode both ends are in this process, so 10,000 agents need a limit
//! above 20,000 (`ulimit -n 25000`). Where the hard limit does not allow it, run the server
//! and the fleet as two processes:
//!
//! ```text
//! example-agent-fleet --serve --heartbeat-secs 3-6     # prints URL and secret
//! OPENFRAME_REGISTRATION_SECRET=… example-agent-fleet --bench --server-url http://127.0.0.1:PORT --heartbeat-secs 3-6
//! ```

mod metrics;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use openframe_agent::client::AgentTiming;
use openframe_agent::client::{Agent, AgentConfig, AgentHandle, AgentHandler, AgentStatus};
use openframe_core::Secret;

use metrics::{LogCounter, Window, rss_mib};
use server::Embedded;

const USAGE: &str =
    "usage: example-agent-fleet [--embedded | --server-url URL --registration-secret KEY]
       [--agents N] [--heartbeat-secs MIN-MAX] [--duration-secs S] [--storm] [--bench] [--serve]";

/// Registrations in flight at a time (registration happens once per machine). The server
/// allows 20 initial-key attempts per minute per IP, a success resetting the count: keeping
/// fewer than 20 in flight from this one IP never trips it.
const REGISTRATION_CONCURRENCY: usize = 16;
/// How long to wait for the whole fleet to be ONLINE.
const ONLINE_LIMIT: Duration = Duration::from_secs(600);

/// The command line.
#[derive(Debug)]
struct Args {
    /// A running server and its registration secret; `None`: embedded.
    server: Option<(String, Secret)>,
    agents: usize,
    heartbeat: (u64, u64),
    duration: Duration,
    storm: bool,
    serve: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut key, mut agents, mut duration) = (None, None, None, None);
    let (mut heartbeat, mut storm, mut bench, mut serve) = ((30, 60), false, false, false);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{arg}: not a number"));
        match arg.as_str() {
            "--embedded" => url = None,
            "--server-url" => url = Some(value()?),
            "--registration-secret" => key = Some(Secret::new(value()?)),
            "--agents" => agents = Some(number(value()?)? as usize),
            "--duration-secs" => duration = Some(Duration::from_secs(number(value()?)?)),
            "--heartbeat-secs" => {
                let v = value()?;
                let (a, b) = v.split_once('-').unwrap_or((&v, &v));
                heartbeat = (number(a.into())?, number(b.into())?);
                if heartbeat.0 == 0 || heartbeat.0 > heartbeat.1 {
                    return Err("--heartbeat-secs: expected MIN-MAX, 0 < MIN <= MAX".into());
                }
            }
            "--storm" => storm = true,
            "--bench" => bench = true,
            "--serve" => serve = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let key = key.or_else(|| {
        std::env::var("OPENFRAME_REGISTRATION_SECRET")
            .ok()
            .map(Secret::new)
    });
    let server = match (url, key) {
        (Some(url), Some(key)) => Some((url, key)),
        (Some(_), None) => return Err("--server-url needs --registration-secret".into()),
        (None, _) => None,
    };
    Ok(Args {
        server,
        agents: agents.unwrap_or(if bench { 10_000 } else { 100 }),
        heartbeat,
        duration: duration.unwrap_or(Duration::from_secs(2 * heartbeat.1)),
        storm: storm || bench,
        serve,
    })
}

/// The simulated machines do nothing with commands (the SDK answers "not supported").
#[derive(Debug)]
struct Idle;

impl AgentHandler for Idle {}

/// Starts an agent per configuration, `REGISTRATION_CONCURRENCY` at a time; returns the
/// running agents and how many failed to start.
async fn start_all(configs: &[AgentConfig]) -> (Vec<AgentHandle>, u64) {
    let handler: Arc<dyn AgentHandler> = Arc::new(Idle);
    let results: Vec<_> = futures::stream::iter(configs.iter().cloned())
        .map(|config| Agent::start(config, handler.clone()))
        .buffer_unordered(REGISTRATION_CONCURRENCY)
        .collect()
        .await;
    let mut failed = 0;
    let mut handles = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                failed += 1;
                eprintln!("agent failed to start: {e}");
            }
        }
    }
    (handles, failed)
}

/// How many agents are ONLINE: with the embedded server, those whose heartbeat or hostname
/// the server handled since `since`; otherwise those whose SDK reports a connection.
fn online(server: Option<&Embedded>, agents: &[AgentHandle], since: Instant) -> usize {
    match server {
        Some(server) => server.tracker.contacted_since(since),
        None => agents
            .iter()
            .filter(|a| a.status() == AgentStatus::Connected)
            .count(),
    }
}

/// Waits until all `n` agents are ONLINE (see [`online`]); the time from `from`, or `None`
/// after [`ONLINE_LIMIT`].
async fn wait_online(
    server: Option<&Embedded>,
    agents: &[AgentHandle],
    n: usize,
    since: Instant,
    from: Instant,
) -> Option<Duration> {
    let mut last_print = Instant::now();
    loop {
        let count = online(server, agents, since);
        if count >= n {
            return Some(from.elapsed());
        }
        if from.elapsed() > ONLINE_LIMIT {
            eprintln!("only {count}/{n} agents ONLINE after {ONLINE_LIMIT:?}");
            return None;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  {count}/{n} ONLINE after {:.1} s",
                from.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything the report shows.
#[derive(Debug, Default)]
struct Report {
    registered_in: Duration,
    online_in: Option<Duration>,
    window: Option<(Window, Duration)>,
    rss_server: f64,
    rss_agents: f64,
    rss_peak: f64,
    storm: Option<Option<Duration>>,
    start_failures: u64,
    listener_failures: u64,
    warnings: u64,
    connections_lost: u64,
    online_in_store: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let logs: Arc<LogCounter> = Arc::default();
    if tracing::subscriber::set_global_default(logs.clone()).is_err() {
        eprintln!("a tracing subscriber is already installed; warnings will not be counted");
    }
    if args.serve {
        return match serve(&args, &logs).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // A WebSocket per agent, both ends in this process in embedded mode.
    let per_agent = if args.server.is_none() { 2 } else { 1 };
    let needed = (args.agents * per_agent + 512) as u64;
    if let Some(limit) = metrics::open_file_limit().filter(|l| *l < needed) {
        eprintln!(
            "{} agents need about {needed} open files, the limit is {limit}: \
             raise it (`ulimit -n {needed}`) or use fewer --agents",
            args.agents
        );
        return ExitCode::from(2);
    }
    match run(&args, &logs).await {
        Ok(report) => {
            print_report(&args, &report, &logs);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            let _ = std::fs::remove_dir_all(work_dir());
            ExitCode::FAILURE
        }
    }
}

/// The credentials files and the embedded database (removed at the end).
fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("openframe-agent-fleet-{}", std::process::id()))
}

async fn run(args: &Args, logs: &LogCounter) -> Result<Report, Box<dyn std::error::Error>> {
    let dir = work_dir();
    std::fs::create_dir_all(&dir)?;
    let (embedded, url, key) = match &args.server {
        Some((url, key)) => (None, url.clone(), key.clone()),
        None => {
            let server = Embedded::start(&dir).await?;
            let (url, key) = (server.url.clone(), server.key.clone());
            (Some(server), url, key)
        }
    };
    let server = embedded.as_ref();
    let n = args.agents;
    let mut report = Report {
        rss_server: rss_mib().0,
        ..Report::default()
    };
    eprintln!(
        "server {url}; {n} agents, heartbeats every {}-{} s",
        args.heartbeat.0, args.heartbeat.1
    );

    // Every agent's configuration: its own credentials file and hostname, jittered heartbeats.
    let (min, max) = args.heartbeat;
    let timing = AgentTiming::default().with_heartbeat(
        Duration::from_millis((min + max) * 500),
        Duration::from_millis((max - min) * 500),
    );
    let server_url: url::Url = url.parse()?;
    let configs: Vec<AgentConfig> = (0..n)
        .map(|i| {
            let credentials: PathBuf = dir.join(format!("agent-{i}.json"));
            AgentConfig::new(
                server_url.clone(),
                key.clone(),
                credentials,
                format!("fleet-{i:05}"),
            )
            .with_timing(timing)
        })
        .collect();

    // Start: register (once) and connect.
    let started = Instant::now();
    let (mut agents, failed) = start_all(&configs).await;
    report.start_failures += failed;
    report.registered_in = started.elapsed();
    eprintln!(
        "{} agents registered in {:.1} s",
        agents.len(),
        report.registered_in.as_secs_f64()
    );
    report.online_in = wait_online(server, &agents, n, started, started).await;

    // Steady state: heartbeats only.
    if let Some(server) = server {
        server.tracker.take_window();
    }
    let window_start = Instant::now();
    while window_start.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(5).min(args.duration)).await;
        let (rss, _) = rss_mib();
        eprintln!(
            "  t+{:.0} s: {} agents ONLINE, RSS {rss:.0} MiB, {} warnings",
            window_start.elapsed().as_secs_f64(),
            online(
                server,
                &agents,
                Instant::now() - Duration::from_secs(max + 1)
            ),
            logs.warnings(),
        );
    }
    if let Some(server) = server {
        report.window = Some((server.tracker.take_window(), window_start.elapsed()));
    }
    report.rss_agents = rss_mib().0;

    // The reconnect storm: every agent drops its connection at once and reconnects.
    if args.storm {
        eprintln!("storm: {} agents drop their connections", agents.len());
        let storm_at = Instant::now();
        futures::future::join_all(agents.drain(..).map(AgentHandle::shutdown)).await;
        let dropped = Instant::now();
        let (restarted, failed) = start_all(&configs).await;
        agents = restarted;
        report.start_failures += failed;
        report.storm = Some(wait_online(server, &agents, n, dropped, storm_at).await);
    }

    report.rss_peak = rss_mib().1;
    report.connections_lost = logs.count("agent connection lost");
    report.warnings = logs.warnings();
    if let Some(server) = server {
        report.listener_failures = server.tracker.failures();
        report.online_in_store = Some(server.online_in_store().await?);
    }
    futures::future::join_all(agents.into_iter().map(AgentHandle::shutdown)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// `--serve`: the embedded server alone, until Ctrl-C.
async fn serve(args: &Args, logs: &LogCounter) -> Result<(), Box<dyn std::error::Error>> {
    let dir = work_dir();
    std::fs::create_dir_all(&dir)?;
    let server = Embedded::start(&dir).await?;
    // A throwaway local server: showing its secret is how the fleet gets to use it.
    eprintln!(
        "server ready; run the agents with:\n  OPENFRAME_REGISTRATION_SECRET={} \
         example-agent-fleet --server-url {} --heartbeat-secs {}-{}",
        server.key.expose(),
        server.url,
        args.heartbeat.0,
        args.heartbeat.1
    );
    let recent = Duration::from_secs(args.heartbeat.1 + 2);
    println!(
        "| t | agents heard in the last {} s | heartbeats/s | p50 | p99 | max | RSS | peak RSS | warnings |",
        recent.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let started = Instant::now();
    let mut window_start = Instant::now();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let w = server.tracker.take_window();
        let rate = w.heartbeats as f64 / window_start.elapsed().as_secs_f64();
        window_start = Instant::now();
        let (rss, peak) = rss_mib();
        println!(
            "| {:.0} s | {} | {rate:.0} | {:.2} ms | {:.2} ms | {:.1} ms | {rss:.0} MiB | {peak:.0} MiB | {} |",
            started.elapsed().as_secs_f64(),
            server.tracker.contacted_since(Instant::now() - recent),
            ms(w.p50),
            ms(w.p99),
            ms(w.max),
            logs.warnings() + server.tracker.failures(),
        );
    }
    for (message, count) in logs.warning_messages() {
        println!("\n- {count} × {message}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_report(args: &Args, r: &Report, logs: &LogCounter) {
    let secs = |d: Option<Duration>| {
        d.map_or("not reached".into(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    let goal = |met: bool| if met { "met" } else { "**missed**" };
    let n = args.agents;
    let (min, max) = args.heartbeat;
    let offered = n as f64 * 2.0 / (min + max) as f64;
    let mode = if args.server.is_some() {
        "running server"
    } else {
        "embedded server (SQLite, in-process bus), same process"
    };
    let errors = r.start_failures + r.listener_failures + r.warnings;

    println!();
    println!("| metric | value | goal |");
    println!("|---|---|---|");
    println!("| agents | {n} ({mode}) | |");
    println!("| heartbeat interval | {min}-{max} s, jittered (offered {offered:.0}/s) | |");
    println!(
        "| registration ({REGISTRATION_CONCURRENCY} at a time) | {:.1} s | |",
        r.registered_in.as_secs_f64()
    );
    println!("| all ONLINE after start | {} | |", secs(r.online_in));
    match &r.window {
        Some((w, took)) => {
            let rate = w.heartbeats as f64 / took.as_secs_f64();
            println!(
                "| heartbeats handled (server) | {rate:.0}/s ({} in {:.0} s) | offered {offered:.0}/s: {} |",
                w.heartbeats,
                took.as_secs_f64(),
                goal(rate >= offered * 0.9)
            );
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "| heartbeat handling p50 / p99 / max | {:.2} / {:.2} / {:.1} ms | p99 < 50 ms: {} |",
                ms(w.p50),
                ms(w.p99),
                ms(w.max),
                goal(w.p99 < Duration::from_millis(50))
            );
        }
        None => println!("| heartbeats handled, latency | n/a (measured by the server) | |"),
    }
    let server_rss = if args.server.is_some() {
        "RSS before agents"
    } else {
        "RSS before agents (server only)"
    };
    println!("| {server_rss} | {:.0} MiB | |", r.rss_server);
    println!(
        "| RSS with {n} agents connected (total) | {:.0} MiB | < 500 MiB: {} |",
        r.rss_agents,
        goal(r.rss_agents < 500.0)
    );
    println!("| peak RSS (VmHWM) | {:.0} MiB | |", r.rss_peak);
    if let Some(storm) = r.storm {
        println!(
            "| reconnect storm: all back ONLINE | {} | < 60 s: {} |",
            secs(storm),
            goal(storm.is_some_and(|d| d < Duration::from_secs(60)))
        );
    }
    println!(
        "| connections lost (outside the storm) | {} | |",
        r.connections_lost
    );
    if let Some(online) = r.online_in_store {
        println!("| machines ONLINE in the store at the end | {online} | {n} |");
    }
    println!(
        "| errors (start failures + listener failures + warnings logged) | {errors} | 0: {} |",
        goal(errors == 0)
    );
    for (message, count) in logs.warning_messages() {
        println!("\n- {count} × {message}");
    }
}
