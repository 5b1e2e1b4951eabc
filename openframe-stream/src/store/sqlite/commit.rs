//! Group commit: appends that arrive while the writer is busy share one transaction.
//!
//! Every append encodes its rows on the caller's thread, queues them, and asks the blocking
//! pool to drain the queue with the writer connection. Whoever gets the writer first writes
//! everything queued (up to [`MAX_APPEND_BATCH`] rows per transaction, oldest first) and sends
//! each append its outcome; the later drains find their rows already written. One bigger
//! transaction rewrites each touched index page once instead of once per append.
//!
//! Each append's rows stay in one transaction (all or nothing). If a shared transaction fails
//! it is rolled back and every append in it is retried in its own transaction, so each caller
//! gets the result of its own rows.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use openframe_core::{Error, Result};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{Row, backend_err, upsert};
use crate::store::{AppendOutcome, MAX_APPEND_BATCH};

/// One append waiting for the writer.
struct Pending {
    rows: Vec<Row>,
    done: oneshot::Sender<Result<AppendOutcome>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// The appends waiting for the writer, oldest first.
#[derive(Debug, Default)]
pub(super) struct AppendQueue {
    queue: Mutex<VecDeque<Pending>>,
    /// Transactions begun by drains (shared or not), for the tests.
    #[cfg(test)]
    rounds: std::sync::atomic::AtomicUsize,
}

impl AppendQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `rows` (at most [`MAX_APPEND_BATCH`]); the receiver gets their outcome once a
    /// [`drain`](Self::drain) wrote them.
    pub(super) fn push(&self, rows: Vec<Row>) -> oneshot::Receiver<Result<AppendOutcome>> {
        let (done, outcome) = oneshot::channel();
        self.lock().push_back(Pending { rows, done });
        outcome
    }

    /// With the writer connection: writes every queued append, in rounds of at most
    /// [`MAX_APPEND_BATCH`] rows, and sends each its outcome.
    pub(super) fn drain(&self, conn: &mut Connection) {
        loop {
            let round = self.take_round();
            if round.is_empty() {
                return;
            }
            #[cfg(test)]
            self.rounds
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let groups: Vec<&[Row]> = round.iter().map(|p| p.rows.as_slice()).collect();
            match write(conn, &groups) {
                Ok(outcomes) => {
                    for (pending, outcome) in round.into_iter().zip(outcomes) {
                        let _ = pending.done.send(Ok(outcome));
                    }
                }
                Err(e) if round.len() == 1 => {
                    if let Some(pending) = round.into_iter().next() {
                        let _ = pending.done.send(Err(e));
                    }
                }
                // Rolled back: every append gets the result of its own transaction.
                Err(_) => {
                    for pending in round {
                        let outcome = write(conn, &[&pending.rows]).map(|mut o| o.remove(0));
                        let _ = pending.done.send(outcome);
                    }
                }
            }
        }
    }

    /// The oldest queued appends: at least one, at most [`MAX_APPEND_BATCH`] rows in all.
    fn take_round(&self) -> Vec<Pending> {
        let mut queue = self.lock();
        let mut round = Vec::new();
        let mut size = 0;
        while let Some(next) = queue.front() {
            if !round.is_empty() && size + next.rows.len() > MAX_APPEND_BATCH {
                break;
            }
            size += next.rows.len();
            round.extend(queue.pop_front());
        }
        round
    }
}

/// Writes `groups` in one transaction; returns each group's outcome.
fn write(conn: &mut Connection, groups: &[&[Row]]) -> Result<Vec<AppendOutcome>> {
    let tx = conn.transaction().map_err(backend_err)?;
    let mut outcomes = Vec::with_capacity(groups.len());
    for rows in groups {
        let mut outcome = AppendOutcome::default();
        for row in *rows {
            if upsert(&tx, row)? {
                outcome.inserted += 1;
            } else {
                outcome.replaced += 1;
            }
        }
        outcomes.push(outcome);
    }
    tx.commit().map_err(backend_err)?;
    Ok(outcomes)
}

