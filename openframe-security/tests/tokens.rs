//! The token service against hostile input, rotation, revocation, the verified-token cache and
//! EdDSA tenants. Time is a `ManualClock`; nothing sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{
    Clock, Error, ManualClock, Page, PageRequest, Result, Tenant, TenantId, TenantStatus, UserId,
};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_data::{Repositories, TenantRepository};
use openframe_security::crypto::{JwkSet, MasterKey, SigningAlgorithm};
use openframe_security::keys::{
    DocumentKeyStore, KeyPolicy, KeyStore, SigningKey, VerificationKey,
};
use openframe_security::token::{
    AccessTokenRequest, IdTokenRequest, IssuerConfig, TokenConfig, TokenError, TokenService,
};
use serde_json::{Value, json};

const BASE: &str = "https://id.example.com";

/// Counts key lookups, to prove what verification did not do.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn KeyStore>,
    verification: AtomicUsize,
}

impl Counting {
    fn lookups(&self) -> usize {
        self.verification.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyStore for Counting {
    fn policy(&self) -> &KeyPolicy {
        self.inner.policy()
    }
    async fn signing_key(&self, tenant: &TenantId) -> Result<Arc<SigningKey>> {
        self.inner.signing_key(tenant).await
    }
    async fn verification_key(
        &self,
        tenant: &TenantId,
        kid: &str,
    ) -> Result<Option<Arc<VerificationKey>>> {
        self.verification.fetch_add(1, Ordering::SeqCst);
        self.inner.verification_key(tenant, kid).await
    }
    async fn jwks(&self, tenant: &TenantId) -> Result<Arc<JwkSet>> {
        self.inner.jwks(tenant).await
    }
    async fn rotate(
        &self,
        tenant: &TenantId,
        algorithm: Option<SigningAlgorithm>,
    ) -> Result<Arc<SigningKey>> {
        self.inner.rotate(tenant, algorithm).await
    }
    async fn rotate_if_due(&self, tenant: &TenantId) -> Result<bool> {
        self.inner.rotate_if_due(tenant).await
    }
}

struct Fixture {
    clock: Arc<ManualClock>,
    store: Arc<dyn DocumentStore>,
    tenants: Arc<dyn TenantRepository>,
    master: MasterKey,
    keys: Arc<Counting>,
    tokens: TokenService,
    a: TenantId,
    b: TenantId,
}

impl Fixture {
    async fn new() -> Self {
        Self::with_config(TokenConfig::default()).await
    }

    async fn with_config(config: TokenConfig) -> Self {
        let clock = Arc::new(ManualClock::default());
        let store: Arc<dyn DocumentStore> = Arc::new(InMemoryDocumentStore::new());
        let repos = Repositories::with_clock(store.clone(), clock.clone());
        let (a, b) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        for (t, domain) in [(&a, "acme.example"), (&b, "globex.example")] {
            repos
                .tenants
                .insert(Tenant::new(t.clone(), t.as_str(), domain, clock.now()))
                .await
                .unwrap();
        }
        let master = MasterKey::generate().unwrap();
        let keys = Arc::new(Counting {
            inner: Arc::new(DocumentKeyStore::new(
                store.clone(),
                master.clone(),
                clock.clone(),
                KeyPolicy::default(),
            )),
            verification: AtomicUsize::new(0),
        });
        let tokens = TokenService::new(
            keys.clone(),
            repos.tenants.clone(),
            issuers(),
            clock.clone(),
            config,
        )
        .with_revocation_store(store.clone());
        Self {
            clock,
            store,
            tenants: repos.tenants,
            master,
            keys,
            tokens,
            a,
            b,
        }
    }

    /// Another replica: its own key store (same master key and store) and caches.
    fn other_replica(&self) -> TokenService {
        let keys = Arc::new(DocumentKeyStore::new(
            self.store.clone(),
            self.master.clone(),
            self.clock.clone(),
            KeyPolicy::default(),
        ));
        TokenService::new(
            keys,
            self.tenants.clone(),
            issuers(),
            self.clock.clone(),
            TokenConfig::default(),
        )
        .with_revocation_store(self.store.clone())
    }

    fn request(&self, tenant: &TenantId) -> AccessTokenRequest {
        AccessTokenRequest {
            tenant: tenant.clone(),
            subject: "alice@acme.example".into(),
            audience: vec![format!("{tenant}-api")],
            scope: vec!["openid".into(), "machines:read".into()],
            client_id: "console".into(),
            user_id: Some(UserId::parse("u-1").unwrap()),
            machine_id: None,
            roles: vec!["OWNER".into(), "ADMIN".into()],
            ttl: None,
        }
    }

    async fn issue(&self, tenant: &TenantId) -> String {
        self.tokens
            .issue_access_token(self.request(tenant))
            .await
            .unwrap()
            .token
    }

    async fn verify(&self, token: &str) -> std::result::Result<(), TokenError> {
        self.tokens
            .verify_access_token(token, None)
            .await
            .map(|_| ())
    }

    async fn signing_key(&self, tenant: &TenantId) -> Arc<SigningKey> {
        self.keys.signing_key(tenant).await.unwrap()
    }
}

fn issuers() -> IssuerConfig {
    IssuerConfig::new(BASE.parse().unwrap()).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let p = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
        it.next().unwrap().to_owned(),
    )
}

/// `header.payload` with `signature` (base64url).
fn assemble(header: &Value, payload: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(payload))
}

