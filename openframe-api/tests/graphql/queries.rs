//! GraphQL queries over a real SQLite store with real tokens: devices paging in both
//! directions, filters, search and sort, facets, DataLoader call counts and Relay nodes.

use crate::support::{Harness, gid};
use openframe_core::MachineStatus;
use serde_json::{Value, json};

const DEVICES: &str = r#"query($first: Int, $after: String, $last: Int, $before: String, $sort: SortInput, $search: String, $filter: DeviceFilterInput) {
  devices(first: $first, after: $after, last: $last, before: $before, sort: $sort, search: $search, filter: $filter) {
    edges { cursor node { id machineId hostname status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    filteredCount
  }
}"#;

fn hostnames(data: &Value) -> Vec<String> {
    data["devices"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["hostname"].as_str().unwrap().to_owned())
        .collect()
}

fn flags(data: &Value) -> (bool, bool) {
    let p = &data["devices"]["pageInfo"];
    (
        p["hasNextPage"].as_bool().unwrap(),
        p["hasPreviousPage"].as_bool().unwrap(),
    )
}

#[tokio::test]
async fn devices_page_forward_and_backward_with_exact_flags_and_matching_cursors() {
    let h = Harness::start().await;
    for i in 0..5 {
        h.machine(&h.a, &format!("host-{i}"), MachineStatus::Online)
            .await;
    }
    let sort = json!({"field": "hostname", "direction": "ASC"});

    let p1 = h.ok(&h.a, DEVICES, json!({"first": 2, "sort": sort})).await;
    assert_eq!(hostnames(&p1), ["host-0", "host-1"]);
    assert_eq!(flags(&p1), (true, false));
    assert_eq!(p1["devices"]["filteredCount"], 5);
    let edges = p1["devices"]["edges"].as_array().unwrap();
    assert_eq!(edges[0]["cursor"], p1["devices"]["pageInfo"]["startCursor"]);
    assert_eq!(edges[1]["cursor"], p1["devices"]["pageInfo"]["endCursor"]);

    let end = p1["devices"]["pageInfo"]["endCursor"].clone();
    let p2 = h
        .ok(
            &h.a,
            DEVICES,
            json!({"first": 2, "after": end, "sort": sort}),
        )
        .await;
    assert_eq!(hostnames(&p2), ["host-2", "host-3"]);
    assert_eq!(flags(&p2), (true, true));

    let end = p2["devices"]["pageInfo"]["endCursor"].clone();
    let p3 = h
        .ok(
            &h.a,
            DEVICES,
            json!({"first": 2, "after": end, "sort": sort}),
        )
        .await;
    assert_eq!(hostnames(&p3), ["host-4"]);
    assert_eq!(flags(&p3), (false, true));

    // Backward from the last page's start.
    let start = p3["devices"]["pageInfo"]["startCursor"].clone();
    let back = h
        .ok(
            &h.a,
            DEVICES,
            json!({"last": 2, "before": start, "sort": sort}),
        )
        .await;
    assert_eq!(hostnames(&back), ["host-2", "host-3"]);
    assert_eq!(flags(&back), (true, true));
    let last = h.ok(&h.a, DEVICES, json!({"last": 2, "sort": sort})).await;
    assert_eq!(hostnames(&last), ["host-3", "host-4"]);
    assert_eq!(flags(&last), (false, true));
}

#[tokio::test]
async fn devices_filter_search_sort_and_single_lookup() {
    let h = Harness::start().await;
    let web = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    h.machine(&h.a, "db-01", MachineStatus::Offline).await;
    h.machine(&h.a, "gone-01", MachineStatus::Deleted).await;

    let desc = h
        .ok(
            &h.a,
            DEVICES,
            json!({"sort": {"field": "hostname", "direction": "DESC"}}),
        )
        .await;
    assert_eq!(
        hostnames(&desc),
        ["web-01", "db-01"],
        "DELETED hidden by default"
    );

    let online = h
        .ok(&h.a, DEVICES, json!({"filter": {"statuses": ["ONLINE"]}}))
        .await;
    assert_eq!(hostnames(&online), ["web-01"]);
    let deleted = h
        .ok(&h.a, DEVICES, json!({"filter": {"statuses": ["DELETED"]}}))
        .await;
    assert_eq!(hostnames(&deleted), ["gone-01"]);
    let search = h.ok(&h.a, DEVICES, json!({"search": "DB"})).await;
    assert_eq!(hostnames(&search), ["db-01"]);
    assert_eq!(search["devices"]["filteredCount"], 1);

    let code = h
        .err_code(&h.a, DEVICES, json!({"sort": {"field": "password"}}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR", "sort fields are allowlisted");

    let q = "query($id: ID!) { device(id: $id) { hostname machineId } }";
    let found = h
        .ok(&h.a, q, json!({"id": gid("Machine", web.id.as_str())}))
        .await;
    assert_eq!(found["device"]["hostname"], "web-01");
    let missing = h.ok(&h.a, q, json!({"id": gid("Machine", "nope")})).await;
    assert!(missing["device"].is_null());
}

#[tokio::test]
async fn device_filters_compute_only_the_selected_facets() {
    let h = Harness::start().await;
    let org = h.org(&h.a, "Contoso").await;
    let tag = h.tag(&h.a, "prod").await;
    for (i, status) in [
        MachineStatus::Online,
        MachineStatus::Online,
        MachineStatus::Offline,
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = h.machine(&h.a, &format!("m-{i}"), status).await;
        m.organization_id = Some(org.id.clone());
        m.tags = vec![tag.id.clone()];
        h.stack.repos.machines.update(&h.a.id, m).await.unwrap();
    }

    h.store.reset();
    let q = "{ deviceFilters { statuses { value label count } } }";
    let data = h.ok(&h.a, q, json!({})).await;
    let statuses = data["deviceFilters"]["statuses"].as_array().unwrap();
    assert_eq!(
        statuses[0],
        json!({"value": "ONLINE", "label": "ONLINE", "count": 2})
    );
    assert_eq!(statuses[1]["count"], 1);
    let calls = h.store.calls();
    assert_eq!(
        calls.get("facet_fields"),
        Some(&1),
        "only statuses: {calls:?}"
    );
    assert_eq!(
        calls.get("count"),
        None,
        "filteredCount not selected: {calls:?}"
    );

    h.store.reset();
    let q = r#"query($f: DeviceFilterInput) { deviceFilters(filter: $f) {
        statuses { value count } organizations { value label count } tags { value label count } filteredCount } }"#;
    let data = h.ok(&h.a, q, json!({"f": {"statuses": ["OFFLINE"]}})).await;
    let f = &data["deviceFilters"];
    // A facet ignores its own filter; the others apply it.
    assert_eq!(f["statuses"].as_array().unwrap().len(), 2);
    assert_eq!(
        f["organizations"],
        json!([{"value": gid("Organization", org.id.as_str()), "label": "Contoso", "count": 1}])
    );
    assert_eq!(f["tags"][0]["label"], "prod");
    assert_eq!(f["filteredCount"], 1);
    assert_eq!(h.store.calls().get("facet_fields"), Some(&3));
}

#[tokio::test]
async fn a_page_of_devices_with_relations_costs_a_constant_number_of_store_calls() {
    let h = Harness::start().await;
    let orgs = [h.org(&h.a, "One").await, h.org(&h.a, "Two").await];
    let tags = [h.tag(&h.a, "red").await, h.tag(&h.a, "blue").await];
    let q = "{ devices(first: 50) { edges { node { hostname organization { name } tags { name } toolConnections { agentToolId } } } filteredCount } }";

    let mut costs = Vec::new();
    for target in [5usize, 50] {
        let have = h
            .stack
            .repos
            .machines
            .count(&h.a.id, &Default::default())
            .await
            .unwrap() as usize;
        for i in have..target {
            let mut m = h
                .machine(&h.a, &format!("n-{i:03}"), MachineStatus::Online)
                .await;
            m.organization_id = Some(orgs[i % 2].id.clone());
            m.tags = vec![tags[i % 2].id.clone(), tags[(i + 1) % 2].id.clone()];
            h.stack.repos.machines.update(&h.a.id, m).await.unwrap();
        }
        // Warm up token verification (its revocation list is read on first use).
        h.ok(&h.a, "{ __typename }", json!({})).await;
        h.store.reset();
        let data = h.ok(&h.a, q, json!({})).await;
        let edges = data["devices"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), target);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["organization"]["name"].is_string())
        );
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["tags"].as_array().unwrap().len() == 2)
        );
        costs.push((h.store.total(), h.store.calls()));
    }
    assert_eq!(costs[0].0, costs[1].0, "5 vs 50 devices: {costs:?}");
    // One page query, one count, one batch per relation (organizations, tags, connections).
    assert_eq!(costs[1].0, 5, "{costs:?}");
    assert_eq!(costs[1].1.get("get_many"), Some(&2), "{costs:?}");
}

