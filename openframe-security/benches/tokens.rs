//! Token benchmark: RS256 issuance and verification against raw aws-lc-rs in the same run.
//!
//! Run with: `cargo bench -p openframe-security --bench tokens`
//! (`OPENFRAME_BENCH_ROUNDS=3` for a quicker run; default 7 rounds of ~0.4 s per operation).
//!
//! Prints one table: raw aws-lc-rs RS256 sign and verify (the ceiling), `jsonwebtoken` encode
//! and decode (which re-parse the key on every call), our `issue_access_token` and uncached
//! `verify_access_token`, and the verified-token cache hit. Operations are interleaved round by
//! round and each reports its median round, so load from other processes hits every row alike.
//! Goals: issuance >= 75% of raw sign, verification >= 80% of raw verify, cache hit < 2 us.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use openframe_core::{Clock, SystemClock, Tenant, TenantId, UserId};
use openframe_data::Repositories;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_security::crypto::{MasterKey, SigningAlgorithm, generate_pkcs8};
use openframe_security::keys::{DocumentKeyStore, KeyPolicy, KeyStore};
use openframe_security::token::{
    AccessClaims, AccessTokenRequest, IssuerConfig, TokenConfig, TokenService,
};

type Op<'a> = Box<dyn FnMut() + 'a>;

struct Row {
    name: &'static str,
    baseline: Option<&'static str>,
    goal: &'static str,
    rounds: Vec<f64>, // ns per op
}

