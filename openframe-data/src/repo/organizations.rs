//! Organizations: the MSP's customers.

use async_trait::async_trait;
use openframe_core::{
    Error, FacetCount, Organization, OrganizationId, OrganizationStatus, Page, PageRequest, Result,
    SortDirection, SortField, SortSpec, TenantId,
};

use super::{
    DocumentRepository, FacetDimension, QueryFilter, StoreSortField, filter_list, search_filter,
};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores and queries organizations. Names are unique per tenant among non-deleted ones
/// (case-insensitive); at most one organization is the default.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let mut default = Organization::new("Acme HQ", SystemClock.now());
/// default.is_default = true;
/// repos.organizations.insert(&tenant, default).await?;
/// assert!(repos.organizations.find_default(&tenant).await?.is_some());
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait OrganizationRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new organization.
    async fn insert(&self, tenant: &TenantId, org: Organization) -> Result<Organization>;
    /// One organization, including soft-deleted ones.
    async fn get(&self, tenant: &TenantId, id: &OrganizationId) -> Result<Option<Organization>>;
    /// Several organizations in the order of `ids`.
    async fn get_many(
        &self,
        tenant: &TenantId,
        ids: &[OrganizationId],
    ) -> Result<Vec<Organization>>;
    /// Writes `org` if its version is current.
    async fn update(&self, tenant: &TenantId, org: Organization) -> Result<Organization>;
    /// Soft-deletes (status DELETED, name freed); the default organization cannot be deleted.
    async fn delete(&self, tenant: &TenantId, id: &OrganizationId) -> Result<Organization>;
    /// The tenant's default organization, if any.
    async fn find_default(&self, tenant: &TenantId) -> Result<Option<Organization>>;
    /// A page of organizations.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &OrganizationFilter,
        sort: SortSpec<OrganizationSort>,
        page: &PageRequest,
    ) -> Result<Page<Organization>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &OrganizationFilter) -> Result<u64>;
    /// Self-excluding counts for the requested dimensions.
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &OrganizationFilter,
        dimensions: &[OrganizationFacet],
    ) -> Result<Vec<(OrganizationFacet, Vec<FacetCount>)>>;
}

/// Organization list filter. Without `statuses`, DELETED ones are hidden unless asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrganizationFilter {
    /// Any of these statuses.
    pub statuses: Vec<OrganizationStatus>,
    /// Any of these categories (exact).
    pub categories: Vec<String>,
    /// Case-insensitive literal substring of name or category.
    pub search: Option<String>,
    /// Show DELETED when no status filter is given.
    pub include_deleted: bool,
}

/// Facet dimensions of organizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrganizationFacet {
    /// By status.
    Status,
    /// By category.
    Category,
}

impl FacetDimension for OrganizationFacet {
    fn field(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Category => "category",
        }
    }
}

/// Sortable organization fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationSort {
    /// By id.
    Id,
    /// By name.
    Name,
    /// By creation time (default, newest first).
    CreatedAt,
    /// By last change.
    UpdatedAt,
}

impl SortField for OrganizationSort {
    const ALL: &'static [Self] = &[Self::Id, Self::Name, Self::CreatedAt, Self::UpdatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "createdAt",
            Self::UpdatedAt => "updatedAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for OrganizationSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Name => SortKey::Field("name"),
            Self::CreatedAt => SortKey::Field("created_at"),
            Self::UpdatedAt => SortKey::Field("updated_at"),
        }
    }
}

impl QueryFilter for OrganizationFilter {
    type Facet = OrganizationFacet;
    fn base(&self) -> Result<Filter> {
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if self.statuses.is_empty() && !self.include_deleted {
            parts.push(Filter::NotIn("status", vec![Value::str("DELETED")]));
        }
        Ok(Filter::and(parts))
    }

