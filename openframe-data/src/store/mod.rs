//! The narrow storage interface that every backend implements once.
//!
//! Repositories are written once, over [`DocumentStore`]: a partitioned collection of JSON
//! documents, each with a handful of typed *index fields* declared in a [`Schema`]. Backends
//! know nothing about machines or users; they store documents, evaluate a small [`Filter`]
//! language over index fields, sort, count and group. Everything with business meaning
//! (soft delete, facets that ignore their own filter, keyset paging, optimistic concurrency,
//! conditional transitions) lives in the shared layer above and is written once.

mod filter;
mod schema;

use std::fmt::Debug;

use async_trait::async_trait;
use openframe_core::{Result, SortDirection, TenantId};

pub use filter::{CmpOp, Filter, compare_docs};
pub use schema::{FieldDef, FieldKind, IndexDef, Schema};

/// A typed index-field value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// No value. Sorts first ascending, last descending.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (timestamps are epoch milliseconds).
    Int(i64),
    /// A string.
    Str(String),
    /// A list of strings (tags); filtered with [`Filter::HasAny`], unwound by facets.
    StrList(Vec<String>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// An optional string value.
    pub fn opt_str(s: Option<impl Into<String>>) -> Self {
        s.map_or(Self::Null, |s| Self::Str(s.into()))
    }

    /// A timestamp as epoch milliseconds.
    pub fn time(t: openframe_core::Timestamp) -> Self {
        Self::Int(t.timestamp_millis())
    }

    /// An optional timestamp.
    pub fn opt_time(t: Option<openframe_core::Timestamp>) -> Self {
        t.map_or(Self::Null, Self::time)
    }

    /// The value as a string, for facet labels (`Null` is `None`).
    pub fn to_label(&self) -> Option<String> {
        match self {
            Self::Null | Self::StrList(_) => None,
            Self::Bool(b) => Some(b.to_string()),
            Self::Int(i) => Some(i.to_string()),
            Self::Str(s) => Some(s.clone()),
        }
    }
}

/// Where a document lives: one tenant, or the platform (for tenants themselves).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(String);

impl Partition {
    /// The partition of one tenant.
    pub fn tenant(tenant: &TenantId) -> Self {
        Self(tenant.as_str().to_owned())
    }

    /// The platform partition (not a tenant: tenant ids cannot start with `_`).
    pub fn platform() -> Self {
        Self("_platform".to_owned())
    }

    /// The partition key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored document: id, version, index-field values aligned with [`Schema::fields`], the
/// lowercased search text, and the JSON body (the source of truth).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    /// Document id, unique in its partition and collection.
    pub id: String,
    /// Optimistic-concurrency version, starting at 1.
    pub version: u64,
    /// Index values, one per [`Schema::fields`] entry, in order.
    pub fields: Vec<Value>,
    /// Lowercased text that [`Filter::Search`] matches against.
    pub search: String,
    /// The document as compact JSON.
    pub body: String,
}

/// What to sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// An index field.
    Field(&'static str),
    /// The document id.
    Id,
}

/// A find: filter, sort (the id tie-break is added by the caller as the last key), limit.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    /// Which documents.
    pub filter: Filter,
    /// Sort keys, most significant first.
    pub sort: Vec<(SortKey, SortDirection)>,
    /// At most this many.
    pub limit: usize,
}

/// One facet of a multi-facet query: count values of `field` among the documents that match
/// the shared base filter and this facet's own `filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetSpec {
    /// The counted field.
    pub field: &'static str,
    /// Extra conditions for this facet (the other facets' conditions).
    pub filter: Filter,
}

/// The narrow persistence interface a backend implements.
///
/// Contract (checked by the conformance kit in `testkit`):
/// - everything is confined to the given [`Partition`];
/// - `insert` fails with `AlreadyExists` on a duplicate id or on a [`Schema::unique`] group
///   whose values are all non-null; it stores `doc.version` as given;
/// - `replace` writes only if the stored version equals `expected_version` (else `Conflict`,
///   or `NotFound` if absent), atomically;
/// - nulls sort first ascending and last descending; strings compare bytewise;
/// - `facet` unwinds [`Value::StrList`] fields and omits nulls.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use openframe_core::SortDirection;
/// use openframe_data::memory::InMemoryDocumentStore;
/// use openframe_data::store::*;
/// static NOTES: Schema = Schema {
///     collection: "notes",
///     entity: "note",
///     fields: &[FieldDef::required("color", FieldKind::Str)],
///     indexes: &[IndexDef { fields: &["color"] }],
///     unique: &[],
/// };
/// let store = InMemoryDocumentStore::new();
/// let p = Partition::platform();
/// let doc = StoredDoc { id: "n1".into(), version: 1, fields: vec![Value::str("red")], search: "hello".into(), body: "{}".into() };
/// store.insert(&NOTES, &p, doc).await?;
/// let query = FindQuery { filter: Filter::Eq("color", Value::str("red")), sort: vec![(SortKey::Id, SortDirection::Asc)], limit: 10 };
/// assert_eq!(store.find(&NOTES, &p, &query).await?.len(), 1);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait DocumentStore: Send + Sync + Debug + 'static {
    /// The backend name, for errors and logs.
    fn backend(&self) -> &'static str;

    /// One document by id.
    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>>;

    /// Several documents by id, in no particular order; missing ids are skipped.
    async fn get_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>>;

    /// Inserts a new document.
    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()>;

    /// Replaces a document if its stored version is `expected_version`.
    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()>;

    /// Hard-deletes a document; `false` if it did not exist.
    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool>;

    /// Documents matching a query, sorted, limited.
    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>>;

    /// Several finds, and optionally a count, over one partition in one call: the rows of a
    /// page, its probe for the other side of the cursor and its filtered count. The default
    /// runs them concurrently; a backend may answer them together (SQLite does, on one
    /// connection in one read transaction, so the rows and the count come from one
    /// snapshot). Returns the rows of each find in order, and the count if one was asked.
    async fn find_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        finds: &[FindQuery],
        count: Option<&Filter>,
    ) -> Result<(Vec<Vec<StoredDoc>>, Option<u64>)> {
        let rows =
            futures::future::try_join_all(finds.iter().map(|q| self.find(schema, partition, q)));
        let count = async {
            match count {
                Some(filter) => self.count(schema, partition, filter).await.map(Some),
                None => Ok(None),
            }
        };
        futures::future::try_join(rows, count).await
    }

    /// How many documents match.
    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64>;

    /// Counts per distinct value of `field` among matching documents.
    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>>;

    /// Several facets over one base filter. The default runs [`DocumentStore::facet`] once
    /// per facet; a backend may answer them all in one pass.
    async fn facet_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        base: &Filter,
        facets: &[FacetSpec],
    ) -> Result<Vec<Vec<(Value, u64)>>> {
        let mut out = Vec::with_capacity(facets.len());
        for spec in facets {
            let filter = Filter::and(vec![base.clone(), spec.filter.clone()]);
            out.push(self.facet(schema, partition, spec.field, &filter).await?);
        }
        Ok(out)
    }
}
