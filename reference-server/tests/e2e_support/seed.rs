//! Data written straight into the running server's stores (what a tool adapter or an
//! operator would have created), to test what the APIs show of it.

use openframe_core::{
    CredentialPlacement, IntegratedTool, Machine, MachineId, OsType, Secret, TenantId, ToolApiKey,
    ToolCredentials, ToolType, ToolUrl,
};
use openframe_stream::model::{MappingTable, Severity, ToolSource, UnifiedEvent};

use super::Server;

/// Inserts a machine named `hostname` in `tenant`; returns its id.
pub async fn machine(server: &Server, tenant: &TenantId, hostname: &str) -> String {
    let platform = &server.running.platform;
    let m = Machine::new(
        MachineId::generate(),
        hostname,
        OsType::Linux,
        platform.clock.now(),
    );
    let m = platform
        .stack
        .repos
        .machines
        .insert(tenant, m)
        .await
        .unwrap();
    m.id.to_string()
}

/// Registers an integrated tool `key` of `tenant` whose API is `url`, with a bearer
/// credential `secret`; returns its id.
pub async fn tool(
    server: &Server,
    tenant: &TenantId,
    key: &str,
    url: &str,
    secret: &str,
) -> String {
    let platform = &server.running.platform;
    let mut tool = IntegratedTool::new(
        key,
        format!("{key} tool"),
        ToolType::MeshCentral,
        platform.clock.now(),
    );
    tool.urls.push(ToolUrl {
        url: url.to_owned(),
        kind: "API".into(),
    });
    tool.credentials = Some(ToolCredentials {
        username: None,
        password: None,
        api_key: Some(ToolApiKey {
            key: Secret::new(secret),
            placement: CredentialPlacement::BearerToken,
            header_name: None,
        }),
    });
    let tool = platform
        .stack
        .repos
        .tools
        .insert(tenant, tool)
        .await
        .unwrap();
    tool.id.to_string()
}

/// Appends a unified event of the default tenant about `machine` to the server's event
/// store; returns its id.
pub async fn a_event(server: &Server, machine: &str) -> String {
    let table = MappingTable::builtin();
    let platform = &server.running.platform;
    let id = UnifiedEvent::id_for(ToolSource::Meshcentral, "events", machine, None);
    let event = UnifiedEvent::new(
        &table,
        id,
        ToolSource::Meshcentral,
        "user.login",
        platform.clock.now(),
        None,
    )
    .with_tenant(Some(server.tenant.clone()))
    .with_machine(Some(MachineId::parse(machine).unwrap()))
    .with_severity(Severity::Info)
    .with_summary("user.login on the default tenant");
    platform
        .backends
        .event_store
        .append(std::slice::from_ref(&event))
        .await
        .unwrap();
    event.id.to_string()
}
