//! Tool agents described as data, and the facts agents report about them.

use openframe_core::{
    ConnectionStatus, Error, MachineId, OsType, Result, Timestamp, ToolType, validate,
};
use openframe_data::entity::{Entity, serde_body, serde_from_body};
use openframe_data::store::{FieldDef, FieldKind, IndexDef, Schema, Value};
use serde::{Deserialize, Serialize};

/// Longest accepted command argument, in characters.
pub const MAX_ARG_LEN: usize = validate::MAX_TEXT_LEN;
/// Longest accepted download link, in characters.
pub const MAX_LINK_LEN: usize = 2048;
/// Longest accepted key (tool agent key, tool key, asset id, agent type), in characters.
pub const MAX_KEY_LEN: usize = crate::bus::MAX_NAME_LEN;
/// The `{version}` link placeholder.
pub const VERSION_PLACEHOLDER: &str = "{version}";
/// The `{assetsBaseUrl}` link placeholder.
pub const ASSETS_BASE_URL_PLACEHOLDER: &str = "{assetsBaseUrl}";

/// The [`Entity`] parts shared by this module's documents: the id field, the `revision`
/// as the optimistic-concurrency version (`version` is the tool's own version here, so
/// `entity_basics!` does not fit), the inherent `validate()`, the serde body, and
/// `Timestamped`.
macro_rules! revisioned_entity {
    ($ty:ty, $schema:expr, $name:literal, $id:ident, |$this:ident| $index:expr, |$s:ident| $search:expr) => {
        impl Entity for $ty {
            const SCHEMA: &'static Schema = $schema;
            fn doc_id(&self) -> &str {
                &self.$id
            }
            fn version(&self) -> u64 {
                self.revision
            }
            fn set_version(&mut self, version: u64) {
                self.revision = version;
            }
            fn validate(&self) -> Result<()> {
                Self::validate(self)
            }
            fn index_values(&self) -> Vec<Value> {
                let $this = self;
                $index
            }
            fn search_texts(&self) -> Vec<&str> {
                let $s = self;
                $search
            }
            fn to_body(&self) -> Result<String> {
                serde_body(self)
            }
            fn from_body(body: &str) -> Result<Self> {
                serde_from_body($name, body)
            }
        }

        openframe_data::timestamped!($ty);
    };
}

/// How the agent runs a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionType {
    /// As a system service.
    Service,
    /// In the console session.
    Console,
    /// In the logged-in user's session.
    User,
}

/// How a downloaded tool is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstallationType {
    /// Copy the binary and run it.
    Standard,
    /// A GUI application bundle (macOS `.app`).
    GuiApp,
    /// Register a system service.
    Service,
}

/// Where an asset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssetSource {
    /// An artifact repository (the links are downloaded as they are).
    Artifactory,
    /// The tool's own API, through the server's tool proxy.
    ToolApi,
    /// A GitHub release.
    Github,
}

/// Where to download a tool (or asset) for one OS. `link` may hold the `{version}` and
/// `{assetsBaseUrl}` placeholders, resolved when a message is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadConfiguration {
    /// The OS this download is for.
    pub os: OsType,
    /// The downloaded file's name.
    pub file_name: String,
    /// The name the agent installs it under.
    pub agent_file_name: String,
    /// An `https://` link, a relative path (`/…`) or a link starting with `{assetsBaseUrl}`.
    pub link: String,
    /// How to install it.
    pub installation_type: InstallationType,
    /// The macOS bundle id ([`InstallationType::GuiApp`]).
    #[serde(default)]
    pub bundle_id: Option<String>,
    /// The service name ([`InstallationType::Service`]).
    #[serde(default)]
    pub service_name: Option<String>,
}

impl DownloadConfiguration {
    /// Checks names and the link (see [`validate_link`]).
    pub fn validate(&self) -> Result<()> {
        file_name("fileName", &self.file_name)?;
        file_name("agentFileName", &self.agent_file_name)?;
        validate_link("link", &self.link)?;
        validate::opt_name("bundleId", self.bundle_id.as_deref())?;
        validate::opt_name("serviceName", self.service_name.as_deref())?;
        Ok(())
    }

