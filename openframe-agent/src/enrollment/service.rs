//! The enrollment service: register, reinstall, uninstall, and agent tokens.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openframe_core::{
    Clock, ConnectionStatus, Error, Machine, MachineId, MachineStatus, OrganizationId,
    OrganizationStatus, Result, Secret, Tag, TagId, TenantId, TenantStatus, Timestamp,
};
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, IndexDef, Partition, Schema, Value,
};
use openframe_data::{DocumentRepository, Repositories, Timestamped};
use openframe_security::auth::Authenticator;
use openframe_security::oauth::{
    ClientRegistry, ClientType, GrantType, NewClient, OAuthClient, OAuthErrorCode, OAuthServer,
};
use openframe_security::ratelimit::{Quota, RateLimitKey, RateLimiter};
use openframe_security::stack::SecurityStack;
use openframe_security::token::TokenService;
use serde::{Deserialize, Serialize};

use super::error::{EnrollmentError, EnrollmentResult};
use super::request::{RegistrationRequest, ValidRequest};
use super::secrets::RegistrationSecrets;
use crate::events::{self, AgentEvent, AgentEventKind, AgentEventSink};

/// The role agent tokens carry.
pub const AGENT_ROLE: &str = "AGENT";
/// The scope agent clients are granted.
pub const AGENT_SCOPE: &str = "agent";
/// Attempts of a read-modify-write that races other writers.
const WRITE_ATTEMPTS: usize = 8;
/// Longest client secret worth hashing; real ones are 43 characters.
const MAX_SECRET_LEN: usize = 512;

/// The OAuth client id of a machine: `agent_<machineId>`.
pub fn client_id_for(machine: &MachineId) -> String {
    format!("agent_{machine}")
}

/// Settings of enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentConfig {
    /// Initial-key attempts per client IP (IPv6 per /64) on register and reinstall; a
    /// successful key clears the counter, so in effect it bounds consecutive failures.
    /// Default: 20 per minute.
    pub initial_key_quota_per_ip: Vec<Quota>,
    /// How many times one agent refresh-token family may rotate before the agent must use
    /// client credentials again. Default 50.
    pub max_refresh_chain: u32,
    /// Most tags a registration may expand to. Default 50.
    pub max_tags: usize,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        Self {
            initial_key_quota_per_ip: vec![Quota::per_minute(20)],
            max_refresh_chain: 50,
            max_tags: 50,
        }
    }
}

/// What [`EnrollmentService::new`] is built from (see [`EnrollmentParts::from_stack`]).
#[derive(Debug, Clone)]
pub struct EnrollmentParts {
    /// The store of the platform client index (the store of the security stack).
    pub store: Arc<dyn DocumentStore>,
    /// Registration secrets.
    pub secrets: RegistrationSecrets,
    /// Machines, organizations, tags, tool connections, tenants.
    pub repos: Repositories,
    /// OAuth clients.
    pub clients: ClientRegistry,
    /// The authorization server (token exchange and grant store).
    pub oauth: OAuthServer,
    /// Token revocation.
    pub tokens: TokenService,
    /// Authenticates agents on the registration-secret endpoint.
    pub authenticator: Authenticator,
    /// Receives `Registered` and `Uninstalled` events.
    pub events: Arc<dyn AgentEventSink>,
    /// Throttles initial-key attempts.
    pub limiter: Arc<dyn RateLimiter>,
    /// Server time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: EnrollmentConfig,
}

impl EnrollmentParts {
    /// Parts taken from a [`SecurityStack`] built over `store` (its repositories, clients,
    /// OAuth server, tokens, authenticator and rate limiter) with default settings.
    pub fn from_stack(
        stack: &SecurityStack,
        store: Arc<dyn DocumentStore>,
        secrets: RegistrationSecrets,
        events: Arc<dyn AgentEventSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            secrets,
            repos: stack.repos.clone(),
            clients: stack.clients.clone(),
            oauth: stack.oauth.clone(),
            tokens: stack.tokens.clone(),
            authenticator: stack.authenticator(),
            events,
            limiter: stack.limiter.clone(),
            clock,
            config: EnrollmentConfig::default(),
        }
    }
}

