//! # openframe-api
//!
//! The API layer of OpenFrame-rs, built on the crates below it:
//!
//! - [`graphql`]: the GraphQL schema served at `/api/graphql` (GraphiQL at `/api/graphiql`).
//! - [`rest`]: the internal REST API under `/api` and the external REST API under `/api/v1`.
//! - [`gateway`]: the one router with the original's path layout, and the tool proxy.

pub mod gateway;
pub mod graphql;
pub mod rest;
