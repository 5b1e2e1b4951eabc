//! Repository checks, run through [`Repositories`] built over the backend under test.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use openframe_core::{
    ApiKey, ApiKeyId, Clock, ConnectionStatus, CredentialPlacement, Error, IntegratedTool, Machine,
    MachineId, MachineStatus, ManualClock, Organization, OrganizationStatus, OsType, Page,
    PageRequest, Secret, SortDirection, SortField, SortSpec, Tag, TagId, Tenant, TenantId,
    Timestamp, ToolApiKey, ToolConnection, ToolCredentials, ToolType, User, UserId, UserRole,
};

use super::random_tenant;
pub use super::scripts::{
    script_crud_and_soft_delete, script_filters_sorts_and_facets, tenant_isolation_scripts,
};
use crate::store::DocumentStore;
use crate::*;

fn repos(store: Arc<dyn DocumentStore>) -> (Repositories, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    (Repositories::with_clock(store, clock.clone()), clock)
}

fn t0() -> Timestamp {
    Timestamp::from_timestamp(1_767_225_600, 0).unwrap()
}

/// A machine with a deterministic spread of attributes for row `n`.
pub fn sample_machine(
    n: usize,
    orgs: &[openframe_core::OrganizationId],
    tags: &[TagId],
) -> Machine {
    let statuses = [
        MachineStatus::Online,
        MachineStatus::Offline,
        MachineStatus::Pending,
        MachineStatus::Online,
        MachineStatus::Archived,
    ];
    let os = [OsType::Linux, OsType::Windows, OsType::MacOs];
    let mut m = Machine::new(
        MachineId::generate(),
        format!(
            "host-{:04}{}",
            n % 97,
            ["", ".acme.local", "-db", "-WEB"][n % 4]
        ),
        os[n % 3],
        t0() + chrono::Duration::seconds((n / 3) as i64), // duplicates: tie-break by id
    );
    m.status = statuses[n % statuses.len()];
    m.last_seen = (n % 4 != 0).then(|| t0() + chrono::Duration::seconds((n % 50) as i64));
    m.organization_id = (!orgs.is_empty() && n % 5 != 0).then(|| orgs[n % orgs.len()].clone());
    if !tags.is_empty() {
        m.tags = (0..n % 3)
            .map(|k| tags[(n + k) % tags.len()].clone())
            .collect();
    }
    m.ip_addresses = vec![format!("10.0.{}.{}", n % 7, n % 200)];
    m.serial_number = Some(format!("SN-{n:05}"));
    m
}

async fn insert_machines(
    repos: &Repositories,
    tenant: &TenantId,
    n: usize,
    orgs: &[openframe_core::OrganizationId],
    tags: &[TagId],
) -> Vec<Machine> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            repos
                .machines
                .insert(tenant, sample_machine(i, orgs, tags))
                .await
                .unwrap(),
        );
    }
    out
}

fn ids(page: &Page<Machine>) -> Vec<MachineId> {
    page.nodes().map(|m| m.id.clone()).collect()
}

