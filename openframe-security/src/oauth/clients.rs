//! Registered OAuth clients per tenant: confidential (with a secret) and public (PKCE only).
//!
//! Client secrets are 256-bit random values shown once and stored only as HMAC-SHA256 under a
//! server key (high-entropy secrets need no slow hash), compared in constant time.

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Clock, Error, MachineId, Result, Secret, TenantId, Timestamp, validate};
use openframe_data::DocumentRepository;
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, Value,
};
use serde::{Deserialize, Serialize};

/// Whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientType {
    /// Has a secret (server-side apps, agents).
    Confidential,
    /// No secret (browser and native apps): PKCE only.
    Public,
}

/// An OAuth grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code` (always with PKCE S256).
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
    /// `client_credentials` (confidential clients only).
    ClientCredentials,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

/// A registered client of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    /// The client id, `[A-Za-z0-9_-]{1,64}` (agents: `agent_<machineId>`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Confidential or public.
    pub client_type: ClientType,
    /// Allowed redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Allowed post-logout redirect URIs, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grants.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    /// Roles put in `client_credentials` tokens (e.g. `AGENT`).
    pub roles: Vec<String>,
    /// The machine this client is (agent clients).
    pub machine_id: Option<MachineId>,
    /// Access token lifetime override, seconds.
    pub access_ttl_secs: Option<u32>,
    /// Refresh token lifetime override, seconds.
    pub refresh_ttl_secs: Option<u32>,
    /// How many times one refresh token family may be rotated (a bounded refresh chain).
    pub max_refresh_chain: Option<u32>,
    /// Disabled clients can neither authenticate nor use their tokens' refresh.
    pub enabled: bool,
    /// HMAC of the secret (hex); never returned by any API.
    #[serde(default)]
    pub(crate) secret_hash: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl OAuthClient {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Checks the client's shape.
    pub fn validate(&self) -> Result<()> {
        openframe_core::id::validate_id("clientId", &self.id)?;
        validate::name("name", &self.name)?;
        validate::list("redirectUris", &self.redirect_uris)?;
        validate::list("scopes", &self.scopes)?;
        validate::list("roles", &self.roles)?;
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            let parsed = url::Url::parse(uri)
                .map_err(|_| Error::invalid("redirectUris", "must be absolute URLs"))?;
            if parsed.fragment().is_some() {
                return Err(Error::invalid(
                    "redirectUris",
                    "must not contain a fragment",
                ));
            }
        }
        for s in &self.scopes {
            if s.is_empty()
                || s.len() > 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(Error::invalid("scopes", "must be printable scope tokens"));
            }
        }
        if self.client_type == ClientType::Public && self.allows(GrantType::ClientCredentials) {
            return Err(Error::invalid(
                "grantTypes",
                "public clients cannot use client_credentials",
            ));
        }
        Ok(())
    }
}

static SCHEMA: Schema = Schema {
    collection: "oauth_clients",
    entity: "oauth client",
    fields: &[
        FieldDef::optional("machine_id", FieldKind::Str),
        FieldDef::required("enabled", FieldKind::Bool),
    ],
    indexes: &[IndexDef {
        fields: &["machine_id"],
    }],
    unique: &[],
};

impl Entity for OAuthClient {
    const SCHEMA: &'static Schema = &SCHEMA;
    openframe_data::entity_basics!("oauth client", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::opt_str(self.machine_id.as_ref().map(|m| m.as_str())),
            Value::Bool(self.enabled),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![self.id.as_str(), self.name.as_str()]
    }
}

openframe_data::timestamped!(OAuthClient);

/// What to register.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClient {
    /// The client id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Confidential or public.
    pub client_type: ClientType,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Grants.
    pub grant_types: Vec<GrantType>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Roles for `client_credentials` tokens.
    pub roles: Vec<String>,
    /// The machine the client stands for.
    pub machine_id: Option<MachineId>,
    /// Bounded refresh chain.
    pub max_refresh_chain: Option<u32>,
}