/// A properly signed token with any header and payload.
fn sign_with(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn assert_refused(result: std::result::Result<(), TokenError>, expected: &str) {
    match result {
        Err(e) => assert_eq!(
            format!("{e:?}").split([' ', '{', '(']).next().unwrap(),
            expected,
            "{e:?}"
        ),
        Ok(()) => panic!("accepted; expected {expected}"),
    }
}

#[tokio::test]
async fn issue_and_verify_round_trip() {
    let f = Fixture::new().await;
    let issued = f.tokens.issue_access_token(f.request(&f.a)).await.unwrap();
    assert!(
        !format!("{issued:?}").contains(&issued.token),
        "Debug hides the token"
    );
    let key = f.signing_key(&f.a).await;
    let (header, claims, _) = parts(&issued.token);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": key.kid})
    );
    let iat = f.clock.now().timestamp();
    assert_eq!(
        claims,
        json!({
            "iss": "https://id.example.com/sas/acme", "sub": "alice@acme.example",
            "aud": ["acme-api"], "iat": iat, "nbf": iat, "exp": iat + 900, "jti": issued.jti,
            "scope": "openid machines:read", "tenant_id": "acme", "client_id": "console",
            "user_id": "u-1", "roles": ["OWNER", "ADMIN"],
        })
    );
    assert_eq!(issued.expires_at.timestamp(), iat + 900);
    let v = f
        .tokens
        .verify_access_token(&issued.token, Some("acme-api"))
        .await
        .unwrap();
    assert_eq!(v.tenant, f.a);
    assert_eq!(v.kid, key.kid);
    assert_eq!(v.algorithm, SigningAlgorithm::Rs256);
    assert!(v.has_scope("machines:read") && !v.has_scope("machines"));
    assert!(v.has_role("OWNER"));
    assert_eq!(v.claims.machine_id, None);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let (mut header, claims, sig) = parts(&token);
    for alg in ["none", "None", "NONE", ""] {
        header["alg"] = json!(alg);
        assert_refused(
            f.verify(&assemble(&header, &claims, "")).await,
            "AlgorithmNotAllowed",
        );
        assert_refused(
            f.verify(&assemble(&header, &claims, &sig)).await,
            "AlgorithmNotAllowed",
        );
    }
    header.as_object_mut().unwrap().remove("alg");
    assert_refused(f.verify(&assemble(&header, &claims, "")).await, "Malformed");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    use aws_lc_rs::hmac;
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let (mut header, claims, _) = parts(&token);
    let jwk = f.signing_key(&f.a).await.jwk();
    let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref().unwrap()).unwrap();
    let spki = {
        use aws_lc_rs::encoding::AsDer as _;
        let e = URL_SAFE_NO_PAD.decode(jwk.e.as_deref().unwrap()).unwrap();
        let components = aws_lc_rs::signature::RsaPublicKeyComponents { n: n.clone(), e };
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'static> = components.as_der().unwrap();
        der.as_ref().to_vec()
    };
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let secrets: Vec<Vec<u8>> = vec![serde_json::to_vec(&jwk).unwrap(), n, spki, pem.into_bytes()];
    let before = f.keys.lookups();
    for alg in ["HS256", "HS384", "HS512"] {
        header["alg"] = json!(alg);
        for secret in &secrets {
            let input = format!("{}.{}", b64(&header), b64(&claims));
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
            let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_refused(f.verify(&forged).await, "AlgorithmNotAllowed");
        }
    }
    assert_eq!(f.keys.lookups(), before, "refused before any key lookup");
}

