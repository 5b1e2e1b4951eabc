//! # openframe-agent
//!
//! The agent plane of OpenFrame-rs.
//!
//! - [`subjects`]: `machine.{id}.{suffix}` subjects, built and parsed in one place.
//! - [`bus`]: the [`bus::AgentBus`] trait (ephemeral and durable publish, subscriptions,
//!   durable consumers with explicit ack) with an in-process backend and NATS JetStream.
//! - [`events`]: domain events (registered, came online, went offline, uninstalled).
//! - [`presence`]: heartbeats and the offline sweep.

pub mod bus;
pub mod events;
pub mod presence;
pub mod subjects;
