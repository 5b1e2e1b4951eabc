//! The HTTP endpoints of the authorization server.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openframe_core::{Error, Tenant, TenantId, TenantStatus, User, UserStatus};
use serde::{Deserialize, Serialize};

use super::clients::{ClientType, GrantType, OAuthClient};
use super::error::{OAuthError, OAuthErrorCode};
use super::grants::{GrantSubject, Redemption, RefreshRefusal, new_opaque_token};
use super::html::{self, SsoLink};
use super::mailer::OutgoingMail;
use super::{OAuthServer, discovery, pkce};
use crate::accounts::SignUp;
use crate::token::{AccessTokenRequest, IdTokenRequest, IssuedToken};

/// Largest accepted request body of these endpoints.
const MAX_BODY: usize = 64 * 1024;
/// Most parameters in one form or query.
const MAX_PARAMS: usize = 64;
const SESSION_COOKIE: &str = "of_session";
const CSRF_COOKIE: &str = "of_csrf";

/// The router of every endpoint of the authorization server (see the module docs).
pub fn router(server: OAuthServer) -> Router {
    Router::new()
        .route("/sas/oauth/register", post(sign_up))
        .route(
            "/.well-known/oauth-authorization-server/sas/{tenant}",
            get(metadata),
        )
        .route(
            "/sas/{tenant}/.well-known/openid-configuration",
            get(metadata),
        )
        .route(
            "/sas/{tenant}/.well-known/oauth-authorization-server",
            get(metadata),
        )
        .route("/sas/{tenant}/oauth2/jwks", get(jwks))
        .route("/sas/{tenant}/oauth2/authorize", get(authorize))
        .route("/sas/{tenant}/login", get(login_form).post(login_submit))
        .route("/sas/{tenant}/oauth2/token", post(token))
        .route("/sas/{tenant}/oauth2/revoke", post(revoke))
        .route("/sas/{tenant}/oauth2/introspect", post(introspect))
        .route("/sas/{tenant}/userinfo", get(userinfo).post(userinfo))
        .route("/sas/{tenant}/connect/logout", get(logout).post(logout))
        .route("/sas/{tenant}/invitations/accept", post(accept_invitation))
        .route(
            "/sas/{tenant}/password-reset/request",
            post(request_password_reset),
        )
        .route(
            "/sas/{tenant}/password-reset/confirm",
            post(confirm_password_reset),
        )
        .route("/sas/{tenant}/sso/{provider}/start", get(sso_start))
        .route("/sas/{tenant}/sso/{provider}/callback", get(sso_callback))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

// ---------------------------------------------------------------------------------------
// Shared helpers

/// Parses `application/x-www-form-urlencoded` (or a query string) refusing repeated
/// parameters, as RFC 6749 §3.1 requires.
fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
        .map_err(|_| OAuthError::invalid_request("malformed parameters"))?;
    if pairs.len() > MAX_PARAMS {
        return Err(OAuthError::invalid_request("too many parameters"));
    }
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(map)
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    param(params, name).ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<Duration>,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn client_ip(request_ip: Option<SocketAddr>) -> IpAddr {
    request_ip.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON error in the platform's `{code, message, timestamp, fieldErrors?}` shape.
fn api_error(server: &OAuthServer, e: &Error) -> Response {
    if matches!(e, Error::Backend { .. } | Error::Internal(_)) {
        tracing::error!(error = %e, "account endpoint failed");
    }
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(e.to_response(server.inner.clock.now()))).into_response();
    if let Error::RateLimited { retry_after } = e {
        if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "not_found", "error_description": "unknown tenant"})),
    )
        .into_response()
}

/// Resolves the `{tenant}` path segment to an active tenant.
async fn active_tenant(server: &OAuthServer, raw: &str) -> Result<Tenant, Response> {
    let Ok(id) = TenantId::parse(raw) else {
        return Err(not_found());
    };
    match server.inner.tenants.get(&id).await {
        Ok(Some(t)) if t.status == TenantStatus::Active => Ok(t),
        Ok(_) => Err(not_found()),
        Err(e) => Err(OAuthError::server(&e).into_response()),
    }
}

/// The active tenant named by the `{tenant}` path segment; unknown or inactive tenants are
/// answered 404 before the handler runs.
struct ActiveTenant(Tenant);