#[tokio::test]
async fn rs256_and_eddsa_cannot_be_swapped() {
    let f = Fixture::new().await;
    f.keys
        .rotate(&f.b, Some(SigningAlgorithm::EdDsa))
        .await
        .unwrap();
    let eddsa = f.issue(&f.b).await;
    assert_eq!(parts(&eddsa).0["alg"], "EdDSA");
    let rsa = f.issue(&f.a).await;
    for (token, claimed) in [(eddsa, ["RS256", "ES256"]), (rsa, ["EdDSA", "PS256"])] {
        let (mut header, claims, sig) = parts(&token);
        for alg in claimed {
            header["alg"] = json!(alg);
            assert_refused(
                f.verify(&assemble(&header, &claims, &sig)).await,
                "AlgorithmNotAllowed",
            );
        }
    }
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let other = f.issue(&f.a).await;
    let (header, mut claims, sig) = parts(&token);
    let (_, _, other_sig) = parts(&other);

    claims["roles"] = json!(["OWNER", "ADMIN", "SUPERUSER"]);
    assert_refused(
        f.verify(&assemble(&header, &claims, &sig)).await,
        "BadSignature",
    );
    let (_, mut claims, _) = parts(&token);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    assert_refused(
        f.verify(&assemble(&header, &claims, &sig)).await,
        "BadSignature",
    );

    let (_, claims, _) = parts(&token);
    assert_refused(
        f.verify(&assemble(&header, &claims, &other_sig)).await,
        "BadSignature",
    );
    let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    raw[10] ^= 0x40;
    let flipped = URL_SAFE_NO_PAD.encode(&raw);
    assert_refused(
        f.verify(&assemble(&header, &claims, &flipped)).await,
        "BadSignature",
    );
    let short = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]);
    assert_refused(
        f.verify(&assemble(&header, &claims, &short)).await,
        "BadSignature",
    );
    assert_refused(
        f.verify(&assemble(&header, &claims, "")).await,
        "BadSignature",
    );
    // The untouched token still verifies.
    f.verify(&token).await.unwrap();
}

#[tokio::test]
async fn unknown_kids_are_refused() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let b_kid = f.signing_key(&f.b).await.kid.clone();
    let (mut header, claims, sig) = parts(&token);
    for kid in [
        json!("kid-00000000-0000-4000-8000-000000000000"),
        json!(b_kid),
        json!("../x"),
        json!(7),
    ] {
        header["kid"] = kid.clone();
        let result = f.verify(&assemble(&header, &claims, &sig)).await;
        let expected = if kid.is_string() {
            "UnknownKey"
        } else {
            "Malformed"
        };
        assert_refused(result, expected);
    }
    header.as_object_mut().unwrap().remove("kid");
    assert_refused(
        f.verify(&assemble(&header, &claims, &sig)).await,
        "UnknownKey",
    );
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_clock() {
    let f = Fixture::new().await;
    let t0 = f.clock.now();
    let token = f.issue(&f.a).await;
    f.clock.set(t0 - chrono::Duration::seconds(31));
    assert_refused(f.verify(&token).await, "NotYetValid");
    f.clock.set(t0 - chrono::Duration::seconds(29));
    f.verify(&token).await.unwrap();
    f.clock.set(t0 - chrono::Duration::seconds(31));
    assert_refused(f.verify(&token).await, "NotYetValid"); // not served from the cache either
    f.clock.set(t0);
    f.verify(&token).await.unwrap();
    f.clock.advance(Duration::from_secs(900 + 29));
    f.verify(&token).await.unwrap(); // within the leeway
    f.clock.advance(Duration::from_secs(1));
    assert_refused(f.verify(&token).await, "Expired");
    assert!(!f.tokens.introspect(&token).await.active);
}

