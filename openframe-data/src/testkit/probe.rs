//! Store-level checks: a backend must reproduce the reference semantics of
//! [`Filter::matches`] and [`compare_docs`] exactly, on a probe collection with every field
//! kind, nulls, duplicates and hostile search text.

use std::collections::BTreeMap;
use std::sync::Arc;

use openframe_core::{Error, SortDirection};

use super::random_tenant;
use crate::store::{
    CmpOp, DocumentStore, FieldDef, FieldKind, Filter, FindQuery, IndexDef, Partition, Schema,
    SortKey, StoredDoc, Value, compare_docs,
};

/// A collection with one field of each kind, created lazily by the backend.
pub static PROBE: Schema = Schema {
    collection: "conformance_probe",
    entity: "probe",
    fields: &[
        FieldDef::optional("s", FieldKind::Str),
        FieldDef::optional("i", FieldKind::Int),
        FieldDef::optional("b", FieldKind::Bool),
        FieldDef::required("l", FieldKind::StrList),
        FieldDef::optional("u", FieldKind::Str),
    ],
    indexes: &[
        IndexDef {
            fields: &["s", "i"],
        },
        IndexDef { fields: &["i"] },
    ],
    unique: &[&["u"]],
};

fn partition() -> Partition {
    Partition::tenant(&random_tenant())
}

/// A probe document.
pub fn doc(
    id: &str,
    s: Value,
    i: Value,
    b: Value,
    l: &[&str],
    u: Value,
    search: &str,
) -> StoredDoc {
    let body = serde_json::json!({ "id": id, "s": format!("{s:?}"), "search": search }).to_string();
    StoredDoc {
        id: id.to_owned(),
        version: 1,
        fields: vec![
            s,
            i,
            b,
            Value::StrList(l.iter().map(|x| (*x).to_owned()).collect()),
            u,
        ],
        search: search.to_lowercase(),
        body,
    }
}

/// Sixty documents covering nulls, duplicates, negative numbers, empty strings, unicode and
/// pattern metacharacters.
pub fn corpus() -> Vec<StoredDoc> {
    let strs = [
        Value::str("alpha"),
        Value::str("Beta"),
        Value::str("gamma"),
        Value::str(""),
        Value::Null,
        Value::str("ähnlich"),
    ];
    let ints = [
        Value::Int(-5),
        Value::Int(0),
        Value::Int(7),
        Value::Null,
        Value::Int(1_700_000_000_000),
        Value::Int(7),
    ];
    let bools = [Value::Bool(true), Value::Bool(false), Value::Null];
    let lists: [&[&str]; 5] = [&[], &["x"], &["x", "y"], &["z"], &["y", "z"]];
    let searches = [
        "web-01.acme",
        "DB_server 100%",
        "[a-z]*+?",
        "mail.(corp)",
        "ÄHNLICH host",
        "back\\slash",
    ];
    (0..60)
        .map(|n| {
            doc(
                &format!("d{:03}", (n * 37) % 101),
                strs[n % strs.len()].clone(),
                ints[(n / 2) % ints.len()].clone(),
                bools[n % bools.len()].clone(),
                lists[n % lists.len()],
                Value::Null,
                searches[n % searches.len()],
            )
        })
        .collect()
}

async fn load(store: &dyn DocumentStore, p: &Partition) -> Vec<StoredDoc> {
    let docs = corpus();
    for d in &docs {
        store
            .insert(&PROBE, p, d.clone())
            .await
            .expect("insert probe doc");
    }
    docs
}

