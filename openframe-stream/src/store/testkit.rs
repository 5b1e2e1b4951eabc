//! The [`EventStore`] conformance suite: every backend (and every decorator) runs it.
//!
//! Each `check_*` function takes the store under test and panics on failure, like an
//! assertion. The [`event_store_conformance!`](crate::event_store_conformance) macro expands
//! every check into a `#[tokio::test]` for a factory `async fn() -> Option<Arc<dyn EventStore>>`
//! that returns `None` (after printing a `skipped: set OPENFRAME_TEST_..._URL` line) when its
//! service is not configured:
//!
//! ```text
//! async fn make_store() -> Option<Arc<dyn EventStore>> { Some(Arc::new(InMemoryEventStore::new())) }
//! openframe_stream::event_store_conformance!(make_store);
//! ```
//!
//! Checks use random tenants, but [`EventStore::purge_before`] is global: the factory must
//! hand every check a store of its own (a fresh file, a fresh database).
//!
//! Expected results are computed from the test data with plain predicates on the event
//! fields, never with [`EventFilter::matches`], so the reference semantics are tested too.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration};
use openframe_core::{
    Cursor, ErrorCode, MachineId, OrganizationId, Page, PageInfo, PageRequest, SortDirection,
    TenantId, Timestamp,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    BucketWidth, EventFacet, EventFilter, EventGroup, EventStore, FacetGroup, HistogramBucket,
    MAX_APPEND_BATCH,
};
use crate::model::{EventCategory, Outcome, Severity, ToolSource, UnifiedEvent};

/// A random tenant, so checks on one shared server never meet.
pub fn random_tenant() -> TenantId {
    TenantId::parse(format!("t{}", &Uuid::new_v4().simple().to_string()[..12])).unwrap()
}

/// The suite's reference instant: 2026-01-01T00:00:00Z.
pub fn base_time() -> Timestamp {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

const EVENT_TYPES: [&str; 3] = ["LOGIN", "DEVICE_ONLINE", "SCRIPT_EXECUTED"];
const CATEGORIES: [EventCategory; 3] = [
    EventCategory::Auth,
    EventCategory::Device,
    EventCategory::Scripts,
];
const SEVERITIES: [Severity; 4] = [
    Severity::Info,
    Severity::Warning,
    Severity::Error,
    Severity::Critical,
];

/// Event number `n` of `tenant` at `at`, with fields cycling deterministically: tool `n % 5`,
/// type and category `n % 3`, severity `n % 4`, machine `m{n % 4}` (none when `n % 10 == 9`),
/// organization `o{n % 2}`, user `user{n % 5}`.
pub fn event(tenant: &TenantId, n: u64, at: Timestamp) -> UnifiedEvent {
    let i = n as usize;
    UnifiedEvent {
        id: Uuid::new_v5(
            &crate::model::EVENT_ID_NAMESPACE,
            format!("{tenant}:{n}").as_bytes(),
        ),
        tenant: Some(tenant.clone()),
        tool: ToolSource::ALL[i % 5],
        source_type: format!("src.{}", n % 3),
        category: CATEGORIES[i % 3],
        event_type: EVENT_TYPES[i % 3].to_owned(),
        severity: SEVERITIES[i % 4],
        outcome: Some(Outcome::Success),
        occurred_at: at,
        machine_id: (n % 10 != 9).then(|| MachineId::parse(format!("m{}", n % 4)).unwrap()),
        organization_id: Some(OrganizationId::parse(format!("o{}", n % 2)).unwrap()),
        unknown_machine: n % 10 == 9,
        tool_agent_id: Some(format!("agent-{}", n % 4)),
        user: Some(format!("user{}", n % 5)),
        summary: format!("event {n}"),
        details: json!({ "n": n, "nested": { "ok": true } }),
        source_position: Some(format!("pos-{n}")),
    }
}

/// `count` events of `tenant`, one minute apart from `start`.
pub fn events(tenant: &TenantId, count: u64, start: Timestamp) -> Vec<UnifiedEvent> {
    (0..count)
        .map(|n| event(tenant, n, start + Duration::minutes(n as i64)))
        .collect()
}

/// Appends `events` in one batch and returns how many were new.
pub async fn append(store: &dyn EventStore, events: &[UnifiedEvent]) -> u64 {
    store.append(events).await.unwrap().inserted
}

/// The ids of `data` matching `pred`, newest first (the store's order).
pub fn expected(data: &[UnifiedEvent], pred: impl Fn(&UnifiedEvent) -> bool) -> Vec<Uuid> {
    let mut rows: Vec<&UnifiedEvent> = data.iter().filter(|e| pred(e)).collect();
    rows.sort_by_key(|e| (e.occurred_at.timestamp_micros(), e.id));
    rows.reverse();
    rows.into_iter().map(|e| e.id).collect()
}

/// Every id `filter` selects, paging forward by `size`; checks each page's flags.
pub async fn walk_forward(
    store: &dyn EventStore,
    tenant: &TenantId,
    filter: &EventFilter,
    size: i64,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut infos: Vec<PageInfo> = Vec::new();
    let mut request = PageRequest::first(size);
    for _ in 0..1000 {
        let page = store.query(tenant, filter, &request).await.unwrap();
        check_edges(&page);
        assert!(page.edges.len() as i64 <= size);
        ids.extend(page.nodes().map(|e| e.id));
        let info = page.page_info.clone();
        infos.push(info.clone());
        match (info.has_next_page, info.end_cursor) {
            (true, Some(end)) => request = PageRequest::first(size).after(end),
            _ => break,
        }
    }
    let pages = infos.len();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.has_previous_page, i > 0, "page {i} hasPreviousPage");
        assert_eq!(info.has_next_page, i + 1 < pages, "page {i} hasNextPage");
    }
    ids
}