#[tokio::test]
async fn a_token_of_tenant_a_is_refused_as_tenant_b() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let (header, claims, sig) = parts(&token);
    let key_b = f.signing_key(&f.b).await;

    // Claim B's issuer with A's signature and kid.
    let mut as_b = claims.clone();
    as_b["iss"] = json!("https://id.example.com/sas/globex");
    assert_refused(
        f.verify(&assemble(&header, &as_b, &sig)).await,
        "UnknownKey",
    );
    // Signed by B's key for B's issuer, but still about tenant A.
    let b_header = json!({"alg": "RS256", "typ": "JWT", "kid": key_b.kid});
    assert_refused(
        f.verify(&sign_with(&key_b, &b_header, &as_b)).await,
        "WrongTenant",
    );
    // Signed by B's key but claiming A's issuer: A has no such kid.
    assert_refused(
        f.verify(&sign_with(&key_b, &b_header, &claims)).await,
        "UnknownKey",
    );
    // A's valid token against B's audience.
    assert!(matches!(
        f.tokens
            .verify_access_token(&token, Some("globex-api"))
            .await,
        Err(TokenError::WrongAudience)
    ));
    f.tokens
        .verify_access_token(&token, Some("acme-api"))
        .await
        .unwrap();
    assert!(
        matches!(
            f.tokens
                .verify_access_token(&token, Some("globex-api"))
                .await,
            Err(TokenError::WrongAudience)
        ),
        "the audience is checked on cache hits too"
    );
}

#[tokio::test]
async fn unknown_issuers_are_refused_before_any_key_lookup() {
    let f = Fixture::new().await;
    let mut inactive = Tenant::new(
        TenantId::parse("initech").unwrap(),
        "Initech",
        "initech.example",
        f.clock.now(),
    );
    inactive.status = TenantStatus::Inactive;
    f.tenants.insert(inactive).await.unwrap();
    let key = f.signing_key(&f.a).await;
    let token = f.issue(&f.a).await;
    let (header, claims, _) = parts(&token);
    let before = f.keys.lookups();
    for iss in [
        "https://evil.example/sas/acme",
        "https://id.example.com/sas/unknown-tenant",
        "https://id.example.com/sas/initech",
        "https://id.example.com/sas/acme/",
        "https://id.example.com/sas/acme?x=1",
        "https://id.example.com/acme",
        "http://id.example.com/sas/acme",
        "",
    ] {
        let mut forged = claims.clone();
        forged["iss"] = json!(iss);
        let signed = sign_with(&key, &header, &forged);
        assert_refused(f.verify(&signed).await, "UnknownIssuer");
    }
    assert_eq!(
        f.keys.lookups(),
        before,
        "no key lookup for a refused issuer"
    );
    // A known, active issuer does look its key up.
    f.verify(&token).await.unwrap();
    assert_eq!(f.keys.lookups(), before + 1);
}

#[tokio::test]
async fn oversized_and_garbage_tokens_are_malformed() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let (header, claims, sig) = parts(&token);
    let id_token = f
        .tokens
        .issue_id_token(IdTokenRequest {
            tenant: f.a.clone(),
            subject: "alice".into(),
            client_id: "console".into(),
            auth_time: f.clock.now(),
            sid: "s1".into(),
            nonce: None,
            email: None,
            email_verified: None,
            name: None,
        })
        .await
        .unwrap()
        .token;
    let mut missing_exp = claims.clone();
    missing_exp.as_object_mut().unwrap().remove("exp");
    let mut bad_tenant = claims.clone();
    bad_tenant["tenant_id"] = json!("../acme");
    let big = format!("{token}{}", "A".repeat(9000));
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "..".into(),
        "é.é.é".into(),
        format!(" {token}"),
        format!("{token}="),
        big,
        format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode("not json"),
            b64(&claims)
        ),
        format!(
            "{}.{}.{sig}",
            b64(&header),
            URL_SAFE_NO_PAD.encode("not json")
        ),
        assemble(&header, &json!([1, 2]), &sig),
        assemble(&header, &missing_exp, &sig),
        assemble(&header, &bad_tenant, &sig),
        assemble(
            &json!({"alg": "RS256", "kid": "k", "crit": ["exp"]}),
            &claims,
            &sig,
        ),
        id_token,
    ];
    for case in cases {
        assert_refused(f.verify(&case).await, "Malformed");
    }
    assert_eq!(f.keys.lookups(), 0, "garbage never reaches the key store");
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let f = Fixture::new().await;
    let old = f.issue(&f.a).await;
    let old_kid = parts(&old).0["kid"].clone();
    f.clock.advance(Duration::from_secs(60));
    f.keys.rotate(&f.a, None).await.unwrap();
    let new = f.issue(&f.a).await;
    assert_ne!(parts(&new).0["kid"], old_kid);
    f.tokens.cache().forget(&old);
    let before = f.keys.lookups();
    f.verify(&old).await.unwrap();
    assert_eq!(
        f.keys.lookups(),
        before + 1,
        "verified with the retired key"
    );
    f.verify(&new).await.unwrap();
    f.clock.advance(Duration::from_secs(900 - 60 + 30));
    assert_refused(f.verify(&old).await, "Expired");
    f.verify(&new).await.unwrap();
}

