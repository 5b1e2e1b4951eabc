//! `GET /api/me`: who is calling.

use axum::Json;
use axum::extract::State;
use openframe_security::auth::Principal;
use serde::Serialize;

use super::InternalApi;
use crate::rest::error::ApiResult;

/// The signed-in user, when the principal is a person.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MeUser {
    id: String,
    email: String,
    display_name: Option<String>,
    roles: Vec<String>,
    tenant_id: String,
}

/// The answer of `/api/me`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Me {
    authenticated: bool,
    kind: &'static str,
    tenant_id: String,
    roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<MeUser>,
}

pub(super) async fn me(
    State(api): State<InternalApi>,
    principal: Principal,
) -> ApiResult<Json<Me>> {
    let tenant = principal.tenant().clone();
    let (kind, roles, user) = match &principal {
        Principal::User { user_id, roles, .. } => {
            let user = api.repos.users.get(&tenant, user_id).await?;
            let user = user.map(|u| MeUser {
                id: u.id.to_string(),
                display_name: match (&u.first_name, &u.last_name) {
                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                    (Some(n), None) | (None, Some(n)) => Some(n.clone()),
                    (None, None) => None,
                },
                email: u.email,
                roles: roles.clone(),
                tenant_id: tenant.to_string(),
            });
            ("USER", roles.clone(), user)
        }
        Principal::Machine { roles, .. } => ("MACHINE", roles.clone(), None),
        Principal::Client { roles, .. } => ("CLIENT", roles.clone(), None),
        Principal::ApiKey { .. } => ("API_KEY", Vec::new(), None),
    };
    Ok(Json(Me {
        authenticated: true,
        kind,
        tenant_id: tenant.to_string(),
        roles,
        user,
    }))
}