    /// This configuration with its link's placeholders substituted.
    pub fn resolved(&self, version: &str, assets_base_url: &str) -> Self {
        Self {
            link: resolve_link(&self.link, version, assets_base_url),
            ..self.clone()
        }
    }
}

/// The local file name of an asset on one OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalFilenameConfiguration {
    /// The file name.
    pub filename: String,
    /// The OS.
    pub os: OsType,
}

/// A file a tool needs besides its agent (e.g. `osqueryd` for Fleet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAgentAsset {
    /// The asset id (referenced by `${client.assetPath.<id>}` in command args).
    pub id: String,
    /// The asset version (substituted for `{version}` in its links).
    pub version: String,
    /// Where to download it, per OS.
    #[serde(default)]
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Its local file name, per OS.
    #[serde(default)]
    pub local_filename_configuration: Vec<LocalFilenameConfiguration>,
    /// Where it comes from.
    pub source: AssetSource,
    /// The path on the source (tool API or repository path).
    #[serde(default)]
    pub path: Option<String>,
    /// Whether the agent marks it executable.
    #[serde(default)]
    pub executable: bool,
    /// The SHA-256 of the file, lowercase hex (64 characters).
    #[serde(default)]
    pub sha256: Option<String>,
}

impl ToolAgentAsset {
    /// Checks the id, version, lists, links and checksum.
    pub fn validate(&self) -> Result<()> {
        key("assets.id", &self.id)?;
        validate::name("assets.version", &self.version)?;
        validate::list(
            "assets.downloadConfigurations",
            &self.download_configurations,
        )?;
        for d in &self.download_configurations {
            d.validate()?;
        }
        validate::list(
            "assets.localFilenameConfiguration",
            &self.local_filename_configuration,
        )?;
        for l in &self.local_filename_configuration {
            file_name("assets.localFilenameConfiguration.filename", &l.filename)?;
        }
        validate::opt_name("assets.path", self.path.as_deref())?;
        if let Some(sha) = &self.sha256 {
            validate_sha256("assets.sha256", sha)?;
        }
        Ok(())
    }
}

/// Whether a tool agent's latest update broadcast reached the bus (the rollout outbox).
///
/// The default is "nothing to broadcast" (`published`, no attempts): a new definition is
/// installed, not rolled out as an update; [`PublishState::pending`] asks for a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishState {
    /// The current version was broadcast (or needs no broadcast).
    pub published: bool,
    /// Failed broadcast attempts since the last success.
    pub attempts: u32,
}

impl Default for PublishState {
    fn default() -> Self {
        Self {
            published: true,
            attempts: 0,
        }
    }
}

impl PublishState {
    /// Waiting for a (re)publish, no attempt made yet.
    pub fn pending() -> Self {
        Self {
            published: false,
            attempts: 0,
        }
    }
}