/// The credentials of a newly registered (or reinstalled) machine. The secret is shown once.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The machine id.
    pub machine_id: MachineId,
    /// Its OAuth client id, `agent_<machineId>`.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
}

/// A token response in the agent's camelCase wire format.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentToken {
    /// The access token (a JWT).
    pub access_token: String,
    /// The rotating refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentToken")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Platform record: agent client id → tenant, so the token endpoint finds the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentClientRecord {
    /// The client id.
    id: String,
    /// Its tenant.
    tenant_id: TenantId,
    /// Its machine.
    machine_id: MachineId,
    /// Creation time.
    created_at: Timestamp,
    /// Last change.
    updated_at: Timestamp,
    /// Version.
    version: u64,
}

impl AgentClientRecord {
    fn validate(&self) -> Result<()> {
        openframe_core::id::validate_id("clientId", &self.id)
    }
}

static CLIENT_INDEX_SCHEMA: Schema = Schema {
    collection: "agent_client_tenants",
    entity: "agent client",
    fields: &[FieldDef::required("tenant_id", FieldKind::Str)],
    indexes: &[IndexDef {
        fields: &["tenant_id"],
    }],
    unique: &[],
};

impl Entity for AgentClientRecord {
    const SCHEMA: &'static Schema = &CLIENT_INDEX_SCHEMA;
    openframe_data::entity_basics!("agent client", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![Value::str(self.tenant_id.as_str())]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Timestamped for AgentClientRecord {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// The collection of the client index (for backends that create tables up front).
pub(crate) fn client_index_schema() -> &'static Schema {
    &CLIENT_INDEX_SCHEMA
}

/// Enrolls machines and issues their tokens, wire-compatible with the original agent.
/// Cheap to clone (one `Arc`).
///
/// - [`register`](Self::register): the initial key names the tenant; a machine (PENDING), a
///   confidential OAuth client `agent_<machineId>` (client credentials + refresh, role
///   `AGENT`, bounded refresh chain) and a platform record client → tenant are created; if a
///   later step fails the earlier ones are undone.
/// - [`reinstall`](Self::reinstall): the initial key and the machine's own client secret;
///   the machine is updated and reset to PENDING, its tool connections DISCONNECTED; the
///   credentials stay the same.
/// - [`uninstall`](Self::uninstall): idempotent; the machine is soft-deleted, its tool
///   connections DISCONNECTED, its client disabled and its tokens revoked.
/// - [`token`](Self::token): the agent token endpoint over the tenant's authorization server.
#[derive(Clone)]
pub struct EnrollmentService {
    inner: Arc<Inner>,
}

struct Inner {
    secrets: RegistrationSecrets,
    index: DocumentRepository<AgentClientRecord>,
    repos: Repositories,
    clients: ClientRegistry,
    oauth: OAuthServer,
    tokens: TokenService,
    authenticator: Authenticator,
    events: Arc<dyn AgentEventSink>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    config: EnrollmentConfig,
}

impl std::fmt::Debug for EnrollmentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentService")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn ignore_not_found(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// The rate-limit id of a client address: IPv4 (and IPv4-mapped IPv6) as is, other IPv6 by
/// their /64.
fn ip_id(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

/// The client id a token request names: the `client_id` form parameter, else the user part
/// of HTTP Basic authentication.
fn presented_client_id(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_form = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty());
    if from_form.is_some() {
        return from_form;
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
    let (id, _) = decoded.split_once(':')?;
    url::form_urlencoded::parse(format!("v={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

impl EnrollmentService {
    /// A service over `parts`.
    pub fn new(parts: EnrollmentParts) -> Self {
        let EnrollmentParts {
            store,
            secrets,
            repos,
            clients,
            oauth,
            tokens,
            authenticator,
            events,
            limiter,
            clock,
            config,
        } = parts;
        Self {
            inner: Arc::new(Inner {
                secrets,
                index: DocumentRepository::new(store, clock.clone()),
                repos,
                clients,
                oauth,
                tokens,
                authenticator,
                events,
                limiter,
                clock,
                config,
            }),
        }
    }

    /// The registration secrets.
    pub fn secrets(&self) -> &RegistrationSecrets {
        &self.inner.secrets
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The authenticator for agent bearer tokens.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// The settings.
    pub fn config(&self) -> &EnrollmentConfig {
        &self.inner.config
    }

    /// The tenant of an agent client id, if it is one.
    pub async fn tenant_of_client(&self, client_id: &str) -> Result<Option<TenantId>> {
        if openframe_core::id::validate_id("clientId", client_id).is_err() {
            return Ok(None);
        }
        Ok(self
            .inner
            .index
            .get(&Partition::platform(), client_id)
            .await?
            .map(|r| r.tenant_id))
    }

    // -------------------------------------------------------------------------------------
    // Register

    /// Registers a new machine with the registration secret `initial_key`, from `client_ip`.
    ///
    /// Errors: [`EnrollmentError::InitialKeyEmpty`] / [`EnrollmentError::InitialKeyInvalid`]
    /// (401); `RateLimited` (429) after too many key attempts from the address;
    /// `VALIDATION_ERROR` (400) on a bad request, including an organization id that is not
    /// an active organization of the key's tenant; `CONFLICT` (409) if the tenant has no
    /// default organization.
    pub async fn register(
        &self,
        initial_key: &str,
        request: &RegistrationRequest,
        client_ip: IpAddr,
    ) -> EnrollmentResult<Registration> {
        let inner = &self.inner;
        let tenant = self.tenant_for_key(initial_key, client_ip).await?;
        let valid = request.validate(inner.config.max_tags)?;
        let organization = self
            .organization(&tenant, valid.organization.as_ref(), None)
            .await?;
        let now = inner.clock.now();
        let machine_id = MachineId::generate();
        let mut machine = Machine::new(
            machine_id.clone(),
            valid.hostname.clone(),
            valid.os_type,
            now,
        );
        valid.apply(&mut machine);
        machine.organization_id = Some(organization);
        machine.validate()?;
        machine.tags = self.tags(&tenant, &valid.tag_names).await?;

        let client_id = client_id_for(&machine_id);
        let (_, secret) = inner
            .clients
            .register(
                &tenant,
                NewClient {
                    id: client_id.clone(),
                    name: format!("Agent {machine_id}"),
                    client_type: ClientType::Confidential,
                    redirect_uris: Vec::new(),
                    post_logout_redirect_uris: Vec::new(),
                    grant_types: vec![GrantType::ClientCredentials, GrantType::RefreshToken],
                    scopes: vec![AGENT_SCOPE.to_owned()],
                    roles: vec![AGENT_ROLE.to_owned()],
                    machine_id: Some(machine_id.clone()),
                    max_refresh_chain: Some(inner.config.max_refresh_chain),
                },
            )
            .await?;
        let Some(secret) = secret else {
            self.undo_registration(&tenant, &client_id, false).await;
            return Err(Error::Internal("a confidential client got no secret".into()).into());
        };
        let record = AgentClientRecord {
            id: client_id.clone(),
            tenant_id: tenant.clone(),
            machine_id: machine_id.clone(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        if let Err(e) = inner.index.insert(&Partition::platform(), record).await {
            self.undo_registration(&tenant, &client_id, false).await;
            return Err(e.into());
        }
        if let Err(e) = inner.repos.machines.insert(&tenant, machine).await {
            self.undo_registration(&tenant, &client_id, true).await;
            return Err(e.into());
        }
        tracing::info!(tenant = %tenant, machine = %machine_id, "agent registered");
        self.emit(
            &tenant,
            &machine_id,
            AgentEventKind::Registered,
            None,
            MachineStatus::Pending,
        )
        .await;
        Ok(Registration {
            machine_id,
            client_id,
            client_secret: secret,
        })
    }

    /// Removes what a failed registration created (best effort; failures are logged).
    async fn undo_registration(&self, tenant: &TenantId, client_id: &str, index: bool) {
        if index {
            let removed = self
                .inner
                .index
                .delete_hard(&Partition::platform(), client_id)
                .await;
            if let Err(e) = ignore_not_found(removed) {
                tracing::warn!(tenant = %tenant, client = client_id, error = %e, "could not undo an agent client index record");
            }
        }
        if let Err(e) = ignore_not_found(self.inner.clients.delete(tenant, client_id).await) {
            tracing::warn!(tenant = %tenant, client = client_id, error = %e, "could not undo an agent client");
        }
    }

    /// Resolves the initial key under the per-IP throttle.
    async fn tenant_for_key(
        &self,
        initial_key: &str,
        client_ip: IpAddr,
    ) -> EnrollmentResult<TenantId> {
        let inner = &self.inner;
        if initial_key.trim().is_empty() {
            return Err(EnrollmentError::InitialKeyEmpty);
        }
        let key = RateLimitKey::new("agent-initial-key", None, &ip_id(client_ip))?;
        let quotas = &inner.config.initial_key_quota_per_ip;
        if !quotas.is_empty() {
            let decision = inner.limiter.check(&key, quotas).await?;
            if !decision.allowed {
                let retry_after = decision
                    .retry_after
                    .unwrap_or(decision.reset_after)
                    .max(Duration::from_secs(1));
                tracing::info!(
                    retry_after_secs = retry_after.as_secs(),
                    "agent initial-key attempts throttled"
                );
                return Err(Error::RateLimited { retry_after }.into());
            }
        }
        match inner.secrets.resolve(initial_key).await {
            Ok(tenant) => {
                if !quotas.is_empty() {
                    if let Err(e) = inner.limiter.reset(&key).await {
                        tracing::warn!(error = %e, "could not reset the initial-key counter");
                    }
                }
                Ok(tenant)
            }
            Err(e) => {
                tracing::debug!(code = e.code(), "agent initial key refused");
                Err(e)
            }
        }
    }

    /// The organization of a (re)registration: the requested one if it is an active
    /// organization of `tenant`; else `current` if still active; else the default one.
    async fn organization(
        &self,
        tenant: &TenantId,
        requested: Option<&std::result::Result<OrganizationId, ()>>,
        current: Option<&OrganizationId>,
    ) -> Result<OrganizationId> {
        let orgs = &self.inner.repos.organizations;
        let active = |o: &openframe_core::Organization| o.status == OrganizationStatus::Active;
        if let Some(requested) = requested {
            let unknown = || {
                Error::invalid(
                    "organizationId",
                    "is not an active organization of this tenant",
                )
            };
            let Ok(id) = requested else {
                return Err(unknown());
            };
            return match orgs.get(tenant, id).await? {
                Some(o) if active(&o) => Ok(o.id),
                _ => Err(unknown()),
            };
        }
        if let Some(id) = current {
            if let Some(o) = orgs.get(tenant, id).await?.filter(|o| active(o)) {
                return Ok(o.id);
            }
        }
        match orgs.find_default(tenant).await? {
            Some(o) => Ok(o.id),
            None => Err(Error::conflict("the tenant has no default organization")),
        }
    }

    /// Finds or creates the tags named `names`; returns their ids.
    async fn tags(&self, tenant: &TenantId, names: &[String]) -> Result<Vec<TagId>> {
        let tags = &self.inner.repos.tags;
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let tag = match tags.find_by_name(tenant, name).await? {
                Some(t) => t,
                None => match tags
                    .insert(tenant, Tag::new(name.clone(), self.inner.clock.now()))
                    .await
                {
                    Ok(t) => t,
                    // Created concurrently by another registration.
                    Err(Error::AlreadyExists { .. }) => tags
                        .find_by_name(tenant, name)
                        .await?
                        .ok_or_else(|| Error::conflict("a tag was deleted while being attached"))?,
                    Err(e) => return Err(e),
                },
            };
            if !ids.contains(&tag.id) {
                ids.push(tag.id);
            }
        }
        Ok(ids)
    }

    // -------------------------------------------------------------------------------------
    // Reinstall

    /// Re-enrolls machine `machine_id` of the key's tenant, authenticated by its client
    /// secret: the machine is updated from `request` (tags are added to the existing ones;
    /// without an organization id it keeps its organization while that is active), set to
    /// PENDING, and its tool connections are marked DISCONNECTED. The same client id and the
    /// presented secret are returned.
    ///
    /// The initial key is checked first (as for [`register`](Self::register)). A blank
    /// secret is [`EnrollmentError::ClientSecretEmpty`]; a wrong secret, an unknown or
    /// malformed machine id, another tenant's machine, and an uninstalled machine (its
    /// client is disabled) are all [`EnrollmentError::ClientSecretInvalid`], which makes the
    /// original agent register afresh.
    pub async fn reinstall(
        &self,
        initial_key: &str,
        machine_id: &str,
        client_secret: &str,
        request: &RegistrationRequest,
        client_ip: IpAddr,
    ) -> EnrollmentResult<Registration> {
        let inner = &self.inner;
        let tenant = self.tenant_for_key(initial_key, client_ip).await?;
        if client_secret.trim().is_empty() {
            return Err(EnrollmentError::ClientSecretEmpty);
        }
        let machine_id = MachineId::parse(machine_id.trim())
            .map_err(|_| EnrollmentError::ClientSecretInvalid)?;
        let client = self
            .authenticate_machine(&tenant, &machine_id, client_secret)
            .await?;
        let valid = request.validate(inner.config.max_tags)?;
        let tags = self.tags(&tenant, &valid.tag_names).await?;
        let (before, _) = self
            .update_machine(&tenant, &machine_id, &valid, &tags)
            .await?;
        let disconnected = self.disconnect_tools(&tenant, &machine_id).await?;
        tracing::info!(tenant = %tenant, machine = %machine_id, disconnected, "agent reinstalled");
        self.emit(
            &tenant,
            &machine_id,
            AgentEventKind::Registered,
            Some(before.status),
            MachineStatus::Pending,
        )
        .await;
        Ok(Registration {
            machine_id,
            client_id: client.id,
            client_secret: Secret::new(client_secret),
        })
    }

    /// Applies a reinstall to the machine (retrying version conflicts); returns before/after.
    async fn update_machine(
        &self,
        tenant: &TenantId,
        machine_id: &MachineId,
        valid: &ValidRequest,
        tags: &[TagId],
    ) -> EnrollmentResult<(Machine, Machine)> {
        let machines = &self.inner.repos.machines;
        let mut last = None;
        for _ in 0..WRITE_ATTEMPTS {
            let current = match machines.get(tenant, machine_id).await? {
                Some(m) if m.status != MachineStatus::Deleted => m,
                _ => return Err(EnrollmentError::ClientSecretInvalid),
            };
            let organization = self
                .organization(
                    tenant,
                    valid.organization.as_ref(),
                    current.organization_id.as_ref(),
                )
                .await?;
            let mut next = current.clone();
            valid.apply(&mut next);
            next.organization_id = Some(organization);
            for tag in tags {
                if !next.tags.contains(tag) {
                    next.tags.push(tag.clone());
                }
            }
            next.status = MachineStatus::Pending;
            match machines.update(tenant, next).await {
                Ok(after) => return Ok((current, after)),
                Err(e @ Error::Conflict { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::conflict("the machine is being changed by too many writers"))
            .into())
    }

    /// Authenticates the client of `machine` with `secret`.
    async fn authenticate_machine(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        secret: &str,
    ) -> EnrollmentResult<OAuthClient> {
        if secret.trim().is_empty() {
            return Err(EnrollmentError::ClientSecretEmpty);
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(EnrollmentError::ClientSecretInvalid);
        }
        match self
            .inner
            .clients
            .authenticate(tenant, &client_id_for(machine), Some(secret))
            .await
        {
            Ok(c) if c.machine_id.as_ref() == Some(machine) => Ok(c),
            Ok(_) | Err(Error::Unauthenticated) => {
                tracing::debug!(tenant = %tenant, machine = %machine, "agent client secret refused");
                Err(EnrollmentError::ClientSecretInvalid)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Marks every tool connection of the machine DISCONNECTED; returns how many changed.
    async fn disconnect_tools(&self, tenant: &TenantId, machine: &MachineId) -> Result<usize> {
        let connections = &self.inner.repos.tool_connections;
        let now = self.inner.clock.now();
        let mut changed = 0;
        for mut conn in connections.find_by_machine(tenant, machine).await? {
            let mut done = false;
            for _ in 0..WRITE_ATTEMPTS {
                if conn.status == ConnectionStatus::Disconnected {
                    done = true;
                    break;
                }
                let id = conn.id.clone();
                conn.status = ConnectionStatus::Disconnected;
                conn.disconnected_at = Some(now);
                match connections.update(tenant, conn).await {
                    Ok(_) => {
                        changed += 1;
                        done = true;
                        break;
                    }
                    Err(Error::Conflict { .. }) => match connections.get(tenant, &id).await? {
                        Some(fresh) => conn = fresh,
                        None => {
                            done = true;
                            break;
                        }
                    },
                    Err(e) => return Err(e),
                }
            }
            if !done {
                return Err(Error::conflict(
                    "a tool connection is being changed by too many writers",
                ));
            }
        }
        Ok(changed)
    }

    // -------------------------------------------------------------------------------------
    // Uninstall

    /// Uninstalls machine `machine_id`, authenticated by its client secret. Idempotent: an
    /// unknown (or malformed) machine id and an already uninstalled machine answer `Ok`.
    ///
    /// The machine is soft-deleted (DELETED), its OAuth client disabled, every refresh
    /// family of the client revoked together with the access tokens issued with them, and
    /// its tool connections DISCONNECTED; then `Uninstalled` is emitted. Afterwards the
    /// machine gets no tokens. A blank machine id is `VALIDATION_ERROR`; for a known machine
    /// a blank secret is [`EnrollmentError::ClientSecretEmpty`] and a wrong one
    /// [`EnrollmentError::ClientSecretInvalid`].
    ///
    /// The steps run in an order a retry can finish: while the client is enabled the secret
    /// is checked and every step (each idempotent) runs; once the client is disabled and the
    /// machine DELETED, a call only re-runs the token revocation and disconnection.
    pub async fn uninstall(&self, machine_id: &str, client_secret: &str) -> EnrollmentResult<()> {
        let inner = &self.inner;
        let machine_id = machine_id.trim();
        if machine_id.is_empty() {
            return Err(Error::invalid("machineId", "is required").into());
        }
        let Ok(machine_id) = MachineId::parse(machine_id) else {
            return Ok(());
        };
        let client_id = client_id_for(&machine_id);
        let Some(tenant) = self.tenant_of_client(&client_id).await? else {
            return Ok(());
        };
        let Some(machine) = inner.repos.machines.get(&tenant, &machine_id).await? else {
            return Ok(());
        };
        let enabled = inner
            .clients
            .get(&tenant, &client_id)
            .await?
            .is_some_and(|c| c.enabled);
        if !enabled {
            if machine.status == MachineStatus::Deleted {
                self.revoke_tokens(&tenant, &client_id).await?;
                self.disconnect_tools(&tenant, &machine_id).await?;
                return Ok(());
            }
            // A live machine whose client an administrator disabled: the secret cannot be
            // checked, so nothing is done.
            return Err(if client_secret.trim().is_empty() {
                EnrollmentError::ClientSecretEmpty
            } else {
                EnrollmentError::ClientSecretInvalid
            });
        }
        self.authenticate_machine(&tenant, &machine_id, client_secret)
            .await?;
        inner.repos.machines.delete(&tenant, &machine_id).await?;
        inner
            .clients
            .set_enabled(&tenant, &client_id, false)
            .await?;
        let revoked = self.revoke_tokens(&tenant, &client_id).await?;
        let disconnected = self.disconnect_tools(&tenant, &machine_id).await?;
        tracing::info!(tenant = %tenant, machine = %machine_id, revoked, disconnected, "agent uninstalled");
        let previous = (machine.status != MachineStatus::Deleted).then_some(machine.status);
        self.emit(
            &tenant,
            &machine_id,
            AgentEventKind::Uninstalled,
            previous,
            MachineStatus::Deleted,
        )
        .await;
        Ok(())
    }

    /// Revokes every refresh family of the client and the access tokens issued with them;
    /// returns how many access tokens were revoked.
    async fn revoke_tokens(&self, tenant: &TenantId, client_id: &str) -> Result<usize> {
        let jtis = self
            .inner
            .oauth
            .grants()
            .revoke_client(tenant, client_id)
            .await?;
        for (jti, expires_at) in &jtis {
            self.inner
                .tokens
                .revoke_jti(tenant, jti, *expires_at)
                .await?;
        }
        Ok(jtis.len())
    }

    // -------------------------------------------------------------------------------------
    // Tokens

    /// The agent token endpoint: `body` is the form (`grant_type` `client_credentials` or
    /// `refresh_token`, `client_id`, `client_secret`, `refresh_token`), `headers` may carry
    /// HTTP Basic client authentication. The tenant is found from the client id; the grant
    /// runs on that tenant's authorization server, so the tokens carry the tenant's issuer,
    /// `tenant_id`, `machine_id` and `roles: ["AGENT"]`.
    ///
    /// Errors: bad or missing client credentials (including a refresh request without
    /// them, and a disabled client) are `Unauthenticated` (401 `UNAUTHORIZED`); a tenant
    /// that is gone is [`EnrollmentError::TenantGone`] (410); other refusals are
    /// [`EnrollmentError::Grant`] with the OAuth error code (400).
    pub async fn token(&self, headers: &HeaderMap, body: &[u8]) -> EnrollmentResult<AgentToken> {
        let inner = &self.inner;
        let Some(client_id) = presented_client_id(headers, body) else {
            return Err(Error::Unauthenticated.into());
        };
        let Some(tenant) = self.tenant_of_client(&client_id).await? else {
            return Err(Error::Unauthenticated.into());
        };
        match inner.repos.tenants.get(&tenant).await? {
            Some(t) if t.status == TenantStatus::Active => {}
            _ => return Err(EnrollmentError::TenantGone),
        }
        match inner.oauth.exchange(&tenant, headers, body).await {
            Ok(r) => Ok(AgentToken {
                access_token: r.access_token,
                refresh_token: r.refresh_token,
                token_type: "Bearer",
                expires_in: r.expires_in,
            }),
            Err(e) if e.code == OAuthErrorCode::InvalidClient => Err(Error::Unauthenticated.into()),
            Err(e) => Err(EnrollmentError::Grant {
                code: e.code,
                message: e.description.unwrap_or_else(|| e.code.as_str().to_owned()),
            }),
        }
    }

    /// The active registration secret of `tenant` (for an authenticated agent of it).
    pub async fn active_secret(&self, tenant: &TenantId) -> Result<Secret> {
        self.inner.secrets.active(tenant).await
    }

    async fn emit(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        kind: AgentEventKind,
        previous_status: Option<MachineStatus>,
        status: MachineStatus,
    ) {
        let event = AgentEvent {
            tenant: tenant.clone(),
            machine_id: machine.clone(),
            kind,
            previous_status,
            status,
            at: self.inner.clock.now(),
        };
        events::emit(self.inner.events.as_ref(), event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_fit_the_id_rule() {
        let id = client_id_for(&MachineId::generate());
        assert!(openframe_core::id::validate_id("clientId", &id).is_ok());
        assert!(id.starts_with("agent_"));
    }

    #[test]
    fn client_id_from_form_or_basic() {
        let none = HeaderMap::new();
        assert_eq!(
            presented_client_id(&none, b"grant_type=client_credentials&client_id=agent_x")
                .as_deref(),
            Some("agent_x")
        );
        let mut basic = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("agent_y:secret"));
        basic.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            presented_client_id(&basic, b"grant_type=client_credentials").as_deref(),
            Some("agent_y")
        );
        assert_eq!(
            presented_client_id(&none, b"grant_type=refresh_token&refresh_token=r"),
            None
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_id(a), ip_id(b));
        assert_ne!(ip_id(a), ip_id(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_id(mapped), "10.0.0.1");
    }
}
