//! Which backend each URL selects.

use std::path::PathBuf;

use super::{ConfigError, SQLITE_FILE, ServerConfig, ServiceUrl};

/// The document store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// A SQLite file (the default: `{data_dir}/openframe.db`).
    Sqlite(PathBuf),
    /// A MongoDB deployment and database.
    Mongo {
        /// The connection string.
        url: ServiceUrl,
        /// The database name.
        database: String,
    },
    /// In memory: everything is lost on exit (demos and tests).
    Memory,
}

/// Cache, locks and rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinationBackend {
    /// In process (one replica only).
    InProcess,
    /// Redis, shared by every replica.
    Redis {
        /// The connection URL.
        url: ServiceUrl,
        /// The key prefix.
        key_prefix: String,
    },
}

/// A message bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusBackend {
    /// In process (one replica only).
    InProcess,
    /// NATS JetStream.
    Nats(ServiceUrl),
    /// Kafka (event bus only).
    Kafka(ServiceUrl),
}

impl BusBackend {
    /// A short name for logs and `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Nats(_) => "nats",
            Self::Kafka(_) => "kafka",
        }
    }
}

impl StorageBackend {
    /// A short name for logs and `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Mongo { .. } => "mongodb",
            Self::Memory => "memory",
        }
    }
}

fn scheme_of(field: &str, url: &ServiceUrl) -> Result<String, ConfigError> {
    url.scheme()
        .ok_or_else(|| ConfigError::new(field, "must be a URL such as scheme://host"))
}

impl ServerConfig {
    /// The document store the database URL selects.
    pub fn storage(&self) -> Result<StorageBackend, ConfigError> {
        const FIELD: &str = "database.url";
        let Some(url) = &self.database.url else {
            return Ok(StorageBackend::Sqlite(self.data_dir.join(SQLITE_FILE)));
        };
        match scheme_of(FIELD, url)?.as_str() {
            "sqlite" => {
                let path = url.expose().split_once("://").map_or("", |(_, p)| p);
                // `sqlite://` alone (or `sqlite://?...`) means the default file.
                let path = path.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    Ok(StorageBackend::Sqlite(self.data_dir.join(SQLITE_FILE)))
                } else {
                    Ok(StorageBackend::Sqlite(PathBuf::from(path)))
                }
            }
            "mongodb" | "mongodb+srv" => {
                if self.database.mongodb_database.trim().is_empty() {
                    return Err(ConfigError::new(
                        "database.mongodb_database",
                        "must not be empty",
                    ));
                }
                Ok(StorageBackend::Mongo {
                    url: url.clone(),
                    database: self.database.mongodb_database.clone(),
                })
            }
            "memory" => Ok(StorageBackend::Memory),
            other => Err(ConfigError::new(
                FIELD,
                format!("unsupported scheme `{other}://`; use sqlite://, mongodb:// or memory://"),
            )),
        }
    }

    /// Where the cache, locks and rate limits live.
    pub fn coordination(&self) -> Result<CoordinationBackend, ConfigError> {
        const FIELD: &str = "redis.url";
        let Some(url) = &self.redis.url else {
            return Ok(CoordinationBackend::InProcess);
        };
        match scheme_of(FIELD, url)?.as_str() {
            "redis" | "rediss" => Ok(CoordinationBackend::Redis {
                url: url.clone(),
                key_prefix: self.redis.key_prefix.clone(),
            }),
            other => Err(ConfigError::new(
                FIELD,
                format!("unsupported scheme `{other}://`; use redis:// or rediss://"),
            )),
        }
    }

    /// The event bus.
    pub fn event_bus(&self) -> Result<BusBackend, ConfigError> {
        bus("event_bus.url", self.event_bus.url.as_ref(), true)
    }

    /// The agent bus.
    pub fn agent_bus(&self) -> Result<BusBackend, ConfigError> {
        bus("agent_bus.url", self.agent_bus.url.as_ref(), false)
    }
}

fn bus(
    field: &str,
    url: Option<&ServiceUrl>,
    kafka_allowed: bool,
) -> Result<BusBackend, ConfigError> {
    let Some(url) = url else {
        return Ok(BusBackend::InProcess);
    };
    match scheme_of(field, url)?.as_str() {
        "nats" | "tls" => Ok(BusBackend::Nats(url.clone())),
        "kafka" if kafka_allowed => Ok(BusBackend::Kafka(url.clone())),
        "memory" => Ok(BusBackend::InProcess),
        other => Err(ConfigError::new(
            field,
            if kafka_allowed {
                format!("unsupported scheme `{other}://`; use kafka://, nats:// or memory://")
            } else {
                format!("unsupported scheme `{other}://`; use nats:// or memory://")
            },
        )),
    }
}
