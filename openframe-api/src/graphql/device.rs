//! Devices (machines): the `Machine` type, the `devices` list, `deviceFilters` facets and
//! the device mutations (nickname, organization, tags).

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object};
use openframe_core::{
    Error, Machine, MachineId, OrganizationId, OrganizationStatus, TagId, TenantId, Timestamp,
};
use openframe_data::{MachineFacet, MachineFilter, MachineSort};

use super::connection::{
    FilterOption, SortInput, connection, id_options, list_complexity, listed, page_request,
    selected_facets, sort_spec,
};
use super::context::caller;
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;
use super::organization::OrganizationObject;
use super::state::GraphqlState;
use super::tag::TagObject;
use super::tool::ToolConnectionObject;
use super::update::{apply, modify};

/// Machine status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "DeviceStatus", remote = "openframe_core::MachineStatus")]
pub(crate) enum DeviceStatus {
    /// Enrolled, never seen.
    Pending,
    /// Heard from recently.
    Online,
    /// Silent past the offline threshold.
    Offline,
    /// Kept for history.
    Archived,
    /// Soft-deleted.
    Deleted,
}

/// Operating system family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "OsType", remote = "openframe_core::OsType")]
pub(crate) enum OsTypeEnum {
    /// Windows.
    Windows,
    /// macOS.
    MacOs,
    /// Linux.
    Linux,
}

/// A managed machine.
#[derive(Debug, Clone)]
pub(crate) struct Device(pub(crate) Machine);

#[Object(name = "Machine")]
impl Device {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Machine, self.0.id.as_str())
    }
    /// The agent's machine id.
    async fn machine_id(&self) -> &str {
        self.0.id.as_str()
    }
    /// Hostname.
    async fn hostname(&self) -> &str {
        &self.0.hostname
    }
    /// Display name.
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    /// Operator-given nickname.
    async fn nickname(&self) -> Option<&str> {
        self.0.nickname.as_deref()
    }
    /// Status.
    async fn status(&self) -> DeviceStatus {
        self.0.status.into()
    }
    /// OS family.
    async fn os_type(&self) -> OsTypeEnum {
        self.0.os_type.into()
    }
    /// OS version.
    async fn os_version(&self) -> Option<&str> {
        self.0.os_version.as_deref()
    }
    /// IP addresses.
    async fn ip_addresses(&self) -> &[String] {
        &self.0.ip_addresses
    }
    /// MAC address.
    async fn mac_address(&self) -> Option<&str> {
        self.0.mac_address.as_deref()
    }
    /// Agent version.
    async fn agent_version(&self) -> Option<&str> {
        self.0.agent_version.as_deref()
    }
    /// Serial number.
    async fn serial_number(&self) -> Option<&str> {
        self.0.serial_number.as_deref()
    }
    /// Manufacturer.
    async fn manufacturer(&self) -> Option<&str> {
        self.0.manufacturer.as_deref()
    }
    /// Model.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    /// Last contact.
    async fn last_seen(&self) -> Option<Timestamp> {
        self.0.last_seen
    }
    /// Enrollment time.
    async fn registered_at(&self) -> Timestamp {
        self.0.registered_at
    }
    /// Last change.
    async fn updated_at(&self) -> Timestamp {
        self.0.updated_at
    }
    /// The owning organization, unless it was deleted (batched).
    async fn organization(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<OrganizationObject>> {
        let Some(id) = &self.0.organization_id else {
            return Ok(None);
        };
        let org = loaders(ctx)?.organizations.load_one(id.clone()).await?;
        Ok(org
            .filter(|o| o.status != OrganizationStatus::Deleted)
            .map(OrganizationObject))
    }
    /// Attached tags, in attachment order (batched).
    async fn tags(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TagObject>> {
        if self.0.tags.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = loaders(ctx)?
            .tags
            .load_many(self.0.tags.iter().cloned())
            .await?;
        Ok(self
            .0
            .tags
            .iter()
            .filter_map(|id| found.remove(id))
            .map(TagObject)
            .collect())
    }
    /// Connections to integrated tools (batched).
    async fn tool_connections(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ToolConnectionObject>> {
        let found = loaders(ctx)?
            .connections
            .load_one(self.0.id.clone())
            .await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(ToolConnectionObject)
            .collect())
    }
}

connection!(DeviceConnection, DeviceEdge, Device);

/// Device list filter. Empty lists mean "any"; DELETED devices are hidden unless `statuses`
/// asks for them.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct DeviceFilterInput {
    /// Any of these statuses.
    statuses: Option<Vec<DeviceStatus>>,
    /// Any of these OS families.
    os_types: Option<Vec<OsTypeEnum>>,
    /// Any of these organizations (global ids).
    organization_ids: Option<Vec<ID>>,
    /// Has any of these tags (global ids).
    tag_ids: Option<Vec<ID>>,
}