/// Every id `filter` selects, paging backward from the end by `size`; checks flags.
pub async fn walk_backward(
    store: &dyn EventStore,
    tenant: &TenantId,
    filter: &EventFilter,
    size: i64,
) -> Vec<Uuid> {
    let mut pages: Vec<Vec<Uuid>> = Vec::new();
    let mut infos: Vec<PageInfo> = Vec::new();
    let mut request = PageRequest::last(size);
    for _ in 0..1000 {
        let page = store.query(tenant, filter, &request).await.unwrap();
        check_edges(&page);
        pages.push(page.nodes().map(|e| e.id).collect());
        let info = page.page_info.clone();
        infos.push(info.clone());
        match (info.has_previous_page, info.start_cursor) {
            (true, Some(start)) => request = PageRequest::last(size).before(start),
            _ => break,
        }
    }
    let count = infos.len();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.has_next_page, i > 0, "backward page {i} hasNextPage");
        assert_eq!(
            info.has_previous_page,
            i + 1 < count,
            "backward page {i} hasPreviousPage"
        );
    }
    pages.into_iter().rev().flatten().collect()
}

/// Edge cursors equal the page info cursors; a page's rows are in store order.
fn check_edges(page: &Page<UnifiedEvent>) {
    assert_eq!(
        page.page_info.start_cursor.as_deref(),
        page.edges.first().map(|e| e.cursor.as_str())
    );
    assert_eq!(
        page.page_info.end_cursor.as_deref(),
        page.edges.last().map(|e| e.cursor.as_str())
    );
    for pair in page.edges.windows(2) {
        let key = |e: &UnifiedEvent| (e.occurred_at.timestamp_micros(), e.id);
        assert!(key(&pair[0].node) > key(&pair[1].node), "rows out of order");
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: openframe_core::Result<T>, field: &str) {
    let err = result.expect_err("expected a validation error");
    assert_eq!(err.code(), ErrorCode::ValidationError, "{err}");
    let got = err.field().unwrap_or_default().to_owned();
    assert!(
        got.contains(field),
        "error field {got:?} should name {field:?}"
    );
}

fn all() -> EventFilter {
    EventFilter::default()
}

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

pub async fn check_append_is_idempotent(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let data = events(&tenant, 3, base_time());
    let first = store.append(&data).await.unwrap();
    assert_eq!((first.inserted, first.replaced), (3, 0));

    let changed: Vec<UnifiedEvent> = data
        .iter()
        .cloned()
        .map(|e| e.with_summary("replayed").with_severity(Severity::Critical))
        .collect();
    let again = store.append(&changed).await.unwrap();
    assert_eq!((again.inserted, again.replaced), (0, 3));
    assert_eq!(store.count(&tenant, &all()).await.unwrap(), 3);
    let stored = store.get(&tenant, data[1].id).await.unwrap().unwrap();
    assert_eq!(stored, changed[1]);

    // A duplicate inside one batch: one row, the last one wins.
    let mut moved = event(&tenant, 10, base_time());
    let mut later = moved.clone().with_summary("later copy");
    later.occurred_at = base_time() + Duration::hours(5);
    let batch = store.append(&[moved.clone(), later.clone()]).await.unwrap();
    assert_eq!((batch.inserted, batch.replaced), (1, 1));
    assert_eq!(store.count(&tenant, &all()).await.unwrap(), 4);
    assert_eq!(store.get(&tenant, moved.id).await.unwrap().unwrap(), later);

    // A replacement that moves the event in time moves it in lists too.
    moved.occurred_at = base_time() - Duration::hours(5);
    store.append(std::slice::from_ref(&moved)).await.unwrap();
    let ids = walk_forward(&*store, &tenant, &all(), 100).await;
    assert_eq!(ids.len(), 4);
    assert_eq!(ids.last(), Some(&moved.id));
    assert_eq!(store.append(&[]).await.unwrap(), Default::default());
}

pub async fn check_concurrent_appends_keep_one_row_per_id(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let data = events(&tenant, 50, base_time());
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let mut batch = data.clone();
            batch.rotate_left(i * 10);
            tokio::spawn(async move { store.append(&batch).await.unwrap() })
        })
        .collect();
    let (mut inserted, mut replaced) = (0, 0);
    for task in tasks {
        let outcome = task.await.unwrap();
        inserted += outcome.inserted;
        replaced += outcome.replaced;
    }
    assert_eq!((inserted, replaced), (50, 150));
    assert_eq!(store.count(&tenant, &all()).await.unwrap(), 50);
    assert_eq!(
        walk_forward(&*store, &tenant, &all(), 100).await,
        expected(&data, |_| true)
    );
}

