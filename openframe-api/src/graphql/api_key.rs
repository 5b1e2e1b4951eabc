//! API keys: metadata queries, and create / regenerate (the secret is shown once), revoke,
//! enable and disable. A caller sees and changes only their own keys; an OWNER may see and
//! change every key of the tenant.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use openframe_core::{ApiKey, ApiKeyId, Error, Timestamp};
use openframe_data::{ApiKeyFilter, ApiKeySort};

use super::connection::{SortInput, connection, list_complexity, listed, page_request, sort_spec};
use super::context::{Caller, caller};
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;
use super::state::GraphqlState;
use super::user::UserObject;

/// API key metadata (never the secret).
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyObject(pub(crate) ApiKey);

#[Object(name = "ApiKey")]
impl ApiKeyObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::ApiKey, self.0.id.as_str())
    }
    /// The public key id (`ak_...`).
    async fn key_id(&self) -> &str {
        self.0.id.as_str()
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Scopes.
    async fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// Whether it is accepted.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Expiry.
    async fn expires_at(&self) -> Option<Timestamp> {
        self.0.expires_at
    }
    /// Last successful use.
    async fn last_used_at(&self) -> Option<Timestamp> {
        self.0.last_used_at
    }
    /// Requests made.
    async fn total_requests(&self) -> u64 {
        self.0.total_requests
    }
    /// Requests that failed.
    async fn failed_requests(&self) -> u64 {
        self.0.failed_requests
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// The owner (batched).
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UserObject>> {
        let user = loaders(ctx)?.users.load_one(self.0.user_id.clone()).await?;
        Ok(user.map(UserObject))
    }
}

/// A new or regenerated key: its metadata and the full key, shown only in this response.
#[derive(SimpleObject)]
pub(crate) struct CreatedApiKey {
    /// The metadata.
    api_key: ApiKeyObject,
    /// The full `ak_....sk_...` key; store it now, it is never shown again.
    full_key: String,
}

impl From<openframe_security::api_keys::CreatedApiKey> for CreatedApiKey {
    fn from(c: openframe_security::api_keys::CreatedApiKey) -> Self {
        Self {
            full_key: c.secret.expose().to_owned(),
            api_key: ApiKeyObject(c.key),
        }
    }
}

connection!(ApiKeyConnection, ApiKeyEdge, ApiKeyObject);

/// API key queries.
#[derive(Debug, Default)]
pub(crate) struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// A page of the caller's keys (every key of the tenant with `allUsers`, OWNER only).
    /// Sort fields: id, name, createdAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        all_users: Option<bool>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ApiKeyConnection> {
        let (caller, state) = caller(ctx)?;
        let user_id = if all_users == Some(true) {
            if !caller.is_owner() {
                return Err(to_gql(Error::PermissionDenied));
            }
            None
        } else {
            Some(caller.require_user()?.clone())
        };
        let filter = ApiKeyFilter {
            user_id,
            enabled: None,
            search,
        };
        let sort = sort_spec::<ApiKeySort>(sort).gql()?;
        listed!(
            state.repos.api_keys,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            ApiKeyConnection,
            ApiKeyObject
        )
    }
}

/// A new API key.
#[derive(Debug, InputObject)]
pub(crate) struct CreateApiKeyInput {
    /// Name.
    name: String,
    /// Scopes, e.g. `devices:read` (see the external API).
    scopes: Vec<String>,
    /// Optional expiry (must be in the future).
    expires_at: Option<Timestamp>,
}

/// The caller's key `id` (any key of the tenant for an OWNER); `NOT_FOUND` otherwise.
async fn own_key(
    caller: &Caller,
    state: &GraphqlState,
    id: &ID,
) -> async_graphql::Result<ApiKeyId> {
    let id = decode_as("id", NodeType::ApiKey, id, ApiKeyId::parse).gql()?;
    let key = state
        .repos
        .api_keys
        .get(caller.tenant(), &id)
        .await
        .gql()?
        .ok_or_else(|| to_gql(Error::not_found("api key")))?;
    if !caller.is_owner() && Some(&key.user_id) != caller.user_id() {
        return Err(to_gql(Error::not_found("api key")));
    }
    Ok(id)
}

/// API key mutations.
#[derive(Debug, Default)]
pub(crate) struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates a key for the caller; the full key is in this response only.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> async_graphql::Result<CreatedApiKey> {
        let (caller, state) = caller(ctx)?;
        let user = caller.require_user()?.clone();
        state
            .api_keys
            .create(
                caller.tenant(),
                user,
                input.name,
                input.scopes,
                input.expires_at,
            )
            .await
            .map(Into::into)
            .gql()
    }

    /// Replaces a key by a new one (new id and secret); the old one stops working at once.
    async fn regenerate_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CreatedApiKey> {
        let (caller, state) = caller(ctx)?;
        let id = own_key(caller, state, &id).await?;
        state
            .api_keys
            .regenerate(caller.tenant(), &id)
            .await
            .map(Into::into)
            .gql()
    }

    /// Deletes a key; it stops working at once.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (caller, state) = caller(ctx)?;
        let raw = own_key(caller, state, &id).await?;
        state.api_keys.revoke(caller.tenant(), &raw).await.gql()?;
        Ok(id)
    }

    /// Enables or disables a key.
    async fn set_api_key_enabled(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> async_graphql::Result<ApiKeyObject> {
        let (caller, state) = caller(ctx)?;
        let id = own_key(caller, state, &id).await?;
        state
            .api_keys
            .set_enabled(caller.tenant(), &id, enabled)
            .await
            .map(ApiKeyObject)
            .gql()
    }
}
