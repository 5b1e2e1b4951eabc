//! Read-modify-write helpers shared by the update mutations.

use std::future::Future;

use async_graphql::MaybeUndefined;
use openframe_core::{Error, Result};

use super::error::{GqlResultExt as _, to_gql};

/// How many times an update is retried after losing a version race.
const ATTEMPTS: usize = 8;

/// Applies an optional change: a value sets, `null` clears, absent keeps.
pub(crate) fn apply<T: Clone>(target: &mut Option<T>, change: &MaybeUndefined<T>) {
    match change {
        MaybeUndefined::Value(v) => *target = Some(v.clone()),
        MaybeUndefined::Null => *target = None,
        MaybeUndefined::Undefined => {}
    }
}

/// Reads with `get` (`None` is `NOT_FOUND` of `entity`), edits with `change`, writes with
/// `put`, and starts again on a version conflict.
pub(crate) async fn modify<T, G, GF, P, PF>(
    entity: &'static str,
    get: G,
    mut change: impl FnMut(&mut T),
    put: P,
) -> async_graphql::Result<T>
where
    G: Fn() -> GF,
    GF: Future<Output = Result<Option<T>>>,
    P: Fn(T) -> PF,
    PF: Future<Output = Result<T>>,
{
    for _ in 0..ATTEMPTS {
        let mut current = get()
            .await
            .gql()?
            .ok_or_else(|| to_gql(Error::not_found(entity)))?;
        change(&mut current);
        match put(current).await {
            Err(Error::Conflict { .. }) => continue,
            other => return other.gql(),
        }
    }
    Err(to_gql(Error::conflict(format!(
        "the {entity} is being changed concurrently"
    ))))
}
