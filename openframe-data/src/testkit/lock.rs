//! Distributed lock checks. Time is driven by the [`ManualClock`]; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Error, ManualClock};

use crate::DistributedLock;

fn name(base: &str) -> String {
    format!("{base}:{}", uuid::Uuid::new_v4().simple())
}

const MIN: Duration = Duration::from_secs(60);

pub async fn exclusive_until_released(lock: Arc<dyn DistributedLock>, _clock: Arc<ManualClock>) {
    let n = name("sweep");
    let lease = lock.try_acquire(&n, MIN).await.unwrap().expect("free lock");
    assert!(lock.try_acquire(&n, MIN).await.unwrap().is_none(), "held");
    assert!(
        lock.try_acquire(&name("other"), MIN)
            .await
            .unwrap()
            .is_some(),
        "names are independent"
    );
    assert!(lock.release(&lease, Duration::ZERO).await.unwrap());
    let again = lock
        .try_acquire(&n, MIN)
        .await
        .unwrap()
        .expect("free after release");
    assert_ne!(again.token, lease.token, "every lease has its own token");
}

pub async fn expires_after_lock_at_most(lock: Arc<dyn DistributedLock>, clock: Arc<ManualClock>) {
    let n = name("sweep");
    let lease = lock.try_acquire(&n, MIN).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(lock.try_acquire(&n, MIN).await.unwrap().is_none());
    clock.advance(Duration::from_secs(1));
    let taken = lock
        .try_acquire(&n, MIN)
        .await
        .unwrap()
        .expect("a crashed holder cannot block forever");
    assert!(
        !lock.release(&lease, Duration::ZERO).await.unwrap(),
        "the expired holder cannot release"
    );
    assert!(
        lock.try_acquire(&n, MIN).await.unwrap().is_none(),
        "the new holder still holds it"
    );
    assert!(lock.release(&taken, Duration::ZERO).await.unwrap());
}

pub async fn lock_at_least_holds_after_release(
    lock: Arc<dyn DistributedLock>,
    clock: Arc<ManualClock>,
) {
    let n = name("rotate");
    let lease = lock
        .try_acquire(&n, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(lock.release(&lease, Duration::from_secs(30)).await.unwrap());
    assert!(
        lock.try_acquire(&n, MIN).await.unwrap().is_none(),
        "held until lock_at_least"
    );
    clock.advance(Duration::from_secs(25));
    assert!(
        lock.try_acquire(&n, MIN).await.unwrap().is_some(),
        "free after lock_at_least"
    );
}

pub async fn only_owner_releases_or_extends(
    lock: Arc<dyn DistributedLock>,
    _clock: Arc<ManualClock>,
) {
    let n = name("job");
    let lease = lock.try_acquire(&n, MIN).await.unwrap().unwrap();
    let forged = crate::Lease {
        token: "not-the-owner".into(),
        ..lease.clone()
    };
    assert!(!lock.release(&forged, Duration::ZERO).await.unwrap());
    assert!(lock.extend(&forged, MIN).await.unwrap().is_none());
    assert!(
        lock.try_acquire(&n, MIN).await.unwrap().is_none(),
        "the owner still holds it"
    );
    assert!(lock.release(&lease, Duration::ZERO).await.unwrap());
}

pub async fn extend_keeps_it(lock: Arc<dyn DistributedLock>, clock: Arc<ManualClock>) {
    let n = name("long-job");
    let lease = lock.try_acquire(&n, MIN).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(50));
    let extended = lock.extend(&lease, MIN).await.unwrap().expect("still ours");
    assert!(extended.expires_at > lease.expires_at);
    clock.advance(Duration::from_secs(50));
    assert!(
        lock.try_acquire(&n, MIN).await.unwrap().is_none(),
        "extended past the first expiry"
    );
    clock.advance(Duration::from_secs(11));
    assert!(
        lock.extend(&extended, MIN).await.unwrap().is_none(),
        "cannot extend an expired lease"
    );
}

pub async fn concurrent_acquire_has_one_winner(
    lock: Arc<dyn DistributedLock>,
    _clock: Arc<ManualClock>,
) {
    let n = name("race");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (lock, n) = (lock.clone(), n.clone());
        tasks.push(tokio::spawn(async move {
            lock.try_acquire(&n, MIN).await.unwrap()
        }));
    }
    let winners = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(winners, 1);
}

pub async fn huge_durations_do_not_panic(lock: Arc<dyn DistributedLock>, _clock: Arc<ManualClock>) {
    let n = name("huge");
    let lease = lock
        .try_acquire(&n, Duration::from_secs(24 * 3600))
        .await
        .unwrap()
        .unwrap();
    assert!(
        lock.release(&lease, Duration::MAX).await.unwrap(),
        "released (kept until the end of time)"
    );
    assert!(lock.try_acquire(&n, MIN).await.unwrap().is_none());
}

pub async fn rejects_bad_names(lock: Arc<dyn DistributedLock>, _clock: Arc<ManualClock>) {
    for bad in ["", "has space", "a/b", &"x".repeat(300)] {
        assert!(
            matches!(
                lock.try_acquire(bad, MIN).await,
                Err(Error::InvalidInput { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        lock.try_acquire("ok", Duration::ZERO).await,
        Err(Error::InvalidInput { .. })
    ));
}
