//! Typed, validated identifiers.
//!
//! Every id is a newtype over a string that was checked on construction, so a value of type
//! [`MachineId`] is always safe to interpolate into a NATS subject, a Redis key or a URL path.
//! The shared rule: 1 to 64 characters of ASCII letters, digits, `-` and `_`, not starting with
//! `-` or `_` (a leading `_` is reserved for internal partitions).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Longest accepted id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Checks the shared id rule; `kind` names the id in the error (e.g. `"machineId"`).
pub fn validate_id(kind: &'static str, value: &str) -> Result<(), Error> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_ID_LEN {
        Some("must be at most 64 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some("may contain only ASCII letters, digits, '-' and '_'")
    } else if value.starts_with(['-', '_']) {
        Some("must start with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::invalid(kind, reason)),
        None => Ok(()),
    }
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                validate_id($field, &value)?;
                Ok(Self(value))
            }

            /// A new random, time-ordered id (UUIDv7), so ids sort roughly by creation time.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's field name in errors and JSON (e.g. `"machineId"`).
            pub const FIELD: &'static str = $field;
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A tenant: the isolation boundary of every repository call, cache key and token.
    ///
    /// A `&TenantId` is the tenant scope that every repository method takes; there is no
    /// ambient tenant, so a query without a tenant does not compile.
    ///
    /// ```
    /// use openframe_core::TenantId;
    /// let tenant = TenantId::parse("acme").unwrap();
    /// assert_eq!(tenant.as_str(), "acme");
    /// assert!(TenantId::parse("acme/../x").is_err());
    /// ```
    TenantId,
    "tenantId"
);
typed_id!(
    /// A user (a person) of one tenant.
    UserId,
    "userId"
);
typed_id!(
    /// An organization (an MSP's customer) of one tenant.
    OrganizationId,
    "organizationId"
);
typed_id!(
    /// A managed machine. Safe as a NATS subject token (`machine.{id}.command`).
    ///
    /// ```
    /// use openframe_core::MachineId;
    /// assert!(MachineId::parse("5f0c-a1").is_ok());
    /// assert!(MachineId::parse("a.b").is_err()); // '.' would split a NATS subject
    /// assert!(MachineId::parse("a*").is_err());
    /// ```
    MachineId,
    "machineId"
);
typed_id!(
    /// An integrated tool (MeshCentral, FleetDM, ...) configured for a tenant.
    ToolId,
    "toolId"
);
typed_id!(
    /// A stored script of one tenant.
    ScriptId,
    "scriptId"
);

typed_id!(
    /// A tag that can be attached to machines.
    TagId,
    "tagId"
);
typed_id!(
    /// A connection between a machine and an integrated tool's agent.
    ToolConnectionId,
    "toolConnectionId"
);
typed_id!(
    /// The public part of an API key (`ak_<16 hex>`); the secret part is never an id.
    ApiKeyId,
    "apiKeyId"
);

impl ApiKeyId {
    /// A new API key id in the `ak_<16 hex>` format.
    pub fn generate_key_id() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("ak_{}", &hex[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_and_slug_ids() {
        assert!(MachineId::parse("0192f7a4-1c2b-7d3e-8f00-123456789abc").is_ok());
        assert!(TenantId::parse("acme_msp-1").is_ok());
        let generated = MachineId::generate();
        assert!(MachineId::parse(generated.as_str()).is_ok());
    }

    #[test]
    fn rejects_unsafe_ids_with_field_name() {
        for bad in [
            "",
            "a b",
            "a.b",
            "a>",
            "*",
            "_x",
            "-x",
            "é",
            &"x".repeat(65),
        ] {
            let err = MachineId::parse(bad).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::ValidationError, "{bad:?}");
            assert_eq!(err.field(), Some("machineId"));
        }
    }

    #[test]
    fn deserialization_validates() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        assert!(serde_json::from_str::<TenantId>("\"a.b\"").is_err());
    }

    #[test]
    fn api_key_ids_have_the_original_format() {
        let id = ApiKeyId::generate_key_id();
        let hex = id.as_str().strip_prefix("ak_").unwrap();
        assert_eq!(hex.len(), 16);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn generated_ids_are_time_ordered() {
        let a = MachineId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MachineId::generate();
        assert!(a < b);
    }
}
