//! API key management: list, create (the secret is shown once), get, enable or disable,
//! revoke, regenerate.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openframe_core::{ApiKey, ApiKeyId, Page, PageInfo, SortSpec, Timestamp, UserId};
use openframe_data::ApiKeyFilter;
use openframe_security::api_keys::CreatedApiKey;
use openframe_security::auth::Principal;
use serde::{Deserialize, Serialize};

use super::InternalApi;
use crate::rest::error::{ApiError, ApiResult};
use crate::rest::extract::{ApiJson, ApiPath, QueryParams, cursor_errors};

/// `POST /api/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateKey {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

/// `PATCH /api/api-keys/{keyId}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PatchKey {
    enabled: bool,
}

/// A page of keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyList {
    items: Vec<ApiKey>,
    page_info: PageInfo,
}

/// A new or regenerated key: the only answer that holds the full key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    api_key: &'a ApiKey,
    full_key: &'a str,
}

fn created(key: &CreatedApiKey) -> Response {
    let body = Created {
        api_key: &key.key,
        full_key: key.secret.expose(),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The user behind a principal; keys belong to people.
fn user_of(principal: &Principal) -> ApiResult<UserId> {
    match principal {
        Principal::User { user_id, .. } => Ok(user_id.clone()),
        _ => Err(ApiError::from(openframe_core::Error::PermissionDenied)),
    }
}

fn key_id(raw: String) -> ApiResult<ApiKeyId> {
    ApiKeyId::parse(raw).map_err(|e| crate::rest::extract::rename_field(e, "keyId").into())
}

pub(super) async fn list(
    State(api): State<InternalApi>,
    principal: Principal,
    query: QueryParams,
) -> ApiResult<Json<KeyList>> {
    query.only(&["limit", "cursor"])?;
    let user = user_of(&principal)?;
    let filter = ApiKeyFilter {
        user_id: Some(user),
        ..Default::default()
    };
    let page: Page<ApiKey> = api
        .repos
        .api_keys
        .list(
            principal.tenant(),
            &filter,
            SortSpec::default(),
            &query.page()?,
        )
        .await
        .map_err(cursor_errors)?;
    Ok(Json(KeyList {
        page_info: page.page_info.clone(),
        items: page.into_nodes(),
    }))
}

pub(super) async fn create(
    State(api): State<InternalApi>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<Response> {
    let user = user_of(&principal)?;
    if let Some(d) = &body.description {
        openframe_core::validate::max_chars(
            "description",
            d,
            openframe_core::validate::MAX_TEXT_LEN,
        )?;
    }
    let tenant = principal.tenant();
    let mut key = api
        .api_keys
        .create(tenant, user, body.name, body.scopes, body.expires_at)
        .await?;
    if let Some(description) = body.description.filter(|d| !d.trim().is_empty()) {
        let mut meta = key.key.clone();
        meta.description = Some(description);
        match api.repos.api_keys.update(tenant, meta).await {
            Ok(updated) => key.key = updated,
            Err(e) => {
                // No half-made key: take it back and report the failure.
                if let Err(undo) = api.api_keys.revoke(tenant, &key.key.id).await {
                    tracing::warn!(error = %undo, "could not undo a half-made api key");
                }
                return Err(e.into());
            }
        }
    }
    tracing::info!(tenant = %tenant, key_id = %key.key.id, "api key created");
    Ok(created(&key))
}

pub(super) async fn get_one(
    State(api): State<InternalApi>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Json<ApiKey>> {
    let id = key_id(raw)?;
    api.repos
        .api_keys
        .get(principal.tenant(), &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("api key"))
}

pub(super) async fn set_enabled(
    State(api): State<InternalApi>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<PatchKey>,
) -> ApiResult<Json<ApiKey>> {
    let id = key_id(raw)?;
    let key = api
        .api_keys
        .set_enabled(principal.tenant(), &id, body.enabled)
        .await?;
    Ok(Json(key))
}

pub(super) async fn revoke(
    State(api): State<InternalApi>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id = key_id(raw)?;
    api.api_keys.revoke(principal.tenant(), &id).await?;
    tracing::info!(tenant = %principal.tenant(), key_id = %id, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn regenerate(
    State(api): State<InternalApi>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> ApiResult<Response> {
    let id = key_id(raw)?;
    let key = api.api_keys.regenerate(principal.tenant(), &id).await?;
    tracing::info!(tenant = %principal.tenant(), old = %id, new = %key.key.id, "api key regenerated");
    Ok(created(&key))
}