/// A tool agent the OpenFrame client installs on machines (MeshCentral agent, Fleet's
/// orbit, ...). One per key per tenant; stored in `integrated_tool_agents`.
///
/// ```
/// use openframe_agent::tools::{IntegratedToolAgent, SessionType};
/// use openframe_core::{SystemClock, Clock, ToolType};
/// let agent = IntegratedToolAgent::new("meshcentral-agent", ToolType::MeshCentral, "1.1.0", SessionType::Service, SystemClock.now());
/// assert!(agent.validate().is_ok());
/// assert!(agent.enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegratedToolAgent {
    /// The key, unique per tenant, e.g. `meshcentral-agent` (also the document id).
    pub key: String,
    /// The server-side tool's key, e.g. `meshcentral-server`.
    #[serde(default)]
    pub tool_key: Option<String>,
    /// The tool kind.
    pub tool_type: ToolType,
    /// The version to install.
    pub version: String,
    /// How the agent runs it.
    pub session_type: SessionType,
    /// Where to download it, per OS.
    #[serde(default)]
    pub download_configurations: Vec<DownloadConfiguration>,
    /// Additional files.
    #[serde(default)]
    pub assets: Vec<ToolAgentAsset>,
    /// Install command arguments (agent-side placeholders such as `${client.serverUrl}` kept).
    #[serde(default)]
    pub installation_command_args: Vec<String>,
    /// Run command arguments.
    #[serde(default)]
    pub run_command_args: Vec<String>,
    /// Arguments printing the tool's own agent id.
    #[serde(default)]
    pub agent_tool_id_command_args: Vec<String>,
    /// Uninstall command arguments.
    #[serde(default)]
    pub uninstallation_command_args: Vec<String>,
    /// Disabled agents are not installed at registration nor on demand.
    pub enabled: bool,
    /// Follows the OpenFrame client release version.
    #[serde(default)]
    pub release_version: bool,
    /// The update broadcast's state.
    #[serde(default)]
    pub publish_state: PublishState,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency revision (set by the repository).
    #[serde(default)]
    pub revision: u64,
}

impl IntegratedToolAgent {
    /// A new enabled tool agent without downloads, assets or commands.
    pub fn new(
        key: impl Into<String>,
        tool_type: ToolType,
        version: impl Into<String>,
        session_type: SessionType,
        now: Timestamp,
    ) -> Self {
        Self {
            key: key.into(),
            tool_key: None,
            tool_type,
            version: version.into(),
            session_type,
            download_configurations: Vec::new(),
            assets: Vec::new(),
            installation_command_args: Vec::new(),
            run_command_args: Vec::new(),
            agent_tool_id_command_args: Vec::new(),
            uninstallation_command_args: Vec::new(),
            enabled: true,
            release_version: false,
            publish_state: PublishState::default(),
            created_at: now,
            updated_at: now,
            revision: 0,
        }
    }

    /// Checks every limit: keys are single subject tokens, links are https or relative,
    /// checksums are 64 hex digits, lists hold at most 100 items, arguments at most 4096
    /// characters each (`InvalidInput` naming the field).
    pub fn validate(&self) -> Result<()> {
        key("key", &self.key)?;
        if let Some(tool_key) = &self.tool_key {
            key("toolKey", tool_key)?;
        }
        validate::name("version", &self.version)?;
        validate::list("downloadConfigurations", &self.download_configurations)?;
        for d in &self.download_configurations {
            d.validate()?;
        }
        validate::list("assets", &self.assets)?;
        for (i, a) in self.assets.iter().enumerate() {
            a.validate()?;
            if self.assets[..i].iter().any(|b| b.id == a.id) {
                return Err(Error::invalid("assets.id", "asset ids must be unique"));
            }
        }
        for (field, args) in [
            ("installationCommandArgs", &self.installation_command_args),
            ("runCommandArgs", &self.run_command_args),
            ("toolAgentIdCommandArgs", &self.agent_tool_id_command_args),
            (
                "uninstallationCommandArgs",
                &self.uninstallation_command_args,
            ),
        ] {
            validate::list(field, args)?;
            for arg in args {
                validate::max_chars(field, arg, MAX_ARG_LEN)?;
                if arg.contains('\0') {
                    return Err(Error::invalid(field, "must not contain NUL characters"));
                }
            }
        }
        Ok(())
    }
}

pub(crate) static TOOL_AGENT_SCHEMA: Schema = Schema {
    collection: "integrated_tool_agents",
    entity: "tool agent",
    fields: &[
        FieldDef::required("key", FieldKind::Str),
        FieldDef::required("enabled", FieldKind::Bool),
        FieldDef::required("release_version", FieldKind::Bool),
        FieldDef::required("published", FieldKind::Bool),
        FieldDef::required("publish_attempts", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["enabled"],
        },
        IndexDef {
            fields: &["published", "publish_attempts"],
        },
    ],
    unique: &[&["key"]],
};