/// Runs `op` for about `budget`, returning ns per op.
fn time(op: &mut Op<'_>, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The inner RSAPrivateKey (PKCS#1) of an RSA PKCS#8 document, for `jsonwebtoken`.
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(buf: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = buf[0];
        let (len, header) = match buf[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (buf[2] as usize, 3),
            0x82 => ((buf[2] as usize) << 8 | buf[3] as usize, 4),
            _ => panic!("unsupported DER length"),
        };
        (tag, &buf[header..header + len], &buf[header + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

fn main() {
    let rounds: usize = std::env::var("OPENFRAME_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let budget = Duration::from_millis(400);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // --- our service: memory store, one tenant, RS256 ---
    let store: Arc<dyn DocumentStore> = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::new(store.clone());
    let tenant = TenantId::parse("bench").unwrap();
    rt.block_on(repos.tenants.insert(Tenant::new(
        tenant.clone(),
        "Bench",
        "bench.example",
        SystemClock.now(),
    )))
    .unwrap();
    let keys: Arc<dyn KeyStore> = Arc::new(DocumentKeyStore::new(
        store.clone(),
        MasterKey::generate().unwrap(),
        Arc::new(SystemClock),
        KeyPolicy::default(),
    ));
    let service = |cache_capacity| {
        TokenService::new(
            keys.clone(),
            repos.tenants.clone(),
            IssuerConfig::new("https://id.example.com".parse().unwrap()).unwrap(),
            Arc::new(SystemClock),
            TokenConfig {
                cache_capacity,
                ..TokenConfig::default()
            },
        )
        .with_revocation_store(store.clone())
    };
    let cached = service(100_000);
    let uncached = service(0);
    let request = AccessTokenRequest {
        tenant: tenant.clone(),
        subject: "alice@acme.example".into(),
        audience: vec!["openframe-api".into(), "openframe-gateway".into()],
        scope: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "offline_access".into(),
        ],
        client_id: "openframe-gateway".into(),
        user_id: Some(UserId::generate()),
        machine_id: None,
        roles: vec!["OWNER".into(), "ADMIN".into()],
        ttl: None,
    };
    let token = rt
        .block_on(cached.issue_access_token(request.clone()))
        .unwrap()
        .token;
    rt.block_on(cached.verify_access_token(&token, Some("openframe-api")))
        .unwrap();
    rt.block_on(uncached.verify_access_token(&token, Some("openframe-api")))
        .unwrap();
    let claims: AccessClaims = rt
        .block_on(cached.verify_access_token(&token, None))
        .unwrap()
        .claims
        .clone();
    let signing_input = token.rsplit_once('.').unwrap().0.to_owned();

    // --- the ceiling: raw aws-lc-rs on a parsed RSA-2048 key ---
    let pkcs8 = generate_pkcs8(SigningAlgorithm::Rs256).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut raw_sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &rng,
        signing_input.as_bytes(),
        &mut raw_sig,
    )
    .unwrap();
    let public: ParsedPublicKey = RsaPublicKeyComponents {
        n: pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec(),
        e: pair
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec(),
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .unwrap();
    let verify_sig = raw_sig.clone();

    // --- jsonwebtoken with the same key: it parses the DER key on every call ---
    let jwt_key = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1_of(&pkcs8));
    let jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let jwt_token = jsonwebtoken::encode(&jwt_header, &claims, &jwt_key).unwrap();
    let jwt_decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(
        pair.public_key()
            .modulus()
            .big_endian_without_leading_zero(),
        pair.public_key()
            .exponent()
            .big_endian_without_leading_zero(),
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["openframe-api"]);
    validation.set_issuer(&[claims.iss.as_str()]);
    jsonwebtoken::decode::<AccessClaims>(&jwt_token, &jwt_decoding, &validation).unwrap();

    let mut rows = vec![
        Row {
            name: "raw aws-lc-rs RS256 sign",
            baseline: None,
            goal: "ceiling",
            rounds: vec![],
        },
        Row {
            name: "jsonwebtoken::encode (RS256, DER key)",
            baseline: Some("raw aws-lc-rs RS256 sign"),
            goal: "",
            rounds: vec![],
        },
        Row {
            name: "our issue_access_token (RS256)",
            baseline: Some("raw aws-lc-rs RS256 sign"),
            goal: ">= 75%",
            rounds: vec![],
        },
        Row {
            name: "raw aws-lc-rs RS256 verify",
            baseline: None,
            goal: "ceiling",
            rounds: vec![],
        },
        Row {
            name: "jsonwebtoken::decode (RS256, n/e key)",
            baseline: Some("raw aws-lc-rs RS256 verify"),
            goal: "",
            rounds: vec![],
        },
        Row {
            name: "our verify_access_token, uncached",
            baseline: Some("raw aws-lc-rs RS256 verify"),
            goal: ">= 80%",
            rounds: vec![],
        },
        Row {
            name: "our verify_access_token, cache hit",
            baseline: Some("raw aws-lc-rs RS256 verify"),
            goal: "< 2 us",
            rounds: vec![],
        },
    ];
    let rt = &rt;
    let mut ops: Vec<Op<'_>> = vec![
        Box::new(|| {
            pair.sign(
                &RSA_PKCS1_SHA256,
                &rng,
                black_box(signing_input.as_bytes()),
                &mut raw_sig,
            )
            .unwrap();
            black_box(&raw_sig);
        }),
        Box::new(|| {
            black_box(jsonwebtoken::encode(&jwt_header, black_box(&claims), &jwt_key).unwrap());
        }),
        Box::new(|| {
            rt.block_on(async {
                for _ in 0..4 {
                    black_box(cached.issue_access_token(request.clone()).await.unwrap());
                }
            })
        }),
        Box::new(|| {
            public
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&verify_sig))
                .unwrap();
        }),
        Box::new(|| {
            black_box(
                jsonwebtoken::decode::<AccessClaims>(
                    black_box(&jwt_token),
                    &jwt_decoding,
                    &validation,
                )
                .unwrap(),
            );
        }),
        Box::new(|| {
            rt.block_on(async {
                for _ in 0..16 {
                    black_box(
                        uncached
                            .verify_access_token(black_box(&token), Some("openframe-api"))
                            .await
                            .unwrap(),
                    );
                }
            })
        }),
        Box::new(|| {
            rt.block_on(async {
                for _ in 0..256 {
                    black_box(
                        cached
                            .verify_access_token(black_box(&token), Some("openframe-api"))
                            .await
                            .unwrap(),
                    );
                }
            })
        }),
    ];
    // Ops that batch inside one `block_on` run that many operations per call.
    let per_call = [1.0, 1.0, 4.0, 1.0, 1.0, 16.0, 256.0];
    for op in ops.iter_mut() {
        time(op, Duration::from_millis(100)); // warm-up
    }
    for _ in 0..rounds {
        for (i, op) in ops.iter_mut().enumerate() {
            rows[i].rounds.push(time(op, budget) / per_call[i]);
        }
    }

    let ns_of =
        |name: &str, rows: &[Row]| median(&rows.iter().find(|r| r.name == name).unwrap().rounds);
    println!(
        "\ntokens: RSA-2048 / RS256, one tenant, memory store, {rounds} interleaved rounds, median round\n"
    );
    println!("| operation | ops/s | time per op | vs raw aws-lc-rs | goal |");
    println!("|---|---:|---:|---:|---|");
    for row in &rows {
        let ns = median(&row.rounds);
        let time = if ns < 10_000.0 {
            format!("{ns:.0} ns")
        } else {
            format!("{:.1} us", ns / 1000.0)
        };
        let ratio = row.baseline.map_or_else(
            || "100%".to_owned(),
            |b| {
                let base = ns_of(b, &rows);
                format!("{:.1}%", base / ns * 100.0)
            },
        );
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            row.name,
            1e9 / ns,
            time,
            ratio,
            row.goal
        );
    }
    println!(
        "\nratios are throughput relative to the raw ceiling (100% = as fast as raw aws-lc-rs; \
         above 100% for the cache hit means no signature check at all)"
    );
}
