//! Server-side placeholders in tool command arguments.
//!
//! A tool agent definition may carry `${server.registrationSecret}` in its install, run,
//! agent-id and uninstall arguments: the secret the tool's own agent enrolls with (for Fleet,
//! the Fleet enroll secret). It is substituted when the install message is built for a
//! tenant's machines, from a [`ToolSecretSource`]; the definition itself never stores it.
//! A definition that needs it while no secret is known is refused for that install (reported,
//! never sent with the placeholder left in). The agent-side placeholders
//! (`${client.serverUrl}`, `${client.openframeSecret}`, `${client.openframeTokenPath}`,
//! `${client.machineId}`, `${client.assetPath.<assetId>}`) are left for the agent; the link
//! placeholders `{version}` and `{assetsBaseUrl}` are resolved in the links.
//!
//! The original asks Fleet's API for the enroll secret on every install
//! (`FleetMdmAgentRegistrationSecretRetriever`); here the source is a trait, so a deployment
//! may plug a Fleet client in; [`ConfiguredToolSecrets`] holds secrets an administrator set.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use async_trait::async_trait;
use openframe_core::{Error, Result, Secret, TenantId, ToolType};

use super::messages::ToolInstallationMessage;
use super::model::IntegratedToolAgent;

/// The tool's registration secret, resolved by the server.
pub const REGISTRATION_SECRET_PLACEHOLDER: &str = "${server.registrationSecret}";

/// Where the secret a tool's agent enrolls with comes from.
#[async_trait]
pub trait ToolSecretSource: Send + Sync + fmt::Debug + 'static {
    /// The registration secret of `agent`'s tool for `tenant` (`None`: unknown).
    async fn registration_secret(
        &self,
        tenant: &TenantId,
        agent: &IntegratedToolAgent,
    ) -> Result<Option<Secret>>;
}

/// Registration secrets set per tenant and tool type (e.g. by an administrator, or loaded
/// from configuration). `Debug` shows no secret.
#[derive(Default)]
pub struct ConfiguredToolSecrets {
    secrets: RwLock<HashMap<(TenantId, ToolType), Secret>>,
}

impl fmt::Debug for ConfiguredToolSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.secrets.read().map_or(0, |s| s.len());
        f.debug_struct("ConfiguredToolSecrets")
            .field("secrets", &count)
            .finish()
    }
}

impl ConfiguredToolSecrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the registration secret of `tool_type` for `tenant`.
    pub fn set(&self, tenant: &TenantId, tool_type: ToolType, secret: Secret) {
        if let Ok(mut secrets) = self.secrets.write() {
            secrets.insert((tenant.clone(), tool_type), secret);
        }
    }
}

#[async_trait]
impl ToolSecretSource for ConfiguredToolSecrets {
    async fn registration_secret(
        &self,
        tenant: &TenantId,
        agent: &IntegratedToolAgent,
    ) -> Result<Option<Secret>> {
        Ok(self
            .secrets
            .read()
            .ok()
            .and_then(|s| s.get(&(tenant.clone(), agent.tool_type)).cloned()))
    }
}

/// Whether any command argument of `message` holds a server-side placeholder.
pub(super) fn needs_registration_secret(message: &ToolInstallationMessage) -> bool {
    command_args(message).any(|arg| arg.contains(REGISTRATION_SECRET_PLACEHOLDER))
}

fn command_args(message: &ToolInstallationMessage) -> impl Iterator<Item = &String> {
    message
        .installation_command_args
        .iter()
        .chain(&message.run_command_args)
        .chain(&message.tool_agent_id_command_args)
        .chain(&message.uninstallation_command_args)
}

/// `message` with `${server.registrationSecret}` substituted in every command argument.
pub(super) fn with_registration_secret(
    message: &ToolInstallationMessage,
    secret: &Secret,
) -> ToolInstallationMessage {
    let fill = |args: &[String]| -> Vec<String> {
        args.iter()
            .map(|a| a.replace(REGISTRATION_SECRET_PLACEHOLDER, secret.expose()))
            .collect()
    };
    ToolInstallationMessage {
        installation_command_args: fill(&message.installation_command_args),
        run_command_args: fill(&message.run_command_args),
        tool_agent_id_command_args: fill(&message.tool_agent_id_command_args),
        uninstallation_command_args: fill(&message.uninstallation_command_args),
        ..message.clone()
    }
}

/// Resolves the server-side placeholders of `message` for `tenant`: the message unchanged if
/// it has none; `Conflict` if it needs a secret no source knows.
pub(super) async fn resolve(
    source: Option<&dyn ToolSecretSource>,
    tenant: &TenantId,
    agent: &IntegratedToolAgent,
    message: &ToolInstallationMessage,
) -> Result<ToolInstallationMessage> {
    if !needs_registration_secret(message) {
        return Ok(message.clone());
    }
    let secret = match source {
        Some(source) => source.registration_secret(tenant, agent).await?,
        None => None,
    };
    match secret {
        Some(secret) if !secret.expose().is_empty() => {
            Ok(with_registration_secret(message, &secret))
        }
        _ => Err(Error::conflict(
            "the tool agent needs ${server.registrationSecret}, but no registration secret is known for its tool",
        )),
    }
}
