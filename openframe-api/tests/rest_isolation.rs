//! Tenant isolation over every REST route: tenant A's credentials with tenant B's ids see
//! nothing of tenant B, and change nothing of it.

mod support_rest;

use openframe_core::TenantId;
use serde_json::{Value, json};
use support_rest::{Platform, Tenant};

/// What tenant B owns, and strings that must never appear in an answer to tenant A.
struct Owned {
    machine: String,
    org: String,
    tool_id: String,
    execution: String,
    key_id: String,
    event: String,
    full_key: String,
    markers: Vec<String>,
}

async fn populate(p: &Platform, t: &Tenant, prefix: &str) -> Owned {
    let machines = p.machines(&t.id, &format!("{prefix}-host"), 2).await;
    let org = p.organization(&t.id, &format!("{prefix}-org")).await;
    let tool = p
        .tool(
            &t.id,
            &format!("{prefix}-tool"),
            "https://tool.invalid",
            |_| {},
        )
        .await;
    let runner = p.api_key(t, &["*"]).await;
    let r = p
        .http
        .post(p.url("/api/v1/executions"))
        .header("x-api-key", &runner)
        .json(&json!({"machineIds": [machines[0].as_str()], "command": format!("{prefix}-cmd"), "shell": "BASH", "timeoutSeconds": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let execution = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = p
        .stack
        .api_keys
        .create(
            &t.id,
            t.owner.clone(),
            format!("{prefix}-key"),
            vec!["*".into()],
            None,
        )
        .await
        .unwrap();
    let secret = p.secrets.rotate(&t.id).await.unwrap();
    let table = openframe_stream::model::MappingTable::builtin();
    let event = openframe_stream::model::UnifiedEvent::new(
        &table,
        uuid::Uuid::new_v4(),
        openframe_stream::model::ToolSource::OpenframeAgent,
        "script_result",
        p.clock_now(),
        None,
    )
    .with_tenant(Some(t.id.clone()))
    .with_summary(format!("{prefix}-event"));
    p.events.append(std::slice::from_ref(&event)).await.unwrap();
    Owned {
        markers: vec![
            machines[0].to_string(),
            machines[1].to_string(),
            format!("{prefix}-host"),
            org.id.to_string(),
            format!("{prefix}-org"),
            tool.id.to_string(),
            format!("{prefix}-tool"),
            execution.clone(),
            format!("{prefix}-cmd"),
            created.key.id.to_string(),
            format!("{prefix}-key"),
            secret.expose().to_owned(),
            t.owner.to_string(),
            event.id.to_string(),
            format!("{prefix}-event"),
        ],
        machine: machines[0].to_string(),
        org: org.id.to_string(),
        tool_id: tool.id.to_string(),
        execution,
        key_id: created.key.id.to_string(),
        event: event.id.to_string(),
        full_key: created.secret.expose().to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 404: the id does not exist for the caller.
    NotFound,
    /// 2xx, without any of the other tenant's data.
    OwnOnly,
}

#[tokio::test]
async fn tenant_a_never_sees_or_changes_tenant_b() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let globex = p.tenant("globex").await;
    let _a = populate(&p, &acme, "acme").await;
    let b = populate(&p, &globex, "globex").await;
    let a_key = p.api_key(&acme, &["*"]).await;

    // (method, path, body, credential: bearer token or API key, expectation)
    let token = acme.admin_token.as_str();
    let routes: Vec<(&str, String, Option<Value>, bool, Expect)> = vec![
        ("GET", "/api/me".into(), None, true, Expect::OwnOnly),
        (
            "GET",
            "/api/agent/registration-secret/active".into(),
            None,
            true,
            Expect::OwnOnly,
        ),
        ("GET", "/api/api-keys".into(), None, true, Expect::OwnOnly),
        (
            "GET",
            format!("/api/api-keys/{}", b.key_id),
            None,
            true,
            Expect::NotFound,
        ),
        (
            "PATCH",
            format!("/api/api-keys/{}", b.key_id),
            Some(json!({"enabled": false})),
            true,
            Expect::NotFound,
        ),
        (
            "POST",
            format!("/api/api-keys/{}/regenerate", b.key_id),
            None,
            true,
            Expect::NotFound,
        ),
        (
            "DELETE",
            format!("/api/api-keys/{}", b.key_id),
            None,
            true,
            Expect::NotFound,
        ),
        (
            "GET",
            "/api/v1/devices".into(),
            None,
            false,
            Expect::OwnOnly,
        ),
        (
            "GET",
            format!("/api/v1/devices?search={}", b.machine),
            None,
            false,
            Expect::OwnOnly,
        ),
        (
            "GET",
            "/api/v1/devices/filters".into(),
            None,
            false,
            Expect::OwnOnly,
        ),
        (
            "GET",
            format!("/api/v1/devices/{}", b.machine),
            None,
            false,
            Expect::NotFound,
        ),
        (
            "GET",
            "/api/v1/organizations".into(),
            None,
            false,
            Expect::OwnOnly,
        ),
        (
            "GET",
            format!("/api/v1/organizations/{}", b.org),
            None,
            false,
            Expect::NotFound,
        ),
        ("GET", "/api/v1/tools".into(), None, false, Expect::OwnOnly),
        (
            "GET",
            format!("/api/v1/tools/{}", b.tool_id),
            None,
            false,
            Expect::NotFound,
        ),
        (
            "GET",
            "/api/v1/executions".into(),
            None,
            false,
            Expect::OwnOnly,
        ),
        ("GET", "/api/v1/events".into(), None, false, Expect::OwnOnly),
        (
            "GET",
            format!("/api/v1/events/{}", b.event),
            None,
            false,
            Expect::NotFound,
        ),
        (
            "GET",
            format!("/api/v1/executions?machineId={}", b.machine),
            None,
            false,
            Expect::OwnOnly,
        ),
        (
            "GET",
            format!("/api/v1/executions/{}", b.execution),
            None,
            false,
            Expect::NotFound,
        ),
        (
            "POST",
            "/api/v1/executions".into(),
            Some(
                json!({"machineIds": [b.machine], "command": "whoami", "shell": "BASH", "timeoutSeconds": 5}),
            ),
            false,
            Expect::NotFound,
        ),
    ];
    for (method, path, body, bearer, expect) in &routes {
        let mut req = p.http.request(method.parse().unwrap(), p.url(path));
        req = if *bearer {
            req.bearer_auth(token)
        } else {
            req.header("x-api-key", &a_key)
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        match expect {
            Expect::NotFound => assert_eq!(status, 404, "{method} {path}: {text}"),
            Expect::OwnOnly => assert!(
                (200..300).contains(&status),
                "{method} {path}: {status} {text}"
            ),
        }
        for marker in &b.markers {
            assert!(
                !text.contains(marker.as_str()),
                "{method} {path} leaked {marker}: {text}"
            );
        }
    }
    // Nothing of tenant B changed: its key still works, nothing ran on its machine.
    assert_eq!(
        p.get_key("/api/v1/devices", &b.full_key).await.status(),
        200
    );
    let runs: Value = p
        .get_key(
            &format!("/api/v1/executions?machineId={}", b.machine),
            &b.full_key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        runs["executions"].as_array().unwrap().len(),
        1,
        "only B's own run"
    );
    let globex_keys = p
        .stack
        .repos
        .api_keys
        .get(
            &TenantId::parse("globex").unwrap(),
            &b.key_id.parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(globex_keys.enabled);
    // And the counts tenant A sees are its own.
    let list: Value = p
        .get_key("/api/v1/devices", &a_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["filteredCount"], 2);
}