fn filters() -> Vec<Filter> {
    use Filter::*;
    let s = |x: &str| Value::str(x);
    vec![
        All,
        Eq("s", s("alpha")),
        Eq("s", s("")),
        Eq("i", Value::Int(7)),
        Eq("b", Value::Bool(false)),
        In("s", vec![s("alpha"), s("gamma")]),
        In("s", vec![]),
        In("i", vec![Value::Int(-5), Value::Int(7)]),
        NotIn("s", vec![s("alpha")]),
        NotIn("b", vec![Value::Bool(true)]),
        HasAny("l", vec!["x".into()]),
        HasAny("l", vec!["y".into(), "z".into()]),
        HasAny("l", vec![]),
        Cmp("i", CmpOp::Gt, Value::Int(0)),
        Cmp("i", CmpOp::Gte, Value::Int(0)),
        Cmp("i", CmpOp::Lt, Value::Int(7)),
        Cmp("i", CmpOp::Lte, Value::Int(-5)),
        Cmp("s", CmpOp::Gt, s("Beta")),
        Cmp("s", CmpOp::Lt, s("alpha")),
        Cmp("b", CmpOp::Gt, Value::Bool(false)),
        IsNull("s"),
        NotNull("i"),
        IdCmp(CmpOp::Gt, "d050".into()),
        IdCmp(CmpOp::Lte, "d020".into()),
        IdIn(vec!["d000".into(), "d037".into(), "nope".into()]),
        KeysetCmp("s", CmpOp::Gt, s("alpha"), "d050".into()),
        KeysetCmp("s", CmpOp::Lt, s("Beta"), "d010".into()),
        KeysetCmp("i", CmpOp::Lte, Value::Int(7), "d020".into()),
        KeysetCmp("i", CmpOp::Gte, Value::Int(0), "d000".into()),
        KeysetCmp("b", CmpOp::Lt, Value::Bool(true), "d060".into()),
        KeysetCmp("i", CmpOp::Gt, Value::Null, "d000".into()),
        Search("acme".into()),
        Search(".".into()),
        Search("%".into()),
        Search("_".into()),
        Search("[a-z]*+?".into()),
        Search("(corp)".into()),
        Search("ähnlich".into()),
        Search("\\".into()),
        Search("nothing-matches".into()),
        And(vec![
            Eq("s", s("alpha")),
            Cmp("i", CmpOp::Gte, Value::Int(0)),
        ]),
        Or(vec![
            IsNull("s"),
            And(vec![
                Eq("b", Value::Bool(true)),
                HasAny("l", vec!["z".into()]),
            ]),
        ]),
        Or(vec![
            Cmp("s", CmpOp::Gt, s("alpha")),
            IsNull("s"),
            And(vec![Eq("s", s("alpha")), IdCmp(CmpOp::Lt, "d040".into())]),
        ]),
        And(vec![NotIn("s", vec![s("gamma")]), Search("host".into())]),
    ]
}

fn reference(docs: &[StoredDoc], filter: &Filter) -> Vec<String> {
    let mut ids: Vec<String> = docs
        .iter()
        .filter(|d| filter.matches(&PROBE, d).unwrap())
        .map(|d| d.id.clone())
        .collect();
    ids.sort();
    ids
}

pub async fn filters_match_reference(store: Arc<dyn DocumentStore>) {
    let p = partition();
    let docs = load(store.as_ref(), &p).await;
    for filter in filters() {
        let query = FindQuery {
            filter: filter.clone(),
            sort: vec![(SortKey::Id, SortDirection::Asc)],
            limit: 1000,
        };
        let got: Vec<String> = store
            .find(&PROBE, &p, &query)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        let want = reference(&docs, &filter);
        assert_eq!(got, want, "find with {filter:?}");
        let count = store.count(&PROBE, &p, &filter).await.unwrap();
        assert_eq!(count, want.len() as u64, "count with {filter:?}");
    }
}

