//! Hostile input: no credentials, deep and wide queries, malformed cursors and global ids,
//! out-of-range page sizes, oversized and malformed bodies, mutations over GET.

use crate::support::{Harness, gid};
use axum::body::Body;
use axum::http::Request;
use openframe_core::MachineStatus;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_principal_are_unauthenticated() {
    let h = Harness::start().await;
    let (status, body) = h
        .post(None, "{ devices { filteredCount } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHORIZED");
    assert_eq!(body["errors"][0]["extensions"]["httpStatus"], 401);
    assert!(body.get("data").is_none_or(|d| d.is_null()));

    let (status, _) = h
        .post(
            Some("not-a-token"),
            "{ devices { filteredCount } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401, "a bad token is refused by the auth layer");

    // GraphiQL is a static page.
    let r = Request::get("/api/graphiql").body(Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(h.app.clone(), r).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn deep_and_wide_queries_are_rejected_before_running() {
    let h = Harness::start().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(12),
        "}".repeat(12)
    );
    let (status, body) = h.post(Some(&h.a.token), &deep, json!({})).await;
    assert_eq!(status, 200);
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );

    h.store.reset();
    let wide: String = (0..100)
        .map(|i| format!("d{i}: devices(first: 100) {{ edges {{ node {{ id hostname }} }} }} "))
        .collect();
    let (_, body) = h
        .post(Some(&h.a.token), &format!("{{ {wide} }}"), json!({}))
        .await;
    assert!(body["data"].is_null(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{body}"
    );
    assert_eq!(h.store.calls().get("find"), None, "nothing ran");

    // A modest query passes.
    h.ok(
        &h.a,
        "{ devices(first: 100) { edges { node { id tags { name } } } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn malformed_cursors_ids_and_page_sizes_are_validation_errors() {
    let h = Harness::start().await;
    h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let cases = [
        ("{ devices(after: \"garbage\") { filteredCount } }", "after"),
        (
            "{ devices(before: \"eyJzIjoiaWQifQ\") { filteredCount } }",
            "before",
        ),
        ("{ devices(first: 101) { filteredCount } }", "first"),
        ("{ devices(first: 0) { filteredCount } }", "first"),
        ("{ devices(first: 5, last: 5) { filteredCount } }", "last"),
        ("{ device(id: \"!!!\") { id } }", "id"),
        ("{ node(id: \"bm9wZTox\") { id } }", "id"),
        (
            "{ devices(filter: {organizationIds: [\"VGFnOjE=\"]}) { filteredCount } }",
            "organizationIds",
        ),
        (
            "{ devices(search: \"a\\u0000b\") { filteredCount } }",
            "search",
        ),
    ];
    for (query, field) in cases {
        let (status, body) = h.post(Some(&h.a.token), query, json!({})).await;
        assert_eq!(status, 200, "{query}");
        let ext = &body["errors"][0]["extensions"];
        assert_eq!(ext["code"], "VALIDATION_ERROR", "{query}: {body}");
        assert_eq!(ext["httpStatus"], 400, "{query}");
        assert_eq!(ext["field"], field, "{query}: {body}");
        assert_eq!(
            ext["timestamp"], "2026-01-01T00:00:00+00:00",
            "from the injected clock"
        );
    }
    // A cursor of another sort order is refused too.
    let page = h
        .ok(
            &h.a,
            "{ devices(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = page["devices"]["pageInfo"]["endCursor"].clone();
    let code = h
        .err_code(&h.a, "query($c: String) { devices(after: $c, sort: {field: \"hostname\"}) { filteredCount } }", json!({"c": cursor}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    let ids: Vec<String> = (0..101).map(|i| gid("Machine", &format!("m{i}"))).collect();
    let code = h
        .err_code(
            &h.a,
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({"ids": ids}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
}

#[tokio::test]
async fn bodies_are_bounded_json_and_get_cannot_mutate() {
    let h = Harness::start().await;
    let auth = format!("Bearer {}", h.a.token);
    let post = |body: Body, content_type: &str| {
        Request::post("/api/graphql")
            .header("authorization", &auth)
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    };

    let huge = json!({"query": format!("{{ __typename }} #{}", "x".repeat(200_000))}).to_string();
    let (status, body) = h.send(post(Body::from(huge), "application/json")).await;
    assert_eq!(status, 413, "{body}");

    let (status, body) = h
        .send(post(Body::from("{\"query\": "), "application/json"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");

    let (status, _) = h
        .send(post(
            Body::from("{\"query\": \"{ __typename }\"}"),
            "text/plain",
        ))
        .await;
    assert_eq!(status, 415, "form-style posts are refused (CSRF)");

    let (status, body) = h
        .send(post(
            Body::from("{\"query\": \"{ __typename \"}"),
            "application/json",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");

    let get = |q: &str| {
        Request::get(format!("/api/graphql?query={}", url_encode(q)))
            .header("authorization", &auth)
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = h.send(get("{ __typename }")).await;
    assert_eq!(
        (status.as_u16(), body["data"]["__typename"].clone()),
        (200, json!("Query"))
    );
    let (status, _) = h
        .send(get("mutation { createTag(input: {name: \"x\"}) { id } }"))
        .await;
    assert_eq!(status, 405);
    let tags = h.ok(&h.a, "{ tags { filteredCount } }", json!({})).await;
    assert_eq!(
        tags["tags"]["filteredCount"], 0,
        "the GET mutation did not run"
    );
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn api_keys_cannot_use_graphql_and_batches_are_capped() {
    let h = Harness::start().await;
    let key = h
        .stack
        .api_keys
        .create(&h.a.id, h.a.owner.id.clone(), "ci", vec!["*".into()], None)
        .await
        .unwrap();
    let r = Request::post("/api/graphql")
        .header("x-api-key", key.secret.expose())
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"query": "{ devices { filteredCount } }"}).to_string(),
        ))
        .unwrap();
    let (status, body) = h.send(r).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let ids: Vec<String> = (0..101).map(|i| gid("Machine", &format!("m{i}"))).collect();
    let q = "mutation($ids: [ID!]) { runCommand(input: {target: {machineIds: $ids}, command: \"id\", shell: BASH}) { executionId } }";
    assert_eq!(
        h.err_code(&h.a, q, json!({"ids": ids})).await,
        "VALIDATION_ERROR"
    );
    let code = h
        .err_code(&h.a, "mutation { runCommand(input: {target: {filter: {}}, command: \"id\", shell: BASH}) { executionId } }", json!({}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR", "a filter matching no device");
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let code = h
        .err_code(
            &h.a,
            "mutation($ids: [ID!]) { runCommand(input: {target: {machineIds: $ids}, command: \"id\", shell: BASH, timeoutSeconds: 0}) { executionId } }",
            json!({"ids": [gid("Machine", m.id.as_str())]}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR", "timeout out of range");
}
