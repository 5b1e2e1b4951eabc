//! Values that must not be printed: secrets and connection URLs that may hold a password.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A secret setting (a master key, a password). `Debug` and `Serialize` print `<redacted>`,
/// so printing or dumping the configuration never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Sensitive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// A backend connection URL (`mongodb://user:pass@host/...`). `Debug`, `Display` and
/// `Serialize` replace the password (and any `password=` query value) with `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Wraps a URL.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The full URL, credentials included; pass it only to the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (lowercased), or `None` when the value has no `scheme://`.
    pub fn scheme(&self) -> Option<String> {
        let (scheme, _) = self.0.split_once("://")?;
        let ok = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        ok.then(|| scheme.to_ascii_lowercase())
    }

    /// The URL with credentials replaced.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// Replaces the password of `scheme://user:password@host` and `password=` query values.
/// Works on strings `url::Url` cannot parse (several hosts, as MongoDB and NATS allow).
///
/// Unlike `openframe_core::redact_url` (for logs: host and port only), this keeps the user,
/// the path and the harmless query options, because `openframe-server config` must show what
/// is configured (`sqlite:///var/lib/of/openframe.db`, `?replicaSet=rs0`) and stay a valid
/// configuration file.
pub fn redact_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        // Not a URL: it may be anything, including a secret.
        return REDACTED.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{hosts}"),
            // A bare token (`nats://token@host`) is a credential too.
            None => format!("{REDACTED}@{hosts}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_param(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "pass", "secret", "token", "key"]
        .iter()
        .any(|s| key.contains(s))
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ServiceUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ServiceUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_params_are_redacted() {
        assert_eq!(
            redact_url("mongodb://admin:s3cret@db1:27017,db2:27017/of?authSource=admin&password=x"),
            "mongodb://admin:<redacted>@db1:27017,db2:27017/of?authSource=admin&password=<redacted>"
        );
        assert_eq!(
            redact_url("nats://tok3n@nats:4222"),
            "nats://<redacted>@nats:4222"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("not a url s3cret"), REDACTED);
        let url = ServiceUrl::new("redis://:pw@host:6379");
        assert!(!format!("{url:?} {url}").contains("pw@"));
        assert_eq!(url.scheme().as_deref(), Some("redis"));
        assert_eq!(format!("{:?}", Sensitive::new("k")), REDACTED);
    }
}
