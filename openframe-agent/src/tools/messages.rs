//! The wire messages of tool installation, rollout and the agents' reports (camelCase, as the
//! original agent speaks them).

use openframe_core::{Error, Result, ToolType, validate};
use serde::{Deserialize, Serialize};

use super::model::{
    AssetSource, DownloadConfiguration, IntegratedToolAgent, LocalFilenameConfiguration,
    SessionType, ToolAgentAsset, key,
};

/// An asset as the install message carries it (links resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallationAsset {
    /// The asset id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Downloads per OS, links resolved with the asset's version.
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Local file names per OS.
    pub local_filename_configuration: Vec<LocalFilenameConfiguration>,
    /// Where it comes from.
    pub source: AssetSource,
    /// The path on the source.
    pub path: Option<String>,
    /// Whether it is marked executable.
    pub executable: bool,
    /// Its SHA-256 (lowercase hex), when known (not in the original; agents ignore it).
    pub sha256: Option<String>,
}

/// What the agent receives on `machine.{id}.tool-installation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolInstallationMessage {
    /// The tool agent's key, e.g. `meshcentral-agent`.
    pub tool_agent_id: String,
    /// The server-side tool's key, `""` if none.
    pub tool_id: String,
    /// The tool kind.
    pub tool_type: ToolType,
    /// The version to install.
    pub version: String,
    /// How to run it.
    pub session_type: SessionType,
    /// Downloads per OS, links resolved.
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Additional files, links resolved.
    pub assets: Vec<InstallationAsset>,
    /// Install command arguments.
    pub installation_command_args: Vec<String>,
    /// Run command arguments.
    pub run_command_args: Vec<String>,
    /// Arguments printing the tool's own agent id.
    pub tool_agent_id_command_args: Vec<String>,
    /// Uninstall command arguments.
    pub uninstallation_command_args: Vec<String>,
    /// Reinstall even if installed.
    pub reinstall: bool,
}

impl ToolInstallationMessage {
    /// The message for `agent`, links resolved against `assets_base_url`.
    pub fn build(agent: &IntegratedToolAgent, assets_base_url: &str, reinstall: bool) -> Self {
        Self {
            tool_agent_id: agent.key.clone(),
            tool_id: agent.tool_key.clone().unwrap_or_default(),
            tool_type: agent.tool_type,
            version: agent.version.clone(),
            session_type: agent.session_type,
            download_configurations: resolve_all(
                &agent.download_configurations,
                &agent.version,
                assets_base_url,
            ),
            assets: agent
                .assets
                .iter()
                .map(|a| InstallationAsset {
                    id: a.id.clone(),
                    version: a.version.clone(),
                    download_configurations: resolve_all(
                        &a.download_configurations,
                        &a.version,
                        assets_base_url,
                    ),
                    local_filename_configuration: a.local_filename_configuration.clone(),
                    source: a.source,
                    path: a.path.clone(),
                    executable: a.executable,
                    sha256: a.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                })
                .collect(),
            installation_command_args: agent.installation_command_args.clone(),
            run_command_args: agent.run_command_args.clone(),
            tool_agent_id_command_args: agent.agent_tool_id_command_args.clone(),
            uninstallation_command_args: agent.uninstallation_command_args.clone(),
            reinstall,
        }
    }
}

/// An asset as the tool update broadcast carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAsset {
    /// The asset id.
    pub asset_id: String,
    /// Its version.
    pub version: String,
    /// Whether it is marked executable.
    pub executable: bool,
    /// Downloads per OS, links resolved.
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Its SHA-256 (lowercase hex), when known (not in the original; agents ignore it).
    pub sha256: Option<String>,
}

impl UpdateAsset {
    fn build(asset: &ToolAgentAsset, assets_base_url: &str) -> Self {
        Self {
            asset_id: asset.id.clone(),
            version: asset.version.clone(),
            executable: asset.executable,
            download_configurations: resolve_all(
                &asset.download_configurations,
                &asset.version,
                assets_base_url,
            ),
            sha256: asset.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
        }
    }
}

/// What agents receive on `machine.all.tool.{toolAgentId}.update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUpdateMessage {
    /// The tool agent's key.
    pub tool_agent_id: String,
    /// The new version.
    pub version: String,
    /// How to run it.
    pub session_type: SessionType,
    /// Downloads per OS, links resolved.
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Additional files, links resolved.
    pub assets: Vec<UpdateAsset>,
}