revisioned_entity!(
    IntegratedToolAgent,
    &TOOL_AGENT_SCHEMA,
    "tool agent",
    key,
    |a| vec![
        Value::str(&a.key),
        Value::Bool(a.enabled),
        Value::Bool(a.release_version),
        Value::Bool(a.publish_state.published),
        Value::Int(i64::from(a.publish_state.attempts)),
    ],
    |a| vec![a.key.as_str()]
);

/// An agent (the OpenFrame client or a tool agent) installed on a machine at a version, as the
/// machine reported it. One per (machine, agent type); stored in `installed_agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledAgent {
    /// `{machineId}:{agentType}`.
    pub id: String,
    /// The machine.
    pub machine_id: MachineId,
    /// The agent type as reported, e.g. `meshcentral-agent`.
    pub agent_type: String,
    /// The installed version.
    pub version: String,
    /// Always CONNECTED when reported.
    pub status: ConnectionStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last report that changed it.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency revision.
    #[serde(default)]
    pub revision: u64,
}

impl InstalledAgent {
    /// The document id of `agent_type` on `machine`.
    pub fn record_id(machine: &MachineId, agent_type: &str) -> String {
        format!("{machine}:{agent_type}")
    }

    /// Checks the agent type and version.
    pub fn validate(&self) -> Result<()> {
        key("agentType", &self.agent_type)?;
        validate::name("version", &self.version)
    }
}

pub(crate) static INSTALLED_AGENT_SCHEMA: Schema = Schema {
    collection: "installed_agents",
    entity: "installed agent",
    fields: &[
        FieldDef::required("machine_id", FieldKind::Str),
        FieldDef::required("agent_type", FieldKind::Str),
    ],
    indexes: &[IndexDef {
        fields: &["machine_id", "agent_type"],
    }],
    unique: &[&["machine_id", "agent_type"]],
};

revisioned_entity!(
    InstalledAgent,
    &INSTALLED_AGENT_SCHEMA,
    "installed agent",
    id,
    |a| vec![Value::str(a.machine_id.as_str()), Value::str(&a.agent_type)],
    |a| vec![a.agent_type.as_str()]
);

/// The OpenFrame client release: its version and downloads, with the broadcast's state.
/// One platform-wide document (`openframe_client_releases`, id `openframe-client`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRelease {
    /// Always [`ClientRelease::ID`].
    pub id: String,
    /// The client version.
    pub version: String,
    /// Where to download it, per OS (links resolved when broadcast).
    pub download_configurations: Vec<DownloadConfiguration>,
    /// The broadcast's state.
    pub publish_state: PublishState,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency revision.
    #[serde(default)]
    pub revision: u64,
}

impl ClientRelease {
    /// The id of the single release document.
    pub const ID: &'static str = "openframe-client";

    /// Checks the version and downloads.
    pub fn validate(&self) -> Result<()> {
        validate::name("version", &self.version)?;
        validate::list("downloadConfigurations", &self.download_configurations)?;
        for d in &self.download_configurations {
            d.validate()?;
        }
        Ok(())
    }
}

pub(crate) static CLIENT_RELEASE_SCHEMA: Schema = Schema {
    collection: "openframe_client_releases",
    entity: "client release",
    fields: &[FieldDef::required("published", FieldKind::Bool)],
    indexes: &[],
    unique: &[],
};

revisioned_entity!(
    ClientRelease,
    &CLIENT_RELEASE_SCHEMA,
    "client release",
    id,
    |r| vec![Value::Bool(r.publish_state.published)],
    |_r| Vec::new()
);

/// Checks a key: 1 to 128 ASCII letters, digits, `-` and `_` (a single subject token, so it
/// fits `machine.all.tool.{key}.update`; the same rule as bus names).
pub(crate) fn key(field: &'static str, value: &str) -> Result<()> {
    crate::bus::validate_name(field, value)
}