pub async fn check_append_rejects_bad_batches_atomically(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let good = event(&tenant, 1, base_time());
    let mut tenantless = event(&tenant, 2, base_time());
    tenantless.tenant = None;
    assert_invalid(
        store.append(&[good.clone(), tenantless]).await,
        "events[1].tenant",
    );

    let mut long_summary = event(&tenant, 3, base_time());
    long_summary.summary = "x".repeat(crate::model::MAX_SUMMARY_CHARS + 1);
    assert_invalid(store.append(&[good.clone(), long_summary]).await, "summary");
    let mut big_details = event(&tenant, 4, base_time());
    big_details.details = json!({ "blob": "y".repeat(crate::model::MAX_DETAILS_BYTES) });
    assert_invalid(store.append(&[good.clone(), big_details]).await, "details");
    let mut no_type = event(&tenant, 5, base_time());
    no_type.event_type.clear();
    assert_invalid(store.append(&[good.clone(), no_type]).await, "eventType");
    let mut long_user = event(&tenant, 6, base_time());
    long_user.user = Some("u".repeat(257));
    assert_invalid(store.append(&[good.clone(), long_user]).await, "user");
    let too_many = vec![good.clone(); MAX_APPEND_BATCH + 1];
    assert_invalid(store.append(&too_many).await, "events");

    assert_eq!(store.count(&tenant, &all()).await.unwrap(), 0);
    assert!(store.get(&tenant, good.id).await.unwrap().is_none());
    assert_eq!(append(&*store, std::slice::from_ref(&good)).await, 1);
}

