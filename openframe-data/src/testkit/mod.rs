//! The conformance kit: one suite per trait that every backend (and every decorator) runs.
//!
//! Each suite is a set of `check_*` functions taking the trait object; a macro expands them
//! into `#[tokio::test]`s for a backend factory:
//!
//! ```text
//! async fn make_store() -> Option<Arc<dyn DocumentStore>> { Some(Arc::new(MyStore::new())) }
//! openframe_data::document_store_conformance!(make_store);
//! ```
//!
//! A factory returns `None` (after printing a `skipped: ...` line) when its service is not
//! configured. The checks panic on failure, like assertions in a test.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod cache;
pub mod lock;
pub mod probe;
#[cfg(feature = "redis")]
mod redis_namespace;
pub mod repos;
mod scripts;

#[cfg(feature = "redis")]
pub use redis_namespace::{REDIS_URL_VAR, RedisNamespace};

use openframe_core::TenantId;

/// A random tenant id, so concurrent suites on one shared server never meet.
pub fn random_tenant() -> TenantId {
    TenantId::parse(format!(
        "t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ))
    .unwrap()
}

/// Expands the [`DocumentStore`](crate::store::DocumentStore) suites (store-level probe
/// checks and every repository check) into tests for `$factory`.
#[macro_export]
macro_rules! document_store_conformance {
    ($factory:path) => {
        $crate::__store_checks!($factory;
            probe: filters_match_reference, sort_matches_reference, facets_match_reference, facet_many_matches_facet,
                   insert_replace_delete, unique_groups, version_cas_is_atomic, partitions_are_isolated,
                   get_many_skips_missing, find_many_matches_find_and_count;
            repos: machine_crud, machine_filters, machine_search_is_literal, machine_sorts,
                   paging_forward_and_backward, paging_with_inserts_between_pages, counted_pages_match_list_and_count, machine_facets,
                   concurrent_writers_conflict, conditional_status_transitions, record_contact_is_monotonic, silent_machines_for_the_sweep,
                   tenant_isolation_machines, tenant_isolation_other_repositories, malformed_cursors,
                   oversized_input_is_rejected, unique_keys, soft_delete_rules, tool_credentials_round_trip,
                   lookups_by_key, api_key_usage_counts, api_key_usage_delta,
                   script_crud_and_soft_delete, script_filters_sorts_and_facets, tenant_isolation_scripts
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_checks {
    ($factory:path; probe: $($p:ident),+; repos: $($r:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $p() {
                if let Some(store) = $factory().await {
                    $crate::testkit::probe::$p(store).await;
                }
            }
        )+
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $r() {
                if let Some(store) = $factory().await {
                    $crate::testkit::repos::$r(store).await;
                }
            }
        )+
    };
}

/// Expands the [`Cache`](crate::Cache) suite into tests. The factory takes the
/// [`ManualClock`](openframe_core::ManualClock) the cache must follow.
#[macro_export]
macro_rules! cache_conformance {
    ($factory:path) => {
        $crate::__clocked_checks!($factory, cache:
            get_set_delete, expiry_follows_clock, tenants_do_not_share_keys, overwrite_resets_ttl,
            rejects_bad_entries, json_helpers_round_trip);
    };
}

/// Expands the [`DistributedLock`](crate::DistributedLock) suite into tests.
#[macro_export]
macro_rules! lock_conformance {
    ($factory:path) => {
        $crate::__clocked_checks!($factory, lock:
            exclusive_until_released, expires_after_lock_at_most, lock_at_least_holds_after_release,
            only_owner_releases_or_extends, extend_keeps_it, concurrent_acquire_has_one_winner, huge_durations_do_not_panic,
            rejects_bad_names);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __clocked_checks {
    ($factory:path, $suite:ident: $($c:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $c() {
                let clock = std::sync::Arc::new($crate::testkit::ManualClock::new($crate::testkit::__now()));
                if let Some(subject) = $factory(clock.clone()).await {
                    $crate::testkit::$suite::$c(subject, clock).await;
                }
            }
        )+
    };
}

use openframe_core::Clock as _;
pub use openframe_core::ManualClock;

#[doc(hidden)]
pub fn __now() -> openframe_core::Timestamp {
    openframe_core::SystemClock.now()
}
