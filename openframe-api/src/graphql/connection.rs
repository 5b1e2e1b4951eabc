//! Relay connections: `edges {node, cursor}`, `pageInfo` and `filteredCount`, plus the
//! paging, sort and facet-option inputs and outputs every list shares.

use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Enum, InputObject, SimpleObject};
use futures::future::BoxFuture;
use openframe_core::{FacetCount, PageInfo, PageRequest, Result, SortField, SortSpec};

use super::ids::{NodeType, encode};

/// Relay page information; the cursors equal the first and last edge cursors.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "PageInfo")]
pub(crate) struct PageInfoObject {
    /// More rows after `endCursor` (exact).
    has_next_page: bool,
    /// More rows before `startCursor` (exact).
    has_previous_page: bool,
    /// The first edge's cursor.
    start_cursor: Option<String>,
    /// The last edge's cursor.
    end_cursor: Option<String>,
}

impl From<PageInfo> for PageInfoObject {
    fn from(p: PageInfo) -> Self {
        Self {
            has_next_page: p.has_next_page,
            has_previous_page: p.has_previous_page,
            start_cursor: p.start_cursor,
            end_cursor: p.end_cursor,
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "SortDirection", remote = "openframe_core::SortDirection")]
pub(crate) enum SortDirectionEnum {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A sort on one allowlisted field (see each list's documentation).
#[derive(Debug, Clone, InputObject)]
pub(crate) struct SortInput {
    /// The field name, e.g. `hostname`; unknown names are a `VALIDATION_ERROR`.
    field: Option<String>,
    /// The direction; the list's default when absent.
    direction: Option<SortDirectionEnum>,
}

/// Parses an optional sort against the allowlist `F`.
pub(crate) fn sort_spec<F: SortField>(sort: Option<SortInput>) -> Result<SortSpec<F>> {
    let Some(sort) = sort else {
        return Ok(F::default_sort());
    };
    let mut spec = SortSpec::<F>::parse(sort.field.as_deref(), None)?;
    if let Some(d) = sort.direction {
        spec.direction = d.into();
    }
    Ok(spec)
}

/// Relay paging arguments as a core [`PageRequest`] (validated later against the sort).
pub(crate) fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> PageRequest {
    PageRequest {
        first: first.map(i64::from),
        after,
        last: last.map(i64::from),
        before,
    }
}

/// Complexity of a list field: its page size times the cost of one row.
pub(crate) fn list_complexity(child: usize, first: Option<i32>, last: Option<i32>) -> usize {
    let n = first
        .or(last)
        .map_or(openframe_core::DEFAULT_PAGE_SIZE as usize, |n| {
            n.clamp(1, openframe_core::MAX_PAGE_SIZE as i32) as usize
        });
    n.saturating_mul(child.max(1)).saturating_add(1)
}

/// Counts the rows of a list when `filteredCount` is selected (and only then).
pub(crate) type Counter = Arc<dyn Fn() -> BoxFuture<'static, Result<u64>> + Send + Sync>;

/// One "filter option": a value, its display label and how many rows have it.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct FilterOption {
    /// The value to filter by (a global id for organizations and tags).
    pub(crate) value: String,
    /// What to show.
    pub(crate) label: String,
    /// Rows with this value under the other filters.
    pub(crate) count: u64,
}

impl FilterOption {
    /// An option whose label is its value.
    pub(crate) fn plain(f: FacetCount) -> Self {
        Self {
            label: f.value.clone(),
            value: f.value,
            count: f.count,
        }
    }
}

/// The facets among `options` (selection name, facet) that the current field selects, and
/// whether it selects `filteredCount`: "filter options" compute only what is asked for.
pub(crate) fn selected_facets<F: Copy>(
    ctx: &async_graphql::Context<'_>,
    options: &[(&str, F)],
) -> (Vec<F>, bool) {
    let look = ctx.look_ahead();
    let facets = options
        .iter()
        .filter(|(name, _)| look.field(name).exists())
        .map(|(_, f)| *f)
        .collect();
    (facets, look.field("filteredCount").exists())
}

/// Facet counts whose values are raw ids of type `ty`, as options whose values are global
/// ids and whose labels are loaded in one batch. Ids the loader does not find keep their raw
/// value as label, or are left out with `drop_missing`.
pub(crate) async fn id_options<K, L>(
    counts: Vec<FacetCount>,
    ty: NodeType,
    parse: fn(String) -> Result<K>,
    loader: &DataLoader<L>,
    label: fn(&L::Value) -> String,
    drop_missing: bool,
) -> async_graphql::Result<Vec<FilterOption>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + AsRef<str> + 'static,
    L: Loader<K, Error = async_graphql::Error>,
{
    let parsed: Vec<(K, FacetCount)> = counts
        .into_iter()
        .filter_map(|c| Some((parse(c.value.clone()).ok()?, c)))
        .collect();
    let found = loader
        .load_many(parsed.iter().map(|(k, _)| k.clone()))
        .await?;
    Ok(parsed
        .into_iter()
        .filter_map(|(k, c)| {
            let label = match found.get(&k) {
                Some(v) => label(v),
                None if drop_missing => return None,
                None => c.value.clone(),
            };
            Some(FilterOption {
                value: encode(ty, k.as_ref()).0,
                label,
                count: c.count,
            })
        })
        .collect())
}

/// Defines `$conn` and `$edge` for node type `$node`.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        /// An edge: a node and its cursor.
        #[derive(async_graphql::SimpleObject)]
        pub(crate) struct $edge {
            /// The row.
            node: $node,
            /// The row's cursor (equal to the page cursors).
            cursor: String,
        }

