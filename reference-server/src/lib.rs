//! The OpenFrame-rs reference server, as a library so benchmarks and tests can start it in
//! process; the `openframe-server` binary is [`cli::run`].
//!
//! - [`config`]: defaults, TOML file, `OPENFRAME_*` variables and flags; backends by URL scheme.
//! - [`backends`]: opens the document store, cache/locks/rate limits, agent and event buses,
//!   each with a readiness probe.
//! - [`platform`]: the services wired from the libraries, and the router.
//! - [`events`]: the event store and the event processor.
//! - [`bootstrap`]: the master key and the default tenant on first start.
//! - [`jobs`]: scheduled jobs under distributed locks.
//! - [`nats_proxy`]: the original agent's NATS sockets and the NATS authority.
//! - [`ops`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`server`]: start and graceful stop.
//!
//! ```no_run
//! # async fn run() -> Result<(), openframe_server::server::StartError> {
//! use openframe_server::config::{ServerConfig, Sources};
//! let mut config = ServerConfig::load(&Sources::default())?;
//! config.listen = "127.0.0.1:0".into();
//! let server = openframe_server::server::start(config).await?;
//! println!("listening on {}", server.addr);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod backends;
pub mod banner;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod events;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod nats_proxy;
pub mod ops;
pub mod platform;
pub mod server;
pub mod signals;
