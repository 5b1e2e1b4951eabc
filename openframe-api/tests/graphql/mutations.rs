//! GraphQL mutations: organizations, devices, tags, API keys, invitations, the registration
//! secret, commands and cancellation, with role checks.

use std::time::Duration;

use futures::StreamExt as _;

use crate::support::{Harness, gid};
use openframe_core::MachineStatus;
use serde_json::json;

#[tokio::test]
async fn organizations_create_update_delete_with_the_devices_rule() {
    let h = Harness::start().await;
    let created = h
        .ok(
            &h.a,
            "mutation { createOrganization(input: {name: \"Contoso\", category: \"Health\"}) { id name category status } }",
            json!({}),
        )
        .await;
    let id = created["createOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["createOrganization"]["status"], "ACTIVE");

    let dup = h
        .err_code(
            &h.a,
            "mutation { createOrganization(input: {name: \"contoso\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(dup, "ALREADY_EXISTS");

    let updated = h
        .ok(
            &h.a,
            "mutation($id: ID!) { updateOrganization(input: {id: $id, category: null, name: \"Contoso Ltd\"}) { name category } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        updated["updateOrganization"],
        json!({"name": "Contoso Ltd", "category": null})
    );

    // A device in it blocks the delete.
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let set = "mutation($d: ID!, $o: ID) { updateDevice(input: {id: $d, organizationId: $o}) { organization { name } } }";
    let moved = h
        .ok(
            &h.a,
            set,
            json!({"d": gid("Machine", m.id.as_str()), "o": id}),
        )
        .await;
    assert_eq!(moved["updateDevice"]["organization"]["name"], "Contoso Ltd");
    let del = "mutation($id: ID!) { deleteOrganization(id: $id) }";
    assert_eq!(h.err_code(&h.a, del, json!({"id": id})).await, "CONFLICT");
    h.ok(
        &h.a,
        set,
        json!({"d": gid("Machine", m.id.as_str()), "o": null}),
    )
    .await;
    let deleted = h.ok(&h.a, del, json!({"id": id})).await;
    assert_eq!(deleted["deleteOrganization"], id);
    let gone = h
        .ok(
            &h.a,
            "query($id: ID!) { organization(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gone["organization"]["status"], "DELETED");
    let default = gid("Organization", h.a.default_org.id.as_str());
    assert_eq!(
        h.err_code(&h.a, del, json!({"id": default})).await,
        "CONFLICT"
    );
}

#[tokio::test]
async fn device_nickname_and_tags_and_tag_crud() {
    let h = Harness::start().await;
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let tag = h
        .ok(
            &h.a,
            "mutation { createTag(input: {name: \"prod\", color: \"#ff0000\"}) { id name color } }",
            json!({}),
        )
        .await;
    let tag_id = tag["createTag"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.err_code(
            &h.a,
            "mutation { createTag(input: {name: \"x\", color: \"red\"}) { id } }",
            json!({})
        )
        .await,
        "VALIDATION_ERROR"
    );
    let q = "mutation($d: ID!, $t: [ID!]) { updateDevice(input: {id: $d, nickname: \"front\", tagIds: $t}) { nickname tags { name } } }";
    let d = gid("Machine", m.id.as_str());
    let data = h.ok(&h.a, q, json!({"d": d, "t": [tag_id]})).await;
    assert_eq!(
        data["updateDevice"],
        json!({"nickname": "front", "tags": [{"name": "prod"}]})
    );
    let unknown = h
        .err_code(&h.a, q, json!({"d": d, "t": [gid("Tag", "nope")]}))
        .await;
    assert_eq!(unknown, "NOT_FOUND");

    let renamed = h
        .ok(
            &h.a,
            "mutation($id: ID!) { updateTag(input: {id: $id, name: \"production\"}) { name } }",
            json!({"id": tag_id}),
        )
        .await;
    assert_eq!(renamed["updateTag"]["name"], "production");
    h.ok(
        &h.a,
        "mutation($id: ID!) { deleteTag(id: $id) }",
        json!({"id": tag_id}),
    )
    .await;
    let after = h
        .ok(
            &h.a,
            "query($d: ID!) { device(id: $d) { tags { name } } }",
            json!({"d": d}),
        )
        .await;
    assert_eq!(
        after["device"]["tags"],
        json!([]),
        "deleted tags are skipped"
    );
}

#[tokio::test]
async fn api_keys_show_the_secret_once_and_revoke_and_regenerate_work() {
    let h = Harness::start().await;
    let created = h
        .ok(
            &h.a,
            "mutation { createApiKey(input: {name: \"ci\", scopes: [\"devices:read\"]}) { fullKey apiKey { id keyId name scopes } } }",
            json!({}),
        )
        .await;
    let full = created["createApiKey"]["fullKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(full.starts_with("ak_") && full.contains(".sk_"));
    assert!(h.stack.api_keys.authenticate(&full).await.is_ok());

    let listed = h
        .ok(
            &h.a,
            "{ apiKeys { edges { node { id name } } filteredCount } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["apiKeys"]["filteredCount"], 1);
    assert!(
        !listed.to_string().contains("sk_"),
        "the secret is never listed"
    );

    let regen = h
        .ok(
            &h.a,
            "mutation($id: ID!) { regenerateApiKey(id: $id) { fullKey apiKey { id } } }",
            json!({"id": id}),
        )
        .await;
    let new_full = regen["regenerateApiKey"]["fullKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_id = regen["regenerateApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(h.stack.api_keys.authenticate(&full).await.is_err());
    assert!(h.stack.api_keys.authenticate(&new_full).await.is_ok());

    h.ok(
        &h.a,
        "mutation($id: ID!) { revokeApiKey(id: $id) }",
        json!({"id": new_id}),
    )
    .await;
    assert!(h.stack.api_keys.authenticate(&new_full).await.is_err());
    let again = h
        .err_code(
            &h.a,
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({"id": new_id}),
        )
        .await;
    assert_eq!(again, "NOT_FOUND");
}

#[tokio::test]
async fn invitations_and_registration_secret_and_role_checks() {
    let h = Harness::start().await;
    let inv = h
        .ok(
            &h.a,
            "mutation { createInvitation(input: {email: \"new@acme.example\", roles: [ADMIN]}) { token invitation { id email status invitedBy { email } } } }",
            json!({}),
        )
        .await;
    let inv_id = inv["createInvitation"]["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        inv["createInvitation"]["invitation"]["invitedBy"]["email"],
        "owner@acme.example"
    );
    assert!(inv["createInvitation"]["token"].as_str().unwrap().len() > 20);
    let listed = h
        .ok(
            &h.a,
            "{ invitations { edges { node { email status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["invitations"]["edges"][0]["node"]["status"],
        "PENDING"
    );
    let revoked = h
        .ok(
            &h.a,
            "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
            json!({"id": inv_id}),
        )
        .await;
    assert_eq!(revoked["revokeInvitation"]["status"], "REVOKED");

    // An ADMIN who is not OWNER cannot invite an OWNER.
    let admin = h.token(&h.a, &["ADMIN"]).await;
    let (_, body) = h
        .post(
            Some(&admin),
            "mutation { createInvitation(input: {email: \"boss@acme.example\", roles: [OWNER]}) { token } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(body["errors"][0]["extensions"]["httpStatus"], 403);

    // A token without ADMIN is refused outright.
    let plain = h.token(&h.a, &[]).await;
    let (status, body) = h
        .post(Some(&plain), "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let first = h.ok(&h.a, "{ registrationSecret }", json!({})).await;
    let rotated = h
        .ok(&h.a, "mutation { rotateRegistrationSecret }", json!({}))
        .await;
    let now = h.ok(&h.a, "{ registrationSecret }", json!({})).await;
    assert_ne!(
        first["registrationSecret"],
        rotated["rotateRegistrationSecret"]
    );
    assert_eq!(
        now["registrationSecret"],
        rotated["rotateRegistrationSecret"]
    );
}

#[tokio::test]
async fn commands_run_on_a_machine_and_a_filtered_batch_and_can_be_cancelled() {
    let h = Harness::start().await;
    let mut sub = h
        .bus
        .subscribe("machine.*.command-execution")
        .await
        .unwrap();
    let web = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    h.machine(&h.a, "web-02", MachineStatus::Offline).await;
    h.machine(&h.a, "db-01", MachineStatus::Online).await;

    let run = r#"mutation($t: TargetInput!) { runCommand(input: {target: $t, command: "uptime", shell: BASH, timeoutSeconds: 30}) {
        executionId executions { status machine { hostname } initiator { email } } } }"#;
    let one = h
        .ok(
            &h.a,
            run,
            json!({"t": {"machineIds": [gid("Machine", web.id.as_str())]}}),
        )
        .await;
    assert_eq!(one["runCommand"]["executions"][0]["status"], "RUNNING");
    assert_eq!(
        one["runCommand"]["executions"][0]["initiator"]["email"],
        "owner@acme.example"
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a command message")
        .expect("the subscription is open");
    assert!(msg.subject.contains(web.id.as_str()));

    let batch = h
        .ok(&h.a, run, json!({"t": {"filter": {}, "search": "web"}}))
        .await;
    let mut statuses: Vec<String> = batch["runCommand"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["machine"]["hostname"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["web-01:RUNNING", "web-02:QUEUED"]);

    let both = h
        .err_code(&h.a, run, json!({"t": {"filter": {}, "machineIds": []}}))
        .await;
    assert_eq!(both, "VALIDATION_ERROR");

    let batch_id = batch["runCommand"]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = h
        .ok(
            &h.a,
            "mutation($id: String!) { cancelExecution(executionId: $id) { status } }",
            json!({"id": batch_id}),
        )
        .await;
    assert_eq!(cancelled["cancelExecution"].as_array().unwrap().len(), 2);
    let listed = h
        .ok(
            &h.a,
            "query($id: String) { executions(filter: {executionId: $id}) { edges { node { status } } filteredCount } }",
            json!({"id": batch_id}),
        )
        .await;
    assert_eq!(listed["executions"]["filteredCount"], 2);
    assert!(
        listed["executions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["status"] == "CANCELLED")
    );
}

#[tokio::test]
async fn scripts_crud_and_run_on_a_machine() {
    let h = Harness::start().await;
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let tag = h.tag(&h.a, "ops").await;
    let create = r#"mutation($t: [ID!]) { createScript(input: {name: "Disk usage", shell: BASH, scriptBody: "df -h", defaultArgs: ["-x"], tagIds: $t}) {
        id name status shell defaultTimeoutSeconds tags { name } author { email } } }"#;
    let created = h
        .ok(&h.a, create, json!({"t": [gid("Tag", tag.id.as_str())]}))
        .await;
    let s = &created["createScript"];
    assert_eq!(
        (s["status"].clone(), s["shell"].clone()),
        (json!("ACTIVE"), json!("BASH"))
    );
    assert_eq!(s["tags"], json!([{"name": "ops"}]));
    assert_eq!(s["author"]["email"], "owner@acme.example");
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.err_code(&h.a, create, json!({"t": []})).await,
        "ALREADY_EXISTS"
    );
    let too_long = h
        .err_code(&h.a, "mutation { createScript(input: {name: \"x\", shell: BASH, scriptBody: \"true\", defaultTimeoutSeconds: 99999}) { id } }", json!({}))
        .await;
    assert_eq!(too_long, "VALIDATION_ERROR");

    let listed = h
        .ok(
            &h.a,
            "{ scripts(search: \"disk\") { edges { node { name } } filteredCount } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["scripts"]["filteredCount"], 1);

    let run = r#"mutation($s: ID!, $m: ID!) { runScript(input: {scriptId: $s, target: {machineIds: [$m]}}) {
        executionId executions { status scriptId code timeoutSeconds } } }"#;
    let vars = json!({"s": id, "m": gid("Machine", m.id.as_str())});
    let ran = h.ok(&h.a, run, vars.clone()).await;
    let e = &ran["runScript"]["executions"][0];
    assert_eq!(
        (
            e["status"].clone(),
            e["code"].clone(),
            e["timeoutSeconds"].clone()
        ),
        (json!("RUNNING"), json!("df -h"), json!(900))
    );

    let archived = h
        .ok(&h.a, "mutation($id: ID!) { updateScript(input: {id: $id, status: ARCHIVED, description: \"old\"}) { status description } }", json!({"id": id}))
        .await;
    assert_eq!(
        archived["updateScript"],
        json!({"status": "ARCHIVED", "description": "old"})
    );
    assert_eq!(h.err_code(&h.a, run, vars.clone()).await, "CONFLICT");

    h.ok(
        &h.a,
        "mutation($id: ID!) { deleteScript(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(h.err_code(&h.a, run, vars).await, "NOT_FOUND");
    let hidden = h.ok(&h.a, "{ scripts { filteredCount } }", json!({})).await;
    assert_eq!(
        hidden["scripts"]["filteredCount"], 0,
        "deleted scripts are hidden"
    );
}
