//! The external REST API (`/api/v1`) through the gateway: API keys, scopes, paging, rate
//! limits (on the manual clock), executions and the OpenAPI document.

mod support_rest;

use std::collections::BTreeSet;
use std::time::Duration;

use openframe_core::{CredentialPlacement, Secret, ToolApiKey, ToolCredentials};
use openframe_security::ratelimit::Quota;
use serde_json::{Value, json};
use support_rest::{Options, Platform, error_code};

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_api_key_pages_through_devices_until_its_rate_limit() {
    let p = Platform::start_with(Options {
        quotas: vec![Quota::per_minute(5)],
        ..Options::default()
    })
    .await;
    let acme = p.tenant("acme").await;
    let ids = p.machines(&acme.id, "web", 10).await;
    let key = p.api_key(&acme, &["devices:read"]).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut remaining = Vec::new();
    for page in 0.. {
        let path = match &cursor {
            None => "/api/v1/devices?limit=3&sortField=hostname&sortDirection=ASC".to_owned(),
            Some(c) => {
                format!("/api/v1/devices?limit=3&sortField=hostname&sortDirection=ASC&cursor={c}")
            }
        };
        let r = p.get_key(&path, &key).await;
        assert_eq!(r.status(), 200, "page {page}");
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
        assert!(
            header(&r, "x-ratelimit-reset")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        remaining.push(
            header(&r, "x-ratelimit-remaining")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["filteredCount"], 10);
        for d in body["devices"].as_array().unwrap() {
            seen.push(d["hostname"].as_str().unwrap().to_owned());
        }
        if body["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = Some(body["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = (0..10).map(|i| format!("web-{i:03}")).collect();
    assert_eq!(seen, expected, "every device once, in order, over 4 pages");
    assert_eq!(ids.len(), 10);
    assert_eq!(remaining, vec![4, 3, 2, 1]);

    // The fifth request is the last one allowed; the sixth is refused.
    let r = p.get_key("/api/v1/devices?limit=1", &key).await;
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    let r = p.get_key("/api/v1/devices?limit=1", &key).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("12"));
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(error_code(r).await, (429, "RATE_LIMITED".to_owned()));

    // Another key of the same tenant has its own budget.
    let other = p.api_key(&acme, &["devices:read"]).await;
    assert_eq!(p.get_key("/api/v1/devices", &other).await.status(), 200);

    // After Retry-After on the clock, the key may call again.
    p.clock.advance(Duration::from_secs(12));
    let r = p.get_key("/api/v1/devices?limit=1", &key).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn page_sizes_outside_1_to_100_are_refused_not_clamped() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.machines(&acme.id, "db", 2).await;
    let key = p.api_key(&acme, &["*"]).await;
    for bad in ["0", "101", "-1", "abc", "1.5", "99999999999999999999"] {
        let r = p
            .get_key(&format!("/api/v1/devices?limit={bad}"), &key)
            .await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_ERROR", "{bad}");
        assert_eq!(body["fieldErrors"][0]["field"], "limit", "{bad}");
    }
    for ok in ["1", "100"] {
        let r = p
            .get_key(&format!("/api/v1/devices?limit={ok}"), &key)
            .await;
        assert_eq!(r.status(), 200, "{ok}");
    }
    let body: Value = p
        .get_key("/api/v1/devices?limit=1", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["devices"].as_array().unwrap().len(), 1);
    assert_eq!(body["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn hostile_query_input_gets_clear_errors() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.machines(&acme.id, "db", 3).await;
    let key = p.api_key(&acme, &["*"]).await;
    let first: Value = p
        .get_key("/api/v1/devices?limit=1&sortField=hostname", &key)
        .await
        .json()
        .await
        .unwrap();
    let hostname_cursor = first["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let cases = [
        ("/api/v1/devices?cursor=!!!", "cursor"),
        ("/api/v1/devices?cursor=eyJzIjoxfQ", "cursor"),
        (
            &*format!("/api/v1/devices?cursor={}", "A".repeat(2000)),
            "cursor",
        ),
        // A cursor minted for another sort.
        (
            &*format!("/api/v1/devices?cursor={hostname_cursor}"),
            "cursor",
        ),
        ("/api/v1/devices?statuses=ONLINE,NOPE", "statuses"),
        ("/api/v1/devices?osTypes=BEOS", "osTypes"),
        ("/api/v1/devices?organizationIds=a.b", "organizationIds"),
        ("/api/v1/devices?sortField=password", "sortField"),
        ("/api/v1/devices?sortDirection=sideways", "sortDirection"),
        ("/api/v1/devices?limit=1&limit=2", "limit"),
        ("/api/v1/devices?hostnam=x", "query"),
        ("/api/v1/devices/a.b", "machineId"),
        ("/api/v1/devices/%20x", "machineId"),
        ("/api/v1/organizations/x%20y", "organizationId"),
        ("/api/v1/tools?enabled=maybe", "enabled"),
        ("/api/v1/executions?statuses=DONE", "statuses"),
        (
            &*format!("/api/v1/devices?search={}", "s".repeat(300)),
            "search",
        ),
    ];
    for (path, field) in cases {
        let r = p.get_key(path, &key).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_ERROR", "{path}");
        assert_eq!(body["fieldErrors"][0]["field"], field, "{path}: {body}");
    }
    let many = (0..101)
        .map(|i| format!("statuses=S{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let r = p.get_key(&format!("/api/v1/devices?{many}"), &key).await;
    assert_eq!(r.status(), 400);
    // Unknown ids are 404s, not errors.
    let (status, code) = error_code(p.get_key("/api/v1/devices/unknown-machine", &key).await).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    // Bad keys: every refusal looks the same.
    for bad in [
        "",
        "garbage",
        "ak_0123456789abcdef.sk_00000000000000000000000000000000",
    ] {
        let r = p.get_key("/api/v1/devices", bad).await;
        assert!(r.headers().get("x-ratelimit-limit").is_none());
        assert_eq!(
            error_code(r).await,
            (401, "UNAUTHORIZED".to_owned()),
            "{bad}"
        );
    }
    let r = p.get("/api/v1/devices", Some(&acme.admin_token)).await;
    assert_eq!(r.status(), 401, "a bearer token is not an API key");
}

#[tokio::test]
async fn scopes_gate_every_route() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let machines = p.machines(&acme.id, "web", 1).await;
    let tools_only = p.api_key(&acme, &["tools:read"]).await;
    let devices_any = p.api_key(&acme, &["devices:*"]).await;
    let reader = p.api_key(&acme, &["executions:read"]).await;
    let runner = p
        .api_key(&acme, &["executions:read", "executions:write"])
        .await;

    let forbidden = |r: reqwest::Response| async move {
        let (status, code) = error_code(r).await;
        assert_eq!((status, code.as_str()), (403, "INSUFFICIENT_SCOPE"));
    };
    forbidden(p.get_key("/api/v1/devices", &tools_only).await).await;
    forbidden(p.get_key("/api/v1/devices/filters", &tools_only).await).await;
    forbidden(
        p.get_key(&format!("/api/v1/devices/{}", machines[0]), &tools_only)
            .await,
    )
    .await;
    forbidden(p.get_key("/api/v1/organizations", &devices_any).await).await;
    forbidden(p.get_key("/api/v1/tools", &devices_any).await).await;
    forbidden(p.get_key("/api/v1/executions", &devices_any).await).await;
    assert_eq!(p.get_key("/api/v1/tools", &tools_only).await.status(), 200);
    assert_eq!(
        p.get_key("/api/v1/devices", &devices_any).await.status(),
        200
    );

    let run = |key: String| {
        p.http
            .post(p.url("/api/v1/executions"))
            .header("x-api-key", key)
            .json(&json!({"machineIds": [machines[0].as_str()], "command": "uptime", "shell": "bash", "timeoutSeconds": 30}))
            .send()
    };
    forbidden(run(reader.clone()).await.unwrap()).await;
    let empty: Value = p
        .get_key("/api/v1/executions", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        empty["executions"],
        json!([]),
        "a refused run stores nothing"
    );

    let r = run(runner.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let batch: Value = r.json().await.unwrap();
    let execution_id = batch["executionId"].as_str().unwrap().to_owned();
    assert_eq!(batch["executions"][0]["status"], "RUNNING");
    assert_eq!(batch["executions"][0]["initiatedBy"], acme.owner.as_str());

    let list: Value = p
        .get_key("/api/v1/executions", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["executions"][0]["executionId"], execution_id.as_str());
    let by_machine: Value = p
        .get_key(
            &format!(
                "/api/v1/executions?machineId={}&statuses=RUNNING",
                machines[0]
            ),
            &reader,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_machine["executions"].as_array().unwrap().len(), 1);
    let one = p
        .get_key(&format!("/api/v1/executions/{execution_id}"), &reader)
        .await;
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["executions"][0]["code"], "uptime");

    // Bad run requests: clear errors, nothing stored.
    for (body, status) in [
        (
            json!({"machineIds": ["unknown-machine"], "command": "x", "shell": "BASH", "timeoutSeconds": 5}),
            404,
        ),
        (
            json!({"machineIds": [machines[0].as_str()], "command": "x", "shell": "FISH", "timeoutSeconds": 5}),
            400,
        ),
        (
            json!({"machineIds": [machines[0].as_str()], "command": "x", "shell": "BASH", "timeoutSeconds": 0}),
            400,
        ),
        (
            json!({"machineIds": [], "command": "x", "shell": "BASH", "timeoutSeconds": 5}),
            400,
        ),
        (
            json!({"machineIds": ["a.b"], "command": "x", "shell": "BASH", "timeoutSeconds": 5}),
            400,
        ),
        (
            json!({"machineIds": [machines[0].as_str()], "command": " ", "shell": "BASH", "timeoutSeconds": 5}),
            400,
        ),
    ] {
        let r = p
            .http
            .post(p.url("/api/v1/executions"))
            .header("x-api-key", &runner)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
    }
    let list: Value = p
        .get_key("/api/v1/executions", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["executions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tools_never_expose_credentials_and_filters_are_labelled() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "mesh", "https://mesh.internal", |t| {
        t.credentials = Some(ToolCredentials {
            username: Some("admin".into()),
            password: Some(Secret::new("pa55-SECRET")),
            api_key: Some(ToolApiKey {
                key: Secret::new("tok-SECRET"),
                placement: CredentialPlacement::BearerToken,
                header_name: None,
            }),
        });
    })
    .await;
    let key = p.api_key(&acme, &["*"]).await;
    let r = p.get_key("/api/v1/tools", &key).await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["tools"][0]["key"], "mesh");
    assert_eq!(body["tools"][0]["hasCredentials"], true);
    let id = body["tools"][0]["id"].as_str().unwrap();
    let one = p
        .get_key(&format!("/api/v1/tools/{id}"), &key)
        .await
        .text()
        .await
        .unwrap();
    assert!(!one.contains("SECRET") && one.contains("\"mesh\""));

    // Device filter options: organizations are labelled with their names.
    let org = p.organization(&acme.id, "Contoso").await;
    let ids = p.machines(&acme.id, "pc", 3).await;
    let mut m = p
        .stack
        .repos
        .machines
        .get(&acme.id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    m.organization_id = Some(org.id.clone());
    p.stack.repos.machines.update(&acme.id, m).await.unwrap();
    let f: Value = p
        .get_key("/api/v1/devices/filters?statuses=ONLINE", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(f["filteredCount"], 3);
    let orgs = f["organizationIds"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["label"], "Contoso");
    assert_eq!(orgs[0]["count"], 1);
    assert_eq!(
        f["statuses"][0],
        json!({"value": "ONLINE", "label": "ONLINE", "count": 3})
    );
    let orgs: Value = p
        .get_key("/api/v1/organizations", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        orgs["filteredCount"], 2,
        "Default and Contoso: the true total"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_page_renders_it() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let key = p.api_key(&acme, &["*"]).await;
    // Public: no key needed.
    let r = p.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "OpenFrame External API");
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKeyAuth"],
        json!({"type": "apiKey", "in": "header", "name": "X-API-Key"})
    );
    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            listed.insert(format!("{} {path}", method.to_uppercase()));
            for status in ["200", "401", "403", "429"] {
                let status = if method == "post" && status == "200" {
                    "202"
                } else {
                    status
                };
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} lacks {status}"
                );
            }
            assert_eq!(
                op["security"],
                json!([{"ApiKeyAuth": []}]),
                "{method} {path}"
            );
        }
    }
    let expected: BTreeSet<String> = [
        "GET /api/v1/devices",
        "GET /api/v1/devices/filters",
        "GET /api/v1/devices/{machineId}",
        "GET /api/v1/organizations",
        "GET /api/v1/organizations/{organizationId}",
        "GET /api/v1/tools",
        "GET /api/v1/tools/{toolId}",
        "GET /api/v1/executions",
        "POST /api/v1/executions",
        "GET /api/v1/executions/{executionId}",
        "GET /api/v1/events",
        "GET /api/v1/events/{eventId}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(listed, expected);

    // Every listed route is served (answers other than the router's "no such route").
    for route in &listed {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{machineId}", "m-1")
            .replace("{organizationId}", "o-1")
            .replace("{toolId}", "t-1")
            .replace("{executionId}", "e-1")
            .replace("{eventId}", "0192f7a4-1c2b-7d3e-8f00-123456789abc");
        let req = match method {
            "GET" => p.http.get(p.url(&path)),
            _ => p.http.post(p.url(&path)).json(&json!({})),
        };
        let r = req.header("x-api-key", &key).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        assert_ne!(body["message"], "route not found", "{route}");
    }
    // And an unlisted one is not.
    let r = p.get_key("/api/v1/secrets", &key).await;
    let (status, code) = error_code(r).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));

    let page = p.get("/api/v1/docs", None).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("openapi.json") && !html.contains("<script src="));
}