#[tokio::test]
async fn revocation_by_jti_is_persisted_and_seen_by_other_replicas() {
    let f = Fixture::new().await;
    let t1 = f.issue(&f.a).await;
    let t2 = f.issue(&f.a).await;
    let t3 = f.issue(&f.b).await;
    f.verify(&t1).await.unwrap(); // cached
    assert!(f.tokens.revoke_access_token(&t1).await.unwrap());
    assert_refused(f.verify(&t1).await, "Revoked");
    assert!(!f.tokens.introspect(&t1).await.active);
    assert!(
        !f.tokens.revoke_access_token(&t1).await.unwrap(),
        "already revoked"
    );
    assert!(!f.tokens.revoke_access_token("garbage").await.unwrap());
    f.verify(&t2).await.unwrap();
    f.verify(&t3).await.unwrap();

    // A new replica loads persisted revocations before its first verification.
    let replica = f.other_replica();
    assert!(matches!(
        replica.verify_access_token(&t1, None).await,
        Err(TokenError::Revoked)
    ));
    replica.verify_access_token(&t2, None).await.unwrap();

    // A revocation made elsewhere is seen after the next refresh.
    assert!(f.tokens.revoke_access_token(&t2).await.unwrap());
    replica.verify_access_token(&t2, None).await.unwrap(); // stale until refreshed
    replica.refresh_revocations().await.unwrap();
    assert!(matches!(
        replica.verify_access_token(&t2, None).await,
        Err(TokenError::Revoked)
    ));
    replica.verify_access_token(&t3, None).await.unwrap();

    // By jti, as the authorization server does for a revoked refresh-token family.
    let issued = f.tokens.issue_access_token(f.request(&f.b)).await.unwrap();
    f.tokens
        .revoke_jti(&f.b, &issued.jti, issued.expires_at)
        .await
        .unwrap();
    assert_refused(f.verify(&issued.token).await, "Revoked");

    // Records expire with their tokens.
    f.clock.advance(Duration::from_secs(3600));
    f.tokens.refresh_revocations().await.unwrap();
    assert_refused(f.verify(&t1).await, "Expired");
}

#[tokio::test]
async fn revoking_a_tenant_revokes_its_tokens_only() {
    let f = Fixture::new().await;
    let a1 = f.issue(&f.a).await;
    let b1 = f.issue(&f.b).await;
    let replica = f.other_replica();
    replica.verify_access_token(&a1, None).await.unwrap(); // cached on the replica
    f.verify(&a1).await.unwrap();
    f.tokens.revoke_tenant_tokens(&f.a).await.unwrap();
    assert_refused(f.verify(&a1).await, "Revoked");
    f.verify(&b1).await.unwrap();
    replica.refresh_revocations().await.unwrap();
    assert!(matches!(
        replica.verify_access_token(&a1, None).await,
        Err(TokenError::Revoked)
    ));
    replica.verify_access_token(&b1, None).await.unwrap();
    // Tokens issued afterwards (from the next second) are valid.
    f.clock.advance(Duration::from_secs(1));
    let a2 = f.issue(&f.a).await;
    f.verify(&a2).await.unwrap();
    replica.verify_access_token(&a2, None).await.unwrap();
}

