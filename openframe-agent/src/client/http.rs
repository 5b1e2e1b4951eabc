//! Registration and tokens over HTTP.

use std::fmt;

use openframe_core::{Error, Result, Secret};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::time::{Duration, Instant};
use url::Url;

use super::credentials::{Credentials, CredentialsFile};
use crate::enrollment::{REGISTER_PATH, RegistrationRequest, TOKEN_PATH};

/// Maps a transport failure (never carrying a secret: tokens travel in bodies and headers).
fn unreachable(_: reqwest::Error) -> Error {
    Error::Unavailable {
        reason: "the server is unreachable".into(),
    }
}

fn refused(status: StatusCode) -> Error {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthenticated,
        StatusCode::GONE => Error::Unavailable {
            reason: "the tenant is gone".into(),
        },
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
            retry_after: Duration::from_secs(60),
        },
        other => Error::Unavailable {
            reason: format!("the server answered {}", other.as_u16()).into(),
        },
    }
}

fn endpoint(server: &Url, path: &str) -> Result<Url> {
    server
        .join(path)
        .map_err(|_| Error::invalid("serverUrl", "is not a base URL"))
}

/// `POST /clients/api/agents/register` with `X-Initial-Key`.
pub(crate) async fn register(
    http: &reqwest::Client,
    server: &Url,
    key: &Secret,
    request: &RegistrationRequest,
) -> Result<Credentials> {
    let response = http
        .post(endpoint(server, REGISTER_PATH)?)
        .header("X-Initial-Key", key.expose())
        .json(request)
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(refused(response.status()));
    }
    let body: CredentialsFile = response.json().await.map_err(|_| Error::Unavailable {
        reason: "the registration answer is malformed".into(),
    })?;
    body.into_credentials()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    access_token: Secret,
    #[serde(default)]
    refresh_token: Option<Secret>,
    expires_in: i64,
}

/// The agent's current tokens. `Debug` shows only when they expire.
pub(crate) struct Tokens {
    pub(crate) access: Secret,
    refresh: Option<Secret>,
    /// When to renew (before expiry, see [`TokenManager`]).
    pub(crate) renew_at: Instant,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// Gets and renews the agent's tokens: `refresh_token` first, `client_credentials` when that
/// fails. Tokens are renewed `margin` before `expiresIn`, and at the latest half-way through
/// their lifetime.
#[derive(Debug)]
pub(crate) struct TokenManager {
    http: reqwest::Client,
    url: Url,
    credentials: Credentials,
    margin: Duration,
    tokens: Option<Tokens>,
}

impl TokenManager {
    pub(crate) fn new(
        http: reqwest::Client,
        server: &Url,
        credentials: Credentials,
        margin: Duration,
    ) -> Result<Self> {
        Ok(Self {
            http,
            url: endpoint(server, TOKEN_PATH)?,
            credentials,
            margin,
            tokens: None,
        })
    }

    /// When the tokens should be renewed (`None` without tokens).
    pub(crate) fn renew_at(&self) -> Option<Instant> {
        self.tokens.as_ref().map(|t| t.renew_at)
    }

    /// Sets when the tokens are renewed next.
    pub(crate) fn set_renew_at(&mut self, at: Instant) {
        if let Some(tokens) = &mut self.tokens {
            tokens.renew_at = at;
        }
    }

    /// Forgets the access token (e.g. after the gateway refused it), keeping the refresh token.
    pub(crate) fn invalidate(&mut self) {
        if let Some(tokens) = &mut self.tokens {
            tokens.renew_at = Instant::now();
        }
    }

    /// A valid access token, renewing first when due.
    pub(crate) async fn access_token(&mut self) -> Result<Secret> {
        let due = self
            .tokens
            .as_ref()
            .is_none_or(|t| Instant::now() >= t.renew_at);
        if due {
            self.renew().await?;
        }
        self.tokens
            .as_ref()
            .map(|t| t.access.clone())
            .ok_or_else(|| Error::Internal("no token after renewal".into()))
    }

