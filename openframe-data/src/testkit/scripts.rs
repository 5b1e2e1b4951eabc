//! [`ScriptRepository`] checks, run through [`Repositories`] built over the backend under test
//! (re-exported from [`super::repos`], so the store conformance macro expands them).

use std::sync::Arc;

use openframe_core::{
    Clock, Error, ManualClock, OsType, PageRequest, Script, ScriptId, ScriptShell, ScriptStatus,
    SortDirection, SortSpec, TagId, TenantId, UserId,
};

use super::random_tenant;
use crate::store::DocumentStore;
use crate::*;

fn repos(store: Arc<dyn DocumentStore>) -> (Repositories, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    (Repositories::with_clock(store, clock.clone()), clock)
}

fn script(name: &str, shell: ScriptShell, clock: &ManualClock) -> Script {
    Script::new(name, shell, format!("echo {name}"), clock.now())
}

async fn names(repos: &Repositories, t: &TenantId, filter: &ScriptFilter) -> Vec<String> {
    let sort = SortSpec::new(ScriptSort::Name, SortDirection::Asc);
    let page = repos
        .scripts
        .list(t, filter, sort, &PageRequest::first(100))
        .await
        .unwrap();
    page.nodes().map(|s| s.name.clone()).collect()
}

/// Insert, read, update with versions, unique live names, soft delete, bad input.
pub async fn script_crud_and_soft_delete(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let mut s = script("Disk usage", ScriptShell::Bash, &clock);
    s.description = Some("df for every mount".into());
    s.default_args = vec!["-h".into()];
    s.supported_platforms = vec![OsType::Linux, OsType::MacOs];
    s.author = Some(UserId::parse("u1").unwrap());
    let stored = repos.scripts.insert(&t, s.clone()).await.unwrap();
    assert_eq!(stored.version, 1);
    let got = repos.scripts.get(&t, &s.id).await.unwrap().unwrap();
    assert_eq!(got, stored, "round trip");

    // Names are unique among live scripts, case-insensitively.
    let dup = repos
        .scripts
        .insert(&t, script("disk USAGE ", ScriptShell::Cmd, &clock))
        .await;
    assert!(matches!(dup, Err(Error::AlreadyExists { .. })), "{dup:?}");

    // Updates need the current version and stamp updated_at.
    clock.advance(std::time::Duration::from_secs(60));
    let mut next = got.clone();
    next.code = "df -h /".into();
    let updated = repos.scripts.update(&t, next.clone()).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.updated_at, clock.now());
    let stale = repos.scripts.update(&t, next).await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");

    // Invalid scripts are refused and nothing is written.
    let mut bad = script("Blank", ScriptShell::Bash, &clock);
    bad.code = "   ".into();
    assert!(matches!(
        repos.scripts.insert(&t, bad.clone()).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(repos.scripts.get(&t, &bad.id).await.unwrap(), None);
    let mut huge = updated.clone();
    huge.code = "x".repeat(openframe_core::MAX_SCRIPT_BYTES + 1);
    assert!(matches!(
        repos.scripts.update(&t, huge).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        repos.scripts.get(&t, &s.id).await.unwrap().unwrap().code,
        "df -h /",
        "unchanged"
    );

    // Soft delete: idempotent, hidden from lists by default, its name free again.
    let deleted = repos.scripts.delete(&t, &s.id).await.unwrap();
    assert_eq!(deleted.status, ScriptStatus::Deleted);
    assert!(!deleted.is_runnable());
    let again = repos.scripts.delete(&t, &s.id).await.unwrap();
    assert_eq!(again.version, deleted.version, "no second write");
    assert!(names(&repos, &t, &ScriptFilter::default()).await.is_empty());
    let all = ScriptFilter {
        include_deleted: true,
        ..ScriptFilter::default()
    };
    assert_eq!(names(&repos, &t, &all).await, vec!["Disk usage"]);
    repos
        .scripts
        .insert(&t, script("Disk usage", ScriptShell::Bash, &clock))
        .await
        .expect("a deleted script's name may be reused");
    assert!(matches!(
        repos.scripts.delete(&t, &ScriptId::generate()).await,
        Err(Error::NotFound { .. })
    ));
}

/// Filters, sorts, paging, facets and bad filter input.
pub async fn script_filters_sorts_and_facets(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let t = random_tenant();
    let (tag_a, tag_b) = (TagId::generate(), TagId::generate());
    let rows = [
        (
            "Alpha",
            ScriptShell::Bash,
            vec![OsType::Linux],
            Some("ops"),
            vec![tag_a.clone()],
        ),
        (
            "bravo",
            ScriptShell::Powershell,
            vec![OsType::Windows],
            Some("ops"),
            vec![],
        ),
        (
            "Charlie",
            ScriptShell::Bash,
            vec![OsType::Linux, OsType::MacOs],
            None,
            vec![tag_a.clone(), tag_b.clone()],
        ),
        (
            "delta",
            ScriptShell::Python,
            vec![],
            Some("audit"),
            vec![tag_b.clone()],
        ),
    ];
    let mut ids = Vec::new();
    for (name, shell, platforms, category, tags) in rows {
        clock.advance(std::time::Duration::from_secs(1));
        let mut s = script(name, shell, &clock);
        s.supported_platforms = platforms;
        s.category = category.map(str::to_owned);
        s.tags = tags;
        ids.push(repos.scripts.insert(&t, s).await.unwrap().id);
    }
    let mut archived = repos.scripts.get(&t, &ids[3]).await.unwrap().unwrap();
    archived.status = ScriptStatus::Archived;
    repos.scripts.update(&t, archived).await.unwrap();

    let f = |edit: fn(&mut ScriptFilter)| {
        let mut filter = ScriptFilter::default();
        edit(&mut filter);
        filter
    };
    assert_eq!(
        names(&repos, &t, &ScriptFilter::default()).await,
        vec!["Alpha", "bravo", "Charlie", "delta"],
        "name sort is case-insensitive"
    );
    assert_eq!(
        names(&repos, &t, &f(|f| f.shells = vec![ScriptShell::Bash])).await,
        vec!["Alpha", "Charlie"]
    );
    assert_eq!(
        names(
            &repos,
            &t,
            &f(|f| f.platforms = vec![OsType::MacOs, OsType::Windows])
        )
        .await,
        vec!["bravo", "Charlie"]
    );
    let by_tag = ScriptFilter {
        tag_ids: vec![tag_b.clone()],
        ..ScriptFilter::default()
    };
    assert_eq!(names(&repos, &t, &by_tag).await, vec!["Charlie", "delta"]);
    assert_eq!(
        names(&repos, &t, &f(|f| f.categories = vec!["ops".into()])).await,
        vec!["Alpha", "bravo"]
    );
    assert_eq!(
        names(
            &repos,
            &t,
            &f(|f| f.statuses = vec![ScriptStatus::Archived])
        )
        .await,
        vec!["delta"]
    );
    assert_eq!(
        names(&repos, &t, &f(|f| f.search = Some("ARLI".into()))).await,
        vec!["Charlie"]
    );
    assert_eq!(
        repos
            .scripts
            .count(&t, &f(|f| f.shells = vec![ScriptShell::Bash]))
            .await
            .unwrap(),
        2
    );

    // Newest first by default, and paging walks every row once.
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    loop {
        let page = repos
            .scripts
            .list(&t, &ScriptFilter::default(), SortSpec::default(), &request)
            .await
            .unwrap();
        seen.extend(page.nodes().map(|s| s.id.clone()));
        match page
            .page_info
            .end_cursor
            .filter(|_| page.page_info.has_next_page)
        {
            Some(cursor) => request = PageRequest::first(3).after(cursor),
            None => break,
        }
    }
    let newest_first: Vec<ScriptId> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // Facets ignore their own dimension's condition.
    let facets = repos
        .scripts
        .facets(
            &t,
            &f(|f| f.shells = vec![ScriptShell::Bash]),
            &[ScriptFacet::Shell, ScriptFacet::Platform, ScriptFacet::Tag],
        )
        .await
        .unwrap();
    let count = |dim: ScriptFacet, value: &str| {
        facets
            .iter()
            .find(|(d, _)| *d == dim)
            .and_then(|(_, counts)| counts.iter().find(|c| c.value == value))
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(ScriptFacet::Shell, "BASH"), 2);
    assert_eq!(count(ScriptFacet::Shell, "POWERSHELL"), 1);
    assert_eq!(count(ScriptFacet::Platform, "LINUX"), 2);
    assert_eq!(
        count(ScriptFacet::Platform, "WINDOWS"),
        0,
        "filtered by shell"
    );
    assert_eq!(count(ScriptFacet::Tag, tag_a.as_str()), 2);

    // Bad input.
    let too_many = ScriptFilter {
        tag_ids: (0..101).map(|_| TagId::generate()).collect(),
        ..ScriptFilter::default()
    };
    assert!(matches!(
        repos.scripts.count(&t, &too_many).await,
        Err(Error::InvalidInput { .. })
    ));
    let bad_cursor = repos
        .scripts
        .list(
            &t,
            &ScriptFilter::default(),
            SortSpec::default(),
            &PageRequest::first(2).after("garbage"),
        )
        .await;
    assert!(
        matches!(bad_cursor, Err(Error::InvalidInput { .. })),
        "{bad_cursor:?}"
    );
}

/// Tenant B can never read, count, page, facet, update or delete tenant A's scripts.
pub async fn tenant_isolation_scripts(store: Arc<dyn DocumentStore>) {
    let (repos, clock) = repos(store);
    let (a, b) = (random_tenant(), random_tenant());
    let s = repos
        .scripts
        .insert(&a, script("Reboot", ScriptShell::Shell, &clock))
        .await
        .unwrap();
    assert_eq!(repos.scripts.get(&b, &s.id).await.unwrap(), None);
    assert!(
        repos
            .scripts
            .get_many(&b, std::slice::from_ref(&s.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        repos
            .scripts
            .count(&b, &ScriptFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(names(&repos, &b, &ScriptFilter::default()).await.is_empty());
    let facets = repos
        .scripts
        .facets(&b, &ScriptFilter::default(), &[ScriptFacet::Shell])
        .await
        .unwrap();
    assert!(
        facets
            .iter()
            .all(|(_, counts)| counts.iter().all(|c| c.count == 0))
    );
    assert!(matches!(
        repos.scripts.update(&b, s.clone()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repos.scripts.delete(&b, &s.id).await,
        Err(Error::NotFound { .. })
    ));
    // The same name is free in another tenant, and A's script is untouched.
    repos
        .scripts
        .insert(&b, script("Reboot", ScriptShell::Shell, &clock))
        .await
        .expect("names are per tenant");
    let still = repos.scripts.get(&a, &s.id).await.unwrap().unwrap();
    assert_eq!(still, s);
}
