//! # openframe-stream
//!
//! Event streaming for OpenFrame-rs.
//!
//! - [`bus`]: the event bus traits (publisher; consumer groups with explicit commit after
//!   processing), with an in-process backend.
//! - [`model`]: the unified event model: taxonomy, severity, deterministic ids.
//! - [`adapters`]: one type per source that turns raw payloads into unified events.

pub mod adapters;
pub mod bus;
pub mod enrich;
pub mod model;
pub mod processor;
pub mod store;
