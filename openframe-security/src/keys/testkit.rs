//! The [`KeyStore`] conformance kit: `check_*` suites that every key store (and every
//! decorator) runs, expanded into tests by [`keystore_conformance!`](crate::keystore_conformance).
//!
//! ```text
//! async fn make(clock: Arc<ManualClock>) -> Option<Arc<dyn KeyStore>> {
//!     Some(Arc::new(MyKeyStore::new(clock)))
//! }
//! openframe_security::keystore_conformance!(make);
//! ```
//!
//! The checks read the store's [`KeyPolicy`] through [`KeyStore::policy`]
//! and move the [`ManualClock`] past its periods; nothing sleeps. A factory returns `None`
//! (after printing a `skipped: ...` line) when its service is not configured. The checks of
//! [`DocumentKeyStore`] at rest (sealed private keys, wrong master key, replicas) take a
//! [`DocumentStore`] and are expanded by
//! [`document_keystore_conformance!`](crate::document_keystore_conformance).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
pub use openframe_core::ManualClock;
use openframe_core::{Clock as _, SortDirection, TenantId};
use openframe_data::store::{DocumentStore, Filter, FindQuery, SortKey, StoredDoc};
pub use openframe_data::testkit::random_tenant;

use super::{DocumentKeyStore, KeyPolicy, KeyStore};
use crate::crypto::{MasterKey, SigningAlgorithm, Verifier, jws};

#[doc(hidden)]
pub fn __now() -> openframe_core::Timestamp {
    openframe_core::SystemClock.now()
}

const SECOND: Duration = Duration::from_secs(1);

fn other(alg: SigningAlgorithm) -> SigningAlgorithm {
    match alg {
        SigningAlgorithm::Rs256 => SigningAlgorithm::EdDsa,
        SigningAlgorithm::EdDsa => SigningAlgorithm::Rs256,
    }
}

async fn kids(store: &Arc<dyn KeyStore>, tenant: &TenantId) -> Vec<String> {
    store
        .jwks(tenant)
        .await
        .unwrap()
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .collect()
}

// ---- Every KeyStore ----

pub async fn check_first_use_creates_one_key(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let t = random_tenant();
    let k1 = store.signing_key(&t).await.unwrap();
    assert!(k1.kid.starts_with("kid-"), "{}", k1.kid);
    assert_eq!(k1.algorithm, store.policy().algorithm);
    let k2 = store.signing_key(&t).await.unwrap();
    assert_eq!(k1.kid, k2.kid, "the second use finds the first key");
    assert_eq!(kids(&store, &t).await, vec![k1.kid.clone()]);
    let public = store
        .verification_key(&t, &k1.kid)
        .await
        .unwrap()
        .expect("the active key verifies");
    assert_eq!(public.algorithm, k1.algorithm);
    assert_eq!(public.retired_at, None);

    // The JWKS of a new tenant creates its key too, and it is the signing key.
    let t2 = random_tenant();
    let published = kids(&store, &t2).await;
    assert_eq!(published.len(), 1);
    assert_eq!(store.signing_key(&t2).await.unwrap().kid, published[0]);

    // Looking up a kid does not create keys; a later first use creates a different key.
    let t3 = random_tenant();
    assert!(
        store
            .verification_key(&t3, &k1.kid)
            .await
            .unwrap()
            .is_none()
    );
    let k3 = store.signing_key(&t3).await.unwrap();
    assert_ne!(k3.kid, k1.kid);
}