pub async fn check_get_round_trips_every_field(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let mut full = event(&tenant, 7, base_time() + Duration::nanoseconds(123_456_789));
    full.details = json!({"big": u64::MAX, "neg": -1, "f": 1.5, "s": "é\"\\", "a": [null, true]});
    full.summary = "Ünïcode — summary".into();
    full.outcome = None;
    let mut sparse = event(&tenant, 9, base_time());
    sparse.user = None;
    sparse.tool_agent_id = None;
    sparse.source_position = None;
    sparse.organization_id = None;
    sparse.details = serde_json::Value::Null;
    append(&*store, &[full.clone(), sparse.clone()]).await;
    assert_eq!(
        store.get(&tenant, full.id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.get(&tenant, sparse.id).await.unwrap(),
        Some(sparse.clone())
    );
    assert_eq!(store.get(&tenant, Uuid::new_v4()).await.unwrap(), None);
    let page = store
        .query(&tenant, &all(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.into_nodes(), vec![full, sparse]);
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

/// A named filter and the predicate that says which events it must select.
type FilterCase = (
    &'static str,
    EventFilter,
    Box<dyn Fn(&UnifiedEvent) -> bool>,
);

pub async fn check_every_filter(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let data = events(&tenant, 60, base_time());
    append(&*store, &data).await;
    let machine = |e: &UnifiedEvent| e.machine_id.as_ref().map(|m| m.as_str().to_owned());
    let org = |e: &UnifiedEvent| e.organization_id.as_ref().map(|o| o.as_str().to_owned());
    let m = |s: &str| MachineId::parse(s).unwrap();
    let cases: Vec<FilterCase> = vec![
        ("everything", all(), Box::new(|_| true)),
        (
            "time range",
            EventFilter {
                from: Some(base_time() + Duration::minutes(10)),
                to: Some(base_time() + Duration::minutes(25)),
                ..all()
            },
            Box::new(|e| {
                e.occurred_at >= base_time() + Duration::minutes(10)
                    && e.occurred_at < base_time() + Duration::minutes(25)
            }),
        ),
        (
            "from only",
            EventFilter {
                from: Some(base_time() + Duration::minutes(50)),
                ..all()
            },
            Box::new(|e| e.occurred_at >= base_time() + Duration::minutes(50)),
        ),
        (
            "machines",
            EventFilter {
                machine_ids: vec![m("m1"), m("m3")],
                ..all()
            },
            Box::new(move |e| matches!(machine(e).as_deref(), Some("m1" | "m3"))),
        ),
        (
            "organization",
            EventFilter {
                organization_ids: vec![OrganizationId::parse("o1").unwrap()],
                ..all()
            },
            Box::new(move |e| org(e).as_deref() == Some("o1")),
        ),
        (
            "event types",
            EventFilter {
                event_types: vec!["LOGIN".into(), "NO_SUCH_TYPE".into()],
                ..all()
            },
            Box::new(|e| e.event_type == "LOGIN"),
        ),
        (
            "severities",
            EventFilter {
                severities: vec![Severity::Error, Severity::Critical],
                ..all()
            },
            Box::new(|e| e.severity >= Severity::Error),
        ),
        (
            "tools",
            EventFilter {
                tools: vec![ToolSource::FleetMdm],
                ..all()
            },
            Box::new(|e| e.tool == ToolSource::FleetMdm),
        ),
        (
            "categories",
            EventFilter {
                categories: vec![EventCategory::Scripts, EventCategory::Device],
                ..all()
            },
            Box::new(|e| matches!(e.category, EventCategory::Scripts | EventCategory::Device)),
        ),
        (
            "combined",
            EventFilter {
                machine_ids: vec![m("m0"), m("m2")],
                severities: vec![Severity::Info, Severity::Error],
                from: Some(base_time() + Duration::minutes(4)),
                text: Some("EVENT 4".into()),
                ..all()
            },
            Box::new(move |e| {
                matches!(machine(e).as_deref(), Some("m0" | "m2"))
                    && matches!(e.severity, Severity::Info | Severity::Error)
                    && e.occurred_at >= base_time() + Duration::minutes(4)
                    && e.summary.starts_with("event 4")
            }),
        ),
        (
            "nothing",
            EventFilter {
                machine_ids: vec![m("m9")],
                ..all()
            },
            Box::new(|_| false),
        ),
    ];
    for (name, filter, pred) in cases {
        let want = expected(&data, pred);
        assert_eq!(
            store.count(&tenant, &filter).await.unwrap(),
            want.len() as u64,
            "count: {name}"
        );
        assert_eq!(
            walk_forward(&*store, &tenant, &filter, 7).await,
            want,
            "query: {name}"
        );
    }
}

pub async fn check_text_search_is_literal(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let summaries = [
        "100% done",
        "100 percent done",
        "file_a.txt",
        "fileXa.txt",
        "C.*",
        "Cxx",
        "[abc]",
        "b",
        "(x|y)",
        "back\\slash",
        "Café au lait",
        "plain",
    ];
    let mut data: Vec<UnifiedEvent> = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut e = event(&tenant, i as u64, base_time() + Duration::seconds(i as i64));
            e.summary = (*s).to_owned();
            e.source_type = "plain".into();
            e.user = None;
            e
        })
        .collect();
    let mut by_user = event(&tenant, 100, base_time());
    by_user.summary = "nothing".into();
    by_user.user = Some("Alice_Admin".into());
    by_user.source_type = "plain".into();
    let mut by_source = event(&tenant, 101, base_time());
    by_source.summary = "nothing".into();
    by_source.user = None;
    by_source.source_type = "user.Login".into();
    data.push(by_user);
    data.push(by_source);
    append(&*store, &data).await;

    let cases: [(&str, &[&str]); 13] = [
        ("%", &["100% done"]),
        ("100%", &["100% done"]),
        ("file_a", &["file_a.txt"]),
        (".*", &["C.*"]),
        ("[abc]", &["[abc]"]),
        ("(x|y)", &["(x|y)"]),
        ("\\", &["back\\slash"]),
        ("CAFÉ", &["Café au lait"]),
        ("  done ", &["100% done", "100 percent done"]),
        ("$^", &[]),
        ("alice_ADMIN", &["<user>"]),
        ("USER.LOGIN", &["<source>"]),
        ("'; drop table events; --", &[]),
    ];
    for (text, want) in cases {
        let filter = EventFilter {
            text: Some(text.into()),
            ..all()
        };
        let want = expected(&data, |e| {
            let label = if e.user.is_some() {
                "<user>"
            } else if e.source_type != "plain" {
                "<source>"
            } else {
                e.summary.as_str()
            };
            want.contains(&label)
        });
        assert_eq!(
            walk_forward(&*store, &tenant, &filter, 100).await,
            want,
            "text {text:?}"
        );
        assert_eq!(
            store.count(&tenant, &filter).await.unwrap(),
            want.len() as u64
        );
    }
    let blank = EventFilter {
        text: Some("   ".into()),
        ..all()
    };
    assert_eq!(
        store.count(&tenant, &blank).await.unwrap(),
        data.len() as u64
    );
}

pub async fn check_bad_filters_are_rejected(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    append(&*store, &events(&tenant, 3, base_time())).await;
    let many = (0..101)
        .map(|i| MachineId::parse(format!("m{i}")).unwrap())
        .collect();
    let cases = [
        (
            EventFilter {
                machine_ids: many,
                ..all()
            },
            "machineIds",
        ),
        (
            EventFilter {
                event_types: vec![String::new()],
                ..all()
            },
            "eventTypes",
        ),
        (
            EventFilter {
                text: Some("x".repeat(201)),
                ..all()
            },
            "text",
        ),
        (
            EventFilter {
                text: Some("line\nbreak".into()),
                ..all()
            },
            "text",
        ),
        (
            EventFilter {
                from: Some(base_time()),
                to: Some(base_time()),
                ..all()
            },
            "to",
        ),
    ];
    for (filter, field) in cases {
        assert_invalid(store.count(&tenant, &filter).await, field);
        assert_invalid(
            store.query(&tenant, &filter, &PageRequest::first(5)).await,
            field,
        );
        assert_invalid(
            store.facets(&tenant, &filter, &[EventFacet::Tool]).await,
            field,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

pub async fn check_paging_both_directions(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    // 250 events; every group of 5 shares one instant, so the id breaks ties.
    let data: Vec<UnifiedEvent> = (0..250)
        .map(|n| event(&tenant, n, base_time() + Duration::seconds((n / 5) as i64)))
        .collect();
    for chunk in data.chunks(100) {
        append(&*store, chunk).await;
    }
    let want = expected(&data, |_| true);
    for size in [1, 40, 50, 100] {
        assert_eq!(
            walk_forward(&*store, &tenant, &all(), size).await,
            want,
            "first {size}"
        );
        assert_eq!(
            walk_backward(&*store, &tenant, &all(), size).await,
            want,
            "last {size}"
        );
    }

    // Backward from page 2 gives exactly page 1.
    let p1 = store
        .query(&tenant, &all(), &PageRequest::first(40))
        .await
        .unwrap();
    let p2 = store
        .query(
            &tenant,
            &all(),
            &PageRequest::first(40).after(p1.page_info.end_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    let back = store
        .query(
            &tenant,
            &all(),
            &PageRequest::last(40).before(p2.page_info.start_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(back.edges, p1.edges);
    assert!(back.page_info.has_next_page && !back.page_info.has_previous_page);
    // A shorter backward page right before page 2 still has rows before it.
    let back = store
        .query(
            &tenant,
            &all(),
            &PageRequest::last(10).before(p2.page_info.start_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = back.nodes().map(|e| e.id).collect();
    assert_eq!(ids, want[30..40]);
    assert!(back.page_info.has_next_page && back.page_info.has_previous_page);

    // Filtered paging: exact flags at the end of a filtered list.
    let filter = EventFilter {
        severities: vec![Severity::Warning],
        ..all()
    };
    let want = expected(&data, |e| e.severity == Severity::Warning);
    assert_eq!(walk_forward(&*store, &tenant, &filter, 9).await, want);
    assert_eq!(walk_backward(&*store, &tenant, &filter, 9).await, want);
    // The default page size is 20.
    let page = store
        .query(&tenant, &all(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.edges.len(), 20);
}

pub async fn check_paging_with_inserts_between_pages(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let mut data = events(&tenant, 30, base_time());
    append(&*store, &data).await;
    let p1 = store
        .query(&tenant, &all(), &PageRequest::first(10))
        .await
        .unwrap();
    let end = p1.edges.last().unwrap().node.clone();

    // New rows: one newer than everything, one older than the cursor, and two at the cursor's
    // instant whose ids fall on either side of it.
    let mut fresh = vec![
        event(&tenant, 1000, base_time() + Duration::days(1)),
        event(&tenant, 1001, base_time() + Duration::seconds(30)),
    ];
    let mut n = 2000;
    let (mut above, mut below) = (None, None);
    while above.is_none() || below.is_none() {
        let e = event(&tenant, n, end.occurred_at);
        if e.id > end.id && above.is_none() {
            above = Some(e);
        } else if e.id < end.id && below.is_none() {
            below = Some(e);
        }
        n += 1;
    }
    fresh.push(above.unwrap());
    fresh.push(below.unwrap());
    append(&*store, &fresh).await;
    data.extend(fresh);

    let p2 = store
        .query(
            &tenant,
            &all(),
            &PageRequest::first(10).after(p1.page_info.end_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    let key = |e: &UnifiedEvent| (e.occurred_at.timestamp_micros(), e.id);
    let want: Vec<Uuid> = expected(&data, |e| key(e) < key(&end))
        .into_iter()
        .take(10)
        .collect();
    assert_eq!(p2.nodes().map(|e| e.id).collect::<Vec<_>>(), want);
    assert!(p2.page_info.has_previous_page && p2.page_info.has_next_page);

    // Walking back from page 2 now sees the inserted rows before it.
    let back = store
        .query(
            &tenant,
            &all(),
            &PageRequest::last(100).before(p2.page_info.start_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    let first = p2.edges.first().unwrap().node.clone();
    let want = expected(&data, |e| key(e) > key(&first));
    assert_eq!(back.nodes().map(|e| e.id).collect::<Vec<_>>(), want);
    assert_eq!(want.len(), 12);
    assert!(!back.page_info.has_previous_page && back.page_info.has_next_page);
}

pub async fn check_bad_page_requests(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    append(&*store, &events(&tenant, 5, base_time())).await;
    let q = |p: PageRequest| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move { store.query(&tenant, &EventFilter::default(), &p).await }
    };
    assert_invalid(q(PageRequest::first(0)).await, "first");
    assert_invalid(q(PageRequest::first(101)).await, "first");
    assert_invalid(q(PageRequest::last(0)).await, "last");
    assert_invalid(q(PageRequest::last(101)).await, "last");
    assert_invalid(q(PageRequest::first(-1)).await, "first");
    assert_invalid(q(PageRequest::first(5).after("bogus")).await, "after");
    assert_invalid(q(PageRequest::last(5).before("%%%")).await, "before");
    assert_invalid(q(PageRequest::first(5).after("")).await, "after");

    let valid = q(PageRequest::first(1)).await.unwrap();
    let cursor = Cursor::decode("after", valid.page_info.end_cursor.as_deref().unwrap()).unwrap();
    let foreign = [
        Cursor {
            sort: "hostname".into(),
            ..cursor.clone()
        },
        Cursor {
            direction: SortDirection::Asc,
            ..cursor.clone()
        },
        Cursor {
            key: json!("2026-01-01"),
            ..cursor.clone()
        },
        Cursor {
            id: "not-a-uuid".into(),
            ..cursor.clone()
        },
    ];
    for c in foreign {
        assert_invalid(q(PageRequest::first(5).after(c.encode())).await, "after");
        assert_invalid(q(PageRequest::last(5).before(c.encode())).await, "before");
    }
    // Tampered cursors never fall back to the first page: a valid one still works.
    let next = q(PageRequest::first(5).after(cursor.encode()))
        .await
        .unwrap();
    assert_eq!(next.edges.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------

fn name<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn tally(
    data: &[UnifiedEvent],
    pred: impl Fn(&UnifiedEvent) -> bool,
    value: impl Fn(&UnifiedEvent) -> Option<String>,
) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for e in data.iter().filter(|e| pred(e)) {
        if let Some(v) = value(e) {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn pairs(group: &FacetGroup) -> Vec<(String, u64)> {
    group
        .counts
        .iter()
        .map(|c| (c.value.clone(), c.count))
        .collect()
}

pub async fn check_facets(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let data = events(&tenant, 70, base_time());
    append(&*store, &data).await;
    type Getter = fn(&UnifiedEvent) -> Option<String>;
    let fields: [(EventFacet, Getter); 6] = [
        (EventFacet::EventType, |e| Some(e.event_type.clone())),
        (EventFacet::Severity, |e| Some(name(e.severity))),
        (EventFacet::Tool, |e| Some(name(e.tool))),
        (EventFacet::Category, |e| Some(name(e.category))),
        (EventFacet::MachineId, |e| {
            e.machine_id.as_ref().map(|m| m.to_string())
        }),
        (EventFacet::OrganizationId, |e| {
            e.organization_id.as_ref().map(|o| o.to_string())
        }),
    ];
    let asked: Vec<EventFacet> = fields.iter().map(|(f, _)| *f).collect();
    let got = store.facets(&tenant, &all(), &asked).await.unwrap();
    assert_eq!(got.len(), 6);
    for ((facet, value), group) in fields.iter().zip(&got) {
        assert_eq!(group.facet, *facet);
        assert_eq!(pairs(group), tally(&data, |_| true, value), "{facet:?}");
    }

    // The filter applies, only the asked fields come back, in the asked order, once.
    let filter = EventFilter {
        severities: vec![Severity::Error],
        to: Some(base_time() + Duration::minutes(40)),
        ..all()
    };
    let pred = |e: &UnifiedEvent| {
        e.severity == Severity::Error && e.occurred_at < base_time() + Duration::minutes(40)
    };
    let got = store
        .facets(
            &tenant,
            &filter,
            &[
                EventFacet::MachineId,
                EventFacet::Severity,
                EventFacet::MachineId,
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|g| g.facet).collect::<Vec<_>>(),
        [EventFacet::MachineId, EventFacet::Severity]
    );
    assert_eq!(pairs(&got[0]), tally(&data, pred, fields[4].1));
    assert_eq!(
        pairs(&got[1]),
        vec![("ERROR".to_owned(), expected(&data, pred).len() as u64)]
    );
    assert!(store.facets(&tenant, &all(), &[]).await.unwrap().is_empty());
}

pub async fn check_histogram(store: Arc<dyn EventStore>) {
    let tenant = random_tenant();
    let t0 = base_time();
    let at = |minutes: i64, ty: &str, severity: Severity, n: u64| {
        let mut e = event(&tenant, n, t0 + Duration::minutes(minutes));
        e.event_type = ty.to_owned();
        e.severity = severity;
        e
    };
    let data = vec![
        at(-1, "LOGIN", Severity::Info, 0), // before the range
        at(0, "LOGIN", Severity::Info, 1),
        at(5, "LOGIN", Severity::Error, 2),
        at(59, "LOGOUT", Severity::Info, 3),
        at(60, "LOGIN", Severity::Info, 4),
        at(61, "LOGIN", Severity::Info, 5),
        at(185, "LOGOUT", Severity::Error, 6),
        at(240, "LOGIN", Severity::Info, 7), // at `to`: excluded
    ];
    append(&*store, &data).await;
    let range = EventFilter {
        from: Some(t0),
        to: Some(t0 + Duration::hours(4)),
        ..all()
    };
    let row = |hours: i64, minutes: i64, group: &str, count: u64| HistogramBucket {
        start: t0 + Duration::hours(hours) + Duration::minutes(minutes),
        group: group.to_owned(),
        count,
    };
    let got = store
        .histogram(&tenant, &range, BucketWidth::Hour, EventGroup::EventType)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            row(0, 0, "LOGIN", 2),
            row(0, 0, "LOGOUT", 1),
            row(1, 0, "LOGIN", 2),
            row(3, 0, "LOGOUT", 1),
        ]
    );
    let got = store
        .histogram(
            &tenant,
            &range,
            BucketWidth::Seconds(7200),
            EventGroup::Severity,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            row(0, 0, "ERROR", 1),
            row(0, 0, "INFO", 4),
            row(2, 0, "ERROR", 1)
        ]
    );
    let minutes = EventFilter {
        to: Some(t0 + Duration::minutes(30)),
        event_types: vec!["LOGIN".into()],
        ..range.clone()
    };
    let got = store
        .histogram(&tenant, &minutes, BucketWidth::Minute, EventGroup::Severity)
        .await
        .unwrap();
    assert_eq!(got, vec![row(0, 0, "INFO", 1), row(0, 5, "ERROR", 1)]);
    let days = EventFilter {
        from: Some(t0 - Duration::days(3)),
        to: Some(t0 + Duration::days(1)),
        ..all()
    };
    let got = store
        .histogram(&tenant, &days, BucketWidth::Day, EventGroup::EventType)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            row(-24, 0, "LOGIN", 1),
            row(0, 0, "LOGIN", 5),
            row(0, 0, "LOGOUT", 2),
        ]
    );

    // Bounded: both ends are required and at most 1000 buckets.
    assert_invalid(
        store
            .histogram(&tenant, &all(), BucketWidth::Hour, EventGroup::EventType)
            .await,
        "from",
    );
    let long = EventFilter {
        from: Some(t0),
        to: Some(t0 + Duration::days(2)),
        ..all()
    };
    assert_invalid(
        store
            .histogram(&tenant, &long, BucketWidth::Minute, EventGroup::EventType)
            .await,
        "bucket",
    );
    assert_invalid(
        store
            .histogram(
                &tenant,
                &range,
                BucketWidth::Seconds(0),
                EventGroup::EventType,
            )
            .await,
        "bucket",
    );
    assert!(
        store
            .histogram(&tenant, &long, BucketWidth::Hour, EventGroup::EventType)
            .await
            .is_ok()
    );
}

pub async fn check_purge_before(store: Arc<dyn EventStore>) {
    let (a, b) = (random_tenant(), random_tenant());
    let cutoff = base_time() - Duration::days(2);
    let offsets = [-10, -5, -3, 0, 1];
    let mut data = Vec::new();
    for tenant in [&a, &b] {
        for (n, days) in offsets.iter().enumerate() {
            data.push(event(tenant, n as u64, cutoff + Duration::days(*days)));
        }
    }
    // One microsecond before the cutoff goes; the cutoff itself stays.
    data.push(event(&a, 50, cutoff - Duration::microseconds(1)));
    append(&*store, &data).await;
    assert_eq!(store.purge_before(cutoff).await.unwrap(), 7);
    assert_eq!(store.count(&a, &all()).await.unwrap(), 2);
    assert_eq!(store.count(&b, &all()).await.unwrap(), 2);
    for e in &data {
        let kept = e.occurred_at >= cutoff;
        let tenant = e.tenant.as_ref().unwrap();
        assert_eq!(store.get(tenant, e.id).await.unwrap().is_some(), kept);
    }
    assert_eq!(store.purge_before(cutoff).await.unwrap(), 0);
    // A purged event can be appended again as new.
    assert_eq!(append(&*store, &data[..1]).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation
// ---------------------------------------------------------------------------------------------

pub async fn check_tenant_isolation(store: Arc<dyn EventStore>) {
    let (a, b) = (random_tenant(), random_tenant());
    let data_a = events(&a, 20, base_time());
    append(&*store, &data_a).await;
    let mut data_b = events(&b, 3, base_time() + Duration::hours(1));
    // Tenant B stores an event with the id of one of A's: a separate row, A's is untouched.
    let mut twin = data_a[4].clone().with_summary("tenant b's copy");
    twin.tenant = Some(b.clone());
    data_b.push(twin.clone());
    let outcome = store.append(&data_b).await.unwrap();
    assert_eq!((outcome.inserted, outcome.replaced), (4, 0));
    assert_eq!(
        store.get(&a, twin.id).await.unwrap(),
        Some(data_a[4].clone())
    );
    assert_eq!(store.get(&b, twin.id).await.unwrap(), Some(twin.clone()));

    // get, query, count never cross.
    for e in &data_a[5..] {
        assert_eq!(store.get(&b, e.id).await.unwrap(), None);
    }
    let want_b = expected(&data_b, |_| true);
    assert_eq!(walk_forward(&*store, &b, &all(), 2).await, want_b);
    assert_eq!(walk_backward(&*store, &b, &all(), 2).await, want_b);
    assert_eq!(store.count(&b, &all()).await.unwrap(), 4);
    assert_eq!(store.count(&a, &all()).await.unwrap(), 20);
    let by_machine = EventFilter {
        machine_ids: vec![MachineId::parse("m1").unwrap()],
        ..all()
    };
    let want = expected(&data_b, |e| {
        e.machine_id.as_ref().is_some_and(|m| m.as_str() == "m1")
    });
    assert_eq!(walk_forward(&*store, &b, &by_machine, 10).await, want);

    // A cursor minted in tenant A pages tenant B's rows only.
    let page_a = store
        .query(&a, &all(), &PageRequest::first(1))
        .await
        .unwrap();
    let cursor = page_a.page_info.end_cursor.unwrap();
    for request in [
        PageRequest::first(100).after(cursor.clone()),
        PageRequest::last(100).before(cursor),
    ] {
        let page = store.query(&b, &all(), &request).await.unwrap();
        assert!(page.nodes().all(|e| e.tenant.as_ref() == Some(&b)));
    }

    // Facets and histograms count only the tenant's own rows.
    let facets = store
        .facets(&b, &all(), &[EventFacet::Tool, EventFacet::MachineId])
        .await
        .unwrap();
    let total: u64 = facets[0].counts.iter().map(|c| c.count).sum();
    assert_eq!(total, 4);
    assert_eq!(
        pairs(&facets[1]),
        tally(
            &data_b,
            |_| true,
            |e| e.machine_id.as_ref().map(|m| m.to_string())
        )
    );
    let range = EventFilter {
        from: Some(base_time() - Duration::days(1)),
        to: Some(base_time() + Duration::days(1)),
        ..all()
    };
    let rows = store
        .histogram(&b, &range, BucketWidth::Day, EventGroup::Severity)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 4);

    // A tenant without events sees nothing at all.
    let c = random_tenant();
    assert_eq!(store.count(&c, &all()).await.unwrap(), 0);
    assert!(store.get(&c, data_a[0].id).await.unwrap().is_none());
    let page = store
        .query(&c, &all(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.edges.is_empty() && !page.page_info.has_next_page);
    let facets = store
        .facets(&c, &all(), &[EventFacet::EventType])
        .await
        .unwrap();
    assert!(facets[0].counts.is_empty());
    assert!(
        store
            .histogram(&c, &range, BucketWidth::Day, EventGroup::Severity)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Expands the [`EventStore`] suite into `#[tokio::test]`s for `$factory`, an
/// `async fn() -> Option<Arc<dyn EventStore>>` that returns a fresh store per call.
#[macro_export]
macro_rules! event_store_conformance {
    ($factory:path) => {
        $crate::__event_store_checks!($factory:
            check_append_is_idempotent, check_concurrent_appends_keep_one_row_per_id,
            check_append_rejects_bad_batches_atomically,
            check_get_round_trips_every_field, check_every_filter, check_text_search_is_literal,
            check_bad_filters_are_rejected, check_paging_both_directions,
            check_paging_with_inserts_between_pages, check_bad_page_requests, check_facets,
            check_histogram, check_purge_before, check_tenant_isolation
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __event_store_checks {
    ($factory:path: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = $factory().await {
                    $crate::store::testkit::$check(store).await;
                }
            }
        )+
    };
}
