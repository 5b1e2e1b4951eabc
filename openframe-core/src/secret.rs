//! A string that must not leak: redacted in `Debug`, never serialized.

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
