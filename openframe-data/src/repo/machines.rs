//! Machines: the managed devices.

use async_trait::async_trait;
use openframe_core::{
    Error, FacetCount, Machine, MachineId, MachineStatus, OrganizationId, OsType, Page,
    PageRequest, Result, SortDirection, SortField, SortSpec, TagId, TenantId, Timestamp,
};

use super::{
    DocumentRepository, FacetDimension, QueryFilter, StoreSortField, filter_list, search_filter,
};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores and queries machines. Every method is confined to `tenant`.
///
/// ```
/// # tokio_test_block(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{Repositories, MachineFilter, MachineSort, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let m = Machine::new(MachineId::generate(), "web-01", OsType::Linux, SystemClock.now());
/// repos.machines.insert(&tenant, m).await?;
/// let filter = MachineFilter { search: Some("web".into()), ..Default::default() };
/// let page = repos.machines.list(&tenant, &filter, SortSpec::default(), &PageRequest::first(20)).await?;
/// assert_eq!(page.edges.len(), 1);
/// # Ok::<(), openframe_core::Error>(()) });
/// # fn tokio_test_block<F: std::future::Future<Output = Result<(), openframe_core::Error>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap() }
/// ```
#[async_trait]
pub trait MachineRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new machine (version 1). `AlreadyExists` if the id is taken in the tenant.
    async fn insert(&self, tenant: &TenantId, machine: Machine) -> Result<Machine>;
    /// One machine, including soft-deleted ones.
    async fn get(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<Machine>>;
    /// Several machines in the order of `ids` (missing ones skipped): for batch loaders.
    async fn get_many(&self, tenant: &TenantId, ids: &[MachineId]) -> Result<Vec<Machine>>;
    /// Writes `machine` if its version is current; `Conflict` otherwise.
    async fn update(&self, tenant: &TenantId, machine: Machine) -> Result<Machine>;
    /// Soft-deletes (status DELETED); idempotent.
    async fn delete(&self, tenant: &TenantId, id: &MachineId) -> Result<Machine>;
    /// A page of machines.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        sort: SortSpec<MachineSort>,
        page: &PageRequest,
    ) -> Result<Page<Machine>>;
    /// How many machines match the filter.
    async fn count(&self, tenant: &TenantId, filter: &MachineFilter) -> Result<u64>;
    /// A page and how many machines match the filter in all. The default runs
    /// [`list`](Self::list) and [`count`](Self::count) concurrently; the store-backed
    /// repository asks the store once (one snapshot on SQLite).
    async fn list_counted(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        sort: SortSpec<MachineSort>,
        page: &PageRequest,
    ) -> Result<(Page<Machine>, u64)> {
        futures::future::try_join(
            self.list(tenant, filter, sort, page),
            self.count(tenant, filter),
        )
        .await
    }
    /// Self-excluding counts for the requested dimensions only.
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        dimensions: &[MachineFacet],
    ) -> Result<Vec<(MachineFacet, Vec<FacetCount>)>>;
    /// Atomically moves the machine to `to` if its status is one of `from`.
    async fn transition_status(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        from: &[MachineStatus],
        to: MachineStatus,
    ) -> Result<StatusTransition>;
    /// Records contact at `seen_at`: `last_seen` never moves backwards, and a PENDING or
    /// OFFLINE machine becomes ONLINE. ARCHIVED and DELETED machines are left alone.
    async fn record_contact(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        seen_at: Timestamp,
    ) -> Result<StatusTransition>;
    /// Up to `limit` machines in `status` whose `last_seen` is before `cutoff` (never-seen
    /// machines excluded), oldest contact first: the offline sweep's query.
    async fn list_silent(
        &self,
        tenant: &TenantId,
        status: MachineStatus,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<Machine>>;
    /// Atomically moves an ONLINE machine to OFFLINE only if its `last_seen` is still before
    /// `cutoff` (a heartbeat racing the sweep wins).
    async fn mark_offline_if_silent(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        cutoff: Timestamp,
    ) -> Result<StatusTransition>;
}

/// The result of a conditional status change.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTransition {
    /// The machine before.
    pub before: Machine,
    /// The machine after (same as `before` if nothing was applied).
    pub after: Machine,
    /// Whether the write happened.
    pub applied: bool,
}

impl StatusTransition {
    /// Whether the status changed.
    pub fn status_changed(&self) -> bool {
        self.applied && self.before.status != self.after.status
    }
}

/// Machine list filter. Empty lists mean "any". Without `statuses`, DELETED machines are
/// hidden unless `include_deleted`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineFilter {
    /// Any of these statuses.
    pub statuses: Vec<MachineStatus>,
    /// Any of these OS types.
    pub os_types: Vec<OsType>,
    /// Any of these organizations.
    pub organization_ids: Vec<OrganizationId>,
    /// Has any of these tags.
    pub tag_ids: Vec<TagId>,
    /// Only these machines (an empty `Some` matches nothing).
    pub machine_ids: Option<Vec<MachineId>>,
    /// Case-insensitive literal substring of hostname, names, IPs, serial, manufacturer, model.
    pub search: Option<String>,
    /// Show DELETED machines when no status filter is given.
    pub include_deleted: bool,
}

