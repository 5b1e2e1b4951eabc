//! Agent enrollment: registration secrets, register / reinstall / uninstall, and agent
//! tokens, wire-compatible with the original OpenFrame agent.
//!
//! - [`secrets`]: [`RegistrationSecrets`], one active per tenant, rotatable; the tenant is
//!   found from the secret through a keyed-hash lookup record.
//! - [`EnrollmentService`]: the operations, over the security stack's OAuth clients and
//!   authorization server and the data repositories.
//! - [`router`]: the HTTP endpoints on the original paths (`/clients/api/agents/*`,
//!   `/clients/oauth/token`, `/clients/agent/registration-secret/active`).
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::sync::Arc;
//! use openframe_core::SystemClock;
//! use openframe_data::memory::InMemoryDocumentStore;
//! use openframe_security::crypto::MasterKey;
//! use openframe_security::stack::SecurityStack;
//! use openframe_agent::enrollment::{self, EnrollmentParts, EnrollmentService, RegistrationSecrets};
//! use openframe_agent::events::NoopEventSink;
//!
//! let store = Arc::new(InMemoryDocumentStore::new());
//! let master = MasterKey::generate()?;
//! let clock = Arc::new(SystemClock);
//! let stack = SecurityStack::builder(store.clone(), "https://msp.example".parse().unwrap(), master.clone())
//!     .build()?;
//! let secrets = RegistrationSecrets::new(store.clone(), &master, clock.clone());
//! let service = EnrollmentService::new(EnrollmentParts::from_stack(
//!     &stack, store, secrets, Arc::new(NoopEventSink), clock,
//! ));
//! let app = stack.router().merge(enrollment::router(service));
//! # let _ = app; Ok(()) }
//! ```

mod error;
mod http;
mod request;
pub mod secrets;
mod service;

use openframe_data::store::Schema;

pub use error::{EnrollmentError, EnrollmentResult};
pub use http::{
    ACTIVE_SECRET_PATH, MAX_BODY_BYTES, REGISTER_PATH, REINSTALL_PATH, TOKEN_PATH, UNINSTALL_PATH,
    router,
};
pub use request::{RegistrationRequest, TagRequest};
pub use secrets::RegistrationSecrets;
pub use service::{
    AGENT_ROLE, AGENT_SCOPE, AgentToken, EnrollmentConfig, EnrollmentParts, EnrollmentService,
    Registration, client_id_for,
};

/// The collections enrollment stores (backends that create tables up front can use this; the
/// SQLite backend also creates them on first use).
pub fn schemas() -> Vec<&'static Schema> {
    let mut all = secrets::schemas();
    all.push(service::client_index_schema());
    all
}