        /// A page of rows.
        #[derive(async_graphql::SimpleObject)]
        #[graphql(complex)]
        pub(crate) struct $conn {
            /// The rows.
            edges: Vec<$edge>,
            /// Paging state.
            page_info: $crate::graphql::connection::PageInfoObject,
            #[graphql(skip)]
            counter: Option<$crate::graphql::connection::Counter>,
        }

        #[async_graphql::ComplexObject]
        impl $conn {
            /// How many rows match the filter and search, independent of the page.
            async fn filtered_count(&self) -> async_graphql::Result<Option<u64>> {
                use $crate::graphql::error::GqlResultExt as _;
                match &self.counter {
                    Some(count) => count().await.gql().map(Some),
                    None => Ok(None),
                }
            }
        }

        impl $conn {
            /// A connection over `page`, wrapping each row with `wrap`.
            pub(crate) fn new<T>(
                page: openframe_core::Page<T>,
                wrap: impl Fn(T) -> $node,
                counter: Option<$crate::graphql::connection::Counter>,
            ) -> Self {
                Self {
                    edges: page
                        .edges
                        .into_iter()
                        .map(|e| $edge {
                            node: wrap(e.node),
                            cursor: e.cursor,
                        })
                        .collect(),
                    page_info: page.page_info.into(),
                    counter,
                }
            }
        }
    };
}
pub(crate) use connection;

/// A [`Counter`] from an async closure.
pub(crate) fn counter<F, Fut>(count: F) -> Option<Counter>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64>> + Send + 'static,
{
    Some(Arc::new(move || Box::pin(count())))
}

/// Lists a page from a repository with `list(tenant, filter, sort, page)` and
/// `count(tenant, filter)`, as connection `$conn` of rows wrapped by `$wrap`, counting only
/// when `filteredCount` is selected.
macro_rules! listed {
    ($repo:expr, $tenant:expr, $filter:expr, $sort:expr, $page:expr, $conn:ident, $wrap:expr) => {{
        use $crate::graphql::error::GqlResultExt as _;
        let (repo, tenant, filter) = ($repo.clone(), $tenant.clone(), $filter);
        let page = repo.list(&tenant, &filter, $sort, &$page).await.gql()?;
        let count = $crate::graphql::connection::counter(move || {
            let (repo, tenant, filter) = (repo.clone(), tenant.clone(), filter.clone());
            async move { repo.count(&tenant, &filter).await }
        });
        Ok($conn::new(page, $wrap, count))
    }};
}
pub(crate) use listed;
