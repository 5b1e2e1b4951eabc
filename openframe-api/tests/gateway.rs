//! The gateway router: path layout, request ids, CORS, body limits, JSON 404/405/413, and
//! configuration checks.

mod support_rest;

use openframe_api::gateway::{GatewayBuilder, GatewayConfig, ToolProxyConfig};
use serde_json::Value;
use support_rest::{Options, Platform, error_code};

#[tokio::test]
async fn request_ids_are_generated_propagated_or_replaced() {
    let p = Platform::start().await;
    let r = p.get("/api/v1/openapi.json", None).await;
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&generated).unwrap().get_version_num(),
        4
    );
    let other = p.get("/api/v1/openapi.json", None).await.headers()["x-request-id"].clone();
    assert_ne!(other.to_str().unwrap(), generated);

    let r = p
        .http
        .get(p.url("/nowhere"))
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-request-id"],
        "trace-42.a_b:c",
        "kept, also on errors"
    );
    for hostile in ["a b", "x".repeat(200).as_str(), "<script>", "ünï"] {
        let r = p
            .http
            .get(p.url("/api/v1/docs"))
            .header("x-request-id", hostile.as_bytes())
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, hostile);
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{hostile:?} replaced by a fresh id"
        );
    }
}

#[tokio::test]
async fn unknown_routes_methods_and_big_bodies_answer_in_the_json_shape() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    for path in [
        "/",
        "/nowhere",
        "/api/nope",
        "/api/v1/nope",
        "/sas",
        "/clients/x",
    ] {
        let (status, code) = error_code(p.get(path, Some(&acme.admin_token)).await).await;
        assert_eq!((status, code.as_str()), (404, "NOT_FOUND"), "{path}");
    }
    let r = p
        .http
        .delete(p.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (405, "METHOD_NOT_ALLOWED".to_owned()));
    // The gateway-wide limit (1 MiB by default) on the identity routes too.
    let r = p
        .http
        .post(p.url("/sas/acme/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "PAYLOAD_TOO_LARGE".to_owned()));
}

#[tokio::test]
async fn the_path_layout_reaches_every_part() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    // Identity (/sas/{tenant}/...), internal REST (/api), external REST (/api/v1), tools.
    let r = p
        .get("/sas/acme/.well-known/openid-configuration", None)
        .await;
    assert_eq!(r.status(), 200);
    let discovery: Value = r.json().await.unwrap();
    assert!(discovery["issuer"].as_str().unwrap().ends_with("/sas/acme"));
    assert_eq!(
        p.get("/api/me", Some(&acme.admin_token)).await.status(),
        200
    );
    assert_eq!(p.get("/api/me", None).await.status(), 401);
    assert_eq!(p.get("/api/v1/devices", None).await.status(), 401);
    assert_eq!(p.get("/tools/none/x", None).await.status(), 401);
    assert_eq!(
        p.get("/tools/none/x", Some(&acme.admin_token))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn cors_follows_the_configured_origins() {
    let p = Platform::start_with(Options {
        gateway: GatewayConfig::default().with_cors_origins(["https://console.example"]),
        ..Options::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        p.http
            .request(reqwest::Method::OPTIONS, p.url("/api/v1/devices"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-api-key")
            .send()
    };
    let r = preflight("https://console.example").await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-api-key")
    );
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A simple request exposes the rate-limit and request-id headers.
    let r = p
        .http
        .get(p.url("/api/v1/openapi.json"))
        .header("origin", "https://console.example")
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-ratelimit-remaining") && exposed.contains("x-request-id"));

    // Without configured origins there are no CORS headers at all.
    let plain = Platform::start().await;
    let r = plain
        .http
        .get(plain.url("/api/v1/openapi.json"))
        .header("origin", "https://console.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn bad_configuration_is_refused_at_build_time() {
    let p = Platform::start().await;
    let build = |config: GatewayConfig| {
        GatewayBuilder::new(config, p.stack.tokens.clone(), p.clock.clone()).build()
    };
    for origins in [
        vec!["console.example"],
        vec!["https://console.example/"],
        vec!["https://console.example/app"],
        vec!["ftp://console.example"],
        vec!["*", "https://console.example"],
    ] {
        let err = build(GatewayConfig::default().with_cors_origins(origins.clone())).unwrap_err();
        assert_eq!(err.field(), Some("cors_origins"), "{origins:?}");
    }
    assert!(build(GatewayConfig::default().with_max_body_bytes(0)).is_err());
    let zero = ToolProxyConfig {
        connect_timeout_ms: 0,
        ..ToolProxyConfig::default()
    };
    assert!(build(GatewayConfig::default().with_tool_proxy(zero)).is_err());
    assert!(build(GatewayConfig::default().with_cors_origins(["*"])).is_ok());
    // Config files: snake_case keys, unknown keys refused.
    let parsed: GatewayConfig = serde_json::from_str(
        r#"{"cors_origins": ["https://a.example"], "tool_proxy": {"connect_timeout_ms": 2500}}"#,
    )
    .unwrap();
    assert_eq!(parsed.tool_proxy.connect_timeout().as_millis(), 2500);
    assert_eq!(parsed.tool_proxy.response_timeout().as_secs(), 60);
    assert!(serde_json::from_str::<GatewayConfig>(r#"{"cors_origin": []}"#).is_err());
}

#[tokio::test]
async fn agent_parts_and_extra_api_routers_are_mounted_with_their_access_rules() {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::routing::get;
    use openframe_agent::bus::memory::InMemoryAgentBus;
    use openframe_agent::enrollment::{self, EnrollmentParts, EnrollmentService};
    use openframe_agent::events::NoopEventSink;
    use openframe_api::gateway::ApiAccess;
    use tower::ServiceExt;

    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let clock: Arc<dyn openframe_core::Clock> = p.clock.clone();
    let enrollment = EnrollmentService::new(EnrollmentParts::from_stack(
        &p.stack,
        p.store.clone(),
        p.secrets.clone(),
        Arc::new(NoopEventSink),
        clock.clone(),
    ));
    let graphql_like = axum::Router::new().route("/api/graphql", get(|| async { "graph" }));
    let app = GatewayBuilder::new(GatewayConfig::default(), p.stack.tokens.clone(), clock)
        .with_enrollment(enrollment::router(enrollment))
        .with_agent_gateway(openframe_agent::gateway::router(
            Arc::new(InMemoryAgentBus::new()),
            p.stack.authenticator(),
        ))
        .with_api(graphql_like, ApiAccess::Admin)
        .build()
        .unwrap();
    let call = |method: &str, path: &str, token: Option<&str>| {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    // /api routers added with ApiAccess::Admin: bearer token with ADMIN.
    assert_eq!(
        call("GET", "/api/graphql", None).await.unwrap().status(),
        401
    );
    let viewer = p
        .token(&acme.id, Some(acme.owner.clone()), &["VIEWER"])
        .await;
    assert_eq!(
        call("GET", "/api/graphql", Some(&viewer))
            .await
            .unwrap()
            .status(),
        403
    );
    let ok = call("GET", "/api/graphql", Some(&acme.admin_token))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-request-id"));
    // /clients: enrollment answers itself (no initial key: refused in its JSON shape).
    let r = call("POST", "/clients/api/agents/register", None)
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_ne!(r.status(), 404, "the enrollment router is mounted");
    // /ws/agent: the agent gateway checks its own token.
    let r = call("GET", "/ws/agent", None).await.unwrap();
    assert_eq!(r.status(), 401);
    // Parts not given are not served.
    assert_eq!(
        call("GET", "/api/v1/devices", None).await.unwrap().status(),
        404
    );
    assert_eq!(
        call("GET", "/tools/x/y", Some(&acme.admin_token))
            .await
            .unwrap()
            .status(),
        404
    );
}
