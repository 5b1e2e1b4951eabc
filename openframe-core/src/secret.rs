//! Values that must not leak: [`Secret`] (redacted in `Debug`, never serialized) and
//! [`redact_url`] (connection URLs without their credentials).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret value (a password, a tool API key). `Debug` prints `***`, there is no `Display`
/// and no `Serialize`, so a struct holding one cannot be sent to a client by accident; code
/// that really needs the value calls [`Secret::expose`].
///
/// ```
/// use openframe_core::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value. Call only where the secret is used (e.g. injected into a request).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (for validation without exposing the value).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// `url` without credentials, for `Debug`, logs and errors: `scheme://host:port` per server,
/// comma-separated server lists kept, paths and query strings (which may carry tokens) dropped.
///
/// ```
/// use openframe_core::redact_url;
/// assert_eq!(redact_url("nats://user:s3cret@127.0.0.1:4222"), "nats://127.0.0.1:4222");
/// assert_eq!(redact_url("redis://:pw@h:6379/0?x=1"), "redis://h:6379");
/// assert_eq!(redact_url("tok@host:4222/x?y"), "host:4222");
/// assert_eq!(redact_url("nats://a:b@h1:1, nats://h2:2"), "nats://h1:1,nats://h2:2");
/// assert_eq!(redact_url("nats://p@ss:w@rd@h:1"), "nats://h:1");
/// ```
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|server| {
            let server = server.trim();
            let (scheme, rest) = match server.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, server),
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            match scheme {
                Some(scheme) => format!("{scheme}://{host}"),
                None => host.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