impl ToolUpdateMessage {
    /// The broadcast for `agent`.
    pub fn build(agent: &IntegratedToolAgent, assets_base_url: &str) -> Self {
        Self {
            tool_agent_id: agent.key.clone(),
            version: agent.version.clone(),
            session_type: agent.session_type,
            download_configurations: resolve_all(
                &agent.download_configurations,
                &agent.version,
                assets_base_url,
            ),
            assets: agent
                .assets
                .iter()
                .map(|a| UpdateAsset::build(a, assets_base_url))
                .collect(),
        }
    }
}

/// What agents receive on `machine.all.client-update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientUpdateMessage {
    /// The new client version.
    pub version: String,
    /// Downloads per OS, links resolved.
    pub download_configurations: Vec<DownloadConfiguration>,
}

/// What an agent reports on `machine.{id}.tool-connection`: the tool's own id for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConnectionReport {
    /// The tool kind (case-insensitive on input).
    pub tool_type: ToolType,
    /// The tool's raw agent id.
    pub agent_tool_id: String,
}

/// What an agent reports on `machine.{id}.installed-agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledAgentReport {
    /// The agent type, e.g. `openframe-client` or `meshcentral-agent`.
    pub agent_type: String,
    /// The installed version.
    pub version: String,
}

/// Largest report payload accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// Parses a report payload: a JSON object (or a JSON string holding one, as the original agent
/// sometimes double-encodes), unknown fields ignored. `InvalidInput` on `payload` for anything
/// else; the error never quotes the payload.
fn parse_object(payload: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let malformed = || Error::invalid("payload", "is not a JSON object");
    if payload.len() > MAX_REPORT_BYTES {
        return Err(Error::invalid("payload", "is too large"));
    }
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|_| malformed())?;
    let value = match value {
        serde_json::Value::String(inner) => {
            serde_json::from_str(&inner).map_err(|_| malformed())?
        }
        other => other,
    };
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(malformed()),
    }
}

fn string_field(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &'static str,
) -> Result<String> {
    match map.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(Error::invalid(name, "must be a non-blank string")),
    }
}

impl ToolConnectionReport {
    /// Parses and checks a report (see [`MAX_REPORT_BYTES`]); `InvalidInput` if malformed.
    ///
    /// ```
    /// use openframe_agent::tools::ToolConnectionReport;
    /// let r = ToolConnectionReport::parse(br#"{"toolType":"meshcentral","agentToolId":"abc","extra":1}"#).unwrap();
    /// assert_eq!(r.agent_tool_id, "abc");
    /// assert!(ToolConnectionReport::parse(b"{\"toolType\":\"NOPE\",\"agentToolId\":\"x\"}").is_err());
    /// ```
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let map = parse_object(payload)?;
        let tool_type: ToolType = string_field(&map, "toolType")?
            .parse()
            .map_err(|_| Error::invalid("toolType", "is not a known tool type"))?;
        let agent_tool_id = string_field(&map, "agentToolId")?;
        validate::name("agentToolId", &agent_tool_id)?;
        Ok(Self {
            tool_type,
            agent_tool_id,
        })
    }
}

impl InstalledAgentReport {
    /// Parses and checks a report; `InvalidInput` if malformed.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let map = parse_object(payload)?;
        let agent_type = string_field(&map, "agentType")?;
        key("agentType", &agent_type)?;
        let version = string_field(&map, "version")?;
        validate::name("version", &version)?;
        Ok(Self {
            agent_type,
            version,
        })
    }
}

/// Resolves every link.
pub(crate) fn resolve_all(
    configs: &[DownloadConfiguration],
    version: &str,
    assets_base_url: &str,
) -> Vec<DownloadConfiguration> {
    configs
        .iter()
        .map(|d| d.resolved(version, assets_base_url))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse_leniently_and_reject_garbage() {
        let r = ToolConnectionReport::parse(
            br#""{\"toolType\":\"MESHCENTRAL\",\"agentToolId\":\"n1\"}""#,
        )
        .unwrap();
        assert_eq!(r.tool_type, ToolType::MeshCentral);
        for bad in [
            &b"not json"[..],
            b"[]",
            b"null",
            b"{}",
            br#"{"toolType":"MESHCENTRAL"}"#,
            br#"{"toolType":"MESHCENTRAL","agentToolId":"  "}"#,
            br#"{"toolType":1,"agentToolId":"x"}"#,
        ] {
            assert!(ToolConnectionReport::parse(bad).is_err());
        }
        let a = InstalledAgentReport::parse(
            br#"{"agentType":"openframe-client","version":"1.0","machineId":"m"}"#,
        )
        .unwrap();
        assert_eq!(a.version, "1.0");
        assert!(InstalledAgentReport::parse(br#"{"agentType":"a.b","version":"1"}"#).is_err());
        assert!(InstalledAgentReport::parse(&vec![b' '; MAX_REPORT_BYTES + 1]).is_err());
    }
}