#[tokio::test]
async fn cache_hits_skip_the_key_store_and_forget_works() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    f.verify(&token).await.unwrap();
    assert_eq!(f.keys.lookups(), 1);
    for _ in 0..5 {
        f.verify(&token).await.unwrap();
    }
    assert_eq!(f.keys.lookups(), 1, "served from the cache");
    assert_eq!(f.tokens.cache().len(), 1);
    assert!(f.tokens.cache().forget(&token));
    assert!(!f.tokens.cache().forget(&token));
    f.verify(&token).await.unwrap();
    assert_eq!(f.keys.lookups(), 2);
    f.tokens.cache().forget_tenant(&f.b);
    f.verify(&token).await.unwrap();
    assert_eq!(
        f.keys.lookups(),
        2,
        "another tenant's flush keeps A's tokens"
    );
    f.tokens.cache().forget_tenant(&f.a);
    f.verify(&token).await.unwrap();
    assert_eq!(f.keys.lookups(), 3);
    f.verify(&token).await.unwrap();
    assert_eq!(f.keys.lookups(), 3);

    // Bounded.
    let small = Fixture::with_config(TokenConfig {
        cache_capacity: 4,
        ..TokenConfig::default()
    })
    .await;
    for _ in 0..10 {
        let t = small.issue(&small.a).await;
        small.verify(&t).await.unwrap();
        assert!(small.tokens.cache().len() <= 4);
    }
    // Disabled.
    let none = Fixture::with_config(TokenConfig {
        cache_capacity: 0,
        ..TokenConfig::default()
    })
    .await;
    let t = none.issue(&none.a).await;
    none.verify(&t).await.unwrap();
    none.verify(&t).await.unwrap();
    assert_eq!(none.keys.lookups(), 2);
    assert!(none.tokens.cache().is_empty());
}

#[tokio::test]
async fn eddsa_tenant_issues_and_verifies() {
    let f = Fixture::new().await;
    let key = f
        .keys
        .rotate(&f.b, Some(SigningAlgorithm::EdDsa))
        .await
        .unwrap();
    let token = f.issue(&f.b).await;
    let (header, _, sig) = parts(&token);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid})
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap().len(), 64);
    let v = f
        .tokens
        .verify_access_token(&token, Some("globex-api"))
        .await
        .unwrap();
    assert_eq!(v.algorithm, SigningAlgorithm::EdDsa);
    assert_eq!(f.keys.jwks(&f.b).await.unwrap().keys[0].kty, "OKP");
    // Tenant A is still RS256.
    assert_eq!(parts(&f.issue(&f.a).await).0["alg"], "RS256");
}

#[tokio::test]
async fn introspection_has_the_rfc_7662_fields() {
    let f = Fixture::new().await;
    let issued = f.tokens.issue_access_token(f.request(&f.a)).await.unwrap();
    let info = serde_json::to_value(f.tokens.introspect(&issued.token).await).unwrap();
    let iat = f.clock.now().timestamp();
    assert_eq!(
        info,
        json!({
            "active": true, "scope": "openid machines:read", "client_id": "console",
            "sub": "alice@acme.example", "exp": iat + 900, "iat": iat, "nbf": iat,
            "aud": ["acme-api"], "iss": "https://id.example.com/sas/acme", "jti": issued.jti,
            "token_type": "Bearer", "tenant_id": "acme", "roles": ["OWNER", "ADMIN"],
        })
    );
    let inactive = serde_json::to_value(f.tokens.introspect("nope").await).unwrap();
    assert_eq!(inactive, json!({"active": false}));
}

#[tokio::test]
async fn id_tokens_have_the_oidc_claims() {
    let f = Fixture::new().await;
    let auth_time = f.clock.now() - chrono::Duration::seconds(5);
    let issued = f
        .tokens
        .issue_id_token(IdTokenRequest {
            tenant: f.a.clone(),
            subject: "alice@acme.example".into(),
            client_id: "console".into(),
            auth_time,
            sid: "sess-1".into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
            email: Some("alice@acme.example".into()),
            email_verified: Some(true),
            name: None,
        })
        .await
        .unwrap();
    let (header, claims, _) = parts(&issued.token);
    assert_eq!(header["kid"], json!(f.signing_key(&f.a).await.kid));
    let iat = f.clock.now().timestamp();
    assert_eq!(
        claims,
        json!({
            "iss": "https://id.example.com/sas/acme", "sub": "alice@acme.example",
            "aud": "console", "azp": "console", "iat": iat, "exp": iat + 1800,
            "auth_time": auth_time.timestamp(), "sid": "sess-1", "jti": issued.jti,
            "nonce": "n-0S6_WzA2Mj", "email": "alice@acme.example", "email_verified": true,
        })
    );
}