impl axum::extract::FromRequestParts<OAuthServer> for ActiveTenant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        server: &OAuthServer,
    ) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, server)
            .await
            .map_err(|_| not_found())?;
        let raw = params.get("tenant").ok_or_else(not_found)?;
        active_tenant(server, raw).await.map(ActiveTenant)
    }
}

fn issuer(server: &OAuthServer, tenant: &TenantId) -> String {
    server.inner.config.issuers.issuer(tenant)
}

fn issuer_path(server: &OAuthServer, tenant: &TenantId) -> String {
    let iss = issuer(server, tenant);
    url::Url::parse(&iss)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Authenticates the calling client (Basic, or `client_id`/`client_secret` in the body; a
/// public client sends only `client_id`). Using both methods at once is refused.
async fn authenticate_client(
    server: &OAuthServer,
    tenant: &TenantId,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<OAuthClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let (id, secret) = match (basic, param(params, "client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        (Some(b), None) => {
            let decoded = STANDARD
                .decode(b.trim())
                .map_err(|_| OAuthError::invalid_client())?;
            let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(OAuthError::invalid_client)?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (decode(id), Some(decode(secret)))
        }
        (None, secret) => (
            required(params, "client_id")
                .map_err(|_| OAuthError::invalid_client())?
                .to_owned(),
            secret.map(str::to_owned),
        ),
    };
    if let (Some(body_id), Some(_)) = (param(params, "client_id"), basic) {
        if body_id != id {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
    }
    match server
        .inner
        .clients
        .authenticate(tenant, &id, secret.as_deref())
        .await
    {
        Ok(client) => Ok(client),
        Err(Error::Unauthenticated) => Err(OAuthError::invalid_client()),
        Err(e) => Err(OAuthError::from(e)),
    }
}

/// Splits and checks a requested scope against what the client may ask for.
fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    if requested.len() > 1024 {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "scope is too long",
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                "scope not allowed for this client",
            ));
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}

// ---------------------------------------------------------------------------------------
// Discovery and keys

async fn metadata(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
) -> Response {
    Json(discovery::metadata(&issuer(&server, &tenant.id))).into_response()
}

async fn jwks(State(server): State<OAuthServer>, ActiveTenant(tenant): ActiveTenant) -> Response {
    match server.inner.keys.jwks(&tenant.id).await {
        Ok(set) => {
            let mut r = Json(&*set).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        Err(e) => OAuthError::server(&e).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Authorize and login

fn error_page(status: StatusCode, message: &str) -> Response {
    (status, Html(html::message_page("Sign-in error", message))).into_response()
}

/// Redirects an authorization error back to the client (only once the redirect URI is known
/// to be registered).
fn redirect_error(
    redirect_uri: &str,
    state: Option<&str>,
    iss: &str,
    code: OAuthErrorCode,
    description: &str,
) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "invalid redirect URI"),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", code.as_str());
        q.append_pair("error_description", description);
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", iss);
    }
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let params = match parse_params(query.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                e.description.as_deref().unwrap_or("malformed request"),
            );
        }
    };
    // Until the client and redirect URI are verified, errors are shown, never redirected.
    let Some(client_id) = param(&params, "client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let client = match server.inner.clients.get(&tenant.id, client_id).await {
        Ok(Some(c)) if c.enabled && c.allows(GrantType::AuthorizationCode) => c,
        Ok(_) => return error_page(StatusCode::BAD_REQUEST, "unknown client"),
        Err(e) => return OAuthError::server(&e).into_response(),
    };
    let Some(redirect_uri) = param(&params, "redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri is required");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client",
        );
    }
    let state = param(&params, "state");
    let iss = issuer(&server, &tenant.id);
    let fail =
        |code, description: &str| redirect_error(redirect_uri, state, &iss, code, description);
    if state.is_some_and(|s| s.len() > 1024) {
        return fail(OAuthErrorCode::InvalidRequest, "state is too long");
    }
    if param(&params, "response_type") != Some("code") {
        return fail(
            OAuthErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        );
    }
    let Some(challenge) = param(&params, "code_challenge").filter(|c| pkce::is_valid_token(c))
    else {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "a PKCE code_challenge is required",
        );
    };
    if param(&params, "code_challenge_method") != Some("S256") {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        );
    }
    let scopes = match granted_scopes(param(&params, "scope"), &client.scopes) {
        Ok(s) => s,
        Err(e) => return fail(e.code, e.description.as_deref().unwrap_or("invalid scope")),
    };
    let nonce = param(&params, "nonce");
    if nonce.is_some_and(|n| n.len() > 256) {
        return fail(OAuthErrorCode::InvalidRequest, "nonce is too long");
    }
    let prompt = param(&params, "prompt").unwrap_or("");

    let session = match cookie(&headers, SESSION_COOKIE) {
        Some(c) if !prompt.split(' ').any(|p| p == "login") => {
            match server.inner.sessions.get(&tenant.id, &c).await {
                Ok(s) => s,
                Err(e) => return OAuthError::server(&e).into_response(),
            }
        }
        _ => None,
    };
    let user = match &session {
        Some(s) => match server.inner.users.get(&tenant.id, &s.user_id).await {
            Ok(Some(u)) if u.status == UserStatus::Active => Some(u),
            Ok(_) => None,
            Err(e) => return OAuthError::server(&e).into_response(),
        },
        None => None,
    };
    let (Some(session), Some(user)) = (session, user) else {
        if prompt.split(' ').any(|p| p == "none") {
            return fail(OAuthErrorCode::AccessDenied, "login_required");
        }
        let return_to = format!(
            "{}/oauth2/authorize?{query}",
            issuer_path(&server, &tenant.id)
        );
        let login = format!(
            "{}/login?{}",
            issuer_path(&server, &tenant.id),
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &return_to)
                .finish()
        );
        return Redirect::to(&login).into_response();
    };

    let subject = GrantSubject {
        subject: user.id.to_string(),
        user_id: Some(user.id.clone()),
        machine_id: None,
        roles: crate::accounts::roles_claim(&user),
    };
    let code = match server
        .inner
        .grants
        .issue_code(
            &tenant.id,
            &client.id,
            redirect_uri,
            scopes,
            subject,
            nonce.map(str::to_owned),
            challenge.to_owned(),
            session.auth_time,
            session.sid.clone(),
            server.inner.config.code_ttl,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return OAuthError::server(&e).into_response(),
    };
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "invalid redirect URI");
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &iss);
    }
    no_store(Redirect::to(url.as_str()).into_response())
}