fn assert_invalid(result: Result<impl std::fmt::Debug, Error>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

async fn all_ids(
    repos: &Repositories,
    tenant: &TenantId,
    filter: &MachineFilter,
) -> HashSet<MachineId> {
    let mut out = HashSet::new();
    let mut req = PageRequest::first(100);
    loop {
        let page = repos
            .machines
            .list(tenant, filter, SortSpec::default(), &req)
            .await
            .unwrap();
        out.extend(ids(&page));
        match (page.page_info.has_next_page, page.page_info.end_cursor) {
            (true, Some(c)) => req = PageRequest::first(100).after(c),
            _ => return out,
        }
    }
}

pub async fn machine_crud(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let m = sample_machine(1, &[], &[]);
    let saved = repos.machines.insert(&t, m.clone()).await.unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(
        repos.machines.get(&t, &m.id).await.unwrap(),
        Some(saved.clone())
    );
    assert!(matches!(
        repos.machines.insert(&t, m.clone()).await,
        Err(Error::AlreadyExists { .. })
    ));

    let mut changed = saved.clone();
    changed.nickname = Some("Front desk".into());
    let v2 = repos.machines.update(&t, changed.clone()).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        repos
            .machines
            .get(&t, &m.id)
            .await
            .unwrap()
            .unwrap()
            .nickname
            .as_deref(),
        Some("Front desk")
    );
    // Writing from the stale copy is a conflict and changes nothing.
    assert!(matches!(
        repos.machines.update(&t, changed).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        repos
            .machines
            .get(&t, &m.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );

    let deleted = repos.machines.delete(&t, &m.id).await.unwrap();
    assert_eq!(deleted.status, MachineStatus::Deleted);
    assert_eq!(
        repos.machines.delete(&t, &m.id).await.unwrap().version,
        deleted.version,
        "delete is idempotent"
    );
    assert!(matches!(
        repos.machines.delete(&t, &MachineId::generate()).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        repos
            .machines
            .get_many(&t, &[MachineId::generate(), m.id.clone()])
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn machine_filters(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let orgs: Vec<_> = (0..3)
        .map(|_| openframe_core::OrganizationId::generate())
        .collect();
    let tags: Vec<_> = (0..4).map(|_| TagId::generate()).collect();
    let machines = insert_machines(&repos, &t, 60, &orgs, &tags).await;
    repos.machines.delete(&t, &machines[3].id).await.unwrap();
    let machines: Vec<Machine> =
        futures::future::join_all(machines.iter().map(|m| repos.machines.get(&t, &m.id)))
            .await
            .into_iter()
            .map(|m| m.unwrap().unwrap())
            .collect();

    let check = |filter: MachineFilter, want: Box<dyn Fn(&Machine) -> bool + Send>| {
        let repos = repos.clone();
        let t = t.clone();
        let machines = machines.clone();
        async move {
            let want: HashSet<MachineId> = machines
                .iter()
                .filter(|m| want(m))
                .map(|m| m.id.clone())
                .collect();
            assert!(
                !want.is_empty() || filter.machine_ids.is_some(),
                "filter {filter:?} should select something"
            );
            assert_eq!(
                all_ids(&repos, &t, &filter).await,
                want,
                "list with {filter:?}"
            );
            assert_eq!(
                repos.machines.count(&t, &filter).await.unwrap(),
                want.len() as u64,
                "count with {filter:?}"
            );
        }
    };
    let live = |m: &Machine| m.status != MachineStatus::Deleted;
    check(MachineFilter::default(), Box::new(live)).await;
    check(
        MachineFilter {
            include_deleted: true,
            ..Default::default()
        },
        Box::new(|_| true),
    )
    .await;
    check(
        MachineFilter {
            statuses: vec![MachineStatus::Deleted],
            ..Default::default()
        },
        Box::new(|m| m.status == MachineStatus::Deleted),
    )
    .await;
    check(
        MachineFilter {
            statuses: vec![MachineStatus::Online, MachineStatus::Pending],
            ..Default::default()
        },
        Box::new(|m| matches!(m.status, MachineStatus::Online | MachineStatus::Pending)),
    )
    .await;
    check(
        MachineFilter {
            os_types: vec![OsType::Linux],
            ..Default::default()
        },
        Box::new(move |m| live(m) && m.os_type == OsType::Linux),
    )
    .await;
    let org = orgs[1].clone();
    check(
        MachineFilter {
            organization_ids: vec![org.clone()],
            ..Default::default()
        },
        Box::new(move |m| live(m) && m.organization_id.as_ref() == Some(&org)),
    )
    .await;
    let tag = tags[2].clone();
    check(
        MachineFilter {
            tag_ids: vec![tag.clone()],
            ..Default::default()
        },
        Box::new(move |m| live(m) && m.tags.contains(&tag)),
    )
    .await;
    check(
        MachineFilter {
            search: Some("ACME".into()),
            ..Default::default()
        },
        Box::new(move |m| live(m) && m.hostname.to_lowercase().contains("acme")),
    )
    .await;
    check(
        MachineFilter {
            search: Some("sn-0004".into()),
            ..Default::default()
        },
        Box::new(move |m| {
            live(m)
                && m.serial_number
                    .as_deref()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains("sn-0004")
        }),
    )
    .await;
    check(
        MachineFilter {
            search: Some("10.0.3.".into()),
            ..Default::default()
        },
        Box::new(move |m| live(m) && m.ip_addresses[0].contains("10.0.3.")),
    )
    .await;
    let picked: Vec<MachineId> = machines.iter().take(5).map(|m| m.id.clone()).collect();
    let picked2 = picked.clone();
    check(
        MachineFilter {
            machine_ids: Some(picked),
            include_deleted: true,
            ..Default::default()
        },
        Box::new(move |m| picked2.contains(&m.id)),
    )
    .await;
    check(
        MachineFilter {
            machine_ids: Some(vec![]),
            ..Default::default()
        },
        Box::new(|_| false),
    )
    .await;
    let tag = tags[0].clone();
    check(
        MachineFilter {
            statuses: vec![MachineStatus::Online],
            os_types: vec![OsType::Windows, OsType::Linux],
            tag_ids: vec![tag.clone()],
            ..Default::default()
        },
        Box::new(move |m| {
            m.status == MachineStatus::Online && m.os_type != OsType::MacOs && m.tags.contains(&tag)
        }),
    )
    .await;
}

pub async fn machine_search_is_literal(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    for host in ["web.01", "web-01", "100%-up", "a_b", "x[0-9]+", "Ärger-PC"] {
        repos
            .machines
            .insert(
                &t,
                Machine::new(MachineId::generate(), host, OsType::Linux, t0()),
            )
            .await
            .unwrap();
    }
    let hits = |q: &'static str| {
        let repos = repos.clone();
        let t = t.clone();
        async move {
            let f = MachineFilter {
                search: Some(q.into()),
                ..Default::default()
            };
            let page = repos
                .machines
                .list(
                    &t,
                    &f,
                    SortSpec::new(MachineSort::Hostname, SortDirection::Asc),
                    &PageRequest::first(50),
                )
                .await
                .unwrap();
            page.into_nodes()
                .into_iter()
                .map(|m| m.hostname)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(hits(".").await, vec!["web.01"], "'.' is not a wildcard");
    assert_eq!(hits("%").await, vec!["100%-up"], "'%' is not a wildcard");
    assert_eq!(hits("_").await, vec!["a_b"], "'_' is not a wildcard");
    assert_eq!(hits("[0-9]+").await, vec!["x[0-9]+"], "no regex classes");
    assert_eq!(
        hits("ärger").await,
        vec!["Ärger-PC"],
        "unicode case folding"
    );
    assert_eq!(
        hits("  WEB-0 ").await,
        vec!["web-01"],
        "trimmed, case-insensitive"
    );
    assert!(hits("(").await.is_empty());
}

pub async fn machine_sorts(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let machines = insert_machines(&repos, &t, 45, &[], &[]).await;
    for &field in MachineSort::ALL {
        for dir in [SortDirection::Asc, SortDirection::Desc] {
            let mut want = machines.clone();
            want.retain(|m| m.status != MachineStatus::Deleted);
            want.sort_by(|a, b| {
                let key = |m: &Machine| -> (Option<String>, Option<i64>) {
                    match field {
                        MachineSort::Id => (None, None),
                        MachineSort::Hostname => (Some(m.hostname.clone()), None),
                        MachineSort::Status => (Some(m.status.as_str().to_owned()), None),
                        MachineSort::LastSeen => (None, m.last_seen.map(|t| t.timestamp_millis())),
                        MachineSort::RegisteredAt => {
                            (None, Some(m.registered_at.timestamp_millis()))
                        }
                    }
                };
                let ord = key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id));
                if dir == SortDirection::Desc {
                    ord.reverse()
                } else {
                    ord
                }
            });
            let want: Vec<MachineId> = want.into_iter().map(|m| m.id).collect();
            let mut got = Vec::new();
            let mut req = PageRequest::first(10);
            loop {
                let page = repos
                    .machines
                    .list(
                        &t,
                        &MachineFilter::default(),
                        SortSpec::new(field, dir),
                        &req,
                    )
                    .await
                    .unwrap();
                got.extend(ids(&page));
                match (page.page_info.has_next_page, page.page_info.end_cursor) {
                    (true, Some(c)) => req = PageRequest::first(10).after(c),
                    _ => break,
                }
            }
            assert_eq!(got, want, "sort {} {dir:?}", field.name());
        }
    }
}

pub async fn paging_forward_and_backward(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    insert_machines(&repos, &t, 250, &[], &[]).await;
    let filter = MachineFilter {
        include_deleted: true,
        ..Default::default()
    };
    for sort in [
        SortSpec::default(),
        SortSpec::new(MachineSort::LastSeen, SortDirection::Asc),
        SortSpec::new(MachineSort::Hostname, SortDirection::Desc),
    ] {
        // Forward.
        let mut forward = Vec::new();
        let mut req = PageRequest::first(7);
        let mut pages = 0;
        loop {
            let page = repos.machines.list(&t, &filter, sort, &req).await.unwrap();
            pages += 1;
            assert_eq!(
                page.page_info.has_previous_page,
                pages > 1,
                "exact hasPreviousPage on page {pages}"
            );
            assert_eq!(
                page.page_info.start_cursor.as_ref(),
                page.edges.first().map(|e| &e.cursor),
                "edge cursor = start cursor"
            );
            assert_eq!(
                page.page_info.end_cursor.as_ref(),
                page.edges.last().map(|e| &e.cursor),
                "edge cursor = end cursor"
            );
            forward.extend(ids(&page));
            if !page.page_info.has_next_page {
                assert_eq!(page.edges.len(), 250 - 7 * (pages - 1));
                break;
            }
            assert_eq!(page.edges.len(), 7);
            req = PageRequest::first(7).after(page.page_info.end_cursor.unwrap());
        }
        assert_eq!(pages, 36);
        assert_eq!(forward.len(), 250);
        assert_eq!(
            forward.iter().collect::<HashSet<_>>().len(),
            250,
            "no duplicates"
        );

        // Backward from the end, same rows in the same order.
        let mut backward = Vec::new();
        let mut req = PageRequest::last(7);
        let mut pages = 0;
        loop {
            let page = repos.machines.list(&t, &filter, sort, &req).await.unwrap();
            pages += 1;
            assert_eq!(
                page.page_info.has_next_page,
                pages > 1,
                "exact hasNextPage walking back, page {pages}"
            );
            let mut chunk = ids(&page);
            chunk.extend(backward);
            backward = chunk;
            if !page.page_info.has_previous_page {
                break;
            }
            req = PageRequest::last(7).before(page.page_info.start_cursor.unwrap());
        }
        assert_eq!(backward, forward, "backward paging yields the same order");

        // Exactly `limit` rows left: hasNextPage must be false.
        let page = repos
            .machines
            .list(&t, &filter, sort, &PageRequest::first(100))
            .await
            .unwrap();
        let page = repos
            .machines
            .list(
                &t,
                &filter,
                sort,
                &PageRequest::first(100).after(page.page_info.end_cursor.unwrap()),
            )
            .await
            .unwrap();
        let page = repos
            .machines
            .list(
                &t,
                &filter,
                sort,
                &PageRequest::first(50).after(page.page_info.end_cursor.unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(page.edges.len(), 50);
        assert!(!page.page_info.has_next_page, "no phantom next page");
        // Paging back from the middle.
        let mid = repos
            .machines
            .list(&t, &filter, sort, &PageRequest::first(20))
            .await
            .unwrap();
        let back = repos
            .machines
            .list(
                &t,
                &filter,
                sort,
                &PageRequest::last(5).before(mid.edges[10].cursor.clone()),
            )
            .await
            .unwrap();
        assert_eq!(ids(&back), ids(&mid)[5..10].to_vec());
        assert!(back.page_info.has_previous_page && back.page_info.has_next_page);
    }
}

pub async fn counted_pages_match_list_and_count(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    insert_machines(&repos, &t, 40, &[], &[]).await;
    let online = MachineFilter {
        statuses: vec![MachineStatus::Online],
        ..Default::default()
    };
    for filter in [MachineFilter::default(), online] {
        let sort = SortSpec::new(MachineSort::Hostname, SortDirection::Asc);
        let first = repos
            .machines
            .list(&t, &filter, sort, &PageRequest::first(6))
            .await
            .unwrap();
        let requests = [
            PageRequest::first(6),
            PageRequest::first(6).after(first.page_info.end_cursor.clone().unwrap()),
            PageRequest::last(3).before(first.page_info.end_cursor.clone().unwrap()),
            PageRequest::first(100),
        ];
        let count = repos.machines.count(&t, &filter).await.unwrap();
        for request in &requests {
            let want = repos
                .machines
                .list(&t, &filter, sort, request)
                .await
                .unwrap();
            let (got, total) = repos
                .machines
                .list_counted(&t, &filter, sort, request)
                .await
                .unwrap();
            assert_eq!(ids(&got), ids(&want), "{request:?}");
            assert_eq!(got.page_info, want.page_info, "{request:?}");
            assert_eq!(total, count, "{request:?}");
        }
    }
    let (page, total) = repos
        .machines
        .list_counted(
            &random_tenant(),
            &MachineFilter::default(),
            SortSpec::default(),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(page.edges.is_empty());
    assert_eq!(total, 0, "another tenant sees nothing");
}

pub async fn paging_with_inserts_between_pages(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let original: HashSet<MachineId> = insert_machines(&repos, &t, 60, &[], &[])
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    let sort = SortSpec::new(MachineSort::RegisteredAt, SortDirection::Asc);
    let filter = MachineFilter {
        include_deleted: true,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut req = PageRequest::first(9);
    let mut n = 1000;
    loop {
        let page = repos.machines.list(&t, &filter, sort, &req).await.unwrap();
        seen.extend(ids(&page));
        // New rows both before and after the current position, and one with the same key.
        for offset in [-100_000i64, 0, 100_000] {
            n += 1;
            let mut m = sample_machine(n, &[], &[]);
            m.registered_at = page.edges.last().map_or(t0(), |e| e.node.registered_at)
                + chrono::Duration::seconds(offset);
            repos.machines.insert(&t, m).await.unwrap();
        }
        match (page.page_info.has_next_page, page.page_info.end_cursor) {
            (true, Some(c)) if seen.len() < 400 => req = PageRequest::first(9).after(c),
            _ => break,
        }
    }
    let unique: HashSet<&MachineId> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row seen twice");
    assert!(
        original.iter().all(|id| unique.contains(id)),
        "every row present at the start was seen"
    );
}

pub async fn machine_facets(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let orgs: Vec<_> = (0..2)
        .map(|_| openframe_core::OrganizationId::generate())
        .collect();
    let tags: Vec<_> = (0..3).map(|_| TagId::generate()).collect();
    let machines = insert_machines(&repos, &t, 40, &orgs, &tags).await;
    let filter = MachineFilter {
        statuses: vec![MachineStatus::Online],
        os_types: vec![OsType::Linux],
        ..Default::default()
    };
    let dims = [
        MachineFacet::Status,
        MachineFacet::OsType,
        MachineFacet::Organization,
        MachineFacet::Tag,
    ];
    let facets = repos.machines.facets(&t, &filter, &dims).await.unwrap();
    assert_eq!(
        facets.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
        dims.to_vec(),
        "only and all requested dimensions"
    );
    let count_of = |dim: MachineFacet, value: &str| -> u64 {
        facets
            .iter()
            .find(|(d, _)| *d == dim)
            .unwrap()
            .1
            .iter()
            .find(|c| c.value == value)
            .map_or(0, |c| c.count)
    };
    // Status ignores the status filter but applies the OS filter.
    for s in [
        MachineStatus::Online,
        MachineStatus::Offline,
        MachineStatus::Pending,
        MachineStatus::Archived,
    ] {
        let want = machines
            .iter()
            .filter(|m| m.os_type == OsType::Linux && m.status == s)
            .count() as u64;
        assert_eq!(
            count_of(MachineFacet::Status, s.as_str()),
            want,
            "status facet {s}"
        );
    }
    // OS ignores the OS filter but applies the status filter.
    for o in OsType::ALL {
        let want = machines
            .iter()
            .filter(|m| m.status == MachineStatus::Online && m.os_type == *o)
            .count() as u64;
        assert_eq!(
            count_of(MachineFacet::OsType, o.as_str()),
            want,
            "os facet {o}"
        );
    }
    let both = |m: &&Machine| m.status == MachineStatus::Online && m.os_type == OsType::Linux;
    for org in &orgs {
        let want = machines
            .iter()
            .filter(both)
            .filter(|m| m.organization_id.as_ref() == Some(org))
            .count() as u64;
        assert_eq!(count_of(MachineFacet::Organization, org.as_str()), want);
    }
    for tag in &tags {
        let want = machines
            .iter()
            .filter(both)
            .filter(|m| m.tags.contains(tag))
            .count() as u64;
        assert_eq!(
            count_of(MachineFacet::Tag, tag.as_str()),
            want,
            "tags are unwound"
        );
    }
    assert!(
        repos
            .machines
            .facets(&t, &filter, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_writers_conflict(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let m = repos
        .machines
        .insert(&t, sample_machine(0, &[], &[]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let repos = repos.clone();
        let t = t.clone();
        let mut copy = m.clone();
        tasks.push(tokio::spawn(async move {
            copy.nickname = Some(format!("writer-{i}"));
            repos.machines.update(&t, copy).await
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "one writer per version");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::Conflict { .. })))
    );
    let stored = repos.machines.get(&t, &m.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    let winner = results.into_iter().find_map(Result::ok).unwrap();
    assert_eq!(stored.nickname, winner.nickname);
}

pub async fn conditional_status_transitions(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let m = repos
        .machines
        .insert(
            &t,
            Machine::new(MachineId::generate(), "h", OsType::Linux, t0()),
        )
        .await
        .unwrap();
    let tr = repos
        .machines
        .transition_status(&t, &m.id, &[MachineStatus::Online], MachineStatus::Offline)
        .await
        .unwrap();
    assert!(!tr.applied, "guard does not hold for PENDING");
    assert_eq!(
        repos
            .machines
            .get(&t, &m.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        1,
        "nothing written"
    );
    let tr = repos
        .machines
        .transition_status(&t, &m.id, &[MachineStatus::Pending], MachineStatus::Online)
        .await
        .unwrap();
    assert!(tr.applied && tr.status_changed());
    assert_eq!(
        (tr.before.status, tr.after.status),
        (MachineStatus::Pending, MachineStatus::Online)
    );
    // Many concurrent sweepers: exactly one applies ONLINE -> OFFLINE.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (repos, t, id) = (repos.clone(), t.clone(), m.id.clone());
        tasks.push(tokio::spawn(async move {
            repos
                .machines
                .transition_status(&t, &id, &[MachineStatus::Online], MachineStatus::Offline)
                .await
                .unwrap()
                .applied
        }));
    }
    let applied = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(applied, 1);
    assert!(matches!(
        repos
            .machines
            .transition_status(
                &t,
                &MachineId::generate(),
                &[MachineStatus::Online],
                MachineStatus::Offline
            )
            .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn record_contact_is_monotonic(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let m = repos
        .machines
        .insert(
            &t,
            Machine::new(MachineId::generate(), "h", OsType::Linux, t0()),
        )
        .await
        .unwrap();
    let later = t0() + chrono::Duration::seconds(100);
    let tr = repos
        .machines
        .record_contact(&t, &m.id, later)
        .await
        .unwrap();
    assert_eq!(tr.after.status, MachineStatus::Online);
    assert_eq!(tr.after.last_seen, Some(later));
    let tr = repos
        .machines
        .record_contact(&t, &m.id, t0())
        .await
        .unwrap();
    assert!(!tr.applied, "an older contact changes nothing");
    assert_eq!(
        repos
            .machines
            .get(&t, &m.id)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        Some(later)
    );
    repos
        .machines
        .transition_status(&t, &m.id, &[MachineStatus::Online], MachineStatus::Archived)
        .await
        .unwrap();
    let tr = repos
        .machines
        .record_contact(&t, &m.id, later + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        tr.after.status,
        MachineStatus::Archived,
        "archived machines stay archived"
    );
}

pub async fn silent_machines_for_the_sweep(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    let mut ids = Vec::new();
    for (n, seen) in [
        (0, Some(10)),
        (1, Some(50)),
        (2, Some(200)),
        (3, None),
        (4, Some(5)),
    ] {
        let mut m = Machine::new(MachineId::generate(), format!("h{n}"), OsType::Linux, t0());
        m.status = if n == 4 {
            MachineStatus::Offline
        } else {
            MachineStatus::Online
        };
        m.last_seen = seen.map(|s| t0() + chrono::Duration::seconds(s));
        ids.push(repos.machines.insert(&t, m).await.unwrap().id);
    }
    let cutoff = t0() + chrono::Duration::seconds(100);
    let silent = repos
        .machines
        .list_silent(&t, MachineStatus::Online, cutoff, 100)
        .await
        .unwrap();
    assert_eq!(
        silent.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone(), ids[1].clone()],
        "oldest first, only ONLINE, never-seen excluded"
    );
    assert_eq!(
        repos
            .machines
            .list_silent(&t, MachineStatus::Online, cutoff, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        repos
            .machines
            .list_silent(&random_tenant(), MachineStatus::Online, cutoff, 100)
            .await
            .unwrap()
            .is_empty(),
        "tenant isolation"
    );
    assert_invalid(
        repos
            .machines
            .list_silent(&t, MachineStatus::Online, cutoff, 0)
            .await,
        "limit",
    );
}

pub async fn tenant_isolation_machines(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let (a, b) = (random_tenant(), random_tenant());
    let tags = vec![TagId::generate()];
    let orgs = vec![openframe_core::OrganizationId::generate()];
    let mine = insert_machines(&repos, &a, 12, &orgs, &tags).await;
    let m = mine[1].clone();
    let all = MachineFilter {
        include_deleted: true,
        ..Default::default()
    };
    assert_eq!(repos.machines.get(&b, &m.id).await.unwrap(), None);
    assert!(
        repos
            .machines
            .get_many(&b, std::slice::from_ref(&m.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(repos.machines.count(&b, &all).await.unwrap(), 0);
    assert!(
        repos
            .machines
            .list(&b, &all, SortSpec::default(), &PageRequest::first(100))
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    let search = MachineFilter {
        search: Some("host".into()),
        ..all.clone()
    };
    assert!(
        repos
            .machines
            .list(&b, &search, SortSpec::default(), &PageRequest::last(100))
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    let facets = repos
        .machines
        .facets(
            &b,
            &all,
            &[
                MachineFacet::Status,
                MachineFacet::OsType,
                MachineFacet::Organization,
                MachineFacet::Tag,
            ],
        )
        .await
        .unwrap();
    assert!(
        facets.iter().all(|(_, counts)| counts.is_empty()),
        "facets of B are empty"
    );
    assert!(matches!(
        repos.machines.update(&b, m.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.machines.delete(&b, &m.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos
            .machines
            .transition_status(&b, &m.id, &[m.status], MachineStatus::Archived)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.machines.record_contact(&b, &m.id, t0()).await,
        Err(Error::NotFound { .. })
    ));
    // A cursor minted in A only positions within B's (empty) rows.
    let page_a = repos
        .machines
        .list(&a, &all, SortSpec::default(), &PageRequest::first(3))
        .await
        .unwrap();
    let cursor = page_a.page_info.end_cursor.unwrap();
    assert!(
        repos
            .machines
            .list(
                &b,
                &all,
                SortSpec::default(),
                &PageRequest::first(3).after(cursor)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    // Inserting the same id in B is independent and leaves A untouched.
    repos.machines.insert(&b, m.clone()).await.unwrap();
    repos.machines.delete(&b, &m.id).await.unwrap();
    assert_eq!(repos.machines.get(&a, &m.id).await.unwrap().unwrap(), m);
    assert_eq!(repos.machines.count(&a, &all).await.unwrap(), 12);
}

pub async fn tenant_isolation_other_repositories(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let (a, b) = (random_tenant(), random_tenant());
    let now = clock.now();

    let org = repos
        .organizations
        .insert(&a, Organization::new("Acme", now))
        .await
        .unwrap();
    assert_eq!(repos.organizations.get(&b, &org.id).await.unwrap(), None);
    assert!(
        repos
            .organizations
            .get_many(&b, std::slice::from_ref(&org.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        repos
            .organizations
            .count(&b, &OrganizationFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(
        repos
            .organizations
            .list(
                &b,
                &OrganizationFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(
        repos
            .organizations
            .facets(
                &b,
                &OrganizationFilter::default(),
                &[OrganizationFacet::Status]
            )
            .await
            .unwrap()[0]
            .1
            .is_empty()
    );
    assert!(matches!(
        repos.organizations.update(&b, org.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.organizations.delete(&b, &org.id).await,
        Err(Error::NotFound { .. })
    ));
    repos
        .organizations
        .insert(&b, Organization::new("Acme", now))
        .await
        .expect("names are per tenant");

    let user = repos
        .users
        .insert(
            &a,
            User::new("ops@acme.example", vec![UserRole::Admin], now),
        )
        .await
        .unwrap();
    assert_eq!(repos.users.get(&b, &user.id).await.unwrap(), None);
    assert!(
        repos
            .users
            .get_many(&b, std::slice::from_ref(&user.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        repos
            .users
            .find_by_email(&b, "ops@acme.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repos.users.count(&b, &UserFilter::default()).await.unwrap(),
        0
    );
    assert!(
        repos
            .users
            .list(
                &b,
                &UserFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(
        repos
            .users
            .facets(&b, &UserFilter::default(), &[UserFacet::Role])
            .await
            .unwrap()[0]
            .1
            .is_empty()
    );
    assert!(matches!(
        repos.users.update(&b, user.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.users.delete(&b, &user.id).await,
        Err(Error::NotFound { .. })
    ));
    repos
        .users
        .insert(
            &b,
            User::new("ops@acme.example", vec![UserRole::Admin], now),
        )
        .await
        .expect("emails are per tenant");

    let tag = repos
        .tags
        .insert(&a, Tag::new("servers", now))
        .await
        .unwrap();
    assert_eq!(repos.tags.get(&b, &tag.id).await.unwrap(), None);
    assert!(
        repos
            .tags
            .get_many(&b, std::slice::from_ref(&tag.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(repos.tags.find_by_name(&b, "servers").await.unwrap(), None);
    assert_eq!(
        repos.tags.count(&b, &TagFilter::default()).await.unwrap(),
        0
    );
    assert!(
        repos
            .tags
            .list(
                &b,
                &TagFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(matches!(
        repos.tags.update(&b, tag.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.tags.delete(&b, &tag.id).await,
        Err(Error::NotFound { .. })
    ));

    let tool = repos
        .tools
        .insert(
            &a,
            IntegratedTool::new("meshcentral", "MeshCentral", ToolType::MeshCentral, now),
        )
        .await
        .unwrap();
    assert_eq!(repos.tools.get(&b, &tool.id).await.unwrap(), None);
    assert_eq!(
        repos.tools.find_by_key(&b, "meshcentral").await.unwrap(),
        None
    );
    assert_eq!(
        repos
            .tools
            .count(&b, &IntegratedToolFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(
        repos
            .tools
            .list(
                &b,
                &IntegratedToolFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(matches!(
        repos.tools.update(&b, tool.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.tools.delete(&b, &tool.id).await,
        Err(Error::NotFound { .. })
    ));

    let machine = MachineId::generate();
    let conn = repos
        .tool_connections
        .insert(
            &a,
            ToolConnection::new(machine.clone(), ToolType::MeshCentral, "node//abc", now),
        )
        .await
        .unwrap();
    assert_eq!(
        repos.tool_connections.get(&b, &conn.id).await.unwrap(),
        None
    );
    assert_eq!(
        repos
            .tool_connections
            .find_by_agent_tool_id(&b, ToolType::MeshCentral, "node//abc")
            .await
            .unwrap(),
        None
    );
    assert!(
        repos
            .tool_connections
            .find_by_machine(&b, &machine)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        repos
            .tool_connections
            .count(&b, &ToolConnectionFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(
        repos
            .tool_connections
            .list(
                &b,
                &ToolConnectionFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(
        repos
            .tool_connections
            .facets(
                &b,
                &ToolConnectionFilter::default(),
                &[ToolConnectionFacet::ToolType]
            )
            .await
            .unwrap()[0]
            .1
            .is_empty()
    );
    assert!(matches!(
        repos.tool_connections.update(&b, conn.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.tool_connections.delete(&b, &conn.id).await,
        Err(Error::NotFound { .. })
    ));

    let key = repos
        .api_keys
        .insert(
            &a,
            ApiKey::new("ci", user.id.clone(), vec!["devices:read".into()], now),
        )
        .await
        .unwrap();
    assert_eq!(repos.api_keys.get(&b, &key.id).await.unwrap(), None);
    assert_eq!(
        repos
            .api_keys
            .count(&b, &ApiKeyFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(
        repos
            .api_keys
            .list(
                &b,
                &ApiKeyFilter::default(),
                SortSpec::default(),
                &PageRequest::first(10)
            )
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    assert!(matches!(
        repos.api_keys.update(&b, key.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.api_keys.record_usage(&b, &key.id, false, now).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.api_keys.delete(&b, &key.id).await,
        Err(Error::NotFound { .. })
    ));

    // Everything of A is intact.
    assert!(
        repos
            .organizations
            .get(&a, &org.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(repos.users.get(&a, &user.id).await.unwrap().is_some());
    assert!(repos.tags.get(&a, &tag.id).await.unwrap().is_some());
    assert!(repos.tools.get(&a, &tool.id).await.unwrap().is_some());
    assert!(
        repos
            .tool_connections
            .get(&a, &conn.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        repos
            .api_keys
            .get(&a, &key.id)
            .await
            .unwrap()
            .unwrap()
            .total_requests,
        0
    );
}

pub async fn malformed_cursors(store: Arc<dyn DocumentStore>) {
    let (repos, _) = repos(store);
    let t = random_tenant();
    insert_machines(&repos, &t, 5, &[], &[]).await;
    let f = MachineFilter::default();
    let list = |req: PageRequest, sort: SortSpec<MachineSort>| {
        let (repos, t, f) = (repos.clone(), t.clone(), f.clone());
        async move { repos.machines.list(&t, &f, sort, &req).await }
    };
    for bad in [
        "",
        "garbage",
        "eyJzIjoiaG9zdG5hbWUifQ",
        "%%%",
        &"QUFB".repeat(400),
    ] {
        assert_invalid(
            list(PageRequest::first(2).after(bad), SortSpec::default()).await,
            "after",
        );
        assert_invalid(
            list(PageRequest::last(2).before(bad), SortSpec::default()).await,
            "before",
        );
    }
    let page = list(PageRequest::first(2), SortSpec::default())
        .await
        .unwrap();
    let cursor = page.page_info.end_cursor.unwrap();
    assert_invalid(
        list(
            PageRequest::first(2).after(cursor.clone()),
            SortSpec::new(MachineSort::Hostname, SortDirection::Asc),
        )
        .await,
        "after",
    );
    // A well-formed cursor whose key has the wrong type for the sort field.
    let forged = openframe_core::Cursor {
        sort: "registeredAt".into(),
        direction: SortDirection::Desc,
        key: serde_json::json!("not-a-number"),
        id: "x".into(),
    }
    .encode();
    assert_invalid(
        list(PageRequest::first(2).after(forged), SortSpec::default()).await,
        "after",
    );
    assert_invalid(
        list(PageRequest::first(0), SortSpec::default()).await,
        "first",
    );
    assert_invalid(
        list(PageRequest::first(101), SortSpec::default()).await,
        "first",
    );
    assert_invalid(
        list(PageRequest::last(1000), SortSpec::default()).await,
        "last",
    );
    assert_invalid(
        list(PageRequest::first(2).before(cursor), SortSpec::default()).await,
        "last",
    );
}

pub async fn oversized_input_is_rejected(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let mut m = sample_machine(0, &[], &[]);
    m.hostname = "h".repeat(10_000);
    assert_invalid(repos.machines.insert(&t, m.clone()).await, "hostname");
    assert_eq!(
        repos.machines.get(&t, &m.id).await.unwrap(),
        None,
        "nothing written"
    );
    let mut m = sample_machine(0, &[], &[]);
    m.tags = (0..500).map(|_| TagId::generate()).collect();
    assert_invalid(repos.machines.insert(&t, m).await, "tags");
    let mut m = sample_machine(0, &[], &[]);
    m.ip_addresses = vec!["not-an-ip".into()];
    assert_invalid(repos.machines.insert(&t, m).await, "ipAddresses");
    let ok = repos
        .machines
        .insert(&t, sample_machine(1, &[], &[]))
        .await
        .unwrap();
    let mut big = ok.clone();
    big.nickname = Some("n".repeat(300));
    assert_invalid(repos.machines.update(&t, big).await, "nickname");
    assert_eq!(
        repos.machines.get(&t, &ok.id).await.unwrap().unwrap(),
        ok,
        "a refused update changes nothing"
    );

    let search = MachineFilter {
        search: Some("x".repeat(1000)),
        ..Default::default()
    };
    assert_invalid(
        repos
            .machines
            .list(&t, &search, SortSpec::default(), &PageRequest::first(5))
            .await,
        "search",
    );
    assert_invalid(repos.machines.count(&t, &search).await, "search");
    let ctrl = MachineFilter {
        search: Some("a\u{0}b".into()),
        ..Default::default()
    };
    assert_invalid(repos.machines.count(&t, &ctrl).await, "search");
    let many = MachineFilter {
        tag_ids: (0..1000).map(|_| TagId::generate()).collect(),
        ..Default::default()
    };
    assert_invalid(
        repos
            .machines
            .facets(&t, &many, &[MachineFacet::Status])
            .await,
        "tagIds",
    );
    assert_invalid(
        repos.users.find_by_email(&t, &"e".repeat(5000)).await,
        "email",
    );
    assert_invalid(
        repos.tags.insert(&t, Tag::new("", clock.now())).await,
        "name",
    );
    let mut tag = Tag::new("ok", clock.now());
    tag.color = Some("red; drop table".into());
    assert_invalid(repos.tags.insert(&t, tag).await, "color");
    assert_invalid(
        repos
            .tools
            .insert(
                &t,
                IntegratedTool::new("../../etc", "x", ToolType::FleetMdm, clock.now()),
            )
            .await,
        "key",
    );
    assert_eq!(
        repos.tags.count(&t, &TagFilter::default()).await.unwrap(),
        0
    );
}

pub async fn unique_keys(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let now = clock.now();
    repos
        .users
        .insert(
            &t,
            User::new("Alice@Example.com", vec![UserRole::Owner], now),
        )
        .await
        .unwrap();
    assert!(matches!(
        repos
            .users
            .insert(&t, User::new(" alice@example.COM", vec![], now))
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    repos
        .tags
        .insert(&t, Tag::new("Servers", now))
        .await
        .unwrap();
    assert!(matches!(
        repos.tags.insert(&t, Tag::new("servers ", now)).await,
        Err(Error::AlreadyExists { .. })
    ));
    repos
        .tools
        .insert(
            &t,
            IntegratedTool::new("fleet", "Fleet", ToolType::FleetMdm, now),
        )
        .await
        .unwrap();
    assert!(matches!(
        repos
            .tools
            .insert(
                &t,
                IntegratedTool::new("fleet", "Other", ToolType::FleetMdm, now)
            )
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    let machine = MachineId::generate();
    repos
        .tool_connections
        .insert(
            &t,
            ToolConnection::new(machine.clone(), ToolType::FleetMdm, "1", now),
        )
        .await
        .unwrap();
    assert!(matches!(
        repos
            .tool_connections
            .insert(
                &t,
                ToolConnection::new(machine.clone(), ToolType::FleetMdm, "2", now)
            )
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    repos
        .tool_connections
        .insert(
            &t,
            ToolConnection::new(machine, ToolType::MeshCentral, "2", now),
        )
        .await
        .unwrap();
    let domain = format!("{}.example", random_tenant());
    repos
        .tenants
        .insert(Tenant::new(random_tenant(), "One", &domain, now))
        .await
        .unwrap();
    assert!(matches!(
        repos
            .tenants
            .insert(Tenant::new(
                random_tenant(),
                "Two",
                &domain.to_uppercase(),
                now
            ))
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    let mut def = Organization::new("Default", now);
    def.is_default = true;
    repos.organizations.insert(&t, def).await.unwrap();
    let mut def2 = Organization::new("Second default", now);
    def2.is_default = true;
    assert!(
        matches!(
            repos.organizations.insert(&t, def2).await,
            Err(Error::AlreadyExists { .. })
        ),
        "one default organization"
    );
    assert!(matches!(
        repos
            .organizations
            .insert(&t, Organization::new("default", now))
            .await,
        Err(Error::AlreadyExists { .. })
    ));
}

pub async fn soft_delete_rules(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let now = clock.now();
    let user = repos
        .users
        .insert(&t, User::new("bob@example.com", vec![UserRole::Admin], now))
        .await
        .unwrap();
    repos.users.delete(&t, &user.id).await.unwrap();
    assert_eq!(
        repos
            .users
            .find_by_email(&t, "bob@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repos.users.count(&t, &UserFilter::default()).await.unwrap(),
        0
    );
    assert_eq!(
        repos
            .users
            .count(
                &t,
                &UserFilter {
                    include_deleted: true,
                    ..Default::default()
                }
            )
            .await
            .unwrap(),
        1
    );
    repos
        .users
        .insert(&t, User::new("bob@example.com", vec![UserRole::Admin], now))
        .await
        .expect("a deleted user's email is free again");

    let org = repos
        .organizations
        .insert(&t, Organization::new("Globex", now))
        .await
        .unwrap();
    repos.organizations.delete(&t, &org.id).await.unwrap();
    assert_eq!(
        repos
            .organizations
            .count(&t, &OrganizationFilter::default())
            .await
            .unwrap(),
        0
    );
    let statuses = OrganizationFilter {
        statuses: vec![OrganizationStatus::Deleted],
        ..Default::default()
    };
    assert_eq!(repos.organizations.count(&t, &statuses).await.unwrap(), 1);
    repos
        .organizations
        .insert(&t, Organization::new("Globex", now))
        .await
        .expect("name free after delete");
    let mut def = Organization::new("Default", now);
    def.is_default = true;
    let def = repos.organizations.insert(&t, def).await.unwrap();
    assert!(matches!(
        repos.organizations.delete(&t, &def.id).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        repos
            .organizations
            .find_default(&t)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(def.id)
    );
}

pub async fn tool_credentials_round_trip(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let mut tool = IntegratedTool::new("mesh", "MeshCentral", ToolType::MeshCentral, clock.now());
    tool.credentials = Some(ToolCredentials {
        username: Some("svc".into()),
        password: Some(Secret::new("p@ss")),
        api_key: Some(ToolApiKey {
            key: Secret::new("k-123"),
            placement: CredentialPlacement::Header,
            header_name: Some("X-Api-Key".into()),
        }),
    });
    let saved = repos.tools.insert(&t, tool).await.unwrap();
    let back = repos.tools.find_by_key(&t, "mesh").await.unwrap().unwrap();
    assert_eq!(back, saved);
    let creds = back.credentials.clone().unwrap();
    assert_eq!(creds.password.unwrap().expose(), "p@ss");
    assert_eq!(creds.api_key.unwrap().key.expose(), "k-123");
    let json = serde_json::to_string(&back).unwrap();
    assert!(
        !json.contains("k-123") && !json.contains("p@ss"),
        "client JSON carries no credentials"
    );
}

pub async fn lookups_by_key(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let now = clock.now();
    let u = repos
        .users
        .insert(
            &t,
            User::new("Carol@Example.com", vec![UserRole::Owner], now),
        )
        .await
        .unwrap();
    assert_eq!(
        repos
            .users
            .find_by_email(&t, "  CAROL@example.com ")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(u.id.clone())
    );
    let tenant_id = random_tenant();
    let domain = format!("{tenant_id}.example");
    let tenant = repos
        .tenants
        .insert(Tenant::new(tenant_id.clone(), "Acme", &domain, now))
        .await
        .unwrap();
    assert_eq!(
        repos.tenants.get(&tenant_id).await.unwrap(),
        Some(tenant.clone())
    );
    assert_eq!(
        repos
            .tenants
            .find_by_domain(&domain.to_uppercase())
            .await
            .unwrap(),
        Some(tenant)
    );
    let tag = repos
        .tags
        .insert(&t, Tag::new("Critical", now))
        .await
        .unwrap();
    assert_eq!(
        repos.tags.find_by_name(&t, "critical").await.unwrap(),
        Some(tag)
    );
    let machine = MachineId::generate();
    let c = repos
        .tool_connections
        .insert(
            &t,
            ToolConnection::new(machine.clone(), ToolType::FleetMdm, "host-42", now),
        )
        .await
        .unwrap();
    assert_eq!(
        repos
            .tool_connections
            .find_by_agent_tool_id(&t, ToolType::FleetMdm, "host-42")
            .await
            .unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        repos
            .tool_connections
            .find_by_agent_tool_id(&t, ToolType::MeshCentral, "host-42")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repos
            .tool_connections
            .find_by_machine(&t, &machine)
            .await
            .unwrap(),
        vec![c.clone()]
    );
    let mut c2 = c.clone();
    c2.status = ConnectionStatus::Disconnected;
    repos.tool_connections.update(&t, c2).await.unwrap();
    let f = ToolConnectionFilter {
        statuses: vec![ConnectionStatus::Disconnected],
        ..Default::default()
    };
    assert_eq!(repos.tool_connections.count(&t, &f).await.unwrap(), 1);
    let unknown = UserId::generate();
    let keys = ApiKeyFilter {
        user_id: Some(unknown),
        ..Default::default()
    };
    assert_eq!(repos.api_keys.count(&t, &keys).await.unwrap(), 0);
}

pub async fn api_key_usage_counts(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let key = repos
        .api_keys
        .insert(
            &t,
            ApiKey::new("ci", UserId::generate(), vec![], clock.now()),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (repos, t, id) = (repos.clone(), t.clone(), key.id.clone());
        let at = clock.now() + chrono::Duration::seconds(i);
        tasks.push(tokio::spawn(async move {
            repos.api_keys.record_usage(&t, &id, i % 4 == 0, at).await
        }));
    }
    for r in futures::future::join_all(tasks).await {
        r.unwrap().unwrap();
    }
    let k = repos.api_keys.get(&t, &key.id).await.unwrap().unwrap();
    assert_eq!(
        (k.total_requests, k.failed_requests),
        (20, 5),
        "no lost increments under contention"
    );
    assert_eq!(
        k.last_used_at,
        Some(clock.now() + chrono::Duration::seconds(19))
    );
    clock.advance(Duration::from_secs(1));
    let active = ApiKeyFilter {
        enabled: Some(true),
        ..Default::default()
    };
    assert_eq!(repos.api_keys.count(&t, &active).await.unwrap(), 1);
}

pub async fn api_key_usage_delta(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let (a, b) = (random_tenant(), random_tenant());
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    let key = repos
        .api_keys
        .insert(
            &a,
            ApiKey::new("ci", UserId::generate(), vec![], clock.now()),
        )
        .await
        .unwrap();
    let delta = UsageDelta {
        requests: 10,
        failed: 3,
        last_used_at: Some(at(5)),
    };
    let k = repos.api_keys.add_usage(&a, &key.id, &delta).await.unwrap();
    assert_eq!(
        (k.total_requests, k.failed_requests, k.last_used_at),
        (10, 3, Some(at(5)))
    );
    // An older last use adds the counts but never moves `last_used_at` back.
    let older = UsageDelta {
        requests: 4,
        failed: 0,
        last_used_at: Some(at(1)),
    };
    repos.api_keys.add_usage(&a, &key.id, &older).await.unwrap();
    // Only failures: no last use to stamp.
    let failures = UsageDelta {
        requests: 2,
        failed: 2,
        last_used_at: None,
    };
    repos
        .api_keys
        .add_usage(&a, &key.id, &failures)
        .await
        .unwrap();
    let k = repos.api_keys.get(&a, &key.id).await.unwrap().unwrap();
    assert_eq!(
        (k.total_requests, k.failed_requests, k.last_used_at),
        (16, 5, Some(at(5)))
    );
    let newer = UsageDelta {
        requests: 1,
        failed: 0,
        last_used_at: Some(at(9)),
    };
    let k = repos.api_keys.add_usage(&a, &key.id, &newer).await.unwrap();
    assert_eq!((k.total_requests, k.last_used_at), (17, Some(at(9))));
    // An empty delta writes nothing; an impossible one is refused and writes nothing.
    let same = repos
        .api_keys
        .add_usage(&a, &key.id, &UsageDelta::default())
        .await
        .unwrap();
    assert_eq!(same, k, "an empty delta is not a write");
    let impossible = UsageDelta {
        requests: 1,
        failed: 2,
        last_used_at: None,
    };
    let err = repos
        .api_keys
        .add_usage(&a, &key.id, &impossible)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("failed"), "{err:?}");

    // Another tenant (and an unknown id) cannot add to the key: NotFound, nothing changed.
    assert!(matches!(
        repos.api_keys.add_usage(&b, &key.id, &newer).await,
        Err(Error::NotFound { .. })
    ));
    let unknown = ApiKeyId::generate_key_id();
    assert!(matches!(
        repos.api_keys.add_usage(&a, &unknown, &newer).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(repos.api_keys.get(&b, &key.id).await.unwrap(), None);
    assert_eq!(
        repos.api_keys.get(&a, &key.id).await.unwrap().unwrap(),
        k,
        "the owner's key is untouched"
    );

    // Concurrent deltas are never lost.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (repos, a, id) = (repos.clone(), a.clone(), key.id.clone());
        let delta = UsageDelta {
            requests: 3,
            failed: 1,
            last_used_at: Some(at(10 + i)),
        };
        tasks.push(tokio::spawn(async move {
            repos.api_keys.add_usage(&a, &id, &delta).await
        }));
    }
    for r in futures::future::join_all(tasks).await {
        r.unwrap().unwrap();
    }
    let k = repos.api_keys.get(&a, &key.id).await.unwrap().unwrap();
    assert_eq!(
        (k.total_requests, k.failed_requests, k.last_used_at),
        (47, 15, Some(at(19)))
    );
}
