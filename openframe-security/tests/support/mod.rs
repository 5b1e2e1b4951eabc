//! A real authorization server on a loopback port, and a browser-like client.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use openframe_core::{MachineId, Secret, TenantId};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_security::accounts::{AccountConfig, Argon2Params};
use openframe_security::crypto::MasterKey;
use openframe_security::oauth::{ClientType, GrantType, NewClient, RecordingMailer};
use openframe_security::ratelimit::Quota;
use openframe_security::stack::SecurityStack;

pub const PASSWORD: &str = "Correct-Horse-42-battery";

/// A running server.
pub struct TestServer {
    pub base: String,
    pub stack: SecurityStack,
    pub mailer: Arc<RecordingMailer>,
}

impl TestServer {
    /// Starts a server with fast password hashing and tight login quotas.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let accounts = AccountConfig {
            argon2: Argon2Params::fast_for_tests(),
            login_quota_per_account: vec![Quota::per_minute(5)],
            ..AccountConfig::default()
        };
        let mailer = Arc::new(RecordingMailer::default());
        let stack = SecurityStack::builder(
            Arc::new(InMemoryDocumentStore::new()),
            base.parse().unwrap(),
            MasterKey::generate().unwrap(),
        )
        .with_account_config(accounts)
        .with_mailer(mailer.clone())
        .build()
        .unwrap();
        let app = stack.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base,
            stack,
            mailer,
        }
    }

    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/sas/{tenant}", self.base)
    }

    /// Signs up a tenant over HTTP with an owner `owner@{tenant}.example`.
    pub async fn sign_up(&self, tenant: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}/sas/oauth/register", self.base))
            .json(&serde_json::json!({
                "tenantId": tenant,
                "tenantName": format!("{tenant} MSP"),
                "domain": format!("{tenant}.example"),
                "email": format!("owner@{tenant}.example"),
                "password": PASSWORD,
                "firstName": "Olive",
                "lastName": "Owner",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "sign-up of {tenant}");
        response.json().await.unwrap()
    }

    /// Registers a confidential web client with a redirect URI on this server.
    pub async fn web_client(&self, tenant: &str, id: &str) -> (String, Secret) {
        let t = TenantId::parse(tenant).unwrap();
        let redirect = format!("{}/callback/{id}", self.base);
        let (_, secret) = self
            .stack
            .clients
            .register(
                &t,
                NewClient {
                    id: id.into(),
                    name: "Console".into(),
                    client_type: ClientType::Confidential,
                    redirect_uris: vec![redirect.clone()],
                    post_logout_redirect_uris: vec![format!("{}/bye", self.base)],
                    grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    scopes: vec![
                        "openid".into(),
                        "email".into(),
                        "profile".into(),
                        "offline_access".into(),
                    ],
                    roles: vec![],
                    machine_id: None,
                    max_refresh_chain: None,
                },
            )
            .await
            .unwrap();
        (redirect, secret.unwrap())
    }

    /// Registers a machine client for `client_credentials` (and refresh).
    pub async fn agent_client(&self, tenant: &str, machine: &MachineId) -> (String, Secret) {
        let t = TenantId::parse(tenant).unwrap();
        let id = format!("agent_{machine}");
        let (_, secret) = self
            .stack
            .clients
            .register(
                &t,
                NewClient {
                    id: id.clone(),
                    name: "Agent".into(),
                    client_type: ClientType::Confidential,
                    redirect_uris: vec![],
                    post_logout_redirect_uris: vec![],
                    grant_types: vec![GrantType::ClientCredentials, GrantType::RefreshToken],
                    scopes: vec!["agent".into()],
                    roles: vec!["AGENT".into()],
                    machine_id: Some(machine.clone()),
                    max_refresh_chain: Some(3),
                },
            )
            .await
            .unwrap();
        (id, secret.unwrap())
    }
}

/// A browser: keeps cookies, does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Location` of a redirect response, made absolute against `base`.
pub fn location(response: &reqwest::Response, base: &str) -> String {
    let loc = response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("expected a redirect, got {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc
    }
}

/// The value of a hidden input in an HTML form.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Drives the login page from an authorize URL: returns the final redirect to the client.
pub async fn login(
    browser: &reqwest::Client,
    base: &str,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> url::Url {
    let r = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "authorize without a session redirects to the login page"
    );
    let login_url = location(&r, base);
    let page = browser.get(&login_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let return_to = hidden(&html, "return_to");
    let action = login_url.split('?').next().unwrap().to_owned();
    let r = browser
        .post(&action)
        .form(&[
            ("username", email),
            ("password", password),
            ("csrf", &csrf),
            ("return_to", &return_to),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login succeeds");
    let back = location(&r, base);
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "authorize with a session redirects to the client"
    );
    url::Url::parse(&location(&r, base)).unwrap()
}

/// A query parameter of a URL.
pub fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