#[tokio::test]
async fn node_and_nodes_resolve_global_ids() {
    let h = Harness::start().await;
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    let org = h.org(&h.a, "Contoso").await;
    let q = r#"query($ids: [ID!]!) { nodes(ids: $ids) { id __typename
        ... on Machine { hostname } ... on Organization { name } } }"#;
    let ids = [
        gid("Machine", m.id.as_str()),
        gid("Organization", org.id.as_str()),
        gid("Tag", "missing"),
    ];
    let data = h.ok(&h.a, q, json!({"ids": ids})).await;
    assert_eq!(data["nodes"][0]["hostname"], "web-01");
    assert_eq!(data["nodes"][0]["id"], ids[0]);
    assert_eq!(data["nodes"][1]["name"], "Contoso");
    assert!(data["nodes"][2].is_null());

    let one = h
        .ok(
            &h.a,
            "query($id: ID!) { node(id: $id) { __typename id } }",
            json!({"id": ids[1]}),
        )
        .await;
    assert_eq!(one["node"]["__typename"], "Organization");
}

#[tokio::test]
async fn events_page_newest_first_with_filters_and_disjunctive_facets() {
    use openframe_stream::model::Severity;
    let h = Harness::start().await;
    let m = h.machine(&h.a, "web-01", MachineStatus::Online).await;
    for (i, sev) in [Severity::Info, Severity::Error, Severity::Error]
        .into_iter()
        .enumerate()
    {
        h.event(&h.a, &format!("type.{i}"), sev, Some(&m), i as i64)
            .await;
    }
    let q = r#"query($f: EventFilterInput, $first: Int, $after: String) { events(filter: $f, first: $first, after: $after) {
        edges { cursor node { id summary severity machine { hostname } } }
        pageInfo { hasNextPage hasPreviousPage endCursor } filteredCount } }"#;
    let p1 = h.ok(&h.a, q, json!({"first": 2})).await;
    let edges = p1["events"]["edges"].as_array().unwrap();
    assert_eq!(
        edges[0]["node"]["summary"], "type.2 on acme",
        "newest first"
    );
    assert_eq!(edges[0]["node"]["machine"]["hostname"], "web-01");
    assert_eq!(p1["events"]["filteredCount"], 3);
    assert_eq!(p1["events"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(edges[1]["cursor"], p1["events"]["pageInfo"]["endCursor"]);
    let after = p1["events"]["pageInfo"]["endCursor"].clone();
    let p2 = h.ok(&h.a, q, json!({"first": 2, "after": after})).await;
    assert_eq!(
        p2["events"]["edges"][0]["node"]["summary"],
        "type.0 on acme"
    );
    assert_eq!(p2["events"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(p2["events"]["pageInfo"]["hasPreviousPage"], true);

    let errors = h.ok(&h.a, q, json!({"f": {"severities": ["ERROR"]}})).await;
    assert_eq!(errors["events"]["filteredCount"], 2);
    let bad = h
        .err_code(&h.a, q, json!({"f": {"severities": ["LOUD"]}}))
        .await;
    assert_eq!(bad, "VALIDATION_ERROR");

    let id = edges[0]["node"]["id"].clone();
    let one = h
        .ok(
            &h.a,
            "query($id: ID!) { event(id: $id) { summary } node(id: $id) { __typename } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        one,
        json!({"event": {"summary": "type.2 on acme"}, "node": {"__typename": "Event"}})
    );

    let f = r#"query($f: EventFilterInput) { eventFilters(filter: $f) { severities { value count } machines { value label count } filteredCount } }"#;
    let data = h.ok(&h.a, f, json!({"f": {"severities": ["ERROR"]}})).await;
    let facets = &data["eventFilters"];
    assert_eq!(
        facets["severities"],
        json!([{"value": "ERROR", "count": 2}, {"value": "INFO", "count": 1}]),
        "own filter ignored"
    );
    assert_eq!(
        facets["machines"],
        json!([{"value": gid("Machine", m.id.as_str()), "label": "web-01", "count": 2}])
    );
    assert_eq!(facets["filteredCount"], 2);
}

#[tokio::test]
async fn script_filters_count_selected_facets_with_labels() {
    let h = Harness::start().await;
    for (name, shell) in [("a", "BASH"), ("b", "BASH"), ("c", "PYTHON")] {
        let q = format!(
            "mutation {{ createScript(input: {{name: \"{name}\", shell: {shell}, scriptBody: \"true\"}}) {{ id }} }}"
        );
        h.ok(&h.a, &q, json!({})).await;
    }
    h.store.reset();
    let q = r#"query($f: ScriptFilterInput) { scriptFilters(filter: $f) {
        shells { value count } authors { value label count } filteredCount } }"#;
    let data = h.ok(&h.a, q, json!({"f": {"shells": ["PYTHON"]}})).await;
    let f = &data["scriptFilters"];
    assert_eq!(
        f["shells"],
        json!([{"value": "BASH", "count": 2}, {"value": "PYTHON", "count": 1}])
    );
    assert_eq!(
        f["authors"],
        json!([{"value": gid("User", h.a.owner.id.as_str()), "label": "owner@acme.example", "count": 1}])
    );
    assert_eq!(f["filteredCount"], 1);
    assert_eq!(h.store.calls().get("facet_fields"), Some(&2));
}
