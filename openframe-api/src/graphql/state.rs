//! The services the GraphQL API runs on, built from parts so the server can wire them.

use std::sync::Arc;

use openframe_agent::enrollment::RegistrationSecrets;
use openframe_agent::executions::ExecutionService;
use openframe_core::Clock;
use openframe_data::Repositories;
use openframe_data::store::DocumentStore;
use openframe_security::accounts::AccountService;
use openframe_security::api_keys::ApiKeyService;
use openframe_stream::store::EventStore;

use super::subscription::GraphqlEvents;

/// Query limits enforced before a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphqlLimits {
    /// Deepest allowed selection nesting (default 12).
    pub max_depth: usize,
    /// Highest allowed complexity (default 5000; a list field costs its page size times its
    /// children).
    pub max_complexity: usize,
    /// Largest accepted request body in bytes (default 64 KiB).
    pub max_body_bytes: usize,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 5000,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Everything the resolvers use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GraphqlState {
    /// The repositories (machines, organizations, tags, users, tools, API keys, tenants).
    pub repos: Repositories,
    /// The document store under them (executions and batched tool-connection lookups).
    pub store: Arc<dyn DocumentStore>,
    /// Invitations.
    pub accounts: AccountService,
    /// API keys (create shows the secret once, revoke, regenerate).
    pub api_keys: Arc<ApiKeyService>,
    /// Commands and scripts.
    pub executions: ExecutionService,
    /// Agent registration secrets.
    pub registration: RegistrationSecrets,
    /// Broadcasts for subscriptions.
    pub events: GraphqlEvents,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Query limits.
    pub limits: GraphqlLimits,
    /// Stored unified events (`events`, `eventFilters`); those fields answer `UNAVAILABLE`
    /// without one.
    pub event_store: Option<Arc<dyn EventStore>>,
}

/// The parts of a [`GraphqlState`]; every field is required except the limits.
#[derive(Debug, Clone)]
pub struct GraphqlParts {
    /// See [`GraphqlState::repos`].
    pub repos: Repositories,
    /// See [`GraphqlState::store`]: the same store the repositories use.
    pub store: Arc<dyn DocumentStore>,
    /// See [`GraphqlState::accounts`].
    pub accounts: AccountService,
    /// See [`GraphqlState::api_keys`].
    pub api_keys: Arc<ApiKeyService>,
    /// See [`GraphqlState::executions`].
    pub executions: ExecutionService,
    /// See [`GraphqlState::registration`].
    pub registration: RegistrationSecrets,
    /// See [`GraphqlState::events`].
    pub events: GraphqlEvents,
    /// See [`GraphqlState::clock`].
    pub clock: Arc<dyn Clock>,
}

impl GraphqlState {
    /// A state from its parts, with default limits.
    pub fn new(parts: GraphqlParts) -> Self {
        let GraphqlParts {
            repos,
            store,
            accounts,
            api_keys,
            executions,
            registration,
            events,
            clock,
        } = parts;
        Self {
            repos,
            store,
            accounts,
            api_keys,
            executions,
            registration,
            events,
            clock,
            limits: GraphqlLimits::default(),
            event_store: None,
        }
    }

    /// Serves `events` and `eventFilters` from `store`.
    pub fn with_event_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.event_store = Some(store);
        self
    }

    /// Replaces the query limits.
    pub fn with_limits(mut self, limits: GraphqlLimits) -> Self {
        self.limits = limits;
        self
    }
}