/// The outcome of an append whose drain ended without sending it (a panic in the writer).
pub(super) fn lost() -> Error {
    Error::Internal("the sqlite writer ended without an append's outcome".into())
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use openframe_core::{Error, TenantId};
    use uuid::Uuid;

    use super::super::SqliteEventStore;
    use crate::model::UnifiedEvent;
    use crate::store::testkit::{base_time, event, random_tenant};
    use crate::store::{AppendOutcome, EventFilter, EventStore};

    async fn open() -> (SqliteEventStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("of-events-gc-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        (
            SqliteEventStore::open(dir.join("events.db")).await.unwrap(),
            dir,
        )
    }

    fn events(tenant: &TenantId, ns: &[u64]) -> Vec<UnifiedEvent> {
        ns.iter()
            .map(|&n| event(tenant, n, base_time() + chrono::Duration::seconds(n as i64)))
            .collect()
    }

    /// Appends each of `batches` concurrently while the test holds the writer, so all of them
    /// are queued before the first drain; returns their results in order.
    // Holding the writer across the awaits is the point: the appends' drains (on the blocking
    // pool) wait for it while the test sees them queue up.
    #[allow(clippy::await_holding_lock)]
    async fn queued_together(
        store: &SqliteEventStore,
        batches: Vec<Vec<UnifiedEvent>>,
    ) -> Vec<openframe_core::Result<AppendOutcome>> {
        let writer = store.inner.writer.lock().unwrap();
        let n = batches.len();
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let store = store.clone();
                tokio::spawn(async move { store.append(&batch).await })
            })
            .collect();
        let mut spins = 0;
        while store.inner.appends.lock().len() < n {
            spins += 1;
            assert!(spins < 1_000_000, "the appends were never queued");
            tokio::task::yield_now().await;
        }
        drop(writer);
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_queued_together_share_one_transaction_with_exact_outcomes() {
        let (store, dir) = open().await;
        let tenant = random_tenant();
        store.append(&events(&tenant, &[0])).await.unwrap();
        let before = store.inner.appends.rounds.load(Ordering::SeqCst);
        let results = queued_together(
            &store,
            vec![
                events(&tenant, &[1, 2]),
                events(&tenant, &[0, 3]),
                events(&tenant, &[4]),
            ],
        )
        .await;
        let outcomes: Vec<AppendOutcome> = results.into_iter().map(Result::unwrap).collect();
        let outcome = |inserted, replaced| AppendOutcome { inserted, replaced };
        assert_eq!(outcomes, vec![outcome(2, 0), outcome(1, 1), outcome(1, 0)]);
        assert_eq!(
            store.inner.appends.rounds.load(Ordering::SeqCst) - before,
            1
        );
        let stored = store.count(&tenant, &EventFilter::default()).await.unwrap();
        assert_eq!(stored, 5);
        // Tenant isolation holds for rows written in a shared transaction.
        let other = random_tenant();
        assert_eq!(
            store.count(&other, &EventFilter::default()).await.unwrap(),
            0
        );
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_append_fails_alone_and_leaves_nothing_of_its_rows() {
        let (store, dir) = open().await;
        let tenant = random_tenant();
        store
            .inner
            .writer
            .lock()
            .unwrap()
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON of_events
                 WHEN NEW.body LIKE '%\"summary\":\"poison\"%'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let mut poisoned = events(&tenant, &[10, 11]);
        poisoned[1].summary = "poison".into();
        let results = queued_together(
            &store,
            vec![
                events(&tenant, &[1]),
                poisoned.clone(),
                events(&tenant, &[2, 3]),
            ],
        )
        .await;
        assert_eq!(results[0].as_ref().unwrap().inserted, 1);
        assert!(
            matches!(results[1], Err(Error::Backend { .. })),
            "{:?}",
            results[1]
        );
        assert_eq!(results[2].as_ref().unwrap().inserted, 2);
        let stored = store.count(&tenant, &EventFilter::default()).await.unwrap();
        assert_eq!(stored, 3);
        assert_eq!(store.get(&tenant, poisoned[0].id).await.unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_appends_all_land() {
        let (store, dir) = open().await;
        let tenant = random_tenant();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..16u64)
            .map(|lane| {
                let store = store.clone();
                let tenant = tenant.clone();
                tokio::spawn(async move {
                    for round in 0..10u64 {
                        let base = lane * 1000 + round * 10;
                        let batch = events(&tenant, &(base..base + 10).collect::<Vec<_>>());
                        assert_eq!(store.append(&batch).await.unwrap().inserted, 10);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stored = store.count(&tenant, &EventFilter::default()).await.unwrap();
        assert_eq!(stored, 1600);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
