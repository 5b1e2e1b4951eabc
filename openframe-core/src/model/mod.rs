//! The domain model: the aggregates every OpenFrame-rs crate speaks about.
//!
//! Each aggregate carries a `version` for optimistic concurrency (bumped by the storage layer
//! on every write) and its own `validate()` for input limits.

mod api_key;
mod machine;
mod organization;
mod script;
mod tag;
mod tenant;
mod tool;
mod user;

pub use api_key::ApiKey;
pub use machine::{Machine, MachineStatus, OsType};
pub use organization::{Organization, OrganizationStatus};
pub use script::{
    DEFAULT_SCRIPT_TIMEOUT_SECS, MAX_SCRIPT_BYTES, MAX_SCRIPT_TIMEOUT_SECS, PrivilegeLevel, Script,
    ScriptShell, ScriptStatus,
};
pub use tag::Tag;
pub use tenant::{Tenant, TenantStatus};
pub use tool::{
    ConnectionStatus, CredentialPlacement, IntegratedTool, ToolApiKey, ToolConnection,
    ToolCredentials, ToolType, ToolUrl,
};
pub use user::{User, UserRole, UserStatus, normalize_email};

/// Defines a closed string enum with stable `SCREAMING_SNAKE_CASE` wire names.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $wire, "`")] #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        $crate::Error::invalid(stringify!($name), format!("must be one of: {}", allowed.join(", ")))
                    })
            }
        }
    };
}
pub(crate) use string_enum;
