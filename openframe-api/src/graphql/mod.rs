//! The GraphQL API (async-graphql), served at `/api/graphql`.
//!
//! - Build a [`GraphqlState`] from its parts ([`GraphqlParts`]) and mount [`router`] behind
//!   `openframe_security::auth::AuthLayer`: tenant and user come only from the authenticated
//!   `Principal`; nothing in a query can name another tenant.
//! - Queries: `devices` (filters, search, sort allowlist, Relay paging in both directions with
//!   exact `hasNextPage`/`hasPreviousPage`, `filteredCount`), `device`, `deviceFilters`
//!   (computes only the selected facets), `organizations`, `tags`, `integratedTools`,
//!   `toolConnections`, `users`, `invitations`, `apiKeys`, `executions`,
//!   `registrationSecret`, and Relay `node`/`nodes` over global ids (`base64("Type:id")`).
//! - Mutations: organizations, device nickname/organization/tags, tags, API keys (the full
//!   key is returned once), invitations, the registration secret, commands on one machine,
//!   a list or a filtered batch, and cancellation.
//! - Subscriptions over WebSocket (`/api/graphql/ws`): `machineStatusChanged` (fed by
//!   [`GraphqlEvents::sink`]) and `eventAdded` (fed by [`GraphqlEvents::publish_event`]).
//! - Relations go through per-request DataLoaders (no N+1); depth, complexity and body size
//!   are limited ([`GraphqlLimits`]); errors carry `extensions {code, httpStatus}`.

mod api_key;
mod connection;
mod context;
mod device;
mod error;
mod event;
mod execution;
mod http;
pub mod ids;
mod loaders;
mod node;
mod organization;
mod registration;
mod schema;
mod script;
mod state;
mod subscription;
mod tag;
mod tool;
mod update;
mod user;

pub use http::{GRAPHIQL_PATH, GRAPHQL_PATH, GRAPHQL_WS_PATH, router};
pub use schema::sdl;
pub use state::{GraphqlLimits, GraphqlParts, GraphqlState};
pub use subscription::GraphqlEvents;
