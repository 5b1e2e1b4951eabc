//! The original agent's NATS sockets (`/ws/nats`, `/ws/nats-logs`), proxied to a nats-server
//! in operator mode (see `openframe_agent::nats_proxy`).
//!
//! The server holds the NATS authority (operator, account and system account seeds). They are
//! kept in one file sealed with the master key ([`load_or_create_authority`]), so
//! `openframe-server nats-config` and `openframe-server serve` agree on the same keys:
//! the first writes the nats-server configuration that trusts them, the second mints a user
//! JWT per agent connection and connects its own agent bus as the account's privileged user.
//! Without `nats_proxy.upstream` both routes answer 503 `NATS_PROXY_NOT_CONFIGURED`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// The two agent NATS routes.
const ROUTES: [&str; 2] = ["/ws/nats", "/ws/nats-logs"];

/// The stable code of a NATS socket request when the proxy is not configured.
pub const NOT_CONFIGURED: &str = "NATS_PROXY_NOT_CONFIGURED";

/// `/ws/nats` and `/ws/nats-logs` answering 503 with a JSON error naming the setting.
pub fn not_configured_router() -> Router {
    let mut router = Router::new();
    for path in ROUTES {
        router = router.route(path, any(not_configured));
    }
    router
}

async fn not_configured() -> Response {
    let body = axum::Json(serde_json::json!({
        "code": NOT_CONFIGURED,
        "message": "the agent NATS proxy is not configured: set nats_proxy.upstream \
                    (see `openframe-server nats-config --help`)",
        "timestamp": chrono::Utc::now(),
    }));
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

#[cfg(feature = "nats")]
pub use enabled::*;

#[cfg(feature = "nats")]
mod enabled {
    use std::path::Path;
    use std::time::Duration;

    use axum::Router;
    use openframe_agent::nats_proxy::{self, AuthoritySeeds, NatsAuthority, NatsProxyConfig};
    use openframe_core::{Error, Result, Secret};
    use openframe_security::crypto::{MasterKey, write_new_private_file};
    use serde::{Deserialize, Serialize};

    use crate::config::ServerConfig;
    use crate::platform::Platform;

    /// Binds the sealed seeds to their purpose (a sealed value of another kind never opens).
    const AAD: &[u8] = b"openframe-server/nats-authority/v1";
    const FIELD: &str = "nats_proxy.authority_file";

    #[derive(Serialize, Deserialize)]
    struct SeedFile {
        operator: String,
        account: String,
        system: String,
    }

    /// The NATS authority of this deployment: read from its sealed file, or generated and
    /// written there (owner-only permissions) on first use. `true` when it was created.
    pub fn load_or_create_authority(
        config: &ServerConfig,
        master: &MasterKey,
    ) -> Result<(NatsAuthority, bool)> {
        let path = config.nats_authority_path();
        let name = config.nats_proxy.operator_name.clone();
        match std::fs::read_to_string(&path) {
            Ok(sealed) => open(&name, &path, master, sealed.trim()).map(|a| (a, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let authority = NatsAuthority::generate(name.clone());
                let seeds = authority.seeds()?;
                let file = SeedFile {
                    operator: seeds.operator.expose().to_owned(),
                    account: seeds.account.expose().to_owned(),
                    system: seeds.system.expose().to_owned(),
                };
                let plain = zeroize::Zeroizing::new(
                    serde_json::to_vec(&file).map_err(|e| Error::Internal(e.to_string().into()))?,
                );
                let sealed = master.seal(&plain, AAD)?;
                match write_new_private_file(&path, sealed.as_bytes()) {
                    Ok(()) => {
                        tracing::warn!(
                            path = %path.display(),
                            "generated a new NATS operator and account; nats-server must trust them: \
                             write its configuration with `openframe-server nats-config`"
                        );
                        Ok((authority, true))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let sealed = std::fs::read_to_string(&path).map_err(|e| {
                            Error::invalid(FIELD, format!("cannot read {}: {e}", path.display()))
                        })?;
                        open(&name, &path, master, sealed.trim()).map(|a| (a, false))
                    }
                    Err(e) => Err(Error::invalid(
                        FIELD,
                        format!("cannot write {}: {e}", path.display()),
                    )),
                }
            }
            Err(e) => Err(Error::invalid(
                FIELD,
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    fn open(name: &str, path: &Path, master: &MasterKey, sealed: &str) -> Result<NatsAuthority> {
        let unreadable = || {
            Error::invalid(
                FIELD,
                format!(
                    "{} cannot be opened with this master key (was it written with another?)",
                    path.display()
                ),
            )
        };
        let plain = master.open(sealed, AAD).map_err(|_| unreadable())?;
        let file: SeedFile = serde_json::from_slice(&plain).map_err(|_| unreadable())?;
        let seeds = AuthoritySeeds {
            operator: Secret::new(file.operator),
            account: Secret::new(file.account),
            system: Secret::new(file.system),
        };
        NatsAuthority::from_seeds(name, &seeds).map_err(|_| unreadable())
    }

    /// The credentials the server's own agent bus connects with (unrestricted user of the
    /// account, no expiry).
    pub fn server_credentials(authority: &NatsAuthority) -> Result<Secret> {
        authority
            .privileged_user("openframe-server", None)?
            .creds_file()
    }

    /// The proxy routes for `platform`, relaying to `upstream`.
    pub fn router(
        platform: &Platform,
        authority: NatsAuthority,
        config: &ServerConfig,
    ) -> Result<Router> {
        let upstream = config
            .nats_proxy
            .upstream_url()
            .map_err(|e| Error::invalid("nats_proxy.upstream", e.reason))?
            .ok_or_else(|| Error::invalid("nats_proxy.upstream", "not set"))?;
        let mut proxy = NatsProxyConfig::new(
            upstream,
            authority,
            platform.enrollment.authenticator().clone(),
            Some(platform.enrollment.secrets().clone()),
            platform.clock.clone(),
        )
        .with_sessions(platform.sessions.clone());
        proxy.max_session = Duration::from_secs(config.nats_proxy.max_session_secs);
        Ok(nats_proxy::router(proxy))
    }
}

#[cfg(all(test, feature = "nats"))]
mod tests {
    use openframe_security::crypto::MasterKey;

    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn the_authority_is_sealed_with_the_master_key_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            ..ServerConfig::default()
        };
        let master = MasterKey::generate().unwrap();
        let (first, created) = load_or_create_authority(&config, &master).unwrap();
        assert!(created);
        let (again, created) = load_or_create_authority(&config, &master).unwrap();
        assert!(!created);
        assert_eq!(again.account_public_key(), first.account_public_key());
        let path = config.nats_authority_path();
        let sealed = std::fs::read_to_string(&path).unwrap();
        let seeds = first.seeds().unwrap();
        assert!(!sealed.contains(seeds.account.expose()), "sealed at rest");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another master key cannot open it, and says which setting is at fault.
        let other = MasterKey::generate().unwrap();
        let err = load_or_create_authority(&config, &other).unwrap_err();
        assert_eq!(err.field(), Some("nats_proxy.authority_file"));
        assert!(!err.to_string().contains(seeds.account.expose()));
        // The server's own credentials are a creds file of that account.
        let creds = server_credentials(&first).unwrap();
        assert!(creds.expose().contains("BEGIN NATS USER JWT"));
    }
}