/// Facet dimensions of machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineFacet {
    /// By status.
    Status,
    /// By OS type.
    OsType,
    /// By organization id.
    Organization,
    /// By tag id.
    Tag,
}

impl FacetDimension for MachineFacet {
    fn field(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::OsType => "os_type",
            Self::Organization => "organization_id",
            Self::Tag => "tags",
        }
    }
}

/// Sortable machine fields (the allowlist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineSort {
    /// By id.
    Id,
    /// By hostname.
    Hostname,
    /// By status.
    Status,
    /// By last contact.
    LastSeen,
    /// By enrollment time (default, newest first).
    RegisteredAt,
}

impl SortField for MachineSort {
    const ALL: &'static [Self] = &[
        Self::Id,
        Self::Hostname,
        Self::Status,
        Self::LastSeen,
        Self::RegisteredAt,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Hostname => "hostname",
            Self::Status => "status",
            Self::LastSeen => "lastSeen",
            Self::RegisteredAt => "registeredAt",
        }
    }

    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::RegisteredAt, SortDirection::Desc)
    }
}

impl StoreSortField for MachineSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Hostname => SortKey::Field("hostname"),
            Self::Status => SortKey::Field("status"),
            Self::LastSeen => SortKey::Field("last_seen"),
            Self::RegisteredAt => SortKey::Field("registered_at"),
        }
    }
}

fn strs<T: AsRef<str>>(items: &[T]) -> Vec<Value> {
    items.iter().map(|i| Value::str(i.as_ref())).collect()
}

impl QueryFilter for MachineFilter {
    type Facet = MachineFacet;

    fn base(&self) -> Result<Filter> {
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if let Some(ids) = &self.machine_ids {
            if ids.len() > 1000 {
                return Err(Error::invalid("machineIds", "at most 1000 ids"));
            }
            parts.push(Filter::IdIn(ids.iter().map(|i| i.to_string()).collect()));
        }
        if self.statuses.is_empty() && !self.include_deleted {
            parts.push(Filter::NotIn(
                "status",
                vec![Value::str(MachineStatus::Deleted.as_str())],
            ));
        }
        Ok(Filter::and(parts))
    }

    fn conditions(&self) -> Result<Vec<(MachineFacet, Filter)>> {
        filter_list("statuses", &self.statuses)?;
        filter_list("osTypes", &self.os_types)?;
        filter_list("organizationIds", &self.organization_ids)?;
        filter_list("tagIds", &self.tag_ids)?;
        let mut out = Vec::new();
        if !self.statuses.is_empty() {
            let statuses: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            out.push((MachineFacet::Status, Filter::In("status", strs(&statuses))));
        }
        if !self.os_types.is_empty() {
            let os: Vec<&str> = self.os_types.iter().map(|s| s.as_str()).collect();
            out.push((MachineFacet::OsType, Filter::In("os_type", strs(&os))));
        }
        if !self.organization_ids.is_empty() {
            out.push((
                MachineFacet::Organization,
                Filter::In("organization_id", strs(&self.organization_ids)),
            ));
        }
        if !self.tag_ids.is_empty() {
            let tags = self.tag_ids.iter().map(|t| t.to_string()).collect();
            out.push((MachineFacet::Tag, Filter::HasAny("tags", tags)));
        }
        Ok(out)
    }
}

static SCHEMA: Schema = Schema {
    collection: "machines",
    entity: "machine",
    fields: &[
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("os_type", FieldKind::Str),
        FieldDef::optional("organization_id", FieldKind::Str),
        FieldDef::required("tags", FieldKind::StrList),
        FieldDef::required("hostname", FieldKind::Str),
        FieldDef::optional("last_seen", FieldKind::Int),
        FieldDef::required("registered_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["registered_at"],
        },
        IndexDef {
            fields: &["status", "registered_at"],
        },
        IndexDef {
            fields: &["os_type", "registered_at"],
        },
        IndexDef {
            fields: &["organization_id", "registered_at"],
        },
        IndexDef {
            fields: &["hostname"],
        },
        IndexDef {
            fields: &["status", "last_seen"],
        },
        IndexDef {
            fields: &["last_seen"],
        },
    ],
    unique: &[],
};

impl Entity for Machine {
    const SCHEMA: &'static Schema = &SCHEMA;

