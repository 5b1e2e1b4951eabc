//! Relay global ids: `base64("Type:rawId")`.
//!
//! Every `id` field of a node type is a global id; arguments that take ids decode them here,
//! checking the type. A malformed id, or one of another type, is a `VALIDATION_ERROR`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openframe_core::{Error, Result};

/// Longest accepted global id, in bytes.
const MAX_GLOBAL_ID_LEN: usize = 256;

/// The node types that have global ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// A machine (device).
    Machine,
    /// An organization.
    Organization,
    /// A tag.
    Tag,
    /// An integrated tool.
    IntegratedTool,
    /// A machine's tool connection.
    ToolConnection,
    /// A user.
    User,
    /// An invitation.
    Invitation,
    /// An API key.
    ApiKey,
    /// One machine's run of a command or script.
    Execution,
    /// A unified event.
    Event,
    /// A stored script.
    Script,
}

impl NodeType {
    const ALL: [Self; 11] = [
        Self::Machine,
        Self::Organization,
        Self::Tag,
        Self::IntegratedTool,
        Self::ToolConnection,
        Self::User,
        Self::Invitation,
        Self::ApiKey,
        Self::Execution,
        Self::Event,
        Self::Script,
    ];

    /// The GraphQL type name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Machine => "Machine",
            Self::Organization => "Organization",
            Self::Tag => "Tag",
            Self::IntegratedTool => "IntegratedTool",
            Self::ToolConnection => "ToolConnection",
            Self::User => "User",
            Self::Invitation => "Invitation",
            Self::ApiKey => "ApiKey",
            Self::Execution => "Execution",
            Self::Event => "Event",
            Self::Script => "Script",
        }
    }
}

/// Encodes the global id of `raw` of type `ty`.
pub fn encode(ty: NodeType, raw: &str) -> async_graphql::ID {
    async_graphql::ID(STANDARD.encode(format!("{}:{raw}", ty.name())))
}

/// Decodes any global id into its type and raw id.
pub fn decode_any(field: &'static str, id: &str) -> Result<(NodeType, String)> {
    if id.len() > MAX_GLOBAL_ID_LEN {
        return Err(Error::invalid(field, "id is too long"));
    }
    let malformed = || Error::invalid(field, "malformed id");
    let bytes = STANDARD.decode(id.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (name, raw) = text.split_once(':').ok_or_else(malformed)?;
    let ty = NodeType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| Error::invalid(field, "unknown id type"))?;
    if raw.is_empty() {
        return Err(malformed());
    }
    Ok((ty, raw.to_owned()))
}

/// Decodes a global id that must be of type `ty`, returning the raw id.
pub fn decode(field: &'static str, ty: NodeType, id: &str) -> Result<String> {
    let (actual, raw) = decode_any(field, id)?;
    if actual != ty {
        return Err(Error::invalid(
            field,
            format!("expected a {} id", ty.name()),
        ));
    }
    Ok(raw)
}

/// Decodes a global id of type `ty` and parses the raw id with `parse` (e.g. a typed id).
pub fn decode_as<T>(
    field: &'static str,
    ty: NodeType,
    id: &str,
    parse: impl FnOnce(String) -> Result<T>,
) -> Result<T> {
    let raw = decode(field, ty, id)?;
    parse(raw).map_err(|_| Error::invalid(field, "malformed id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_ids() {
        let id = encode(NodeType::Machine, "m-1");
        assert_eq!(decode("id", NodeType::Machine, &id).unwrap(), "m-1");
        assert!(decode("id", NodeType::Tag, &id).is_err());
        let other = STANDARD.encode("Nope:1");
        let no_colon = STANDARD.encode("Machine");
        let empty = STANDARD.encode("Machine:");
        for bad in ["", "!!!", &other, &no_colon, &empty, &"QQ".repeat(200)] {
            let err = decode("id", NodeType::Machine, bad).unwrap_err();
            assert_eq!(err.field(), Some("id"), "{bad:?}");
        }
    }
}