pub async fn check_concurrent_first_use_creates_one_key(
    store: Arc<dyn KeyStore>,
    _clock: Arc<ManualClock>,
) {
    let t = random_tenant();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let t = t.clone();
            tokio::spawn(async move {
                if i % 5 == 4 {
                    store.jwks(&t).await.unwrap().keys[0].kid.clone()
                } else {
                    store.signing_key(&t).await.unwrap().kid.clone()
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap());
    }
    assert_eq!(seen.len(), 1, "20 concurrent first uses made {seen:?}");
    assert_eq!(kids(&store, &t).await.len(), 1);
}

pub async fn check_sign_verify_round_trip(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let t = random_tenant();
    let key = store.signing_key(&t).await.unwrap();
    let sig = key.sign(b"payload").unwrap();
    let public = store.verification_key(&t, &key.kid).await.unwrap().unwrap();
    assert!(public.verify(b"payload", &sig));
    assert!(!public.verify(b"payloaD", &sig));
    let mut bad = sig.clone();
    bad[0] ^= 1;
    assert!(!public.verify(b"payload", &bad));
    assert!(!public.verify(b"payload", &[]));

    // The published JWK alone verifies too (what a resource server does).
    let jwks = store.jwks(&t).await.unwrap();
    let jwk = jwks.find(&key.kid).unwrap();
    assert_eq!(jwk, &key.jwk());
    assert_eq!(jwk.key_use, "sig");
    assert!(Verifier::from_jwk(jwk).unwrap().verify(b"payload", &sig));

    let token = key.sign_jws(br#"{"sub":"alice"}"#).unwrap();
    let decoded = jws::decode(&token).unwrap();
    assert_eq!(decoded.header.kid.as_deref(), Some(key.kid.as_str()));
    assert_eq!(decoded.header.alg, key.algorithm.as_str());
    assert!(public.verify(decoded.signing_input.as_bytes(), &decoded.signature));
}

pub async fn check_rotation_keeps_old_key_until_overlap(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let overlap = store.policy().overlap;
    let t = random_tenant();
    let k1 = store.signing_key(&t).await.unwrap();
    let sig1 = k1.sign(b"old token").unwrap();
    clock.advance(Duration::from_secs(3600));
    let rotated_at = clock.now();
    let k2 = store.rotate(&t, None).await.unwrap();
    assert_ne!(k2.kid, k1.kid);
    assert_eq!(k2.algorithm, k1.algorithm, "rotation keeps the algorithm");
    assert_eq!(store.signing_key(&t).await.unwrap().kid, k2.kid);
    assert_eq!(kids(&store, &t).await, vec![k2.kid.clone(), k1.kid.clone()]);
    let old = store
        .verification_key(&t, &k1.kid)
        .await
        .unwrap()
        .expect("a retired key keeps verifying");
    assert!(old.verify(b"old token", &sig1));
    let retired_at = old.retired_at.expect("retired");
    assert!(retired_at >= rotated_at && retired_at <= clock.now());
    assert!(
        store
            .verification_key(&t, &k2.kid)
            .await
            .unwrap()
            .unwrap()
            .retired_at
            .is_none()
    );

    clock.advance(overlap - SECOND);
    assert!(
        store.verification_key(&t, &k1.kid).await.unwrap().is_some(),
        "published until retired_at + overlap"
    );
    assert!(kids(&store, &t).await.contains(&k1.kid));

    clock.advance(2 * SECOND);
    assert!(
        store.verification_key(&t, &k1.kid).await.unwrap().is_none(),
        "gone after the overlap"
    );
    assert_eq!(kids(&store, &t).await, vec![k2.kid.clone()]);
    assert_eq!(store.signing_key(&t).await.unwrap().kid, k2.kid);
}

pub async fn check_rotate_if_due_follows_the_period(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let period = store.policy().rotation_period;
    let t = random_tenant();
    assert!(
        !store.rotate_if_due(&t).await.unwrap(),
        "no key, nothing to rotate"
    );
    let k1 = store.signing_key(&t).await.unwrap();
    assert!(!store.rotate_if_due(&t).await.unwrap());
    clock.advance(period - SECOND);
    assert!(!store.rotate_if_due(&t).await.unwrap());
    assert_eq!(store.signing_key(&t).await.unwrap().kid, k1.kid);
    clock.advance(2 * SECOND);
    assert!(
        store.rotate_if_due(&t).await.unwrap(),
        "due after the period"
    );
    let k2 = store.signing_key(&t).await.unwrap();
    assert_ne!(k2.kid, k1.kid);
    assert!(
        !store.rotate_if_due(&t).await.unwrap(),
        "the new key is young"
    );
    assert!(store.verification_key(&t, &k1.kid).await.unwrap().is_some());
    assert_eq!(kids(&store, &t).await, vec![k2.kid.clone(), k1.kid.clone()]);
}

pub async fn check_eddsa_per_tenant(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let default = store.policy().algorithm;
    let (a, b) = (random_tenant(), random_tenant());
    let ka = store.signing_key(&a).await.unwrap();
    let kb = store.signing_key(&b).await.unwrap();
    assert_eq!(ka.algorithm, default);

    let switched = store.rotate(&a, Some(other(default))).await.unwrap();
    assert_eq!(switched.algorithm, other(default));
    assert_eq!(
        store.signing_key(&a).await.unwrap().algorithm,
        other(default)
    );
    let eddsa = store
        .rotate(&a, Some(SigningAlgorithm::EdDsa))
        .await
        .unwrap();
    assert_eq!(eddsa.algorithm, SigningAlgorithm::EdDsa);
    let jwk = eddsa.jwk();
    assert_eq!(
        (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_str()),
        ("OKP", Some("Ed25519"), "EdDSA")
    );
    assert!(jwk.n.is_none());
    let sig = eddsa.sign(b"m").unwrap();
    let public = store
        .verification_key(&a, &eddsa.kid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(public.algorithm, SigningAlgorithm::EdDsa);
    assert!(public.verify(b"m", &sig));
    assert_eq!(
        store.rotate(&a, None).await.unwrap().algorithm,
        SigningAlgorithm::EdDsa,
        "a rotation keeps the tenant's algorithm"
    );
    // The old key keeps its own algorithm while it is published.
    assert_eq!(
        store
            .verification_key(&a, &ka.kid)
            .await
            .unwrap()
            .unwrap()
            .algorithm,
        default
    );
    // Tenant B is untouched.
    let kb2 = store.signing_key(&b).await.unwrap();
    assert_eq!(
        (kb2.kid.as_str(), kb2.algorithm),
        (kb.kid.as_str(), default)
    );
    let back = store
        .rotate(&a, Some(SigningAlgorithm::Rs256))
        .await
        .unwrap();
    assert_eq!(back.algorithm, SigningAlgorithm::Rs256);
    assert_eq!(back.jwk().kty, "RSA");
}

pub async fn check_tenants_are_isolated(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (a, b) = (random_tenant(), random_tenant());
    let ka = store.signing_key(&a).await.unwrap();
    let kb = store.signing_key(&b).await.unwrap();
    assert_ne!(ka.kid, kb.kid);
    assert!(store.verification_key(&b, &ka.kid).await.unwrap().is_none());
    assert!(store.verification_key(&a, &kb.kid).await.unwrap().is_none());
    assert!(!kids(&store, &b).await.contains(&ka.kid));
    let ka2 = store.rotate(&a, None).await.unwrap();
    assert_eq!(kids(&store, &b).await, vec![kb.kid.clone()]);
    assert!(
        store
            .verification_key(&b, &ka2.kid)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.signing_key(&b).await.unwrap().kid, kb.kid);
    // B's key does not verify A's signatures.
    let sig = ka2.sign(b"m").unwrap();
    let public_b = store.verification_key(&b, &kb.kid).await.unwrap().unwrap();
    assert!(!public_b.verify(b"m", &sig));
}

pub async fn check_unknown_and_malformed_kids_are_none(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let t = random_tenant();
    store.signing_key(&t).await.unwrap();
    let long = "k".repeat(65);
    let unknown = [
        "kid-00000000-0000-4000-8000-000000000000",
        "",
        "../../etc/passwd",
        "kid with spaces",
        "kid\u{0}",
        "kïd",
        long.as_str(),
    ];
    for kid in unknown {
        assert!(
            store.verification_key(&t, kid).await.unwrap().is_none(),
            "{kid:?}"
        );
    }
    // Past the unknown-kid re-read interval the store is consulted again; still nothing.
    clock.advance(store.policy().unknown_kid_refresh + SECOND);
    for kid in unknown {
        assert!(
            store.verification_key(&t, kid).await.unwrap().is_none(),
            "{kid:?}"
        );
    }
}

/// Expands the [`KeyStore`] suite into tests. The factory is
/// `async fn(Arc<ManualClock>) -> Option<Arc<dyn KeyStore>>`; the store must follow the clock.
#[macro_export]
macro_rules! keystore_conformance {
    ($factory:path) => {
        $crate::__keystore_checks!($factory:
            check_first_use_creates_one_key, check_concurrent_first_use_creates_one_key,
            check_sign_verify_round_trip, check_rotation_keeps_old_key_until_overlap,
            check_rotate_if_due_follows_the_period, check_eddsa_per_tenant,
            check_tenants_are_isolated, check_unknown_and_malformed_kids_are_none);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __keystore_checks {
    ($factory:path: $($c:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $c() {
                let clock = std::sync::Arc::new($crate::keys::testkit::ManualClock::new(
                    $crate::keys::testkit::__now(),
                ));
                if let Some(store) = $factory(clock.clone()).await {
                    $crate::keys::testkit::$c(store, clock).await;
                }
            }
        )+
    };
}

// ---- DocumentKeyStore at rest ----

fn document_keys(
    store: &Arc<dyn DocumentStore>,
    master: &MasterKey,
    clock: &Arc<ManualClock>,
) -> DocumentKeyStore {
    DocumentKeyStore::new(
        store.clone(),
        master.clone(),
        clock.clone(),
        KeyPolicy::default(),
    )
}

async fn raw_docs(store: &Arc<dyn DocumentStore>, tenant: &TenantId) -> Vec<StoredDoc> {
    let (schema, partition) = DocumentKeyStore::raw_location(tenant);
    let query = FindQuery {
        filter: Filter::All,
        sort: vec![(SortKey::Id, SortDirection::Asc)],
        limit: 100,
    };
    store.find(schema, &partition, &query).await.unwrap()
}

fn json_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

/// Asserts that `body` holds `der` in no usual encoding: raw text, base64 (both alphabets,
/// every alignment), hex, a JSON byte array, nor inside any base64 string value.
fn assert_der_absent(body: &str, der: &[u8]) {
    assert!(!body.contains("BEGIN"), "PEM at rest");
    assert!(!body.contains("PRIVATE KEY"), "PEM at rest");
    assert!(der.len() > 48);
    for offset in 0..3 {
        let chunk = &der[offset..offset + 45];
        for encoded in [STANDARD_NO_PAD.encode(chunk), URL_SAFE_NO_PAD.encode(chunk)] {
            assert!(!body.contains(&encoded), "base64 DER at rest");
        }
    }
    let hex: String = der[..24].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!body.to_lowercase().contains(&hex), "hex DER at rest");
    let numbers: Vec<String> = der[..12].iter().map(u8::to_string).collect();
    assert!(
        !body.contains(&numbers.join(",")),
        "DER as a JSON byte array"
    );
    let prefix = &der[..24];
    let mut strings = Vec::new();
    json_strings(&serde_json::from_str(body).unwrap(), &mut strings);
    for s in strings {
        assert!(!s.as_bytes().windows(prefix.len()).any(|w| w == prefix));
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(bytes) = engine.decode(&s) {
                assert!(
                    !bytes.windows(prefix.len()).any(|w| w == prefix),
                    "a stored string decodes to the DER"
                );
            }
        }
    }
}

fn sealed_of(doc: &StoredDoc) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&doc.body).unwrap();
    body.get("sealedPrivateKey")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

pub async fn check_private_keys_are_sealed_at_rest(
    store: Arc<dyn DocumentStore>,
    clock: Arc<ManualClock>,
) {
    let master = MasterKey::generate().unwrap();
    let keys = document_keys(&store, &master, &clock);
    let (rsa, ed) = (random_tenant(), random_tenant());
    let rsa_key = keys.signing_key(&rsa).await.unwrap();
    assert_eq!(rsa_key.algorithm, SigningAlgorithm::Rs256);
    keys.signing_key(&ed).await.unwrap();
    let ed_key = keys
        .rotate(&ed, Some(SigningAlgorithm::EdDsa))
        .await
        .unwrap();

    for (tenant, active) in [(&rsa, &rsa_key.kid), (&ed, &ed_key.kid)] {
        let docs = raw_docs(&store, tenant).await;
        let active_doc = docs.iter().find(|d| &d.id == active).expect("stored");
        let sealed = sealed_of(active_doc).expect("the active key has a sealed private key");
        let der = DocumentKeyStore::open_sealed_for_test(&master, tenant, active, &sealed)
            .expect("the master key opens it");
        assert_eq!(der[0], 0x30, "PKCS#8 DER inside");
        for doc in &docs {
            assert_der_absent(&doc.body, &der);
            if &doc.id != active {
                assert_eq!(sealed_of(doc), None, "a retired key keeps no private key");
            }
        }
        // Another master key, another tenant or another kid cannot open it.
        let wrong = MasterKey::generate().unwrap();
        assert!(DocumentKeyStore::open_sealed_for_test(&wrong, tenant, active, &sealed).is_err());
        let elsewhere = random_tenant();
        assert!(
            DocumentKeyStore::open_sealed_for_test(&master, &elsewhere, active, &sealed).is_err()
        );
        assert!(
            DocumentKeyStore::open_sealed_for_test(&master, tenant, "kid-other", &sealed).is_err()
        );
    }
}

pub async fn check_wrong_master_key_cannot_sign(
    store: Arc<dyn DocumentStore>,
    clock: Arc<ManualClock>,
) {
    let right = MasterKey::generate().unwrap();
    let wrong = MasterKey::generate().unwrap();
    let t = random_tenant();
    let key = document_keys(&store, &right, &clock)
        .signing_key(&t)
        .await
        .unwrap();
    let impostor = document_keys(&store, &wrong, &clock);
    let err = impostor
        .signing_key(&t)
        .await
        .expect_err("wrong master key");
    let text = format!("{err} {err:?}");
    assert!(text.contains(&t.to_string()), "names the tenant: {text}");
    assert!(!text.contains(&wrong.to_base64()) && !text.contains(&right.to_base64()));
    assert!(!text.contains("BEGIN"));
    // Public parts stay usable and no second key was created.
    assert!(
        impostor
            .verification_key(&t, &key.kid)
            .await
            .unwrap()
            .is_some()
    );
    let published = impostor.jwks(&t).await.unwrap();
    assert_eq!(published.keys.len(), 1);
    assert_eq!(published.keys[0].kid, key.kid);
    assert_eq!(raw_docs(&store, &t).await.len(), 1);
}

pub async fn check_sealed_key_is_bound_to_its_tenant(
    store: Arc<dyn DocumentStore>,
    clock: Arc<ManualClock>,
) {
    let master = MasterKey::generate().unwrap();
    let (a, b) = (random_tenant(), random_tenant());
    document_keys(&store, &master, &clock)
        .signing_key(&a)
        .await
        .unwrap();
    let doc = raw_docs(&store, &a).await.remove(0);
    let (schema, partition_b) = DocumentKeyStore::raw_location(&b);
    store.insert(schema, &partition_b, doc).await.unwrap();
    let fresh = document_keys(&store, &master, &clock);
    assert!(
        fresh.signing_key(&b).await.is_err(),
        "a record copied into another tenant cannot sign there"
    );
}

pub async fn check_replicas_agree_on_keys(store: Arc<dyn DocumentStore>, clock: Arc<ManualClock>) {
    let master = MasterKey::generate().unwrap();
    let replicas: Vec<Arc<dyn KeyStore>> = (0..3)
        .map(|_| Arc::new(document_keys(&store, &master, &clock)) as Arc<dyn KeyStore>)
        .collect();
    let t = random_tenant();
    let tasks: Vec<_> = (0..18)
        .map(|i| {
            let replica = replicas[i % 3].clone();
            let t = t.clone();
            tokio::spawn(async move { replica.signing_key(&t).await.unwrap().kid.clone() })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap());
    }
    assert_eq!(seen.len(), 1, "replicas made {seen:?}");
    let first = seen.into_iter().next().unwrap();
    assert_eq!(raw_docs(&store, &t).await.len(), 1);

    // A rotation on replica 0 is seen by replica 1: an unknown kid re-reads the store after
    // `unknown_kid_refresh`, the signing key after `refresh`.
    let policy = replicas[1].policy().clone();
    let rotated = replicas[0].rotate(&t, None).await.unwrap();
    clock.advance(policy.unknown_kid_refresh);
    assert!(
        replicas[1]
            .verification_key(&t, &rotated.kid)
            .await
            .unwrap()
            .is_some()
    );
    clock.advance(policy.refresh);
    assert_eq!(replicas[1].signing_key(&t).await.unwrap().kid, rotated.kid);
    assert_eq!(replicas[2].signing_key(&t).await.unwrap().kid, rotated.kid);
    assert!(
        replicas[2]
            .verification_key(&t, &first)
            .await
            .unwrap()
            .is_some()
    );

    // Due rotations on every replica at once rotate exactly once.
    clock.advance(policy.rotation_period);
    let tasks: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            let t = t.clone();
            tokio::spawn(async move { r.rotate_if_due(&t).await.unwrap() })
        })
        .collect();
    let mut rotations = 0;
    for task in tasks {
        rotations += usize::from(task.await.unwrap());
    }
    assert_eq!(rotations, 1);
    assert_eq!(raw_docs(&store, &t).await.len(), 3);
}

/// Expands the [`DocumentKeyStore`] checks at rest into tests for a document store factory
/// `async fn() -> Option<Arc<dyn DocumentStore>>`.
#[macro_export]
macro_rules! document_keystore_conformance {
    ($factory:path) => {
        $crate::__document_keystore_checks!($factory:
            check_private_keys_are_sealed_at_rest, check_wrong_master_key_cannot_sign,
            check_sealed_key_is_bound_to_its_tenant, check_replicas_agree_on_keys);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __document_keystore_checks {
    ($factory:path: $($c:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $c() {
                let clock = std::sync::Arc::new($crate::keys::testkit::ManualClock::new(
                    $crate::keys::testkit::__now(),
                ));
                if let Some(store) = $factory().await {
                    $crate::keys::testkit::$c(store, clock).await;
                }
            }
        )+
    };
}