#[tokio::test]
async fn events_page_newest_first_and_stay_in_their_tenant() {
    use chrono::TimeZone;
    use openframe_core::TenantId;
    use openframe_stream::model::{MappingTable, Outcome, ToolSource, UnifiedEvent};

    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let globex = p.tenant("globex").await;
    let table = MappingTable::builtin();
    let event = |tenant: &TenantId, i: i64, summary: &str| {
        UnifiedEvent::new(
            &table,
            uuid::Uuid::new_v4(),
            ToolSource::OpenframeAgent,
            "script_result",
            chrono::Utc
                .timestamp_opt(1_767_225_600 + i * 60, 0)
                .unwrap(),
            Some(if i % 2 == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            }),
        )
        .with_tenant(Some(tenant.clone()))
        .with_summary(summary)
    };
    let mut batch: Vec<UnifiedEvent> = (0..5)
        .map(|i| event(&acme.id, i, &format!("acme run {i}")))
        .collect();
    let secret_event = event(&globex.id, 9, "globex secret run");
    batch.push(secret_event.clone());
    p.events.append(&batch).await.unwrap();

    let key = p.api_key(&acme, &["events:read"]).await;
    let r = p.get_key("/api/v1/events?limit=2", &key).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["filteredCount"], 5);
    assert_eq!(page["events"][0]["summary"], "acme run 4", "newest first");
    assert_eq!(page["events"][1]["summary"], "acme run 3");
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap();
    let next: Value = p
        .get_key(&format!("/api/v1/events?limit=2&cursor={cursor}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["events"][0]["summary"], "acme run 2");

    let filtered: Value = p
        .get_key(
            "/api/v1/events?search=RUN%201&from=2026-01-01T00:00:00Z",
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["filteredCount"], 1);
    let one_id = filtered["events"][0]["id"].as_str().unwrap();
    let one = p.get_key(&format!("/api/v1/events/{one_id}"), &key).await;
    assert_eq!(one.status(), 200);

    // Another tenant's event is a 404; malformed input is a 400.
    let r = p
        .get_key(&format!("/api/v1/events/{}", secret_event.id), &key)
        .await;
    assert_eq!(error_code(r).await, (404, "NOT_FOUND".to_owned()));
    for (path, field) in [
        ("/api/v1/events/not-a-uuid", "eventId"),
        ("/api/v1/events?from=yesterday", "from"),
        ("/api/v1/events?severities=LOUD", "severities"),
        ("/api/v1/events?cursor=xyz", "cursor"),
        ("/api/v1/events?limit=500", "limit"),
    ] {
        let body: Value = p.get_key(path, &key).await.json().await.unwrap();
        assert_eq!(body["fieldErrors"][0]["field"], field, "{path}: {body}");
    }
    let devices_only = p.api_key(&acme, &["devices:read"]).await;
    let (status, code) = error_code(p.get_key("/api/v1/events", &devices_only).await).await;
    assert_eq!((status, code.as_str()), (403, "INSUFFICIENT_SCOPE"));
}

#[tokio::test]
async fn usage_is_counted_in_batches_and_written_on_flush() {
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let key = p.api_key(&acme, &["devices:read"]).await;
    let id = openframe_core::ApiKeyId::parse(key.split_once('.').unwrap().0).unwrap();
    for _ in 0..5 {
        assert_eq!(p.get_key("/api/v1/devices", &key).await.status(), 200);
    }
    let r = p.get_key("/api/v1/devices?limit=0", &key).await;
    assert_eq!(r.status(), 400);
    let r = p.get_key("/api/v1/tools", &key).await;
    assert_eq!(r.status(), 403, "missing scope: counted as failed");

    let stored = |p: &Platform| {
        let (repo, t, id) = (p.stack.repos.api_keys.clone(), acme.id.clone(), id.clone());
        async move { repo.get(&t, &id).await.unwrap().unwrap() }
    };
    // The gateway shares the key service's recorder: a flush writes everything so far (one
    // write for the key; the background flusher may have written it already).
    let flushed = p.stack.api_keys.usage_recorder().flush().await;
    assert!(flushed.written <= 1, "{flushed:?}");
    assert_eq!(p.stack.api_keys.usage_recorder().pending_keys(), 0);
    let k = stored(&p).await;
    assert_eq!((k.total_requests, k.failed_requests), (7, 2));
    assert_eq!(k.last_used_at, Some(openframe_core::Clock::now(&*p.clock)));

    // Nothing pending: a second flush writes nothing and changes nothing.
    assert_eq!(p.stack.api_keys.usage_recorder().flush().await.written, 0);
    assert_eq!(stored(&p).await, k);
}
