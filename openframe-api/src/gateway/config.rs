//! [`GatewayConfig`]: CORS origins, body limits and the tool proxy's timeouts and TLS roots.

use std::path::PathBuf;
use std::time::Duration;

use openframe_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of the gateway router. Serde-friendly (snake_case keys, durations in ms).
///
/// ```
/// use openframe_api::gateway::GatewayConfig;
/// let config = GatewayConfig::default().with_cors_origins(["https://console.example"]);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.tool_proxy.connect_timeout().as_secs(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Origins allowed to call the API from a browser (`https://console.example`), or `["*"]`
    /// for any origin without credentials. Empty: no CORS headers (same origin only).
    pub cors_origins: Vec<String>,
    /// Largest request body of every route but the tool proxy (default 1 MiB); larger
    /// bodies are answered 413 `PAYLOAD_TOO_LARGE`.
    pub max_body_bytes: usize,
    /// The tool proxy.
    pub tool_proxy: ToolProxyConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            tool_proxy: ToolProxyConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Sets the allowed CORS origins.
    pub fn with_cors_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cors_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the body limit of every route but the tool proxy.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Sets the tool proxy settings.
    pub fn with_tool_proxy(mut self, tool_proxy: ToolProxyConfig) -> Self {
        self.tool_proxy = tool_proxy;
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        for origin in &self.cors_origins {
            let ok = origin == "*"
                || url::Url::parse(origin).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.path() == "/"
                        && !origin.ends_with('/')
                        && u.query().is_none()
                });
            if !ok {
                return Err(Error::invalid(
                    "cors_origins",
                    "each origin is `*` or scheme://host[:port] without a path",
                ));
            }
        }
        if self.cors_origins.len() > 1 && self.cors_origins.iter().any(|o| o == "*") {
            return Err(Error::invalid(
                "cors_origins",
                "`*` cannot be combined with other origins",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::invalid("max_body_bytes", "must be at least 1"));
        }
        self.tool_proxy.validate()
    }
}

/// Settings of the tool proxy (`/tools/{toolKey}/...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolProxyConfig {
    /// Time to connect to a tool, TLS handshake included (default 10,000 ms); 504 after.
    pub connect_timeout_ms: u64,
    /// Time to wait for a tool's response headers, and longest silence while streaming a
    /// body (default 60,000 ms); 504 after.
    pub response_timeout_ms: u64,
    /// Largest request body forwarded to a tool (default 100 MiB).
    pub max_body_bytes: usize,
    /// Trust the public Web PKI roots (default true).
    pub use_public_roots: bool,
    /// Extra trusted root CAs, PEM text (for tools with a private CA).
    pub extra_root_ca_pem: Vec<String>,
    /// Extra trusted root CAs, PEM files read at startup.
    pub extra_root_ca_files: Vec<PathBuf>,
}

impl Default for ToolProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            response_timeout_ms: 60_000,
            max_body_bytes: 100 * 1024 * 1024,
            use_public_roots: true,
            extra_root_ca_pem: Vec::new(),
            extra_root_ca_files: Vec::new(),
        }
    }
}

impl ToolProxyConfig {
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The response timeout.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// Sets both timeouts.
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout_ms = connect.as_millis().try_into().unwrap_or(u64::MAX);
        self.response_timeout_ms = response.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// Trusts one more root CA (PEM).
    pub fn with_root_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_root_ca_pem.push(pem.into());
        self
    }

    /// Whether the public Web PKI roots are trusted.
    pub fn with_public_roots(mut self, on: bool) -> Self {
        self.use_public_roots = on;
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.connect_timeout_ms == 0 || self.response_timeout_ms == 0 {
            return Err(Error::invalid(
                "tool_proxy",
                "timeouts must be at least 1 ms",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::invalid(
                "tool_proxy.max_body_bytes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
