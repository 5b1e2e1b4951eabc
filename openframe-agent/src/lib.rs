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
//! - [`listener`]: routes heartbeats, hostnames and results from the bus to the services.
//! - [`tools`]: tool agent definitions, installation, update rollout and the agents' tool reports.

pub mod bus;
pub mod enrollment;
pub mod events;
pub mod executions;
pub mod listener;
pub mod presence;
pub mod subjects;
pub mod tools;