/// Only the tenant's own authorize endpoint may be returned to after login.
fn safe_return_to(
    server: &OAuthServer,
    tenant: &TenantId,
    return_to: Option<&str>,
) -> Option<String> {
    let prefix = format!("{}/oauth2/authorize?", issuer_path(server, tenant));
    return_to
        .filter(|r| r.starts_with(&prefix) && !r.contains(['\r', '\n', '\\']) && r.len() <= 4096)
        .map(str::to_owned)
}

async fn render_login(
    server: &OAuthServer,
    tenant: &Tenant,
    return_to: &str,
    error: Option<&str>,
    email: &str,
    status: StatusCode,
) -> Response {
    let csrf = new_opaque_token();
    let path = issuer_path(server, &tenant.id);
    let action = format!("{path}/login");
    let sso = sso_links(server, &tenant.id, &path, return_to).await;
    let body = html::login_page(&tenant.name, &action, return_to, &csrf, error, email, &sso);
    let mut response = (status, Html(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::SET_COOKIE,
        set_cookie(
            CSRF_COOKIE,
            &csrf,
            &action,
            Some(Duration::from_secs(1800)),
            server.inner.config.secure_cookies,
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"));
    response
}

async fn login_form(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let return_to =
        safe_return_to(&server, &tenant.id, param(&params, "return_to")).unwrap_or_default();
    render_login(&server, &tenant, &return_to, None, "", StatusCode::OK).await
}

async fn login_submit(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    request: Request,
) -> Response {
    let ip = client_ip(
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
    );
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"),
    };
    let Ok(params) = parse_params(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let return_to =
        safe_return_to(&server, &tenant.id, param(&params, "return_to")).unwrap_or_default();
    // Double-submit CSRF check: the form must echo the cookie set with the form.
    let csrf_ok = match (cookie(&headers, CSRF_COOKIE), param(&params, "csrf")) {
        (Some(c), Some(f)) => {
            !c.is_empty() && verify_slices_are_equal(c.as_bytes(), f.as_bytes()).is_ok()
        }
        _ => false,
    };
    if !csrf_ok {
        return render_login(
            &server,
            &tenant,
            &return_to,
            Some("Your session expired. Please try again."),
            "",
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let email = param(&params, "username").unwrap_or("");
    let password = param(&params, "password").unwrap_or("");
    if email.is_empty() || password.is_empty() || email.len() > 255 || password.len() > 1024 {
        return render_login(
            &server,
            &tenant,
            &return_to,
            Some("Invalid email or password."),
            "",
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let user = match server
        .inner
        .accounts
        .authenticate(&tenant.id, email, password, ip)
        .await
    {
        Ok(u) => u,
        Err(Error::RateLimited { retry_after }) => {
            let mut r = render_login(
                &server,
                &tenant,
                &return_to,
                Some("Too many attempts. Please wait and try again."),
                email,
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await;
            if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Err(Error::Unauthenticated) => {
            return render_login(
                &server,
                &tenant,
                &return_to,
                Some("Invalid email or password."),
                email,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        Err(e) => return OAuthError::server(&e).into_response(),
    };
    start_session(&server, &tenant.id, &user, "pwd", &return_to).await
}

async fn sso_links(
    server: &OAuthServer,
    tenant: &TenantId,
    path: &str,
    return_to: &str,
) -> Vec<SsoLink> {
    let Some(sso) = &server.inner.sso else {
        return Vec::new();
    };
    match sso.enabled_providers(tenant).await {
        Ok(providers) => providers
            .into_iter()
            .map(|p| SsoLink {
                label: format!("Sign in with {}", p.display_name),
                href: format!(
                    "{path}/sso/{}/start?{}",
                    p.id,
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("return_to", return_to)
                        .finish()
                ),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing SSO providers failed");
            Vec::new()
        }
    }
}

async fn sso_start(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    Path(path): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(sso) = &server.inner.sso else {
        return not_found();
    };
    let provider = path.get("provider").cloned().unwrap_or_default();
    let params = parse_params(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let return_to =
        safe_return_to(&server, &tenant.id, param(&params, "return_to")).unwrap_or_default();
    match sso
        .begin(
            &tenant.id,
            &provider,
            &return_to,
            param(&params, "invitation"),
        )
        .await
    {
        Ok(url) => no_store(Redirect::to(&url).into_response()),
        Err(Error::NotFound { .. }) => {
            error_page(StatusCode::NOT_FOUND, "unknown sign-in provider")
        }
        Err(e @ Error::Unavailable { .. }) => {
            tracing::warn!(error = %e, "SSO provider unavailable");
            error_page(
                StatusCode::BAD_GATEWAY,
                "the sign-in provider is unavailable",
            )
        }
        Err(e) => api_error(&server, &e),
    }
}

async fn sso_callback(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    Path(path): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(sso) = &server.inner.sso else {
        return not_found();
    };
    let provider = path.get("provider").cloned().unwrap_or_default();
    let Ok(params) = parse_params(query.unwrap_or_default().as_bytes()) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed callback");
    };
    if param(&params, "error").is_some() {
        return error_page(
            StatusCode::FORBIDDEN,
            "the sign-in provider refused the login",
        );
    }
    let (Some(code), Some(state)) = (param(&params, "code"), param(&params, "state")) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed callback");
    };
    match sso.complete(&tenant.id, &provider, code, state).await {
        Ok(outcome) => {
            let return_to =
                safe_return_to(&server, &tenant.id, Some(&outcome.return_to)).unwrap_or_default();
            start_session(&server, &tenant.id, &outcome.user, &provider, &return_to).await
        }
        Err(Error::PermissionDenied) => {
            error_page(StatusCode::FORBIDDEN, "this account may not sign in here")
        }
        Err(Error::InvalidInput { .. }) => error_page(
            StatusCode::BAD_REQUEST,
            "the sign-in attempt expired; please start again",
        ),
        Err(e @ Error::Unavailable { .. }) => {
            tracing::warn!(error = %e, "SSO provider unavailable");
            error_page(
                StatusCode::BAD_GATEWAY,
                "the sign-in provider is unavailable",
            )
        }
        Err(e) => api_error(&server, &e),
    }
}

/// Starts a login session for `user` and continues to `return_to` (or a signed-in page).
pub(crate) async fn start_session(
    server: &OAuthServer,
    tenant: &TenantId,
    user: &User,
    method: &str,
    return_to: &str,
) -> Response {
    let (cookie_value, _) = match server
        .inner
        .sessions
        .create(tenant, user.id.clone(), method)
        .await
    {
        Ok(s) => s,
        Err(e) => return OAuthError::server(&e).into_response(),
    };
    let path = issuer_path(server, tenant);
    let mut response = if return_to.is_empty() {
        (
            StatusCode::OK,
            Html(html::message_page(
                "Signed in",
                "You are signed in. You can close this window.",
            )),
        )
            .into_response()
    } else {
        Redirect::to(return_to).into_response()
    };
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &cookie_value,
            &format!("{path}/"),
            Some(server.inner.sessions.ttl()),
            server.inner.config.secure_cookies,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(
            CSRF_COOKIE,
            "",
            &format!("{path}/login"),
            Some(Duration::ZERO),
            server.inner.config.secure_cookies,
        ),
    );
    no_store(response)
}

// ---------------------------------------------------------------------------------------
// Token endpoint

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// A rotating refresh token, if the client may refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An ID token, for the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

impl OAuthServer {
    /// Runs the token endpoint for `tenant` programmatically: `headers` may carry HTTP Basic
    /// client authentication, `body` is the form. Used by endpoints that speak another wire
    /// format over the same grants (e.g. the agent token endpoint).
    pub async fn exchange(
        &self,
        tenant: &TenantId,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<TokenResponse, OAuthError> {
        token_inner(self, tenant, headers, body).await
    }
}

async fn token(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&server, &tenant.id, &headers, &body).await {
        Ok(r) => no_store(Json(r).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    server: &OAuthServer,
    tenant: &TenantId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let params = parse_params(body)?;
    let grant_type = required(&params, "grant_type")?;
    let client = authenticate_client(server, tenant, headers, &params).await?;
    match grant_type {
        "authorization_code" => authorization_code_grant(server, tenant, &client, &params).await,
        "refresh_token" => refresh_grant(server, tenant, &client, &params).await,
        "client_credentials" => client_credentials_grant(server, tenant, &client, &params).await,
        _ => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        )),
    }
}

fn expires_in(server: &OAuthServer, issued: &IssuedToken) -> i64 {
    (issued.expires_at - server.inner.clock.now())
        .num_seconds()
        .max(0)
}

/// Issues the access token (and refresh token / ID token as the grant allows).
#[allow(clippy::too_many_arguments)]
async fn issue_tokens(
    server: &OAuthServer,
    tenant: &TenantId,
    client: &OAuthClient,
    subject: &GrantSubject,
    scopes: Vec<String>,
    family: Option<(String, u32)>,
    id_token: Option<(Option<String>, openframe_core::Timestamp, String)>,
) -> Result<TokenResponse, OAuthError> {
    let access = server
        .inner
        .tokens
        .issue_access_token(AccessTokenRequest {
            tenant: tenant.clone(),
            subject: subject.subject.clone(),
            audience: vec![server.inner.config.api_audience.clone(), client.id.clone()],
            scope: scopes.clone(),
            client_id: client.id.clone(),
            user_id: subject.user_id.clone(),
            machine_id: subject.machine_id.clone(),
            roles: subject.roles.clone(),
            ttl: client
                .access_ttl_secs
                .map(|s| Duration::from_secs(u64::from(s))),
        })
        .await?;
    let refresh_token = match family {
        Some((family_id, chain)) if client.allows(GrantType::RefreshToken) => {
            let ttl = client
                .refresh_ttl_secs
                .map_or(server.inner.config.refresh_ttl, |s| {
                    Duration::from_secs(u64::from(s))
                });
            let (auth_time, sid) = match &id_token {
                Some((_, at, sid)) => (Some(*at), Some(sid.clone())),
                None => (None, None),
            };
            Some(
                server
                    .inner
                    .grants
                    .issue_refresh(
                        tenant,
                        &family_id,
                        &client.id,
                        scopes.clone(),
                        subject.clone(),
                        auth_time,
                        sid,
                        chain,
                        ttl,
                        Some((access.jti.clone(), access.expires_at)),
                    )
                    .await?,
            )
        }
        _ => None,
    };
    let id_token = match id_token {
        Some((nonce, auth_time, sid)) if scopes.iter().any(|s| s == "openid") => {
            let user = match &subject.user_id {
                Some(id) => server.inner.users.get(tenant, id).await?,
                None => None,
            };
            let issued = server
                .inner
                .tokens
                .issue_id_token(IdTokenRequest {
                    tenant: tenant.clone(),
                    subject: subject.subject.clone(),
                    client_id: client.id.clone(),
                    auth_time,
                    sid,
                    nonce,
                    email: user
                        .as_ref()
                        .filter(|_| scopes.iter().any(|s| s == "email"))
                        .map(|u| u.email.clone()),
                    email_verified: user
                        .as_ref()
                        .filter(|_| scopes.iter().any(|s| s == "email"))
                        .map(|u| u.email_verified),
                    name: user
                        .as_ref()
                        .filter(|_| scopes.iter().any(|s| s == "profile"))
                        .and_then(display_name),
                })
                .await?;
            Some(issued.token)
        }
        _ => None,
    };
    Ok(TokenResponse {
        expires_in: expires_in(server, &access),
        access_token: access.token,
        token_type: "Bearer",
        refresh_token,
        id_token,
        scope: scopes.join(" "),
    })
}

/// Revokes the access tokens of a revoked grant family.
async fn revoke_access(
    server: &OAuthServer,
    tenant: &TenantId,
    revoked: super::grants::RevokedAccess,
) -> Result<(), OAuthError> {
    for (jti, exp) in revoked {
        server.inner.tokens.revoke_jti(tenant, &jti, exp).await?;
    }
    Ok(())
}

fn display_name(user: &User) -> Option<String> {
    match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(l)) => Some(l.clone()),
        (None, None) => None,
    }
}

async fn active_user(
    server: &OAuthServer,
    tenant: &TenantId,
    subject: &GrantSubject,
) -> Result<(), OAuthError> {
    if let Some(user_id) = &subject.user_id {
        match server.inner.users.get(tenant, user_id).await? {
            Some(u) if u.status == UserStatus::Active => {}
            _ => return Err(OAuthError::invalid_grant("the user is no longer active")),
        }
    }
    Ok(())
}

async fn authorization_code_grant(
    server: &OAuthServer,
    tenant: &TenantId,
    client: &OAuthClient,
    params: &HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "client may not use authorization_code",
        ));
    }
    let code = required(params, "code")?;
    let redirect_uri = required(params, "redirect_uri")?;
    let verifier = required(params, "code_verifier")?;
    let family_id = uuid::Uuid::new_v4().simple().to_string();
    let record = match server
        .inner
        .grants
        .redeem_code(tenant, code, &family_id)
        .await?
    {
        Redemption::Redeemed(r) => r,
        Redemption::Invalid => {
            return Err(OAuthError::invalid_grant(
                "invalid or expired authorization code",
            ));
        }
        Redemption::Reused(revoked) => {
            revoke_access(server, tenant, revoked).await?;
            return Err(OAuthError::invalid_grant(
                "authorization code already used; tokens issued from it are revoked",
            ));
        }
    };
    if record.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce::verify(verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }
    active_user(server, tenant, &record.subject).await?;
    issue_tokens(
        server,
        tenant,
        client,
        &record.subject,
        record.scopes.clone(),
        Some((family_id, 0)),
        Some((record.nonce.clone(), record.auth_time, record.sid.clone())),
    )
    .await
}

async fn refresh_grant(
    server: &OAuthServer,
    tenant: &TenantId,
    client: &OAuthClient,
    params: &HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::RefreshToken) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "client may not use refresh_token",
        ));
    }
    let presented = required(params, "refresh_token")?;
    let record = match server
        .inner
        .grants
        .rotate_refresh(tenant, presented, &client.id, client.max_refresh_chain)
        .await?
    {
        Ok(r) => r,
        Err(RefreshRefusal::Reused(revoked)) => {
            tracing::warn!(tenant = %tenant, client = %client.id, "refresh token reuse detected: family revoked");
            revoke_access(server, tenant, revoked).await?;
            return Err(OAuthError::invalid_grant(
                "refresh token reuse detected; the token family is revoked",
            ));
        }
        Err(RefreshRefusal::ChainExhausted) => {
            return Err(OAuthError::invalid_grant(
                "the refresh chain is exhausted; authenticate again",
            ));
        }
        Err(RefreshRefusal::Invalid | RefreshRefusal::WrongClient) => {
            return Err(OAuthError::invalid_grant(
                "invalid or expired refresh token",
            ));
        }
    };
    active_user(server, tenant, &record.subject).await?;
    let scopes = match param(params, "scope") {
        Some(requested) => granted_scopes(Some(requested), &record.scopes)?,
        None => record.scopes.clone(),
    };
    let id_token = match (record.auth_time, &record.sid) {
        (Some(at), Some(sid)) => Some((None, at, sid.clone())),
        _ => None,
    };
    issue_tokens(
        server,
        tenant,
        client,
        &record.subject,
        scopes,
        Some((record.family_id.clone(), record.chain + 1)),
        id_token,
    )
    .await
}

async fn client_credentials_grant(
    server: &OAuthServer,
    tenant: &TenantId,
    client: &OAuthClient,
    params: &HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    if client.client_type != ClientType::Confidential
        || !client.allows(GrantType::ClientCredentials)
    {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "client may not use client_credentials",
        ));
    }
    let scopes = granted_scopes(param(params, "scope"), &client.scopes)?;
    let subject = GrantSubject {
        subject: client.id.clone(),
        user_id: None,
        machine_id: client.machine_id.clone(),
        roles: client.roles.clone(),
    };
    let family = uuid::Uuid::new_v4().simple().to_string();
    issue_tokens(
        server,
        tenant,
        client,
        &subject,
        scopes,
        Some((family, 0)),
        None,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Revocation and introspection

async fn revoke(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result: Result<(), OAuthError> = async {
        let params = parse_params(&body)?;
        let client = authenticate_client(&server, &tenant.id, &headers, &params).await?;
        let token = required(&params, "token")?;
        let jtis = server
            .inner
            .grants
            .revoke_refresh(&tenant.id, token, &client.id)
            .await?;
        if jtis.is_empty() && token.matches('.').count() == 2 {
            // An access token of this client (RFC 7009: tokens of other clients are ignored).
            if let Ok(v) = server.inner.tokens.verify_access_token(token, None).await {
                if v.tenant == tenant.id && v.claims.client_id == client.id {
                    server.inner.tokens.revoke_access_token(token).await?;
                }
            }
        }
        revoke_access(&server, &tenant.id, jtis).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

async fn introspect(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let params = parse_params(&body)?;
        let client = authenticate_client(&server, &tenant.id, &headers, &params).await?;
        if client.client_type != ClientType::Confidential {
            return Err(OAuthError::invalid_client());
        }
        let token = required(&params, "token")?;
        let inactive = serde_json::json!({ "active": false });
        if token.matches('.').count() == 2 {
            let info = server.inner.tokens.introspect(token).await;
            if info.active && info.tenant_id.as_deref() == Some(tenant.id.as_str()) {
                return Ok(serde_json::to_value(&info).unwrap_or(inactive));
            }
            return Ok(inactive);
        }
        match server
            .inner
            .grants
            .find_active_refresh(&tenant.id, token)
            .await?
        {
            Some(r) => Ok(serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "sub": r.subject.subject,
                "scope": r.scopes.join(" "),
                "exp": r.expires_at.timestamp(),
                "iss": issuer(&server, &tenant.id),
                "tenant_id": tenant.id.as_str(),
            })),
            None => Ok(inactive),
        }
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Userinfo and logout

async fn userinfo(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    headers: HeaderMap,
) -> Response {
    let invalid = |d: &str| OAuthError::new(OAuthErrorCode::InvalidToken, d).into_response();
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let verified = match server
        .inner
        .tokens
        .verify_access_token(token.trim(), None)
        .await
    {
        Ok(v) if v.tenant == tenant.id => v,
        Ok(_) => return invalid("token of another issuer"),
        Err(e) => return invalid(e.description()),
    };
    if !verified.claims.scope.split(' ').any(|s| s == "openid") {
        return OAuthError::new(OAuthErrorCode::InvalidToken, "the openid scope is required")
            .into_response();
    }
    let Some(user_id) = verified.claims.user_id.clone() else {
        return invalid("not a user token");
    };
    let user = match server.inner.users.get(&tenant.id, &user_id).await {
        Ok(Some(u)) if u.status == UserStatus::Active => u,
        Ok(_) => return invalid("the user is no longer active"),
        Err(e) => return OAuthError::server(&e).into_response(),
    };
    let scopes: Vec<&str> = verified.claims.scope.split(' ').collect();
    let mut claims = serde_json::json!({
        "sub": verified.claims.sub,
        "tenant_id": tenant.id.as_str(),
        "roles": crate::accounts::roles_claim(&user),
    });
    if scopes.contains(&"email") {
        claims["email"] = user.email.clone().into();
        claims["email_verified"] = user.email_verified.into();
    }
    if scopes.contains(&"profile") {
        if let Some(n) = display_name(&user) {
            claims["name"] = n.into();
        }
        if let Some(f) = &user.first_name {
            claims["given_name"] = f.clone().into();
        }
        if let Some(l) = &user.last_name {
            claims["family_name"] = l.clone().into();
        }
    }
    no_store(Json(claims).into_response())
}

async fn logout(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    if let Some(c) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = server.inner.sessions.end(&tenant.id, &c).await {
            return OAuthError::server(&e).into_response();
        }
    }
    let path = issuer_path(&server, &tenant.id);
    let target = match (
        param(&params, "client_id"),
        param(&params, "post_logout_redirect_uri"),
    ) {
        (Some(client_id), Some(uri)) => match server.inner.clients.get(&tenant.id, client_id).await
        {
            Ok(Some(c)) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                let mut url = url::Url::parse(uri).ok();
                if let (Some(url), Some(state)) = (url.as_mut(), param(&params, "state")) {
                    url.query_pairs_mut().append_pair("state", state);
                }
                url.map(|u| u.to_string())
            }
            _ => None,
        },
        _ => None,
    };
    let mut response = match target {
        Some(t) => Redirect::to(&t).into_response(),
        None => Html(html::message_page("Signed out", "You are signed out.")).into_response(),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            &format!("{path}/"),
            Some(Duration::ZERO),
            server.inner.config.secure_cookies,
        ),
    );
    no_store(response)
}