impl DeviceFilterInput {
    /// The repository filter, with `search`.
    pub(crate) fn to_filter(
        &self,
        search: Option<String>,
    ) -> openframe_core::Result<MachineFilter> {
        let organization_ids = self
            .organization_ids
            .iter()
            .flatten()
            .map(|id| {
                decode_as(
                    "organizationIds",
                    NodeType::Organization,
                    id,
                    OrganizationId::parse,
                )
            })
            .collect::<openframe_core::Result<_>>()?;
        let tag_ids = self
            .tag_ids
            .iter()
            .flatten()
            .map(|id| decode_as("tagIds", NodeType::Tag, id, TagId::parse))
            .collect::<openframe_core::Result<_>>()?;
        Ok(MachineFilter {
            statuses: self
                .statuses
                .iter()
                .flatten()
                .map(|s| (*s).into())
                .collect(),
            os_types: self
                .os_types
                .iter()
                .flatten()
                .map(|s| (*s).into())
                .collect(),
            organization_ids,
            tag_ids,
            machine_ids: None,
            search,
            include_deleted: false,
        })
    }
}

/// Device "filter options": self-excluding counts per value. Only the selected facets are
/// computed; the others come back empty.
#[derive(Debug, Clone, Default, async_graphql::SimpleObject)]
pub(crate) struct DeviceFilters {
    /// Counts per status.
    statuses: Vec<FilterOption>,
    /// Counts per OS family.
    os_types: Vec<FilterOption>,
    /// Counts per organization (value: global id, label: name).
    organizations: Vec<FilterOption>,
    /// Counts per tag (value: global id, label: name).
    tags: Vec<FilterOption>,
    /// Rows matching every filter (only when selected).
    filtered_count: Option<u64>,
}

/// A machine id given as a global id.
pub(crate) fn machine_id(field: &'static str, id: &ID) -> openframe_core::Result<MachineId> {
    decode_as(field, NodeType::Machine, id, MachineId::parse)
}

/// Device queries.
#[derive(Debug, Default)]
pub(crate) struct DeviceQuery;