pub async fn sort_matches_reference(store: Arc<dyn DocumentStore>) {
    let p = partition();
    let docs = load(store.as_ref(), &p).await;
    for field in ["s", "i", "b"] {
        for dir in [SortDirection::Asc, SortDirection::Desc] {
            let sort = vec![(SortKey::Field(field), dir), (SortKey::Id, dir)];
            for limit in [1000, 7] {
                let query = FindQuery {
                    filter: Filter::All,
                    sort: sort.clone(),
                    limit,
                };
                let got: Vec<String> = store
                    .find(&PROBE, &p, &query)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.id)
                    .collect();
                let mut want = docs.clone();
                want.sort_by(|a, b| compare_docs(&PROBE, &sort, a, b).unwrap());
                let want: Vec<String> = want.into_iter().take(limit).map(|d| d.id).collect();
                assert_eq!(got, want, "sort by {field} {dir:?} limit {limit}");
            }
        }
    }
    for dir in [SortDirection::Asc, SortDirection::Desc] {
        let query = FindQuery {
            filter: Filter::All,
            sort: vec![(SortKey::Id, dir)],
            limit: 5,
        };
        let got: Vec<String> = store
            .find(&PROBE, &p, &query)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        let mut want: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        want.sort();
        if dir == SortDirection::Desc {
            want.reverse();
        }
        want.truncate(5);
        assert_eq!(got, want, "sort by id {dir:?}");
    }
}

pub async fn facets_match_reference(store: Arc<dyn DocumentStore>) {
    let p = partition();
    let docs = load(store.as_ref(), &p).await;
    for field in ["s", "i", "b", "l"] {
        for filter in [
            Filter::All,
            Filter::Eq("b", Value::Bool(true)),
            Filter::Search("acme".into()),
        ] {
            let mut got = store.facet(&PROBE, &p, field, &filter).await.unwrap();
            got.sort();
            let pos = PROBE.position(field).unwrap();
            let mut want: BTreeMap<Value, u64> = BTreeMap::new();
            for d in docs.iter().filter(|d| filter.matches(&PROBE, d).unwrap()) {
                match &d.fields[pos] {
                    Value::Null => {}
                    Value::StrList(items) => {
                        for item in items {
                            *want.entry(Value::Str(item.clone())).or_default() += 1;
                        }
                    }
                    v => *want.entry(v.clone()).or_default() += 1,
                }
            }
            let want: Vec<(Value, u64)> = want.into_iter().collect();
            assert_eq!(got, want, "facet {field} with {filter:?}");
        }
    }
}

