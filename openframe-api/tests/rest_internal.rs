//! The internal REST API (`/api`) through the gateway, with real tokens from the security
//! stack.

mod support_rest;

use serde_json::{Value, json};
use support_rest::{Platform, error_code};

#[tokio::test]
async fn me_answers_the_token_holder() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let r = p.get("/api/me", Some(&acme.admin_token)).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["authenticated"], true);
    assert_eq!(me["tenantId"], "acme");
    assert_eq!(me["user"]["email"], "owner@acme.example");
    assert_eq!(me["user"]["displayName"], "Olive Owner");
    assert_eq!(me["roles"], json!(["OWNER", "ADMIN"]));

    // No token, a forged token, and an API key instead of a token: 401.
    assert_eq!(p.get("/api/me", None).await.status(), 401);
    assert_eq!(p.get("/api/me", Some("not-a-jwt")).await.status(), 401);
    let key = p.api_key(&acme, &["*"]).await;
    let (status, code) = error_code(p.get_key("/api/me", &key).await).await;
    assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"));
}

#[tokio::test]
async fn registration_secret_is_read_and_rotated_by_admins_only() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let path = "/api/agent/registration-secret";
    let (status, code) = error_code(
        p.get(&format!("{path}/active"), Some(&acme.admin_token))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));

    let rotate = |token: String| {
        let http = p.http.clone();
        let url = p.url(&format!("{path}/generate"));
        async move { http.post(url).bearer_auth(token).send().await.unwrap() }
    };
    let r = rotate(acme.admin_token.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let first: Value = r.json().await.unwrap();
    let first = first["key"].as_str().unwrap().to_owned();
    let active: Value = p
        .get(&format!("{path}/active"), Some(&acme.admin_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["key"], first.as_str());
    assert_eq!(p.secrets.resolve(&first).await.unwrap(), acme.id);

    let second: Value = rotate(acme.admin_token.clone()).await.json().await.unwrap();
    let second = second["key"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(
        p.secrets.resolve(&first).await.is_err(),
        "the old secret stops working"
    );

    // A signed-in user without ADMIN: 403, and nothing rotates.
    let viewer = p
        .token(&acme.id, Some(acme.owner.clone()), &["VIEWER"])
        .await;
    let (status, code) = error_code(rotate(viewer.clone()).await).await;
    assert_eq!((status, code.as_str()), (403, "FORBIDDEN"));
    assert_eq!(
        p.get(&format!("{path}/active"), Some(&viewer))
            .await
            .status(),
        403
    );
    assert_eq!(p.secrets.resolve(second).await.unwrap(), acme.id);
    // An agent token (role AGENT) is refused too.
    let agent = p.token(&acme.id, None, &["AGENT"]).await;
    assert_eq!(rotate(agent).await.status(), 403);
}

async fn create_key(p: &Platform, token: &str, body: Value) -> reqwest::Response {
    p.http
        .post(p.url("/api/api-keys"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn api_key_lifecycle_shows_the_secret_once() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.machines(&acme.id, "web", 2).await;
    let t = &acme.admin_token;

    let r = create_key(
        &p,
        t,
        json!({"name": "ci", "description": "CI pipeline", "scopes": ["devices:read"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let created: Value = r.json().await.unwrap();
    let full = created["fullKey"].as_str().unwrap().to_owned();
    let id = created["apiKey"]["id"].as_str().unwrap().to_owned();
    assert!(full.starts_with(&format!("{id}.sk_")), "{full}");
    assert_eq!(full.len(), 3 + 16 + 4 + 32);
    assert_eq!(created["apiKey"]["description"], "CI pipeline");
    let secret_part = full.split_once(".sk_").unwrap().1.to_owned();

    // The key works on the external API.
    assert_eq!(p.get_key("/api/v1/devices", &full).await.status(), 200);

    // Listing and reading never show the secret again.
    let list = p.get("/api/api-keys", Some(t)).await;
    assert_eq!(list.status(), 200);
    let text = list.text().await.unwrap();
    assert!(!text.contains(&secret_part));
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["items"][0]["id"], id.as_str());
    let one = p.get(&format!("/api/api-keys/{id}"), Some(t)).await;
    assert_eq!(one.status(), 200);
    assert!(!one.text().await.unwrap().contains(&secret_part));

    // Disable, enable.
    let patch = |enabled: bool| {
        p.http
            .patch(p.url(&format!("/api/api-keys/{id}")))
            .bearer_auth(t)
            .json(&json!({ "enabled": enabled }))
            .send()
    };
    assert_eq!(patch(false).await.unwrap().status(), 200);
    assert_eq!(p.get_key("/api/v1/devices", &full).await.status(), 401);
    assert_eq!(patch(true).await.unwrap().status(), 200);
    assert_eq!(p.get_key("/api/v1/devices", &full).await.status(), 200);

    // Regenerate: a new id and secret; the old key stops working.
    let r = p
        .http
        .post(p.url(&format!("/api/api-keys/{id}/regenerate")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let regenerated: Value = r.json().await.unwrap();
    let new_full = regenerated["fullKey"].as_str().unwrap().to_owned();
    let new_id = regenerated["apiKey"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(p.get_key("/api/v1/devices", &full).await.status(), 401);
    assert_eq!(p.get_key("/api/v1/devices", &new_full).await.status(), 200);
    assert_eq!(
        p.get(&format!("/api/api-keys/{id}"), Some(t))
            .await
            .status(),
        404
    );

    // Revoke.
    let r = p
        .http
        .delete(p.url(&format!("/api/api-keys/{new_id}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(p.get_key("/api/v1/devices", &new_full).await.status(), 401);
    let r = p
        .http
        .delete(p.url(&format!("/api/api-keys/{new_id}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (404, "NOT_FOUND".to_owned()));
}

#[tokio::test]
async fn api_key_input_is_validated_without_partial_writes() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let t = &acme.admin_token;
    let count = || async {
        let list: Value = p.get("/api/api-keys", Some(t)).await.json().await.unwrap();
        list["items"].as_array().unwrap().len()
    };

    let cases = [
        (json!({"scopes": ["devices:read"]}), 400, "VALIDATION_ERROR"),
        (
            json!({"name": "x", "scopes": ["Devices READ"]}),
            400,
            "VALIDATION_ERROR",
        ),
        (json!({"name": "", "scopes": []}), 400, "VALIDATION_ERROR"),
        (json!({"name": "x", "bogus": 1}), 400, "VALIDATION_ERROR"),
        (
            json!({"name": "x", "expiresAt": "2020-01-01T00:00:00Z"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": "x", "description": "d".repeat(5000)}),
            400,
            "VALIDATION_ERROR",
        ),
    ];
    for (body, status, code) in cases {
        let r = create_key(&p, t, body.clone()).await;
        assert_eq!(error_code(r).await, (status, code.to_owned()), "{body}");
    }
    // Malformed JSON, the wrong content type, an oversized body.
    let r = p
        .http
        .post(p.url("/api/api-keys"))
        .bearer_auth(t)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "VALIDATION_ERROR".to_owned()));
    let r = p
        .http
        .post(p.url("/api/api-keys"))
        .bearer_auth(t)
        .header("content-type", "text/plain")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (415, "UNSUPPORTED_MEDIA_TYPE".to_owned())
    );
    let huge = json!({"name": "x", "description": "d".repeat(2 * 1024 * 1024)});
    let r = create_key(&p, t, huge).await;
    assert_eq!(error_code(r).await, (413, "PAYLOAD_TOO_LARGE".to_owned()));
    assert_eq!(count().await, 0, "no key was created by bad input");

    // Malformed and unknown key ids.
    for (path, status) in [
        ("/api/api-keys/not%20an%20id", 400),
        ("/api/api-keys/ak_..%2F..", 400),
        ("/api/api-keys/ak_0123456789abcdef", 404),
    ] {
        let r = p.get(path, Some(t)).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    // A malformed cursor is a 400 on `cursor`, not the first page.
    let r = p.get("/api/api-keys?cursor=%%%", Some(t)).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["fieldErrors"][0]["field"], "cursor");
}
