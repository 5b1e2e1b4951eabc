//! `OPENFRAME_*` environment variables.

use std::path::PathBuf;

use super::{ConfigError, LogFormat, Sensitive, ServerConfig, ServiceUrl};

/// Every variable the server reads, with the setting it overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("OPENFRAME_LISTEN", "listen"),
    ("OPENFRAME_DATA_DIR", "data_dir"),
    ("OPENFRAME_PUBLIC_URL", "public_url"),
    ("OPENFRAME_LOG_FORMAT", "log.format"),
    ("OPENFRAME_LOG_LEVEL", "log.level"),
    ("OPENFRAME_DATABASE_URL", "database.url"),
    ("OPENFRAME_MONGODB_DATABASE", "database.mongodb_database"),
    ("OPENFRAME_REDIS_URL", "redis.url"),
    ("OPENFRAME_REDIS_KEY_PREFIX", "redis.key_prefix"),
    ("OPENFRAME_EVENT_BUS_URL", "event_bus.url"),
    ("OPENFRAME_KAFKA_URL", "event_bus.url"),
    ("OPENFRAME_AGENT_BUS_URL", "agent_bus.url"),
    ("OPENFRAME_NATS_URL", "agent_bus.url"),
    ("OPENFRAME_NATS_PROXY_UPSTREAM", "nats_proxy.upstream"),
    ("OPENFRAME_NATS_AUTHORITY_FILE", "nats_proxy.authority_file"),
    ("OPENFRAME_MASTER_KEY", "security.master_key"),
    ("OPENFRAME_MASTER_KEY_FILE", "security.master_key_file"),
    ("OPENFRAME_BOOTSTRAP", "bootstrap.enabled"),
    ("OPENFRAME_TENANT_ID", "bootstrap.tenant_id"),
    ("OPENFRAME_TENANT_NAME", "bootstrap.tenant_name"),
    ("OPENFRAME_TENANT_DOMAIN", "bootstrap.domain"),
    ("OPENFRAME_OWNER_EMAIL", "bootstrap.owner_email"),
    ("OPENFRAME_OWNER_PASSWORD", "bootstrap.owner_password"),
    ("OPENFRAME_OFFLINE_SWEEP_SECS", "jobs.offline_sweep_secs"),
    ("OPENFRAME_OFFLINE_AFTER_SECS", "jobs.offline_after_secs"),
    ("OPENFRAME_KEY_ROTATION_SECS", "jobs.key_rotation_secs"),
    (
        "OPENFRAME_EXECUTION_WATCHDOG_SECS",
        "jobs.execution_watchdog_secs",
    ),
    (
        "OPENFRAME_DEAD_LETTER_REPLAY_SECS",
        "jobs.dead_letter_replay_secs",
    ),
    ("OPENFRAME_SHUTDOWN_GRACE_SECS", "http.shutdown_grace_secs"),
    (
        "OPENFRAME_API_QUOTA_PER_MINUTE",
        "external_api.quota_per_minute",
    ),
    (
        "OPENFRAME_API_KEY_CACHE_SECS",
        "external_api.key_cache_secs",
    ),
];

/// Sets the setting `name` stands for.
fn set(c: &mut ServerConfig, name: &str, v: String) -> Result<(), ConfigError> {
    match name {
        "OPENFRAME_LISTEN" => c.listen = v,
        "OPENFRAME_DATA_DIR" => c.data_dir = PathBuf::from(v),
        "OPENFRAME_PUBLIC_URL" => c.public_url = Some(v),
        "OPENFRAME_LOG_FORMAT" => {
            c.log.format = match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(ConfigError::new(name, "must be `text` or `json`")),
            }
        }
        "OPENFRAME_LOG_LEVEL" => c.log.level = v,
        "OPENFRAME_DATABASE_URL" => c.database.url = Some(ServiceUrl::new(v)),
        "OPENFRAME_MONGODB_DATABASE" => c.database.mongodb_database = v,
        "OPENFRAME_REDIS_URL" => c.redis.url = Some(ServiceUrl::new(v)),
        "OPENFRAME_REDIS_KEY_PREFIX" => c.redis.key_prefix = v,
        "OPENFRAME_EVENT_BUS_URL" | "OPENFRAME_KAFKA_URL" => {
            c.event_bus.url = Some(ServiceUrl::new(v))
        }
        "OPENFRAME_AGENT_BUS_URL" | "OPENFRAME_NATS_URL" => {
            c.agent_bus.url = Some(ServiceUrl::new(v))
        }
        "OPENFRAME_NATS_PROXY_UPSTREAM" => c.nats_proxy.upstream = Some(v),
        "OPENFRAME_NATS_AUTHORITY_FILE" => c.nats_proxy.authority_file = Some(PathBuf::from(v)),
        "OPENFRAME_MASTER_KEY" => c.security.master_key = Some(Sensitive::new(v)),
        "OPENFRAME_MASTER_KEY_FILE" => c.security.master_key_file = Some(PathBuf::from(v)),
        "OPENFRAME_BOOTSTRAP" => c.bootstrap.enabled = parse_bool(name, &v)?,
        "OPENFRAME_TENANT_ID" => c.bootstrap.tenant_id = v,
        "OPENFRAME_TENANT_NAME" => c.bootstrap.tenant_name = v,
        "OPENFRAME_TENANT_DOMAIN" => c.bootstrap.domain = v,
        "OPENFRAME_OWNER_EMAIL" => c.bootstrap.owner_email = v,
        "OPENFRAME_OWNER_PASSWORD" => c.bootstrap.owner_password = Some(Sensitive::new(v)),
        "OPENFRAME_OFFLINE_SWEEP_SECS" => c.jobs.offline_sweep_secs = secs(name, &v)?,
        "OPENFRAME_OFFLINE_AFTER_SECS" => c.jobs.offline_after_secs = secs(name, &v)?,
        "OPENFRAME_KEY_ROTATION_SECS" => c.jobs.key_rotation_secs = secs(name, &v)?,
        "OPENFRAME_EXECUTION_WATCHDOG_SECS" => c.jobs.execution_watchdog_secs = secs(name, &v)?,
        "OPENFRAME_DEAD_LETTER_REPLAY_SECS" => c.jobs.dead_letter_replay_secs = secs(name, &v)?,
        "OPENFRAME_SHUTDOWN_GRACE_SECS" => c.http.shutdown_grace_secs = secs(name, &v)?,
        "OPENFRAME_API_KEY_CACHE_SECS" => c.external_api.key_cache_secs = secs(name, &v)?,
        "OPENFRAME_API_QUOTA_PER_MINUTE" => {
            c.external_api.quota_per_minute = v
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(name, "must be a whole number"))?
        }
        _ => {}
    }
    Ok(())
}

/// Applies every set (non-empty) variable, in [`ENV_VARS`] order (so `OPENFRAME_KAFKA_URL`
/// wins over `OPENFRAME_EVENT_BUS_URL`, and `OPENFRAME_NATS_URL` over
/// `OPENFRAME_AGENT_BUS_URL`).
pub(super) fn apply(
    config: &mut ServerConfig,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<(), ConfigError> {
    for (name, _) in ENV_VARS {
        let Some(value) = env(name) else { continue };
        if value.is_empty() {
            continue;
        }
        set(config, name, value)?;
    }
    Ok(())
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(name, "must be true or false")),
    }
}

fn secs(name: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::new(name, "must be a whole number of seconds"))
}
