//! The tower/axum auth layers: credential sources, 401 with `WWW-Authenticate`, role checks.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use openframe_core::{MachineId, TenantId, UserId};
use openframe_security::auth::{AuthLayer, Principal, RequireRoleLayer};
use openframe_security::token::AccessTokenRequest;
use support::TestServer;
use tower::ServiceExt;

async fn whoami(principal: Principal) -> String {
    match principal {
        Principal::User { tenant, .. } => format!("user@{tenant}"),
        Principal::Machine {
            tenant, machine_id, ..
        } => format!("machine {machine_id}@{tenant}"),
        Principal::Client { tenant, .. } => format!("client@{tenant}"),
        Principal::ApiKey { tenant, key_id, .. } => format!("key {key_id}@{tenant}"),
    }
}

fn app(server: &TestServer) -> Router {
    let admin = Router::new()
        .route("/admin", get(whoami))
        .layer(RequireRoleLayer::any_of(&["ADMIN"]));
    let anyone = Router::new()
        .route("/me", get(whoami))
        .layer(RequireRoleLayer::any_of(&[]));
    Router::new()
        .merge(admin)
        .merge(anyone)
        .route("/public", get(|| async { "ok" }))
        .layer(AuthLayer::new(server.stack.authenticator()))
}

async fn token(server: &TestServer, tenant: &str, roles: &[&str], user: bool) -> String {
    let mut req = AccessTokenRequest::new(TenantId::parse(tenant).unwrap(), "sub", "console");
    req.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    if user {
        req.user_id = Some(UserId::generate());
    } else {
        req.machine_id = Some(MachineId::generate());
    }
    server
        .stack
        .tokens
        .issue_access_token(req)
        .await
        .unwrap()
        .token
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let r = app.clone().oneshot(request).await.unwrap();
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    (status, challenge, body)
}

fn get_req(uri: &str) -> axum::http::request::Builder {
    Request::builder().uri(uri)
}

#[tokio::test]
async fn bearer_cookie_and_websocket_query_tokens() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let app = app(&server);
    let admin = token(&server, "acme", &["OWNER", "ADMIN"], true).await;

    let (s, _, body) = call(
        &app,
        get_req("/admin")
            .header("authorization", format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "user@acme"));
    let (s, _, _) = call(
        &app,
        get_req("/admin")
            .header("cookie", format!("theme=dark; access_token={admin}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "access_token cookie");
    // The query parameter only counts on WebSocket upgrades.
    let (s, _, _) = call(
        &app,
        get_req(&format!("/me?authorization={admin}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &app,
        get_req(&format!("/me?authorization={admin}"))
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Public routes need nothing.
    let (s, _, _) = call(&app, get_req("/public").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn missing_invalid_and_insufficient_credentials() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let app = app(&server);
    let (s, challenge, body) = call(&app, get_req("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().starts_with("Bearer"));
    assert!(body.contains("UNAUTHORIZED"));
    for bad in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."] {
        let (s, challenge, _) = call(
            &app,
            get_req("/me")
                .header("authorization", format!("Bearer {bad}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(challenge.unwrap().contains("invalid_token"));
    }
    // A machine token is authenticated but not an ADMIN.
    let agent = token(&server, "acme", &["AGENT"], false).await;
    let (s, _, body) = call(
        &app,
        get_req("/me")
            .header("authorization", format!("Bearer {agent}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with("machine "));
    let (s, _, body) = call(
        &app,
        get_req("/admin")
            .header("authorization", format!("Bearer {agent}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("FORBIDDEN"));
    // A token of an unknown tenant's issuer.
    let other = TestServer::start().await;
    other.sign_up("ghost").await;
    let foreign = token(&other, "ghost", &["ADMIN"], true).await;
    let (s, _, _) = call(
        &app,
        get_req("/admin")
            .header("authorization", format!("Bearer {foreign}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "another server's issuer is not ours"
    );
}

#[tokio::test]
async fn api_keys_authenticate_with_one_error_message() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let app = app(&server);
    let tenant = TenantId::parse("acme").unwrap();
    let created = server
        .stack
        .api_keys
        .create(
            &tenant,
            UserId::generate(),
            "ci",
            vec!["devices:read".into()],
            None,
        )
        .await
        .unwrap();
    let (s, _, body) = call(
        &app,
        get_req("/me")
            .header("x-api-key", created.secret.expose())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, format!("key {}@acme", created.key.id));
    let (s, _, _) = call(
        &app,
        get_req("/admin")
            .header("x-api-key", created.secret.expose())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "API keys carry no roles");
    let wrong_secret = format!("{}.sk_{}", created.key.id, "0".repeat(32));
    let mut messages = Vec::new();
    for bad in [
        wrong_secret.as_str(),
        "ak_0000000000000000.sk_00000000000000000000000000000000",
        "nonsense",
    ] {
        let (s, _, body) = call(
            &app,
            get_req("/me")
                .header("x-api-key", bad)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        messages.push(json["message"].as_str().unwrap().to_owned());
    }
    assert!(
        messages.iter().all(|m| *m == messages[0]),
        "one message for unknown key, wrong secret and malformed: {messages:?}"
    );
}