// ---------------------------------------------------------------------------------------
// Sign-up, invitations, password reset

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignUpResponse {
    tenant_id: String,
    issuer: String,
    owner_id: String,
    default_organization_id: String,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", format!("malformed JSON: {}", e.classify_name())))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected or missing field",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}

async fn sign_up(State(server): State<OAuthServer>, body: Bytes) -> Response {
    let result: Result<SignUpResponse, Error> = async {
        let req: SignUp = json_body(&body)?;
        let done = server.inner.accounts.sign_up(req).await?;
        Ok(SignUpResponse {
            issuer: issuer(&server, &done.tenant.id),
            tenant_id: done.tenant.id.to_string(),
            owner_id: done.owner.id.to_string(),
            default_organization_id: done.default_organization.id.to_string(),
        })
    }
    .await;
    match result {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => api_error(&server, &e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcceptBody {
    token: String,
    password: String,
    first_name: String,
    last_name: String,
}

async fn accept_invitation(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    body: Bytes,
) -> Response {
    let result: Result<User, Error> = async {
        let b: AcceptBody = json_body(&body)?;
        server
            .inner
            .accounts
            .accept_invitation(
                &tenant.id,
                &b.token,
                &b.password,
                &b.first_name,
                &b.last_name,
            )
            .await
    }
    .await;
    match result {
        // The user, never a password hash: `User` has none.
        Ok(user) => Json(user).into_response(),
        Err(e) => api_error(&server, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequestBody {
    email: String,
}

async fn request_password_reset(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    body: Bytes,
) -> Response {
    let b: ResetRequestBody = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return api_error(&server, &e),
    };
    match server
        .inner
        .accounts
        .request_password_reset(&tenant.id, &b.email)
        .await
    {
        Ok(Some(token)) => {
            let mail = OutgoingMail {
                tenant: tenant.id.clone(),
                to: b.email.trim().to_lowercase(),
                kind: "password-reset",
                token: token.expose().to_owned(),
            };
            if let Err(e) = server.inner.mailer.send(mail).await {
                tracing::warn!(error = %e, "password reset mail failed");
            }
        }
        Ok(None) => {}
        // Throttled or invalid input: still the same outward answer.
        Err(Error::RateLimited { .. } | Error::InvalidInput { .. }) => {}
        Err(e) => return api_error(&server, &e),
    }
    StatusCode::ACCEPTED.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResetConfirmBody {
    token: String,
    new_password: String,
}

async fn confirm_password_reset(
    State(server): State<OAuthServer>,
    ActiveTenant(tenant): ActiveTenant,
    body: Bytes,
) -> Response {
    let result: Result<(), Error> = async {
        let b: ResetConfirmBody = json_body(&body)?;
        server
            .inner
            .accounts
            .confirm_password_reset(&tenant.id, &b.token, &b.new_password)
            .await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => api_error(&server, &e),
    }
}
