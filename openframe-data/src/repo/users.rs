//! Users: the people of a tenant.

use async_trait::async_trait;
use openframe_core::{
    FacetCount, Page, PageRequest, Result, SortDirection, SortField, SortSpec, TenantId, User,
    UserId, UserRole, UserStatus, normalize_email,
};

use super::{
    DocumentRepository, FacetDimension, QueryFilter, StoreSortField, filter_list, search_filter,
};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores and queries users. Emails are unique per tenant among non-deleted users.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// repos.users.insert(&tenant, User::new("Ops@Acme.example", vec![UserRole::Owner], SystemClock.now())).await?;
/// let found = repos.users.find_by_email(&tenant, "ops@acme.example").await?.unwrap();
/// assert_eq!(found.effective_roles(), vec![UserRole::Owner, UserRole::Admin]);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait UserRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new user; `AlreadyExists` if the email is taken in the tenant.
    async fn insert(&self, tenant: &TenantId, user: User) -> Result<User>;
    /// One user, including deleted ones.
    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>>;
    /// Several users in the order of `ids`.
    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>>;
    /// The non-deleted user with this email (normalized), if any.
    async fn find_by_email(&self, tenant: &TenantId, email: &str) -> Result<Option<User>>;
    /// Writes `user` if its version is current.
    async fn update(&self, tenant: &TenantId, user: User) -> Result<User>;
    /// Soft-deletes (status DELETED, email freed).
    async fn delete(&self, tenant: &TenantId, id: &UserId) -> Result<User>;
    /// A page of users.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        sort: SortSpec<UserSort>,
        page: &PageRequest,
    ) -> Result<Page<User>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &UserFilter) -> Result<u64>;
    /// Self-excluding counts.
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        dimensions: &[UserFacet],
    ) -> Result<Vec<(UserFacet, Vec<FacetCount>)>>;
}

/// User list filter. Without `statuses`, DELETED users are hidden unless asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFilter {
    /// Any of these statuses.
    pub statuses: Vec<UserStatus>,
    /// Has any of these roles.
    pub roles: Vec<UserRole>,
    /// Case-insensitive literal substring of email or names.
    pub search: Option<String>,
    /// Show DELETED when no status filter is given.
    pub include_deleted: bool,
}

/// Facet dimensions of users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserFacet {
    /// By status.
    Status,
    /// By role.
    Role,
}

impl FacetDimension for UserFacet {
    fn field(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Role => "roles",
        }
    }
}

/// Sortable user fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    /// By id.
    Id,
    /// By email.
    Email,
    /// By creation time (default, newest first).
    CreatedAt,
}

impl SortField for UserSort {
    const ALL: &'static [Self] = &[Self::Id, Self::Email, Self::CreatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Email => "email",
            Self::CreatedAt => "createdAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for UserSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Email => SortKey::Field("email"),
            Self::CreatedAt => SortKey::Field("created_at"),
        }
    }
}

impl QueryFilter for UserFilter {
    type Facet = UserFacet;
    fn base(&self) -> Result<Filter> {
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if self.statuses.is_empty() && !self.include_deleted {
            parts.push(Filter::NotIn("status", vec![Value::str("DELETED")]));
        }
        Ok(Filter::and(parts))
    }

    fn conditions(&self) -> Result<Vec<(UserFacet, Filter)>> {
        filter_list("statuses", &self.statuses)?;
        filter_list("roles", &self.roles)?;
        let mut out = Vec::new();
        if !self.statuses.is_empty() {
            let statuses = self
                .statuses
                .iter()
                .map(|s| Value::str(s.as_str()))
                .collect();
            out.push((UserFacet::Status, Filter::In("status", statuses)));
        }
        if !self.roles.is_empty() {
            let roles = self.roles.iter().map(|r| r.as_str().to_owned()).collect();
            out.push((UserFacet::Role, Filter::HasAny("roles", roles)));
        }
        Ok(out)
    }
}

static SCHEMA: Schema = Schema {
    collection: "users",
    entity: "user",
    fields: &[
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("roles", FieldKind::StrList),
        FieldDef::required("email", FieldKind::Str),
        FieldDef::optional("email_key", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["created_at"],
        },
        IndexDef { fields: &["email"] },
        IndexDef {
            fields: &["status", "created_at"],
        },
    ],
    unique: &[&["email_key"]],
};

impl Entity for User {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("user", serde);
    fn index_values(&self) -> Vec<Value> {
        let mut roles: Vec<String> = self.roles.iter().map(|r| r.as_str().to_owned()).collect();
        roles.sort();
        roles.dedup();
        vec![
            Value::str(self.status.as_str()),
            Value::StrList(roles),
            Value::str(&self.email),
            if self.status == UserStatus::Deleted {
                Value::Null
            } else {
                Value::str(&self.email)
            },
            Value::time(self.created_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut t = vec![self.email.as_str()];
        t.extend(self.first_name.as_deref());
        t.extend(self.last_name.as_deref());
        t
    }
}

crate::timestamped!(User);

#[async_trait]
impl UserRepository for DocumentRepository<User> {
    async fn insert(&self, tenant: &TenantId, mut user: User) -> Result<User> {
        user.email = normalize_email(&user.email);
        DocumentRepository::insert(self, &Partition::tenant(tenant), user).await
    }
    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        DocumentRepository::get_many(self, &Partition::tenant(tenant), &ids).await
    }
    async fn find_by_email(&self, tenant: &TenantId, email: &str) -> Result<Option<User>> {
        openframe_core::validate::max_chars(
            "email",
            email,
            openframe_core::validate::MAX_NAME_LEN,
        )?;
        let filter = Filter::Eq("email_key", Value::Str(normalize_email(email)));
        Ok(self
            .find_all(&Partition::tenant(tenant), filter, 1)
            .await?
            .into_iter()
            .next())
    }
    async fn update(&self, tenant: &TenantId, mut user: User) -> Result<User> {
        user.email = normalize_email(&user.email);
        DocumentRepository::update(self, &Partition::tenant(tenant), user).await
    }
    async fn delete(&self, tenant: &TenantId, id: &UserId) -> Result<User> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |u, _| {
                let change = u.status != UserStatus::Deleted;
                u.status = UserStatus::Deleted;
                Ok(change)
            })
            .await?;
        Ok(m.after)
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        sort: SortSpec<UserSort>,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &UserFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        dimensions: &[UserFacet],
    ) -> Result<Vec<(UserFacet, Vec<FacetCount>)>> {
        DocumentRepository::facets(self, &Partition::tenant(tenant), filter, dimensions).await
    }
}