    fn conditions(&self) -> Result<Vec<(OrganizationFacet, Filter)>> {
        filter_list("statuses", &self.statuses)?;
        filter_list("categories", &self.categories)?;
        let mut out = Vec::new();
        if !self.statuses.is_empty() {
            let statuses = self
                .statuses
                .iter()
                .map(|s| Value::str(s.as_str()))
                .collect();
            out.push((OrganizationFacet::Status, Filter::In("status", statuses)));
        }
        if !self.categories.is_empty() {
            let categories = self.categories.iter().map(Value::str).collect();
            out.push((
                OrganizationFacet::Category,
                Filter::In("category", categories),
            ));
        }
        Ok(out)
    }
}

static SCHEMA: Schema = Schema {
    collection: "organizations",
    entity: "organization",
    fields: &[
        FieldDef::required("status", FieldKind::Str),
        FieldDef::optional("category", FieldKind::Str),
        FieldDef::required("name", FieldKind::Str),
        FieldDef::optional("name_key", FieldKind::Str),
        FieldDef::required("is_default", FieldKind::Bool),
        FieldDef::optional("default_key", FieldKind::Bool),
        FieldDef::required("created_at", FieldKind::Int),
        FieldDef::required("updated_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["created_at"],
        },
        IndexDef {
            fields: &["updated_at"],
        },
        IndexDef { fields: &["name"] },
        IndexDef {
            fields: &["status", "created_at"],
        },
        IndexDef {
            fields: &["is_default"],
        },
    ],
    unique: &[&["name_key"], &["default_key"]],
};

impl Entity for Organization {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("organization", serde);
    fn index_values(&self) -> Vec<Value> {
        let live = self.status != OrganizationStatus::Deleted;
        vec![
            Value::str(self.status.as_str()),
            Value::opt_str(self.category.clone()),
            Value::str(&self.name),
            if live {
                Value::Str(self.name.trim().to_lowercase())
            } else {
                Value::Null
            },
            Value::Bool(self.is_default),
            // Unique when set: at most one default organization per tenant.
            if self.is_default {
                Value::Bool(true)
            } else {
                Value::Null
            },
            Value::time(self.created_at),
            Value::time(self.updated_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut t = vec![self.name.as_str()];
        t.extend(self.category.as_deref());
        t
    }
}

crate::timestamped!(Organization);

#[async_trait]
impl OrganizationRepository for DocumentRepository<Organization> {
    async fn insert(&self, tenant: &TenantId, org: Organization) -> Result<Organization> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), org).await
    }
    async fn get(&self, tenant: &TenantId, id: &OrganizationId) -> Result<Option<Organization>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn get_many(
        &self,
        tenant: &TenantId,
        ids: &[OrganizationId],
    ) -> Result<Vec<Organization>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        DocumentRepository::get_many(self, &Partition::tenant(tenant), &ids).await
    }
    async fn update(&self, tenant: &TenantId, org: Organization) -> Result<Organization> {
        DocumentRepository::update(self, &Partition::tenant(tenant), org).await
    }
    async fn delete(&self, tenant: &TenantId, id: &OrganizationId) -> Result<Organization> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |o, _| {
                if o.is_default {
                    return Err(Error::conflict(
                        "the default organization cannot be deleted",
                    ));
                }
                let change = o.status != OrganizationStatus::Deleted;
                o.status = OrganizationStatus::Deleted;
                Ok(change)
            })
            .await?;
        Ok(m.after)
    }
    async fn find_default(&self, tenant: &TenantId) -> Result<Option<Organization>> {
        let found = self
            .find_all(
                &Partition::tenant(tenant),
                Filter::Eq("default_key", Value::Bool(true)),
                1,
            )
            .await?;
        Ok(found.into_iter().next())
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &OrganizationFilter,
        sort: SortSpec<OrganizationSort>,
        page: &PageRequest,
    ) -> Result<Page<Organization>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &OrganizationFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &OrganizationFilter,
        dimensions: &[OrganizationFacet],
    ) -> Result<Vec<(OrganizationFacet, Vec<FacetCount>)>> {
        DocumentRepository::facets(self, &Partition::tenant(tenant), filter, dimensions).await
    }
}