#[Object]
impl DeviceQuery {
    /// A page of devices. Sort fields: id, hostname, status, lastSeen, registeredAt
    /// (default registeredAt DESC). Search matches hostname, names, IPs, serial, vendor, model.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceFilterInput>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<DeviceConnection> {
        let (caller, state) = caller(ctx)?;
        let filter = filter.unwrap_or_default().to_filter(search).gql()?;
        let sort = sort_spec::<MachineSort>(sort).gql()?;
        listed!(
            state.repos.machines,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            DeviceConnection,
            Device
        )
    }

    /// One device by global id; null if it does not exist in the caller's tenant.
    async fn device(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Device>> {
        let (caller, state) = caller(ctx)?;
        let id = machine_id("id", &id).gql()?;
        get_device(state, caller.tenant(), &id).await
    }

    /// One device by its agent machine id; null if unknown in the caller's tenant.
    async fn device_by_machine_id(
        &self,
        ctx: &Context<'_>,
        machine_id: String,
    ) -> async_graphql::Result<Option<Device>> {
        let (caller, state) = caller(ctx)?;
        let id = MachineId::parse(machine_id).gql()?;
        get_device(state, caller.tenant(), &id).await
    }

    /// Filter options for the device list. Each facet ignores its own filter.
    async fn device_filters(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceFilterInput>,
        search: Option<String>,
    ) -> async_graphql::Result<DeviceFilters> {
        let (caller, state) = caller(ctx)?;
        let tenant = caller.tenant();
        let filter = filter.unwrap_or_default().to_filter(search).gql()?;
        let (wanted, count) = selected_facets(
            ctx,
            &[
                ("statuses", MachineFacet::Status),
                ("osTypes", MachineFacet::OsType),
                ("organizations", MachineFacet::Organization),
                ("tags", MachineFacet::Tag),
            ],
        );
        let mut out = DeviceFilters::default();
        if count {
            out.filtered_count = Some(state.repos.machines.count(tenant, &filter).await.gql()?);
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let facets = state
            .repos
            .machines
            .facets(tenant, &filter, &wanted)
            .await
            .gql()?;
        let loaders = loaders(ctx)?;
        for (facet, counts) in facets {
            match facet {
                MachineFacet::Status => {
                    out.statuses = counts.into_iter().map(FilterOption::plain).collect();
                }
                MachineFacet::OsType => {
                    out.os_types = counts.into_iter().map(FilterOption::plain).collect();
                }
                MachineFacet::Organization => {
                    out.organizations = id_options(
                        counts,
                        NodeType::Organization,
                        OrganizationId::parse,
                        &loaders.organizations,
                        |o| o.name.clone(),
                        false,
                    )
                    .await?;
                }
                // Counts of deleted tags are left out.
                MachineFacet::Tag => {
                    out.tags = id_options(
                        counts,
                        NodeType::Tag,
                        TagId::parse,
                        &loaders.tags,
                        |t| t.name.clone(),
                        true,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }
}

async fn get_device(
    state: &GraphqlState,
    tenant: &TenantId,
    id: &MachineId,
) -> async_graphql::Result<Option<Device>> {
    Ok(state
        .repos
        .machines
        .get(tenant, id)
        .await
        .gql()?
        .map(Device))
}

/// Changes to a device; absent fields stay as they are, `null` clears.
#[derive(Debug, InputObject)]
pub(crate) struct UpdateDeviceInput {
    /// The device (global id).
    id: ID,
    /// New nickname (`null` clears).
    nickname: MaybeUndefined<String>,
    /// New organization (global id; `null` clears).
    organization_id: MaybeUndefined<ID>,
    /// The complete new tag list (global ids).
    tag_ids: Option<Vec<ID>>,
}

/// Device mutations.
#[derive(Debug, Default)]
pub(crate) struct DeviceMutation;

#[Object]
impl DeviceMutation {
    /// Sets a device's nickname, organization or tags. Referenced organizations and tags
    /// must exist in the caller's tenant (`NOT_FOUND` otherwise).
    async fn update_device(
        &self,
        ctx: &Context<'_>,
        input: UpdateDeviceInput,
    ) -> async_graphql::Result<Device> {
        let (caller, state) = caller(ctx)?;
        let tenant = caller.tenant();
        let id = machine_id("id", &input.id).gql()?;
        let organization = match &input.organization_id {
            MaybeUndefined::Value(org) => {
                let org = decode_as(
                    "organizationId",
                    NodeType::Organization,
                    org,
                    OrganizationId::parse,
                )
                .gql()?;
                let found = state.repos.organizations.get(tenant, &org).await.gql()?;
                if found.is_none_or(|o| o.status == OrganizationStatus::Deleted) {
                    return Err(to_gql(Error::not_found("organization")));
                }
                MaybeUndefined::Value(org)
            }
            MaybeUndefined::Null => MaybeUndefined::Null,
            MaybeUndefined::Undefined => MaybeUndefined::Undefined,
        };
        let tags = match &input.tag_ids {
            Some(ids) => {
                let mut tags = ids
                    .iter()
                    .map(|t| decode_as("tagIds", NodeType::Tag, t, TagId::parse))
                    .collect::<openframe_core::Result<Vec<_>>>()
                    .gql()?;
                let mut seen = std::collections::HashSet::new();
                tags.retain(|t| seen.insert(t.clone()));
                openframe_core::validate::list("tagIds", &tags).gql()?;
                let found = state.repos.tags.get_many(tenant, &tags).await.gql()?;
                if found.len() != tags.len() {
                    return Err(to_gql(Error::not_found("tag")));
                }
                Some(tags)
            }
            None => None,
        };
        let nickname = input.nickname.map_value(|n| n.trim().to_owned());
        let repo = &state.repos.machines;
        modify(
            "machine",
            || repo.get(tenant, &id),
            |machine| {
                apply(&mut machine.nickname, &nickname);
                apply(&mut machine.organization_id, &organization);
                if let Some(tags) = &tags {
                    machine.tags = tags.clone();
                }
            },
            |machine| repo.update(tenant, machine),
        )
        .await
        .map(Device)
    }
}