/// Checks a file name: a name without path separators or `..`.
fn file_name(field: &'static str, value: &str) -> Result<()> {
    validate::name(field, value)?;
    if value.contains(['/', '\\']) || value == ".." || value == "." {
        return Err(Error::invalid(field, "must be a plain file name"));
    }
    Ok(())
}

/// Checks a download link template: at most 2048 characters without whitespace or control
/// characters, and either `https://host…`, a relative path (`/…`, not `//…`), or a link
/// starting with `{assetsBaseUrl}` (itself an https URL). Placeholders other than `{version}`
/// and `{assetsBaseUrl}` are refused.
///
/// ```
/// use openframe_agent::tools::validate_link;
/// assert!(validate_link("link", "https://github.com/x/releases/download/v{version}/a.zip").is_ok());
/// assert!(validate_link("link", "{assetsBaseUrl}/tool-agent/mesh?os=windows").is_ok());
/// assert!(validate_link("link", "/tool-agent/mesh").is_ok());
/// assert!(validate_link("link", "http://example.com/a.zip").is_err());
/// assert!(validate_link("link", "//evil.example/a").is_err());
/// ```
pub fn validate_link(field: &'static str, link: &str) -> Result<()> {
    if link.is_empty() || link.chars().count() > MAX_LINK_LEN {
        return Err(Error::invalid(field, "must be 1 to 2048 characters"));
    }
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    let probe = resolve_link(link, "0", "https://assets.invalid");
    if probe.contains(['{', '}']) {
        return Err(Error::invalid(
            field,
            "only the {version} and {assetsBaseUrl} placeholders are allowed",
        ));
    }
    if link.contains(ASSETS_BASE_URL_PLACEHOLDER) && !link.starts_with(ASSETS_BASE_URL_PLACEHOLDER)
    {
        return Err(Error::invalid(
            field,
            "{assetsBaseUrl} may only start the link",
        ));
    }
    if probe.starts_with('/') && !probe.starts_with("//") {
        return Ok(());
    }
    check_https(field, &probe)
}

/// Checks an absolute `https://` URL with a host.
pub(crate) fn check_https(field: &'static str, value: &str) -> Result<()> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(Error::invalid(
            field,
            "must be an https:// URL or a relative path",
        )),
    }
}

/// Substitutes the link placeholders.
pub(crate) fn resolve_link(link: &str, version: &str, assets_base_url: &str) -> String {
    link.replace(ASSETS_BASE_URL_PLACEHOLDER, assets_base_url)
        .replace(VERSION_PLACEHOLDER, version)
}

/// Checks (and is the only accepted form of) a SHA-256: exactly 64 lowercase or uppercase hex
/// digits.
pub fn validate_sha256(field: &'static str, value: &str) -> Result<()> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(field, "must be 64 hexadecimal digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        for ok in [
            "https://a.example/x/{version}/y",
            "{assetsBaseUrl}/a?os=mac",
            "/tool-agent/a",
        ] {
            validate_link("link", ok).unwrap();
        }
        for bad in [
            "http://a.example/x",
            "ftp://a.example/x",
            "//a.example/x",
            "relative/path",
            "https://a.example/{other}",
            "https://a.example/{assetsBaseUrl}",
            "https://a.example/ x",
            "",
            "file:///etc/passwd",
            "javascript:alert(1)",
        ] {
            assert!(validate_link("link", bad).is_err(), "{bad}");
        }
        assert_eq!(
            resolve_link("{assetsBaseUrl}/v{version}", "1.2", "https://cdn"),
            "https://cdn/v1.2"
        );
    }

    #[test]
    fn checksums_and_keys() {
        validate_sha256("s", &"aB".repeat(32)).unwrap();
        assert!(validate_sha256("s", &"a".repeat(63)).is_err());
        assert!(validate_sha256("s", &"g".repeat(64)).is_err());
        key("k", "meshcentral-agent").unwrap();
        for bad in ["", "a.b", "a*", "a b", "x/y"] {
            assert!(key("k", bad).is_err());
        }
    }
}
