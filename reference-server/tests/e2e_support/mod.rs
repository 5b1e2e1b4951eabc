//! The reference server started in process (temp data dir, `127.0.0.1:0`, embedded defaults:
//! SQLite, in-process buses) and a browser-like client: PKCE login, GraphQL, REST, polling.

#![allow(dead_code, unreachable_pub)]

pub mod agent;
pub mod seed;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openframe_core::{Secret, TenantId};
use openframe_security::oauth::{ClientType, GrantType, NewClient};
use openframe_server::config::{Sensitive, ServerConfig};
use openframe_server::server::{RunningServer, start};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The default tenant's OWNER password (configured, so the test can log in).
pub const OWNER_PASSWORD: &str = "Correct-Horse-42-battery";
/// The default tenant's OWNER.
pub const OWNER_EMAIL: &str = "owner@default.localhost";
/// How long a poll waits for the platform to reach a state.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A running reference server.
pub struct Server {
    pub running: RunningServer,
    pub base: String,
    pub tenant: TenantId,
    pub registration_secret: Secret,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server on the embedded defaults; `tweak` adjusts the configuration.
    pub async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        config.bootstrap.owner_password = Some(Sensitive::new(OWNER_PASSWORD));
        tweak(&mut config);
        let running = start(config).await.expect("the server starts");
        let report = running.bootstrap.clone().expect("bootstrap enabled");
        let base = format!("http://{}", running.addr);
        Self {
            base,
            tenant: report.tenant,
            registration_secret: report.registration_secret,
            running,
            http: http(),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/sas/{tenant}", self.base)
    }

    /// Signs up a tenant through `/sas/oauth/register`; its OWNER is `owner@{tenant}.example`.
    pub async fn sign_up(&self, tenant: &str) {
        let r = self
            .http
            .post(self.url("/sas/oauth/register"))
            .json(&json!({
                "tenantId": tenant,
                "tenantName": format!("{tenant} MSP"),
                "domain": format!("{tenant}.example"),
                "email": format!("owner@{tenant}.example"),
                "password": OWNER_PASSWORD,
                "firstName": "Olive",
                "lastName": "Owner",
            }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            201,
            "sign-up of {tenant}: {}",
            r.text().await.unwrap()
        );
    }

    /// Logs `email` in to `tenant`'s issuer with the authorization code flow and PKCE (S256),
    /// through the login form, as a public client; returns the access token.
    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> String {
        let client_id = format!("e2e-console-{}", rand_hex(4));
        let redirect = format!("{}/e2e-callback", self.base);
        self.running
            .platform
            .stack
            .clients
            .register(
                &TenantId::parse(tenant).unwrap(),
                NewClient {
                    id: client_id.clone(),
                    name: "E2E console".into(),
                    client_type: ClientType::Public,
                    redirect_uris: vec![redirect.clone()],
                    post_logout_redirect_uris: vec![],
                    grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    scopes: vec!["openid".into(), "email".into(), "profile".into()],
                    roles: vec![],
                    machine_id: None,
                    max_refresh_chain: None,
                },
            )
            .await
            .expect("register the console client");
        let verifier = format!("{}{}", rand_hex(24), rand_hex(24));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let state = rand_hex(8);
        let issuer = self.issuer(tenant);
        let mut authorize = url::Url::parse(&format!("{issuer}/oauth2/authorize")).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");

        let browser = browser();
        let r = browser.get(authorize.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 303, "authorize without a session → login page");
        let login_url = location(&r, &self.base);
        let page = browser.get(&login_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let action = login_url.split('?').next().unwrap().to_owned();
        let r = browser
            .post(&action)
            .form(&[
                ("username", email),
                ("password", password),
                ("csrf", &hidden(&html, "csrf")),
                ("return_to", &hidden(&html, "return_to")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "the login form accepts the owner");
        let back = location(&r, &self.base);
        let r = browser.get(&back).send().await.unwrap();
        assert_eq!(r.status(), 303, "authorize with a session → the client");
        let callback = url::Url::parse(&location(&r, &self.base)).unwrap();
        assert!(callback.as_str().starts_with(&redirect), "{callback}");
        assert_eq!(query(&callback, "state").as_deref(), Some(state.as_str()));
        let code = query(&callback, "code").expect("an authorization code");

        let exchange = |code: String, verifier: String| {
            let form = [
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", redirect.clone()),
                ("client_id", client_id.clone()),
                ("code_verifier", verifier),
            ];
            self.http
                .post(format!("{issuer}/oauth2/token"))
                .form(&form)
                .send()
        };
        // Without the right verifier the code is refused (PKCE is enforced)...
        let refused = exchange(
            code,
            "wrong-verifier-wrong-verifier-wrong-verifier-000".into(),
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), 400, "a wrong code_verifier is refused");
        // ...and a refused attempt may burn the code, so start over with a fresh one.
        let code = {
            let r = browser.get(authorize.as_str()).send().await.unwrap();
            assert_eq!(r.status(), 303, "the session is remembered");
            let callback = url::Url::parse(&location(&r, &self.base)).unwrap();
            query(&callback, "code").expect("a second authorization code")
        };
        let r = exchange(code, verifier).await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "code exchange: {body}");
        assert_eq!(
            body["token_type"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("bearer")
        );
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// The default tenant's OWNER token, through the PKCE login.
    pub async fn owner_token(&self) -> String {
        self.login(self.tenant.as_str(), OWNER_EMAIL, OWNER_PASSWORD)
            .await
    }

    /// POSTs a GraphQL request; returns the HTTP status and the body.
    pub async fn graphql_raw(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/graphql"))
            .bearer_auth(token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Runs a GraphQL request that must succeed; returns `data`.
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql_raw(token, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "GraphQL errors: {body}");
        body["data"].clone()
    }

    /// Creates an API key through the internal REST API (`POST /api/api-keys`); returns the
    /// full key (shown once).
    pub async fn api_key(&self, token: &str, scopes: &[&str]) -> String {
        let r = self
            .http
            .post(self.url("/api/api-keys"))
            .bearer_auth(token)
            .json(&json!({"name": format!("e2e-{}", rand_hex(3)), "scopes": scopes}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["fullKey"].as_str().expect("the full key").to_owned()
    }

    /// GETs `path` with `Authorization: Bearer token`.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` with `X-API-Key`.
    pub async fn get_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Polls `probe` (every 100 ms, at most [`SETTLE`]) until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GraphQL global id.
pub fn gid(ty: &str, raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{ty}:{raw}"))
}

/// An HTTP client that ignores proxies from the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A browser: keeps cookies, does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn rand_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn location(response: &reqwest::Response, base: &str) -> String {
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

fn hidden(html: &str, name: &str) -> String {
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

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