/// Registers, finds and authenticates clients.
#[derive(Clone)]
pub struct ClientRegistry {
    repo: DocumentRepository<OAuthClient>,
    key: Arc<hmac::Key>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistry").finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClientRegistry {
    /// A registry over `store`; `hmac_key` keys the secret hashes (derive it from the master key).
    pub fn new(store: Arc<dyn DocumentStore>, hmac_key: [u8; 32], clock: Arc<dyn Clock>) -> Self {
        Self {
            repo: DocumentRepository::new(store, clock.clone()),
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &hmac_key)),
            clock,
        }
    }

    fn hash(&self, secret: &str) -> String {
        hex(hmac::sign(&self.key, secret.as_bytes()).as_ref())
    }

    /// Registers a client; confidential clients get a fresh secret, returned once.
    pub async fn register(
        &self,
        tenant: &TenantId,
        new: NewClient,
    ) -> Result<(OAuthClient, Option<Secret>)> {
        let now = self.clock.now();
        let secret = (new.client_type == ClientType::Confidential).then(|| {
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            Secret::new(URL_SAFE_NO_PAD.encode(bytes))
        });
        let client = OAuthClient {
            id: new.id,
            name: new.name,
            client_type: new.client_type,
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            grant_types: new.grant_types,
            scopes: new.scopes,
            roles: new.roles,
            machine_id: new.machine_id,
            access_ttl_secs: None,
            refresh_ttl_secs: None,
            max_refresh_chain: new.max_refresh_chain,
            enabled: true,
            secret_hash: secret.as_ref().map(|s| self.hash(s.expose())),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let client = self.repo.insert(&Partition::tenant(tenant), client).await?;
        Ok((client, secret))
    }

    /// Registers a client with a secret the caller chose (e.g. from configuration).
    pub async fn register_with_secret(
        &self,
        tenant: &TenantId,
        new: NewClient,
        secret: &Secret,
    ) -> Result<OAuthClient> {
        if secret.len() < 16 || secret.len() > 256 {
            return Err(Error::invalid("clientSecret", "must be 16-256 characters"));
        }
        let (mut client, _) = self
            .register(
                tenant,
                NewClient {
                    client_type: ClientType::Confidential,
                    ..new
                },
            )
            .await?;
        client.secret_hash = Some(self.hash(secret.expose()));
        self.repo.update(&Partition::tenant(tenant), client).await
    }

    /// A client by id.
    pub async fn get(&self, tenant: &TenantId, client_id: &str) -> Result<Option<OAuthClient>> {
        if client_id.is_empty() || client_id.len() > openframe_core::id::MAX_ID_LEN {
            return Ok(None);
        }
        self.repo.get(&Partition::tenant(tenant), client_id).await
    }

    /// The client of a machine.
    pub async fn find_by_machine(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
    ) -> Result<Option<OAuthClient>> {
        let found = self
            .repo
            .find_all(
                &Partition::tenant(tenant),
                Filter::Eq("machine_id", Value::str(machine.as_str())),
                1,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    /// Writes a changed client (optimistic concurrency).
    pub async fn update(&self, tenant: &TenantId, client: OAuthClient) -> Result<OAuthClient> {
        self.repo.update(&Partition::tenant(tenant), client).await
    }

    /// Enables or disables a client.
    pub async fn set_enabled(
        &self,
        tenant: &TenantId,
        client_id: &str,
        enabled: bool,
    ) -> Result<OAuthClient> {
        let m = self
            .repo
            .modify(&Partition::tenant(tenant), client_id, |c, _| {
                let changed = c.enabled != enabled;
                c.enabled = enabled;
                Ok(changed)
            })
            .await?;
        Ok(m.after)
    }

    /// Deletes a client.
    pub async fn delete(&self, tenant: &TenantId, client_id: &str) -> Result<()> {
        self.repo
            .delete_hard(&Partition::tenant(tenant), client_id)
            .await
    }

    /// Authenticates a client. Confidential clients need their secret; public clients must
    /// present none. Unknown client, wrong secret and disabled client are the same
    /// `Unauthenticated` error, and each path computes one HMAC.
    pub async fn authenticate(
        &self,
        tenant: &TenantId,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<OAuthClient> {
        let presented = secret.map(|s| self.hash(s));
        let client = self.get(tenant, client_id).await?;
        let Some(client) = client.filter(|c| c.enabled) else {
            if presented.is_none() {
                let _ = self.hash("");
            }
            return Err(Error::Unauthenticated);
        };
        match (client.client_type, &client.secret_hash, presented) {
            (ClientType::Public, _, None) => Ok(client),
            (ClientType::Confidential, Some(stored), Some(given))
                if verify_slices_are_equal(stored.as_bytes(), given.as_bytes()).is_ok() =>
            {
                Ok(client)
            }
            _ => Err(Error::Unauthenticated),
        }
    }
}
