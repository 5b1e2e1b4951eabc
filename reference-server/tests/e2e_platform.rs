//! End-to-end tests of issue #6 over real HTTP against the reference server started in
//! process on the embedded defaults: OIDC PKCE login → GraphQL; an agent (the SDK) enrolls,
//! appears in GraphQL and REST, runs a command and goes offline; API key paging and rate
//! limits; the tool proxy; GraphQL subscriptions; tenant isolation.
//!
//! Run with `cargo nextest run -p openframe-server --test e2e_platform`.

mod e2e_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use e2e_support::agent::{
    DEVICE_BY_MACHINE, EchoAgent, agent_lifecycle, fast_presence, start_agent,
};
use e2e_support::upstream::{echo_upstream, tls_upstream};
use e2e_support::ws::{recv, subscribe};
use e2e_support::{OWNER_PASSWORD, Server, eventually, gid, seed};
use openframe_agent::client::AgentStatus;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// 1. OIDC login with PKCE → GraphQL queries and mutations
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_login_token_drives_graphql_queries_and_mutations() {
    let server = Server::start(|_| {}).await;
    let token = server.owner_token().await;

    // The token is the owner's, for the default tenant.
    let me: Value = server.get_as("/api/me", &token).await.json().await.unwrap();
    assert!(me.to_string().contains(e2e_support::OWNER_EMAIL), "{me}");

    // Without a token GraphQL refuses; with a forged one too.
    let r = server
        .http
        .post(server.url("/api/graphql"))
        .json(&json!({"query": "{ devices { filteredCount } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token");
    let (status, _) = server
        .graphql_raw("not-a-token", "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(status, 401, "a forged token is refused");

    let created = server
        .graphql(
            &token,
            "mutation { createOrganization(input: {name: \"Contoso\", category: \"Health\"}) { id name category status } }",
            json!({}),
        )
        .await;
    let org = &created["createOrganization"];
    assert_eq!(org["name"], "Contoso");
    assert_eq!(org["status"], "ACTIVE");
    let org_id = org["id"].as_str().unwrap().to_owned();

    let listed = server
        .graphql(
            &token,
            "{ organizations(search: \"Contoso\") { filteredCount edges { node { id name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["organizations"]["filteredCount"], 1);
    assert_eq!(listed["organizations"]["edges"][0]["node"]["id"], org_id);
    let by_id = server
        .graphql(
            &token,
            "query($id: ID!) { organization(id: $id) { name category } }",
            json!({"id": org_id}),
        )
        .await;
    assert_eq!(by_id["organization"]["category"], "Health");

    // A fresh platform has no devices yet; then a device inserted in the server's store shows.
    let devices = server
        .graphql(
            &token,
            "{ devices { filteredCount edges { node { hostname } } } }",
            json!({}),
        )
        .await;
    assert_eq!(devices["devices"]["filteredCount"], 0);
    seed::machine(&server, &server.tenant, "ws-login").await;
    let devices = server
        .graphql(
            &token,
            "{ devices { filteredCount edges { node { hostname } } } }",
            json!({}),
        )
        .await;
    assert_eq!(devices["devices"]["filteredCount"], 1);
    assert_eq!(
        devices["devices"]["edges"][0]["node"]["hostname"],
        "ws-login"
    );

    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. Agent enrollment → GraphQL + REST → command → offline (→ events)
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_agent_appears_runs_a_command_and_goes_offline() {
    let server = Server::start(fast_presence).await;
    let token = server.owner_token().await;
    let life = agent_lifecycle(&server, &token).await;
    assert!(!life.execution_batch.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_lifecycle_and_the_command_are_queryable_as_unified_events() {
    let server = Server::start(fast_presence).await;
    let token = server.owner_token().await;
    let life = agent_lifecycle(&server, &token).await;

    // registered, came online, command finished, went offline: all through the event
    // pipeline into the event store, queryable in GraphQL and in REST.
    let wanted = [
        "registered",
        "came online",
        "finished (exit code 0)",
        "went offline",
    ];
    let summaries = eventually("the machine's unified events are stored", || async {
        let data = server
            .graphql(
                &token,
                "query($m: [ID!]) { events(filter: {machineIds: $m}, first: 50) { edges { node { summary sourceType machineId } } } }",
                json!({"m": [gid("Machine", &life.machine)]}),
            )
            .await;
        let summaries: Vec<String> = data["events"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["summary"].as_str().unwrap_or("").to_owned())
            .collect();
        wanted
            .iter()
            .all(|w| summaries.iter().any(|s| s.contains(w)))
            .then_some(summaries)
    })
    .await;
    assert!(summaries.len() >= wanted.len(), "{summaries:?}");

    let r = server
        .get_key(
            &format!("/api/v1/events?machineIds={}&limit=50", life.machine),
            &life.api_key,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let rest: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["machineId"] == life.machine.as_str())
        .map(|e| e["summary"].as_str().unwrap_or(""))
        .collect();
    for w in wanted {
        assert!(
            rest.iter().any(|s| s.contains(w)),
            "{w} in REST events: {body}"
        );
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 3. API key paging and rate limit
// ---------------------------------------------------------------------------------------

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_pages_devices_until_its_rate_limit() {
    let server = Server::start(|c| {
        c.external_api.quota_per_minute = 5;
        c.external_api.quota_per_hour = 0;
        c.external_api.quota_per_day = 0;
    })
    .await;
    let token = server.owner_token().await;
    for i in 0..7 {
        seed::machine(&server, &server.tenant, &format!("web-{i:02}")).await;
    }
    let key = server.api_key(&token, &["devices:read"]).await;

    let mut seen = Vec::new();
    let mut remaining = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/devices?limit=3&sortField=hostname&sortDirection=ASC".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = server.get_key(&path, &key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
        assert!(header(&r, "x-ratelimit-reset").is_some());
        remaining.push(
            header(&r, "x-ratelimit-remaining")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["filteredCount"], 7);
        for d in body["devices"].as_array().unwrap() {
            seen.push(d["hostname"].as_str().unwrap().to_owned());
        }
        if body["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = Some(body["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = (0..7).map(|i| format!("web-{i:02}")).collect();
    assert_eq!(seen, expected, "every device once, in order, over 3 pages");
    assert_eq!(remaining, vec![4, 3, 2]);

    // Two more fit in the minute; the next is refused with the rate-limit headers.
    for _ in 0..2 {
        assert_eq!(
            server
                .get_key("/api/v1/devices?limit=1", &key)
                .await
                .status(),
            200
        );
    }
    let r = server.get_key("/api/v1/devices?limit=1", &key).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry after {retry} s");
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");

    // The quota is per key: a second key of the same tenant still gets through.
    let other = server.api_key(&token, &["devices:read"]).await;
    assert_eq!(
        server.get_key("/api/v1/devices", &other).await.status(),
        200
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. The tool proxy against a local upstream
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_proxy_injects_the_tool_credential_and_strips_the_callers() {
    let upstream = echo_upstream().await;
    let server = Server::start(|c| c.gateway.tool_proxy.response_timeout_ms = 500).await;
    let token = server.owner_token().await;
    seed::tool(
        &server,
        &server.tenant,
        "mesh",
        &format!("{upstream}/base/"),
        "tool-secret-123",
    )
    .await;

    // The tool is visible to the tenant through GraphQL.
    let tools = server
        .graphql(&token, "{ integratedTools { filteredCount } }", json!({}))
        .await;
    assert_eq!(tools["integratedTools"]["filteredCount"], 1);

    let r = server
        .http
        .get(server.url("/tools/mesh/nodes/list?q=1"))
        .bearer_auth(&token)
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/base/nodes/list");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(seen["headers"]["authorization"], "Bearer tool-secret-123");
    assert_eq!(seen["headers"]["x-custom"], "kept");
    assert!(
        !seen.to_string().contains(&token),
        "the caller's token never reaches the tool"
    );

    // The configured response timeout is honoured: 504, well before the upstream answers.
    let started = Instant::now();
    let r = server.get_as("/tools/mesh/slow", &token).await;
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // No token, or an unknown tool: refused before any upstream call.
    let r = server
        .http
        .get(server.url("/tools/mesh/nodes/list?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server.get_as("/tools/unknown/x", &token).await;
    assert_eq!(r.status(), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_proxy_verifies_tls_against_the_configured_ca_file() {
    let (port, ca_pem) = tls_upstream().await;
    let url = format!("https://localhost:{port}/");

    // Without the private CA the tool's certificate is refused.
    let server = Server::start(|_| {}).await;
    let token = server.owner_token().await;
    seed::tool(&server, &server.tenant, "private", &url, "tls-secret").await;
    let r = server.get_as("/tools/private/hello", &token).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE", "{body}");
    server.shutdown().await;

    // With the CA file in the server configuration it is trusted, and the credential injected.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let server = Server::start(|c| c.gateway.tool_proxy.extra_root_ca_files = vec![ca_file]).await;
    let token = server.owner_token().await;
    seed::tool(&server, &server.tenant, "private", &url, "tls-secret").await;
    let r = server.get_as("/tools/private/hello", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "hello over tls (Bearer tls-secret)"
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 5. GraphQL subscriptions over WebSocket
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_receives_the_agents_status_changes() {
    let server = Server::start(fast_presence).await;
    let token = server.owner_token().await;
    let mut ws = subscribe(&server, &token).await;

    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(
        &server,
        dir.path(),
        "vm-sub-01",
        Arc::new(EchoAgent::default()),
    )
    .await;
    let machine = agent.machine_id().to_string();

    // Collect the changes of this machine until it is ONLINE, then stop it and wait for OFFLINE.
    let mut kinds = Vec::new();
    loop {
        let next = recv(&mut ws).await;
        assert_eq!(next["type"], "next", "{next}");
        let change = &next["payload"]["data"]["machineStatusChanged"];
        assert_eq!(change["machineId"], machine.as_str());
        kinds.push(change["kind"].as_str().unwrap().to_owned());
        if change["status"] == "ONLINE" {
            break;
        }
    }
    agent.shutdown().await;
    let offline = loop {
        let next = recv(&mut ws).await;
        let change = next["payload"]["data"]["machineStatusChanged"].clone();
        kinds.push(change["kind"].as_str().unwrap_or("?").to_owned());
        if change["status"] == "OFFLINE" {
            break change;
        }
    };
    assert_eq!(offline["machineId"], machine.as_str());
    assert_eq!(offline["previousStatus"], "ONLINE");
    assert_eq!(offline["kind"], "WENT_OFFLINE", "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "CAME_ONLINE"), "{kinds:?}");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 6. Tenant isolation across the wired server
// ---------------------------------------------------------------------------------------

/// Every scope of the external API.
const ALL_SCOPES: [&str; 6] = [
    "devices:read",
    "organizations:read",
    "events:read",
    "tools:read",
    "executions:read",
    "executions:write",
];

/// The raw id inside a GraphQL global id (`base64("Type:raw")`).
fn raw_id(global: &str) -> String {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(global)
        .unwrap();
    let text = String::from_utf8(decoded).unwrap();
    text.split_once(':').unwrap().1.to_owned()
}

/// Whether `body` shows any of `marks`.
fn shows_any(body: &Value, marks: &[String]) -> Option<String> {
    let text = body.to_string();
    marks.iter().find(|m| text.contains(m.as_str())).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tenant_sees_none_of_the_first_tenants_data_by_list_or_by_id() {
    let server = Server::start(fast_presence).await;
    let token_a = server.owner_token().await;
    // Tenant A: an enrolled machine with a command run, an event, a tool, an organization.
    let life = agent_lifecycle(&server, &token_a).await;
    let event = seed::a_event(&server, &life.machine).await;
    let tool = seed::tool(
        &server,
        &server.tenant,
        "zebra-mesh",
        "http://127.0.0.1:9/",
        "zebra-secret",
    )
    .await;
    let org = server
        .graphql(
            &token_a,
            "mutation { createOrganization(input: {name: \"Zebra Holdings\"}) { id } }",
            json!({}),
        )
        .await["createOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let executions = server
        .graphql(
            &token_a,
            "{ executions { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let execution = executions["executions"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_a = server.api_key(&token_a, &ALL_SCOPES).await;
    // Nothing tenant B gets back may show any of these.
    let marks: Vec<String> = vec![
        life.machine.clone(),
        raw_id(&org),
        tool.clone(),
        event.clone(),
        life.execution_batch.clone(),
        "Zebra".into(),
        "zebra-mesh".into(),
        "vm-e2e-01".into(),
    ];

    // Tenant B signs up over HTTP and logs in with PKCE.
    server.sign_up("globex").await;
    let token_b = server
        .login("globex", "owner@globex.example", OWNER_PASSWORD)
        .await;
    let key_b = server.api_key(&token_b, &ALL_SCOPES).await;

    // GraphQL, every device/organization/tool/event/execution field, by list and by A's ids.
    let machine_gid = gid("Machine", &life.machine);
    let event_gid = gid("Event", &event);
    let queries: Vec<(&str, Value)> = vec![
        (
            "{ devices { edges { node { machineId hostname } } } }",
            json!({}),
        ),
        (
            "query($id: ID!) { device(id: $id) { machineId } }",
            json!({"id": machine_gid}),
        ),
        (DEVICE_BY_MACHINE, json!({"m": life.machine})),
        (
            "{ devices(search: \"vm-e2e\") { filteredCount edges { node { machineId } } } }",
            json!({}),
        ),
        (
            "{ organizations { edges { node { id name } } } }",
            json!({}),
        ),
        (
            "query($id: ID!) { organization(id: $id) { id name } }",
            json!({"id": org}),
        ),
        (
            "{ integratedTools { edges { node { key name } } } }",
            json!({}),
        ),
        (
            "{ events(first: 100) { edges { node { eventId machineId summary } } } }",
            json!({}),
        ),
        (
            "query($id: ID!) { event(id: $id) { eventId } }",
            json!({"id": event_gid}),
        ),
        (
            "{ executions { edges { node { executionId machine { machineId } } } } }",
            json!({}),
        ),
        (
            "query($id: ID!) { execution(id: $id) { executionId } }",
            json!({"id": execution}),
        ),
    ];
    for (query, vars) in queries {
        let (status, theirs) = server.graphql_raw(&token_b, query, vars.clone()).await;
        assert_eq!(status, 200, "{query}: {theirs}");
        assert!(theirs.get("errors").is_none(), "{query}: {theirs}");
        assert_eq!(
            shows_any(&theirs, &marks),
            None,
            "B sees A's data: {query}: {theirs}"
        );
        // The same request as A shows A's data, so the case can fail.
        let mine = server.graphql(&token_a, query, vars).await;
        assert!(
            shows_any(&mine, &marks).is_some(),
            "A sees its own: {query}: {mine}"
        );
    }
    // B cannot run a command on A's machine, through GraphQL or REST.
    let (_, body) = server
        .graphql_raw(
            &token_b,
            "mutation($ids: [ID!]) { runCommand(input: {target: {machineIds: $ids}, command: \"id\", shell: BASH}) { executionId } }",
            json!({"ids": [machine_gid]}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let r = server
        .http
        .post(server.url("/api/v1/executions"))
        .header("x-api-key", &key_b)
        .json(&json!({"machineIds": [life.machine], "command": "id", "shell": "BASH", "timeoutSeconds": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let runs = server
        .graphql(&token_a, "{ executions { filteredCount } }", json!({}))
        .await;
    assert_eq!(
        runs["executions"]["filteredCount"], 1,
        "nothing ran on A's machine"
    );

    // REST, every route, by list and by A's ids: (path, B's status).
    let m = &life.machine;
    let routes: Vec<(String, u16)> = vec![
        ("/api/v1/devices".into(), 200),
        (format!("/api/v1/devices/{m}"), 404),
        ("/api/v1/devices?search=vm-e2e".into(), 200),
        ("/api/v1/organizations".into(), 200),
        (format!("/api/v1/organizations/{}", raw_id(&org)), 404),
        ("/api/v1/tools".into(), 200),
        (format!("/api/v1/tools/{tool}"), 404),
        ("/api/v1/executions".into(), 200),
        (format!("/api/v1/executions?machineId={m}"), 200),
        (format!("/api/v1/executions/{}", life.execution_batch), 404),
        ("/api/v1/events?limit=100".into(), 200),
        (format!("/api/v1/events?machineIds={m}"), 200),
        (format!("/api/v1/events/{event}"), 404),
    ];
    for (path, status) in routes {
        let r = server.get_key(&path, &key_b).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let theirs: Value = r.json().await.unwrap();
        assert_eq!(
            shows_any(&theirs, &marks),
            None,
            "B sees A's data: {path}: {theirs}"
        );
        let r = server.get_key(&path, &key_a).await;
        assert_eq!(r.status(), 200, "{path}");
        let mine: Value = r.json().await.unwrap();
        assert!(
            shows_any(&mine, &marks).is_some(),
            "A sees its own: {path}: {mine}"
        );
    }
    // And through the tool proxy: A's tool key is unknown to B.
    let r = server.get_as("/tools/zebra-mesh/x", &token_b).await;
    assert_eq!(r.status(), 404);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Hostile input through the wired server
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_errors_and_runs_nothing() {
    let server = Server::start(|c| c.gateway.max_body_bytes = 64 * 1024).await;
    let token = server.owner_token().await;

    // Deep and wide GraphQL queries are refused before running.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(12),
        "}".repeat(12)
    );
    let (status, body) = server.graphql_raw(&token, &deep, json!({})).await;
    assert_eq!(status, 200);
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{body}"
    );
    let wide: String = (0..100)
        .map(|i| format!("d{i}: devices(first: 100) {{ edges {{ node {{ id hostname }} }} }} "))
        .collect();
    let (_, body) = server
        .graphql_raw(&token, &format!("{{ {wide} }}"), json!({}))
        .await;
    assert!(body["data"].is_null(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{body}"
    );

    // Malformed cursors and ids.
    let (_, body) = server
        .graphql_raw(
            &token,
            "{ devices(after: \"garbage\") { filteredCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{body}"
    );
    let (_, body) = server
        .graphql_raw(
            &token,
            "query($id: ID!) { device(id: $id) { id } }",
            json!({"id": "!!not-base64"}),
        )
        .await;
    assert!(
        body["errors"][0]["extensions"]["code"].is_string(),
        "{body}"
    );
    let key = server.api_key(&token, &["devices:read"]).await;
    for path in [
        "/api/v1/devices?cursor=!!!",
        "/api/v1/devices/a.b",
        "/api/v1/devices?limit=-1",
    ] {
        let r = server.get_key(path, &key).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_ERROR", "{path}: {body}");
        assert!(body["timestamp"].is_string(), "{body}");
    }

    // Oversized and malformed bodies.
    let big = format!(
        "{{\"query\": \"{{ devices {{ filteredCount }} }}\", \"x\": \"{}\"}}",
        "a".repeat(100 * 1024)
    );
    // (A client of its own: the server may close the connection after a 413.)
    let r = e2e_support::http()
        .post(server.url("/api/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = server
        .http
        .post(server.url("/api/api-keys"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    // Nothing was created by the refused requests: only the one key above.
    let r = server.get_as("/api/api-keys", &token).await;
    let keys: Value = r.json().await.unwrap();
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(1), "{keys}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_a_machine_ends_its_live_agent_session() {
    let server = Server::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(
        &server,
        dir.path(),
        "leaving-01",
        Arc::new(EchoAgent::default()),
    )
    .await;
    assert_eq!(agent.status(), AgentStatus::Connected);

    // The agent's own credentials, as the original agent sends them on uninstall.
    let file: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("leaving-01.json")).unwrap())
            .unwrap();
    let uninstall = e2e_support::http()
        .post(server.url(openframe_agent::enrollment::UNINSTALL_PATH))
        .header("X-Machine-Id", file["machineId"].as_str().unwrap())
        .header("X-Client-Secret", file["clientSecret"].as_str().unwrap())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(uninstall.status(), 204);

    // The server ends the live session at once, and the agent cannot get back in.
    eventually("the session to end", || async {
        (agent.status() != AgentStatus::Connected).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(agent.status(), AgentStatus::Connected);
    agent.shutdown().await;
    server.shutdown().await;
}
