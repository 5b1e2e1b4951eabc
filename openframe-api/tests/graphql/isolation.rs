//! Tenant isolation, table-driven: tenant A's owner token with tenant B's ids sees nothing
//! (null, empty lists) and changes nothing (`NOT_FOUND`), for every query field and every
//! mutation that takes an id.

use crate::support::{Harness, gid};
use openframe_core::{MachineStatus, ToolConnection, ToolType};
use serde_json::{Value, json};

/// Tenant B's objects.
struct Theirs {
    machine: String,
    org: String,
    tag: String,
    connection: String,
    user: String,
    invitation: String,
    api_key: String,
    execution: String,
    execution_batch: String,
    event: String,
    script: String,
}

async fn seed_tenant_b(h: &Harness) -> Theirs {
    let b = &h.b;
    let m = h.machine(b, "their-host", MachineStatus::Online).await;
    let org = h.org(b, "Their Org").await;
    let tag = h.tag(b, "their-tag").await;
    let conn = ToolConnection::new(
        m.id.clone(),
        ToolType::MeshCentral,
        "node-1",
        openframe_core::Timestamp::default(),
    );
    let conn = h
        .stack
        .repos
        .tool_connections
        .insert(&b.id, conn)
        .await
        .unwrap();
    let inv = h
        .ok(b, "mutation { createInvitation(input: {email: \"x@globex.example\", roles: [ADMIN]}) { invitation { id } } }", json!({}))
        .await;
    let key = h
        .ok(b, "mutation { createApiKey(input: {name: \"k\", scopes: [\"devices:read\"]}) { apiKey { id } } }", json!({}))
        .await;
    let run = h
        .ok(
            b,
            "mutation($t: TargetInput!) { runCommand(input: {target: $t, command: \"id\", shell: BASH}) { executionId executions { id } } }",
            json!({"t": {"machineIds": [gid("Machine", m.id.as_str())]}}),
        )
        .await;
    let event = h
        .event(
            b,
            "user.login",
            openframe_stream::model::Severity::Info,
            Some(&m),
            0,
        )
        .await;
    let script = h
        .ok(b, "mutation { createScript(input: {name: \"theirs\", shell: BASH, scriptBody: \"id\"}) { id } }", json!({}))
        .await;
    Theirs {
        script: script["createScript"]["id"].as_str().unwrap().to_owned(),
        event: gid("Event", &event.id.to_string()),
        machine: gid("Machine", m.id.as_str()),
        org: gid("Organization", org.id.as_str()),
        tag: gid("Tag", tag.id.as_str()),
        connection: gid("ToolConnection", conn.id.as_str()),
        user: gid("User", b.owner.id.as_str()),
        invitation: inv["createInvitation"]["invitation"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        api_key: key["createApiKey"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        execution: run["runCommand"]["executions"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        execution_batch: run["runCommand"]["executionId"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

#[tokio::test]
async fn tenant_a_sees_nothing_of_tenant_b() {
    let h = Harness::start().await;
    let t = seed_tenant_b(&h).await;
    let all_ids = json!([
        t.machine,
        t.org,
        t.tag,
        t.connection,
        t.user,
        t.invitation,
        t.api_key,
        t.execution,
        t.event,
        t.script
    ]);

    // (query, variables, JSON pointer that must be null / an empty list / zero)
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "query($id: ID!) { device(id: $id) { id } }",
            json!({"id": t.machine}),
            "/device",
            Value::Null,
        ),
        (
            "query($id: String!) { deviceByMachineId(machineId: $id) { id } }",
            json!({"id": String::from_utf8(base64_decode(&t.machine)).unwrap().split_once(':').unwrap().1}),
            "/deviceByMachineId",
            Value::Null,
        ),
        (
            "{ devices { edges { node { id } } filteredCount } }",
            json!({}),
            "/devices/filteredCount",
            json!(0),
        ),
        (
            "query($o: ID!) { devices(filter: {organizationIds: [$o]}) { filteredCount } }",
            json!({"o": t.org}),
            "/devices/filteredCount",
            json!(0),
        ),
        (
            "{ deviceFilters { statuses { value } filteredCount } }",
            json!({}),
            "/deviceFilters/statuses",
            json!([]),
        ),
        (
            "query($id: ID!) { organization(id: $id) { id } }",
            json!({"id": t.org}),
            "/organization",
            Value::Null,
        ),
        (
            "{ organizations(search: \"Their\") { filteredCount } }",
            json!({}),
            "/organizations/filteredCount",
            json!(0),
        ),
        (
            "query($id: ID!) { tag(id: $id) { id } }",
            json!({"id": t.tag}),
            "/tag",
            Value::Null,
        ),
        (
            "{ tags { filteredCount } }",
            json!({}),
            "/tags/filteredCount",
            json!(0),
        ),
        (
            "query($id: ID!) { toolConnection(id: $id) { id } }",
            json!({"id": t.connection}),
            "/toolConnection",
            Value::Null,
        ),
        (
            "query($m: ID!) { toolConnections(filter: {machineIds: [$m]}) { filteredCount } }",
            json!({"m": t.machine}),
            "/toolConnections/filteredCount",
            json!(0),
        ),
        (
            "{ integratedTools { filteredCount } }",
            json!({}),
            "/integratedTools/filteredCount",
            json!(0),
        ),
        (
            "query($id: ID!) { user(id: $id) { id } }",
            json!({"id": t.user}),
            "/user",
            Value::Null,
        ),
        (
            "{ users(search: \"globex\") { filteredCount } }",
            json!({}),
            "/users/filteredCount",
            json!(0),
        ),
        (
            "{ invitations { edges { node { id } } } }",
            json!({}),
            "/invitations/edges",
            json!([]),
        ),
        (
            "{ apiKeys { filteredCount } }",
            json!({}),
            "/apiKeys/filteredCount",
            json!(0),
        ),
        (
            "query($id: ID!) { execution(id: $id) { id } }",
            json!({"id": t.execution}),
            "/execution",
            Value::Null,
        ),
        (
            "query($b: String) { executions(filter: {executionId: $b}) { filteredCount } }",
            json!({"b": t.execution_batch}),
            "/executions/filteredCount",
            json!(0),
        ),
        (
            "{ executions { filteredCount } }",
            json!({}),
            "/executions/filteredCount",
            json!(0),
        ),
        (
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({"ids": all_ids}),
            "/nodes",
            json!([null, null, null, null, null, null, null, null, null, null]),
        ),
        (
            "query($id: ID!) { script(id: $id) { id } }",
            json!({"id": t.script}),
            "/script",
            Value::Null,
        ),
        (
            "{ scripts { filteredCount } }",
            json!({}),
            "/scripts/filteredCount",
            json!(0),
        ),
        (
            "query($id: ID!) { event(id: $id) { id } }",
            json!({"id": t.event}),
            "/event",
            Value::Null,
        ),
        (
            "{ events { filteredCount } }",
            json!({}),
            "/events/filteredCount",
            json!(0),
        ),
        (
            "query($m: ID!) { events(filter: {machineIds: [$m]}) { edges { node { id } } } }",
            json!({"m": t.machine}),
            "/events/edges",
            json!([]),
        ),
        (
            "{ eventFilters { eventTypes { value } machines { value } filteredCount } }",
            json!({}),
            "/eventFilters/machines",
            json!([]),
        ),
    ];
    for (query, vars, pointer, expected) in cases {
        let data = h.ok(&h.a, query, vars).await;
        assert_eq!(data.pointer(pointer), Some(&expected), "{query}: {data}");
    }
    for id in all_ids.as_array().unwrap() {
        let data = h
            .ok(
                &h.a,
                "query($id: ID!) { node(id: $id) { id } }",
                json!({"id": id}),
            )
            .await;
        assert!(data["node"].is_null(), "node({id}) leaked: {data}");
    }
}

#[tokio::test]
async fn tenant_a_cannot_change_tenant_b() {
    let h = Harness::start().await;
    let t = seed_tenant_b(&h).await;
    let mine = h.machine(&h.a, "my-host", MachineStatus::Online).await;
    let my_machine = gid("Machine", mine.id.as_str());

    let cases: Vec<(&str, Value)> = vec![
        (
            "mutation($id: ID!) { updateDevice(input: {id: $id, nickname: \"x\"}) { id } }",
            json!({"id": t.machine}),
        ),
        (
            "mutation($id: ID!, $o: ID!) { updateDevice(input: {id: $id, organizationId: $o}) { id } }",
            json!({"id": my_machine, "o": t.org}),
        ),
        (
            "mutation($id: ID!, $t: ID!) { updateDevice(input: {id: $id, tagIds: [$t]}) { id } }",
            json!({"id": my_machine, "t": t.tag}),
        ),
        (
            "mutation($id: ID!) { updateOrganization(input: {id: $id, name: \"x\"}) { id } }",
            json!({"id": t.org}),
        ),
        (
            "mutation($id: ID!) { deleteOrganization(id: $id) }",
            json!({"id": t.org}),
        ),
        (
            "mutation($id: ID!) { updateTag(input: {id: $id, name: \"x\"}) { id } }",
            json!({"id": t.tag}),
        ),
        (
            "mutation($id: ID!) { deleteTag(id: $id) }",
            json!({"id": t.tag}),
        ),
        (
            "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
            json!({"id": t.invitation}),
        ),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({"id": t.api_key}),
        ),
        (
            "mutation($id: ID!) { regenerateApiKey(id: $id) { fullKey } }",
            json!({"id": t.api_key}),
        ),
        (
            "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }",
            json!({"id": t.api_key}),
        ),
        (
            "mutation($m: ID!) { runCommand(input: {target: {machineIds: [$m]}, command: \"id\", shell: BASH}) { executionId } }",
            json!({"m": t.machine}),
        ),
        (
            "mutation($id: ID!) { updateScript(input: {id: $id, name: \"x\"}) { id } }",
            json!({"id": t.script}),
        ),
        (
            "mutation($id: ID!) { deleteScript(id: $id) }",
            json!({"id": t.script}),
        ),
        (
            "mutation($s: ID!, $m: ID!) { runScript(input: {scriptId: $s, target: {machineIds: [$m]}}) { executionId } }",
            json!({"s": t.script, "m": my_machine}),
        ),
        (
            "mutation($s: ID!, $m: ID!) { runScript(input: {scriptId: $s, target: {machineIds: [$m]}}) { executionId } }",
            json!({"s": t.script, "m": t.machine}),
        ),
        (
            "mutation($b: String!) { cancelExecution(executionId: $b) { id } }",
            json!({"b": t.execution_batch}),
        ),
    ];
    for (query, vars) in cases {
        let code = h.err_code(&h.a, query, vars).await;
        assert_eq!(code, "NOT_FOUND", "{query}");
    }

    // Tenant B's data is untouched.
    let theirs = h
        .ok(&h.b, "query($id: ID!, $o: ID!, $t: ID!) { device(id: $id) { nickname } organization(id: $o) { name status } tag(id: $t) { name } apiKeys { filteredCount } executions(filter: {statuses: [RUNNING]}) { filteredCount } }",
            json!({"id": t.machine, "o": t.org, "t": t.tag}))
        .await;
    assert_eq!(
        theirs,
        json!({"device": {"nickname": null}, "organization": {"name": "Their Org", "status": "ACTIVE"},
               "tag": {"name": "their-tag"}, "apiKeys": {"filteredCount": 1}, "executions": {"filteredCount": 1}})
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
