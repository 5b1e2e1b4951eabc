//! Cache checks. Expiry is driven by the [`ManualClock`]; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Error, ManualClock};

use super::random_tenant;
use crate::{Cache, CacheExt, CacheKey};

fn key(ns: &str, k: &str) -> CacheKey {
    CacheKey::new(&random_tenant(), ns, k).unwrap()
}

pub async fn get_set_delete(cache: Arc<dyn Cache>, _clock: Arc<ManualClock>) {
    let k = key("machines", "agent-1");
    assert_eq!(cache.get(&k).await.unwrap(), None);
    cache
        .set(&k, b"one".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    cache
        .set(&k, b"two".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(cache.delete(&k).await.unwrap());
    assert!(!cache.delete(&k).await.unwrap());
    assert_eq!(cache.get(&k).await.unwrap(), None);
    let empty = key("machines", "empty");
    cache
        .set(&empty, Vec::new(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        cache.get(&empty).await.unwrap(),
        Some(Vec::new()),
        "empty values are values"
    );
}

pub async fn expiry_follows_clock(cache: Arc<dyn Cache>, clock: Arc<ManualClock>) {
    let k = key("orgs", "o1");
    cache
        .set(&k, b"v".to_vec(), Duration::from_secs(30))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29));
    assert!(
        cache.get(&k).await.unwrap().is_some(),
        "alive before the TTL"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&k).await.unwrap(), None, "gone at the TTL");
    assert!(
        !cache.delete(&k).await.unwrap(),
        "an expired entry is not deleted twice"
    );
}

pub async fn overwrite_resets_ttl(cache: Arc<dyn Cache>, clock: Arc<ManualClock>) {
    let k = key("orgs", "o2");
    cache
        .set(&k, b"a".to_vec(), Duration::from_secs(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8));
    cache
        .set(&k, b"b".to_vec(), Duration::from_secs(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some(&b"b"[..]));
}

pub async fn tenants_do_not_share_keys(cache: Arc<dyn Cache>, _clock: Arc<ManualClock>) {
    let (a, b) = (random_tenant(), random_tenant());
    let ka = CacheKey::new(&a, "machines", "same").unwrap();
    let kb = CacheKey::new(&b, "machines", "same").unwrap();
    cache
        .set(&ka, b"A".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&kb).await.unwrap(), None);
    assert!(!cache.delete(&kb).await.unwrap());
    assert_eq!(cache.get(&ka).await.unwrap().as_deref(), Some(&b"A"[..]));
}

pub async fn rejects_bad_entries(cache: Arc<dyn Cache>, _clock: Arc<ManualClock>) {
    let k = key("big", "x");
    let err = cache
        .set(&k, vec![0u8; 2 * 1024 * 1024], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
    assert!(matches!(
        cache.set(&k, b"x".to_vec(), Duration::ZERO).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        cache
            .set(&k, b"x".to_vec(), Duration::from_secs(365 * 86400))
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(cache.get(&k).await.unwrap(), None, "nothing stored");
    let t = random_tenant();
    assert!(CacheKey::new(&t, "Bad NS", "k").is_err());
    assert!(CacheKey::new(&t, "ns", "").is_err());
    assert!(CacheKey::new(&t, "ns", &"k".repeat(600)).is_err());
}

pub async fn json_helpers_round_trip(cache: Arc<dyn Cache>, _clock: Arc<ManualClock>) {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Info {
        machine_id: String,
        hostname: String,
    }
    let k = key("machine-by-agent", "mesh//node-1");
    let info = Info {
        machine_id: "m-1".into(),
        hostname: "web".into(),
    };
    cache
        .set_json(&k, &info, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get_json::<Info>(&k).await.unwrap(), Some(info));
    cache
        .set(&k, b"not json".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get_json::<Info>(&k).await.unwrap(),
        None,
        "undecodable is a miss"
    );
}
