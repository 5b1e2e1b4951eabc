//! In-memory backends: always built, for tests and single-process embedding.

mod cache;
mod lock;
mod store;

pub use cache::InMemoryCache;
pub use lock::InMemoryLock;
pub use store::InMemoryDocumentStore;
