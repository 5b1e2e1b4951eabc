use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::{Error, MachineId, Result, Secret, Timestamp, ToolConnectionId, ToolId, validate};

string_enum!(
    /// The kind of integrated tool.
    ToolType {
        /// MeshCentral remote access.
        MeshCentral = "MESHCENTRAL",
        /// FleetDM / osquery.
        FleetMdm = "FLEET_MDM",
        /// TacticalRMM.
        TacticalRmm = "TACTICAL_RMM",
        /// OpenFrame's own agent.
        OpenframeRmm = "OPENFRAME_RMM",
    }
);

string_enum!(
    /// Where a tool's API key goes on proxied requests.
    CredentialPlacement {
        /// A named header (see [`ToolApiKey::header_name`]).
        Header = "HEADER",
        /// `Authorization: Bearer <key>`.
        BearerToken = "BEARER_TOKEN",
        /// Not sent.
        None = "NONE",
    }
);

string_enum!(
    /// State of a machine's connection to a tool.
    ConnectionStatus { Connected = "CONNECTED", Disconnected = "DISCONNECTED", Error = "ERROR" }
);

/// One URL of a tool (API, UI, WebSocket, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUrl {
    /// Base URL, e.g. `https://mesh.internal:443`.
    pub url: String,
    /// What the URL serves, e.g. `API`, `DASHBOARD`, `WS`.
    pub kind: String,
}

/// A tool's API key and where to put it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolApiKey {
    /// The key (secret).
    pub key: Secret,
    /// Header or bearer.
    pub placement: CredentialPlacement,
    /// Header name for [`CredentialPlacement::Header`].
    pub header_name: Option<String>,
}

/// Credentials OpenFrame uses to call a tool. Secret: redacted in `Debug`, not `Serialize`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCredentials {
    /// Login name.
    pub username: Option<String>,
    /// Password (secret).
    pub password: Option<Secret>,
    /// API key (secret).
    pub api_key: Option<ToolApiKey>,
}

impl ToolCredentials {
    /// The credentials as JSON, secrets included, for the storage layer only.
    pub fn to_storage_json(&self) -> serde_json::Value {
        serde_json::json!({
            "username": self.username,
            "password": self.password.as_ref().map(Secret::expose),
            "apiKey": self.api_key.as_ref().map(|k| serde_json::json!({
                "key": k.key.expose(),
                "placement": k.placement,
                "headerName": k.header_name,
            })),
        })
    }
}

/// A tool integrated for a tenant (MeshCentral, Fleet, ...), reachable through the tool proxy.
///
/// `credentials` is skipped when serializing, so an `IntegratedTool` sent to a client never
/// carries them; [`IntegratedTool::has_credentials`] tells whether some are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegratedTool {
    /// The tool id.
    pub id: ToolId,
    /// Unique key per tenant, used in proxy paths: `/tools/{key}/...`.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Tool kind.
    pub tool_type: ToolType,
    /// Disabled tools are not proxied.
    pub enabled: bool,
    /// URLs of the tool.
    pub urls: Vec<ToolUrl>,
    /// Credentials (secret; never serialized).
    #[serde(skip_serializing, default)]
    pub credentials: Option<ToolCredentials>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl IntegratedTool {
    /// A new enabled tool without credentials.
    pub fn new(
        key: impl Into<String>,
        name: impl Into<String>,
        tool_type: ToolType,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ToolId::generate(),
            key: key.into(),
            name: name.into(),
            tool_type,
            enabled: true,
            urls: Vec::new(),
            credentials: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether credentials are configured (safe to show).
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Checks input limits; the key must be a safe path segment.
    pub fn validate(&self) -> Result<()> {
        crate::id::validate_id("key", &self.key)?;
        validate::name("name", &self.name)?;
        validate::list("urls", &self.urls)?;
        for u in &self.urls {
            validate::name("urls", &u.url)?;
            validate::name("urls", &u.kind)?;
        }
        if let Some(creds) = &self.credentials {
            validate::opt_name("username", creds.username.as_deref())?;
            if creds
                .password
                .as_ref()
                .is_some_and(|p| p.len() > validate::MAX_TEXT_LEN)
            {
                return Err(Error::invalid("password", "is too long"));
            }
            if let Some(k) = &creds.api_key {
                if k.key.len() > validate::MAX_TEXT_LEN {
                    return Err(Error::invalid("apiKey", "is too long"));
                }
                if k.placement == CredentialPlacement::Header && k.header_name.is_none() {
                    return Err(Error::invalid(
                        "headerName",
                        "is required for HEADER placement",
                    ));
                }
                validate::opt_name("headerName", k.header_name.as_deref())?;
            }
        }
        Ok(())
    }
}

/// A machine's link to a tool's agent (e.g. its MeshCentral node id). Unique per
/// (machine, tool type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConnection {
    /// The connection id.
    pub id: ToolConnectionId,
    /// The machine.
    pub machine_id: MachineId,
    /// The tool kind.
    pub tool_type: ToolType,
    /// The tool's own id for this agent.
    pub agent_tool_id: String,
    /// Connection state.
    pub status: ConnectionStatus,
    /// When it connected.
    pub connected_at: Option<Timestamp>,
    /// Last sync with the tool.
    pub last_sync_at: Option<Timestamp>,
    /// When it disconnected.
    pub disconnected_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl ToolConnection {
    /// A new CONNECTED connection.
    pub fn new(
        machine_id: MachineId,
        tool_type: ToolType,
        agent_tool_id: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ToolConnectionId::generate(),
            machine_id,
            tool_type,
            agent_tool_id: agent_tool_id.into(),
            status: ConnectionStatus::Connected,
            connected_at: Some(now),
            last_sync_at: None,
            disconnected_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("agentToolId", &self.agent_tool_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_serialize_or_debug_print() {
        let mut tool = IntegratedTool::new(
            "mesh",
            "MeshCentral",
            ToolType::MeshCentral,
            Timestamp::default(),
        );
        tool.credentials = Some(ToolCredentials {
            username: Some("admin".into()),
            password: Some(Secret::new("pa55-word")),
            api_key: Some(ToolApiKey {
                key: Secret::new("tok-123"),
                placement: CredentialPlacement::BearerToken,
                header_name: None,
            }),
        });
        let json = serde_json::to_string(&tool).unwrap();
        let debug = format!("{tool:?}");
        for leak in ["pa55-word", "tok-123"] {
            assert!(!json.contains(leak));
            assert!(!debug.contains(leak));
        }
        assert!(tool.has_credentials());
        assert!(
            tool.credentials
                .unwrap()
                .to_storage_json()
                .to_string()
                .contains("tok-123")
        );
    }

    #[test]
    fn tool_key_must_be_path_safe() {
        let tool = IntegratedTool::new("../etc", "x", ToolType::FleetMdm, Timestamp::default());
        assert_eq!(tool.validate().unwrap_err().field(), Some("key"));
    }
}
