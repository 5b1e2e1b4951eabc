//! The GraphQL API end to end, in one test binary: a real SQLite store, real tokens from the
//! security stack, the router driven in process (and over a real listener for WebSockets).

mod hostile;
mod isolation;
mod mutations;
mod queries;
mod subscriptions;
mod support;