#[tokio::test]
async fn issuance_validates_its_input() {
    let f = Fixture::new().await;
    let invalid = |r: Result<_>| match r {
        Err(Error::InvalidInput { field, .. }) => field.to_string(),
        other => panic!("{other:?}"),
    };
    let mut r = f.request(&TenantId::parse("nobody").unwrap());
    assert_eq!(
        invalid(f.tokens.issue_access_token(r.clone()).await),
        "tenant"
    );
    r.tenant = f.a.clone();
    r.ttl = Some(Duration::from_secs(25 * 3600));
    assert_eq!(invalid(f.tokens.issue_access_token(r.clone()).await), "ttl");
    r.ttl = Some(Duration::ZERO);
    assert_eq!(invalid(f.tokens.issue_access_token(r.clone()).await), "ttl");
    r.ttl = Some(Duration::from_secs(60));
    let short = f.tokens.issue_access_token(r.clone()).await.unwrap();
    assert_eq!((short.expires_at - short.issued_at).num_seconds(), 60);
    for scope in ["two words", "quo\"te", ""] {
        let mut bad = r.clone();
        bad.scope = vec![scope.into()];
        assert_eq!(invalid(f.tokens.issue_access_token(bad).await), "scope");
    }
    let mut bad = r.clone();
    bad.subject = String::new();
    assert_eq!(invalid(f.tokens.issue_access_token(bad).await), "subject");
    let mut bad = r.clone();
    bad.audience = (0..17).map(|i| i.to_string()).collect();
    assert_eq!(invalid(f.tokens.issue_access_token(bad).await), "audience");
}

/// A tenant repository whose backend is down.
#[derive(Debug)]
struct DownTenants;

#[async_trait]
impl TenantRepository for DownTenants {
    async fn insert(&self, _: Tenant) -> Result<Tenant> {
        Err(Error::backend("test", "down"))
    }
    async fn get(&self, _: &TenantId) -> Result<Option<Tenant>> {
        Err(Error::backend("test", "down"))
    }
    async fn find_by_domain(&self, _: &str) -> Result<Option<Tenant>> {
        Err(Error::backend("test", "down"))
    }
    async fn update(&self, _: Tenant) -> Result<Tenant> {
        Err(Error::backend("test", "down"))
    }
    async fn list(&self, _: &PageRequest) -> Result<Page<Tenant>> {
        Err(Error::backend("test", "down"))
    }
}

#[tokio::test]
async fn errors_are_unauthenticated_except_outages() {
    let f = Fixture::new().await;
    let token = f.issue(&f.a).await;
    let down = TokenService::new(
        f.keys.clone(),
        Arc::new(DownTenants),
        issuers(),
        f.clock.clone(),
        TokenConfig::default(),
    );
    let err = down.verify_access_token(&token, None).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    assert!(!Error::from(err).to_string().contains(&token));
    let err = f.tokens.verify_access_token("x", None).await.unwrap_err();
    assert!(!err.description().is_empty());
    assert!(matches!(Error::from(err), Error::Unauthenticated));
    for e in [
        TokenError::Expired,
        TokenError::Revoked,
        TokenError::BadSignature,
        TokenError::UnknownIssuer,
    ] {
        assert!(!e.description().is_empty());
        assert_eq!(Error::from(e).http_status(), 401);
    }
}

/// The counting decorator passes the KeyStore conformance suite (as every decorator must).
async fn counting_keystore(clock: Arc<ManualClock>) -> Option<Arc<dyn KeyStore>> {
    Some(Arc::new(Counting {
        inner: Arc::new(DocumentKeyStore::new(
            Arc::new(InMemoryDocumentStore::new()),
            MasterKey::generate().unwrap(),
            clock,
            KeyPolicy::default(),
        )),
        verification: AtomicUsize::new(0),
    }))
}

mod counting_decorator {
    openframe_security::keystore_conformance!(super::counting_keystore);
}
