//! # openframe-agent
//!
//! The agent plane of OpenFrame-rs.
//!
//! - [`subjects`]: `machine.{id}.{suffix}` subjects, built and parsed in one place.
//! - [`bus`]: the [`bus::AgentBus`] trait (ephemeral and durable publish, subscriptions,
//!   durable consumers with explicit ack) with an in-process backend and NATS JetStream.
//! - [`events`]: domain events (registered, came online, went offline, uninstalled).
//! - [`enrollment`]: registration secrets, register / reinstall / uninstall and agent tokens.
//! - [`presence`]: heartbeats and the offline sweep.
//! - [`executions`]: commands and scripts, results, watchdog, cancellation, offline queue.
//! - [`tools`]: tool agent definitions, installation, update rollout and the agents' tool reports.
//! - [`gateway`]: the agent WebSocket (`/ws/agent`) bridging agents to the bus without NATS.
//! - `client` (feature `client`): the agent SDK (enrollment, tokens, the gateway connection,
//!   heartbeats, commands and scripts).
//! - [`sessions`]: live agent sessions, ended on token expiry, uninstall or disabling.
//! - [`listener`]: routes heartbeats, hostnames and results from the bus to the services.
//! - `nats_proxy` (feature `nats`): the original agent's `/ws/nats` and `/ws/nats-logs`
//!   proxied to nats-server in operator mode, each connection confined by a per-machine user JWT.

pub mod bus;
#[cfg(feature = "client")]
pub mod client;
pub mod enrollment;
pub mod events;
pub mod executions;
pub mod gateway;
pub mod listener;
#[cfg(feature = "nats")]
pub mod nats_proxy;
pub mod presence;
pub mod sessions;
pub mod stream_bridge;
pub mod subjects;
pub mod tools;
