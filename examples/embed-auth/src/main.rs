//! Run with: cargo run -p example-embed-auth
//!
//! Embeds the OpenFrame-rs identity stack in your own axum application:
//!
//! 1. builds a [`SecurityStack`] over a document store (in memory here; SQLite or MongoDB in
//!    production) and merges its `/sas/{tenant}/...` OAuth2/OIDC routes into the app;
//! 2. protects the app's own routes with [`AuthLayer`] (who is calling) and
//!    [`RequireRoleLayer`] (may they);
//! 3. signs up a tenant, registers a service client, gets a token from the tenant's own issuer
//!    with the `client_credentials` grant over HTTP, and calls the protected routes with and
//!    without it.
//!
//! `--serve` keeps the server running afterwards (try the discovery document it prints).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use openframe_core::{Secret, TenantId};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_security::accounts::SignUp;
use openframe_security::auth::{AuthLayer, Principal, RequireRoleLayer};
use openframe_security::crypto::MasterKey;
use openframe_security::oauth::{ClientType, GrantType, NewClient};
use openframe_security::stack::SecurityStack;

/// Any authenticated caller.
async fn whoami(principal: Principal) -> String {
    format!("tenant {}", principal.tenant())
}

/// Only ADMIN (or OWNER, which includes ADMIN) callers.
async fn reports(principal: Principal) -> String {
    format!("monthly report of tenant {}", principal.tenant())
}

/// Your application: its own routes behind the auth layers, plus the identity routes.
fn app(stack: &SecurityStack) -> Router {
    let admin_only = Router::new()
        .route("/app/reports", get(reports))
        .layer(RequireRoleLayer::any_of(&["ADMIN"]));
    let signed_in = Router::new()
        .route("/app/whoami", get(whoami))
        .layer(RequireRoleLayer::any_of(&["ADMIN", "AGENT", "USER"]));
    Router::new()
        .merge(admin_only)
        .merge(signed_in)
        .layer(AuthLayer::new(stack.authenticator()))
        .merge(stack.router())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = std::env::args().any(|a| a == "--serve");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);

    // In production: a persisted master key and a durable store.
    let stack = SecurityStack::builder(
        Arc::new(InMemoryDocumentStore::new()),
        base.parse()?,
        MasterKey::generate()?,
    )
    .build()?;
    let router = app(&stack);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // A tenant with its owner, and a confidential service client with the ADMIN role.
    let tenant = TenantId::parse("acme")?;
    stack
        .accounts
        .sign_up(SignUp {
            tenant_id: Some(tenant.clone()),
            tenant_name: "Acme MSP".into(),
            domain: "acme.example".into(),
            email: "owner@acme.example".into(),
            password: Secret::new("correct horse battery staple 42"),
            first_name: "Olive".into(),
            last_name: "Owner".into(),
        })
        .await?;
    let (_, secret) = stack
        .clients
        .register(
            &tenant,
            NewClient {
                id: "reporting-job".into(),
                name: "Reporting job".into(),
                client_type: ClientType::Confidential,
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                grant_types: vec![GrantType::ClientCredentials],
                scopes: vec!["reports".into()],
                roles: vec!["ADMIN".into()],
                machine_id: None,
                max_refresh_chain: None,
            },
        )
        .await?;
    let secret = secret.ok_or("a confidential client gets a secret")?;

    // The token, from the tenant's own issuer, over HTTP.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base}/sas/acme/oauth2/token"))
        .basic_auth("reporting-job", Some(secret.expose()))
        .form(&[("grant_type", "client_credentials"), ("scope", "reports")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = token["access_token"]
        .as_str()
        .ok_or("the token response has an access_token")?;

    let anonymous = http.get(format!("{base}/app/reports")).send().await?;
    println!("GET /app/reports without a token -> {}", anonymous.status());
    let authorized = http
        .get(format!("{base}/app/reports"))
        .bearer_auth(access)
        .send()
        .await?;
    println!(
        "GET /app/reports with a token    -> {} {:?}",
        authorized.status(),
        authorized.text().await?
    );
    let forged = http
        .get(format!("{base}/app/reports"))
        .bearer_auth(format!("{access}x"))
        .send()
        .await?;
    println!(
        "GET /app/reports with a forged token -> {}",
        forged.status()
    );

    if serve {
        println!("serving on {base}; discovery: {base}/sas/acme/.well-known/openid-configuration");
        server.await??;
    }
    Ok(())
}