    /// Renews now: `refresh_token` if there is one, falling back to `client_credentials`.
    pub(crate) async fn renew(&mut self) -> Result<()> {
        let refresh = self.tokens.as_ref().and_then(|t| t.refresh.clone());
        if let Some(refresh) = refresh {
            match self.grant("refresh_token", Some(&refresh)).await {
                Ok(tokens) => {
                    self.tokens = Some(tokens);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "token refresh failed; using client credentials")
                }
            }
        }
        let tokens = self.grant("client_credentials", None).await?;
        self.tokens = Some(tokens);
        Ok(())
    }

    async fn grant(&self, grant_type: &str, refresh: Option<&Secret>) -> Result<Tokens> {
        let c = &self.credentials;
        let mut form = vec![
            ("grant_type", grant_type),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose()),
        ];
        if let Some(refresh) = refresh {
            form.push(("refresh_token", refresh.expose()));
        }
        let response = self
            .http
            .post(self.url.clone())
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(refused(response.status()));
        }
        let body: TokenBody = response.json().await.map_err(|_| Error::Unavailable {
            reason: "the token answer is malformed".into(),
        })?;
        let lifetime = Duration::from_secs(u64::try_from(body.expires_in).unwrap_or(0).max(1));
        let after = lifetime.saturating_sub(self.margin).max(lifetime / 2);
        Ok(Tokens {
            access: body.access_token,
            refresh: body.refresh_token,
            renew_at: Instant::now() + after,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode as AxumStatus;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::{Form, Json, Router};

    use super::*;

    /// Grants seen by the fake token endpoint; refresh grants fail while `refuse_refresh`.
    #[derive(Default)]
    struct Seen {
        grants: Vec<String>,
        refuse_refresh: bool,
    }

    async fn token(
        State(seen): State<Arc<Mutex<Seen>>>,
        Form(form): Form<Vec<(String, String)>>,
    ) -> axum::response::Response {
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let grant = get("grant_type").unwrap_or_default();
        assert_eq!(get("client_secret").as_deref(), Some("s3cret"));
        let mut seen = seen.lock().unwrap();
        seen.grants.push(grant.clone());
        if grant == "refresh_token" {
            assert_eq!(get("refresh_token").as_deref(), Some("r1"));
            if seen.refuse_refresh {
                return AxumStatus::BAD_REQUEST.into_response();
            }
        }
        let n = seen.grants.len();
        Json(serde_json::json!({
            "accessToken": format!("a{n}"), "refreshToken": "r1",
            "tokenType": "Bearer", "expiresIn": 600,
        }))
        .into_response()
    }

    #[tokio::test]
    async fn renews_with_the_refresh_token_then_falls_back_to_client_credentials() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base: Url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let credentials = Credentials {
            machine_id: openframe_core::MachineId::parse("m1").unwrap(),
            client_id: "agent_m1".into(),
            client_secret: Secret::new("s3cret"),
        };
        let mut tokens = TokenManager::new(
            reqwest::Client::new(),
            &base,
            credentials,
            Duration::from_secs(300),
        )
        .unwrap();

        let before = Instant::now();
        assert_eq!(tokens.access_token().await.unwrap().expose(), "a1");
        // 600 s with a 300 s margin: renewed after 300 s, not at expiry.
        let renew_at = tokens.renew_at().unwrap();
        assert!(renew_at >= before + Duration::from_secs(299));
        assert!(renew_at <= Instant::now() + Duration::from_secs(300));
        // Still valid: no new request.
        assert_eq!(tokens.access_token().await.unwrap().expose(), "a1");

        tokens.invalidate();
        assert_eq!(tokens.access_token().await.unwrap().expose(), "a2");
        seen.lock().unwrap().refuse_refresh = true;
        tokens.renew().await.unwrap();
        assert_eq!(tokens.access_token().await.unwrap().expose(), "a4");
        assert_eq!(
            seen.lock().unwrap().grants,
            [
                "client_credentials",
                "refresh_token",
                "refresh_token",
                "client_credentials"
            ]
        );
        assert!(!format!("{tokens:?}").contains("a4"));
        assert!(!format!("{tokens:?}").contains("s3cret"));
    }
}
