//! First start: the master key, the default tenant, its OWNER and its registration secret.
//! Every step is idempotent: a later start (or another replica) finds them and creates nothing.

use std::path::Path;

use openframe_agent::enrollment::RegistrationSecrets;
use openframe_core::{Error, Result, Secret, TenantId};
use openframe_security::accounts::{AccountService, SignUp};
use openframe_security::crypto::MasterKey;
use openframe_security::oauth::{ClientRegistry, ClientType, GrantType, NewClient};
use rand::Rng as _;
use rand::distr::Alphanumeric;

use crate::config::{BootstrapConfig, ServerConfig};

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `security.master_key` / `OPENFRAME_MASTER_KEY`.
    Configured,
    /// `security.master_key_file`.
    File,
    /// The development key file in the data directory; `created` on this start.
    Development {
        /// Whether this start generated it.
        created: bool,
    },
}

/// Loads the master key: configured, from the configured file (which must exist), or the
/// development key in the data directory, generated (0600) on first start.
pub fn master_key(config: &ServerConfig) -> Result<(MasterKey, MasterKeySource)> {
    if let Some(key) = &config.security.master_key {
        return Ok((
            MasterKey::from_base64(key.expose())?,
            MasterKeySource::Configured,
        ));
    }
    if let Some(path) = &config.security.master_key_file {
        return Ok((read_key_file(path)?, MasterKeySource::File));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::Internal(
            format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            )
            .into(),
        )
    })?;
    let (key, created) = MasterKey::load_or_create_dev(&config.master_key_path())?;
    Ok((key, MasterKeySource::Development { created }))
}

fn read_key_file(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(
            "security.master_key_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    MasterKey::from_base64(&text).map_err(|_| {
        Error::invalid(
            "security.master_key_file",
            format!(
                "{} does not hold a base64-encoded 32-byte key",
                path.display()
            ),
        )
    })
}

/// The OWNER created on this start.
#[derive(Debug, Clone)]
pub struct CreatedOwner {
    /// Email.
    pub email: String,
    /// The generated password (`None` when it was configured).
    pub generated_password: Option<Secret>,
    /// The secret of the [`CLI_CLIENT_ID`] client (`client_credentials`, role ADMIN), for
    /// scripts and the GraphQL explorer.
    pub cli_client_secret: Secret,
}

/// The confidential OAuth client created with the default tenant, so an operator can get an
/// ADMIN token with `client_credentials` (scripts, curl, GraphiQL) before any UI exists.
pub const CLI_CLIENT_ID: &str = "openframe-cli";

/// What the bootstrap found or created.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// The default tenant.
    pub tenant: TenantId,
    /// Set when this start created the tenant and its OWNER (shown once).
    pub created: Option<CreatedOwner>,
    /// The tenant's active registration secret (printed on the first start only).
    pub registration_secret: Secret,
}

/// Creates the default tenant, its OWNER and registration secret unless they exist.
/// `None` when bootstrapping is disabled.
pub async fn default_tenant(
    config: &BootstrapConfig,
    accounts: &AccountService,
    clients: &ClientRegistry,
    tenants: &dyn openframe_data::TenantRepository,
    secrets: &RegistrationSecrets,
) -> Result<Option<BootstrapReport>> {
    if !config.enabled {
        return Ok(None);
    }
    let tenant = TenantId::parse(&config.tenant_id)?;
    let created = if tenants.get(&tenant).await?.is_some() {
        None
    } else {
        let (password, generated) = match &config.owner_password {
            Some(p) => (Secret::new(p.expose()), None),
            None => {
                let p = generate_password()?;
                (p.clone(), Some(p))
            }
        };
        let request = SignUp {
            tenant_id: Some(tenant.clone()),
            tenant_name: config.tenant_name.clone(),
            domain: config.domain.clone(),
            email: config.owner_email.clone(),
            password,
            first_name: "Default".into(),
            last_name: "Owner".into(),
        };
        match accounts.sign_up(request).await {
            Ok(done) => Some(CreatedOwner {
                email: done.owner.email,
                generated_password: generated,
                cli_client_secret: cli_client(clients, &tenant).await?,
            }),
            // Another replica created it between our check and our write.
            Err(Error::AlreadyExists { .. }) if tenants.get(&tenant).await?.is_some() => None,
            Err(Error::InvalidInput { field, reason }) => {
                return Err(Error::invalid(bootstrap_field(&field), reason));
            }
            Err(e) => return Err(e),
        }
    };
    let registration_secret = secrets.ensure(&tenant).await?;
    Ok(Some(BootstrapReport {
        tenant,
        created,
        registration_secret,
    }))
}

/// Registers the [`CLI_CLIENT_ID`] client of a new tenant; returns its secret (shown once).
async fn cli_client(clients: &ClientRegistry, tenant: &TenantId) -> Result<Secret> {
    let (_, secret) = clients
        .register(
            tenant,
            NewClient {
                id: CLI_CLIENT_ID.into(),
                name: "OpenFrame CLI".into(),
                client_type: ClientType::Confidential,
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                grant_types: vec![GrantType::ClientCredentials],
                scopes: vec!["api".into()],
                roles: vec!["ADMIN".into()],
                machine_id: None,
                max_refresh_chain: None,
            },
        )
        .await?;
    secret.ok_or_else(|| Error::Internal("a confidential client has a secret".into()))
}

/// Maps a sign-up field to the configuration field that set it.
fn bootstrap_field(field: &str) -> String {
    match field {
        "tenantName" => "bootstrap.tenant_name".into(),
        "domain" => "bootstrap.domain".into(),
        "email" => "bootstrap.owner_email".into(),
        "password" => "bootstrap.owner_password".into(),
        "tenantId" => "bootstrap.tenant_id".into(),
        other => format!("bootstrap ({other})"),
    }
}

/// A random password that meets the default policy: `Of-` and 24 letters and digits
/// (upper, lower, symbol; ~142 bits).
fn generate_password() -> Result<Secret> {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    Ok(Secret::new(format!("Of-{tail}")))
}