pub async fn facet_many_matches_facet(store: Arc<dyn DocumentStore>) {
    let p = partition();
    load(store.as_ref(), &p).await;
    let base = Filter::NotIn("s", vec![Value::str("gamma")]);
    let specs = vec![
        crate::store::FacetSpec {
            field: "s",
            filter: Filter::Eq("b", Value::Bool(true)),
        },
        crate::store::FacetSpec {
            field: "l",
            filter: Filter::All,
        },
        crate::store::FacetSpec {
            field: "i",
            filter: Filter::HasAny("l", vec!["x".into()]),
        },
        crate::store::FacetSpec {
            field: "b",
            filter: Filter::Cmp("i", CmpOp::Gte, Value::Int(0)),
        },
    ];
    let many = store.facet_many(&PROBE, &p, &base, &specs).await.unwrap();
    assert_eq!(many.len(), specs.len());
    for (spec, mut got) in specs.iter().zip(many) {
        let filter = Filter::and(vec![base.clone(), spec.filter.clone()]);
        let mut want = store.facet(&PROBE, &p, spec.field, &filter).await.unwrap();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "facet_many {} with {:?}",
            spec.field, spec.filter
        );
    }
    let with_search = vec![crate::store::FacetSpec {
        field: "s",
        filter: Filter::Search("acme".into()),
    }];
    let mut got = store
        .facet_many(&PROBE, &p, &Filter::All, &with_search)
        .await
        .unwrap()
        .remove(0);
    let mut want = store
        .facet(&PROBE, &p, "s", &Filter::Search("acme".into()))
        .await
        .unwrap();
    got.sort();
    want.sort();
    assert_eq!(got, want, "facet_many with a search condition");
    assert!(
        store
            .facet_many(&PROBE, &p, &Filter::All, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn find_many_matches_find_and_count(store: Arc<dyn DocumentStore>) {
    let p = partition();
    load(store.as_ref(), &p).await;
    let queries = vec![
        FindQuery {
            filter: Filter::Cmp("i", CmpOp::Gte, Value::Int(0)),
            sort: vec![
                (SortKey::Field("i"), SortDirection::Desc),
                (SortKey::Id, SortDirection::Desc),
            ],
            limit: 7,
        },
        FindQuery {
            filter: Filter::Eq("s", Value::str("alpha")),
            sort: vec![(SortKey::Id, SortDirection::Asc)],
            limit: 1,
        },
        FindQuery {
            filter: Filter::Eq("s", Value::str("no such value")),
            sort: vec![(SortKey::Id, SortDirection::Asc)],
            limit: 5,
        },
    ];
    let base = Filter::HasAny("l", vec!["x".into(), "z".into()]);
    let (rows, count) = store
        .find_many(&PROBE, &p, &queries, Some(&base))
        .await
        .unwrap();
    assert_eq!(rows.len(), queries.len(), "one answer per find");
    for (query, got) in queries.iter().zip(&rows) {
        let want = store.find(&PROBE, &p, query).await.unwrap();
        let ids = |docs: &[StoredDoc]| docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(got),
            ids(&want),
            "find_many = find for {:?}",
            query.filter
        );
    }
    assert!(rows[2].is_empty());
    assert_eq!(count, Some(store.count(&PROBE, &p, &base).await.unwrap()));
    assert!(count.is_some_and(|n| n > 0), "the corpus has matching rows");

    let (rows, count) = store
        .find_many(&PROBE, &p, &queries[..1], None)
        .await
        .unwrap();
    assert_eq!((rows.len(), count), (1, None), "no count unless asked");
    let (rows, count) = store
        .find_many(&PROBE, &p, &[], Some(&Filter::All))
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(count, Some(60));
    // Another partition sees none of it.
    let (rows, count) = store
        .find_many(&PROBE, &partition(), &queries, Some(&Filter::All))
        .await
        .unwrap();
    assert!(rows.iter().all(Vec::is_empty));
    assert_eq!(count, Some(0));
}

pub async fn insert_replace_delete(store: Arc<dyn DocumentStore>) {
    let p = partition();
    let d = doc(
        "one",
        Value::str("a"),
        Value::Int(1),
        Value::Bool(true),
        &["x"],
        Value::Null,
        "One",
    );
    store.insert(&PROBE, &p, d.clone()).await.unwrap();
    assert_eq!(store.get(&PROBE, &p, "one").await.unwrap(), Some(d.clone()));
    let dup = store.insert(&PROBE, &p, d.clone()).await.unwrap_err();
    assert!(
        matches!(dup, Error::AlreadyExists { .. }),
        "duplicate id: {dup:?}"
    );

    let mut v2 = doc(
        "one",
        Value::str("b"),
        Value::Null,
        Value::Null,
        &[],
        Value::Null,
        "Two",
    );
    v2.version = 2;
    store.replace(&PROBE, &p, v2.clone(), 1).await.unwrap();
    assert_eq!(
        store.get(&PROBE, &p, "one").await.unwrap(),
        Some(v2.clone())
    );
    let stale = store.replace(&PROBE, &p, v2.clone(), 1).await.unwrap_err();
    assert!(
        matches!(stale, Error::Conflict { .. }),
        "stale version: {stale:?}"
    );
    let mut ghost = v2.clone();
    ghost.id = "ghost".into();
    let missing = store.replace(&PROBE, &p, ghost, 1).await.unwrap_err();
    assert!(
        matches!(missing, Error::NotFound { .. }),
        "missing: {missing:?}"
    );

    assert!(store.delete(&PROBE, &p, "one").await.unwrap());
    assert!(!store.delete(&PROBE, &p, "one").await.unwrap());
    assert_eq!(store.get(&PROBE, &p, "one").await.unwrap(), None);
    assert_eq!(store.count(&PROBE, &p, &Filter::All).await.unwrap(), 0);
}

pub async fn unique_groups(store: Arc<dyn DocumentStore>) {
    let p = partition();
    let mk = |id: &str, u: Value| doc(id, Value::Null, Value::Null, Value::Null, &[], u, "");
    store
        .insert(&PROBE, &p, mk("a", Value::str("key-1")))
        .await
        .unwrap();
    let err = store
        .insert(&PROBE, &p, mk("b", Value::str("key-1")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "unique: {err:?}"
    );
    assert!(
        store.get(&PROBE, &p, "b").await.unwrap().is_none(),
        "a refused insert wrote nothing"
    );
    // Nulls never collide.
    store
        .insert(&PROBE, &p, mk("n1", Value::Null))
        .await
        .unwrap();
    store
        .insert(&PROBE, &p, mk("n2", Value::Null))
        .await
        .unwrap();
    // Taking a used key through replace is refused, and leaves the row unchanged.
    let mut steal = mk("n1", Value::str("key-1"));
    steal.version = 2;
    let err = store.replace(&PROBE, &p, steal, 1).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "unique on replace: {err:?}"
    );
    assert_eq!(
        store.get(&PROBE, &p, "n1").await.unwrap().unwrap().version,
        1
    );
    // Freeing the key (null) lets another row take it.
    let mut free = mk("a", Value::Null);
    free.version = 2;
    store.replace(&PROBE, &p, free, 1).await.unwrap();
    store
        .insert(&PROBE, &p, mk("c", Value::str("key-1")))
        .await
        .unwrap();
    // Another partition has its own keys.
    store
        .insert(&PROBE, &partition(), mk("a", Value::str("key-1")))
        .await
        .unwrap();
}

pub async fn version_cas_is_atomic(store: Arc<dyn DocumentStore>) {
    let p = partition();
    store
        .insert(
            &PROBE,
            &p,
            doc(
                "cas",
                Value::Null,
                Value::Int(0),
                Value::Null,
                &[],
                Value::Null,
                "",
            ),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut d = doc(
                "cas",
                Value::Null,
                Value::Int(n),
                Value::Null,
                &[],
                Value::Null,
                "",
            );
            d.version = 2;
            store.replace(&PROBE, &p, d, 1).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer of version 1 wins");
    assert_eq!(
        store.get(&PROBE, &p, "cas").await.unwrap().unwrap().version,
        2
    );
}

pub async fn partitions_are_isolated(store: Arc<dyn DocumentStore>) {
    let (a, b) = (partition(), partition());
    let d = doc(
        "same",
        Value::str("alpha"),
        Value::Int(1),
        Value::Bool(true),
        &["x"],
        Value::str("k"),
        "shared",
    );
    store.insert(&PROBE, &a, d.clone()).await.unwrap();
    assert_eq!(store.get(&PROBE, &b, "same").await.unwrap(), None);
    assert!(
        store
            .get_many(&PROBE, &b, &["same".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count(&PROBE, &b, &Filter::All).await.unwrap(), 0);
    let q = FindQuery {
        filter: Filter::All,
        sort: vec![(SortKey::Id, SortDirection::Asc)],
        limit: 10,
    };
    assert!(store.find(&PROBE, &b, &q).await.unwrap().is_empty());
    assert!(
        store
            .facet(&PROBE, &b, "s", &Filter::All)
            .await
            .unwrap()
            .is_empty()
    );
    let mut v2 = d.clone();
    v2.version = 2;
    assert!(matches!(
        store.replace(&PROBE, &b, v2, 1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(!store.delete(&PROBE, &b, "same").await.unwrap());
    // The same id can exist independently in b.
    store.insert(&PROBE, &b, d.clone()).await.unwrap();
    assert!(store.delete(&PROBE, &b, "same").await.unwrap());
    assert_eq!(store.get(&PROBE, &a, "same").await.unwrap(), Some(d));
}

pub async fn get_many_skips_missing(store: Arc<dyn DocumentStore>) {
    let p = partition();
    load(store.as_ref(), &p).await;
    let mut got: Vec<String> = store
        .get_many(
            &PROBE,
            &p,
            &["d000".into(), "missing".into(), "d037".into()],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    got.sort();
    assert_eq!(got, vec!["d000".to_owned(), "d037".to_owned()]);
    assert!(store.get_many(&PROBE, &p, &[]).await.unwrap().is_empty());
}