    entity_basics!("machine", serde);
    fn index_values(&self) -> Vec<Value> {
        let mut tags: Vec<String> = self.tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        tags.dedup();
        vec![
            Value::str(self.status.as_str()),
            Value::str(self.os_type.as_str()),
            Value::opt_str(self.organization_id.as_ref().map(|o| o.as_str())),
            Value::StrList(tags),
            Value::str(&self.hostname),
            Value::opt_time(self.last_seen),
            Value::time(self.registered_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut texts = vec![self.hostname.as_str()];
        texts.extend(self.display_name.as_deref());
        texts.extend(self.nickname.as_deref());
        texts.extend(self.ip_addresses.iter().map(String::as_str));
        texts.extend(self.serial_number.as_deref());
        texts.extend(self.manufacturer.as_deref());
        texts.extend(self.model.as_deref());
        texts
    }
}

crate::timestamped!(Machine);

fn transition(m: super::Modified<Machine>) -> StatusTransition {
    StatusTransition {
        before: m.before,
        after: m.after,
        applied: m.applied,
    }
}

#[async_trait]
impl MachineRepository for DocumentRepository<Machine> {
    async fn insert(&self, tenant: &TenantId, machine: Machine) -> Result<Machine> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), machine).await
    }

    async fn get(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<Machine>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }

    async fn get_many(&self, tenant: &TenantId, ids: &[MachineId]) -> Result<Vec<Machine>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        DocumentRepository::get_many(self, &Partition::tenant(tenant), &ids).await
    }

    async fn update(&self, tenant: &TenantId, machine: Machine) -> Result<Machine> {
        DocumentRepository::update(self, &Partition::tenant(tenant), machine).await
    }

    async fn delete(&self, tenant: &TenantId, id: &MachineId) -> Result<Machine> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |m, _| {
                let change = m.status != MachineStatus::Deleted;
                m.status = MachineStatus::Deleted;
                Ok(change)
            })
            .await?;
        Ok(m.after)
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        sort: SortSpec<MachineSort>,
        page: &PageRequest,
    ) -> Result<Page<Machine>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }

    async fn list_counted(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        sort: SortSpec<MachineSort>,
        page: &PageRequest,
    ) -> Result<(Page<Machine>, u64)> {
        let partition = Partition::tenant(tenant);
        let (page, total) = self
            .page_counted(&partition, filter.to_filter()?, sort, page, true)
            .await?;
        let total = total.ok_or_else(|| Error::Internal("the store left out the count".into()))?;
        Ok((page, total))
    }

    async fn count(&self, tenant: &TenantId, filter: &MachineFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }

    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &MachineFilter,
        dimensions: &[MachineFacet],
    ) -> Result<Vec<(MachineFacet, Vec<FacetCount>)>> {
        DocumentRepository::facets(self, &Partition::tenant(tenant), filter, dimensions).await
    }

    async fn transition_status(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        from: &[MachineStatus],
        to: MachineStatus,
    ) -> Result<StatusTransition> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |m, _| {
                let applies = from.contains(&m.status) && m.status != to;
                if applies {
                    m.status = to;
                }
                Ok(applies)
            })
            .await?;
        Ok(transition(m))
    }

    async fn list_silent(
        &self,
        tenant: &TenantId,
        status: MachineStatus,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<Machine>> {
        if limit == 0 || limit > 10_000 {
            return Err(Error::invalid("limit", "must be 1-10000"));
        }
        let query = crate::store::FindQuery {
            filter: Filter::and(vec![
                Filter::Eq("status", Value::str(status.as_str())),
                Filter::Cmp("last_seen", crate::store::CmpOp::Lt, Value::time(cutoff)),
            ]),
            sort: vec![
                (SortKey::Field("last_seen"), SortDirection::Asc),
                (SortKey::Id, SortDirection::Asc),
            ],
            limit,
        };
        let docs = self
            .store()
            .find(
                <Machine as Entity>::SCHEMA,
                &Partition::tenant(tenant),
                &query,
            )
            .await?;
        docs.iter().map(crate::entity::from_doc).collect()
    }

    async fn mark_offline_if_silent(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        cutoff: Timestamp,
    ) -> Result<StatusTransition> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |m, _| {
                let silent = m.last_seen.is_none_or(|seen| seen < cutoff);
                let applies = m.status == MachineStatus::Online && silent;
                if applies {
                    m.status = MachineStatus::Offline;
                }
                Ok(applies)
            })
            .await?;
        Ok(transition(m))
    }

    async fn record_contact(
        &self,
        tenant: &TenantId,
        id: &MachineId,
        seen_at: Timestamp,
    ) -> Result<StatusTransition> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |m, _| {
                let mut changed = false;
                if m.last_seen.is_none_or(|last| seen_at > last) {
                    m.last_seen = Some(seen_at);
                    changed = true;
                }
                if matches!(m.status, MachineStatus::Pending | MachineStatus::Offline) {
                    m.status = MachineStatus::Online;
                    changed = true;
                }
                Ok(changed)
            })
            .await?;
        Ok(transition(m))
    }
}
