//! Organizations: the MSP's customers.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object};
use openframe_core::{Error, MachineStatus, Organization, OrganizationId, Timestamp};
use openframe_data::{MachineFilter, OrganizationFilter, OrganizationSort};

use super::connection::{SortInput, connection, list_complexity, listed, page_request, sort_spec};
use super::context::caller;
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode_as, encode};
use super::update::{apply, modify};

/// Organization lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::OrganizationStatus")]
pub(crate) enum OrganizationStatus {
    /// In use.
    Active,
    /// Kept for history.
    Archived,
    /// Soft-deleted.
    Deleted,
}

/// A customer of the MSP.
#[derive(Debug, Clone)]
pub(crate) struct OrganizationObject(pub(crate) Organization);

#[Object(name = "Organization")]
impl OrganizationObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Organization, self.0.id.as_str())
    }
    /// The raw organization id.
    async fn organization_id(&self) -> &str {
        self.0.id.as_str()
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Category.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Whether this is the tenant's default organization.
    async fn is_default(&self) -> bool {
        self.0.is_default
    }
    /// Status.
    async fn status(&self) -> OrganizationStatus {
        self.0.status.into()
    }
    /// Website.
    async fn website_url(&self) -> Option<&str> {
        self.0.website_url.as_deref()
    }
    /// Head count.
    async fn number_of_employees(&self) -> Option<u32> {
        self.0.number_of_employees
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> Timestamp {
        self.0.updated_at
    }
}

connection!(OrganizationConnection, OrganizationEdge, OrganizationObject);

/// Organization list filter.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct OrganizationFilterInput {
    /// Any of these statuses (default: all but DELETED).
    statuses: Option<Vec<OrganizationStatus>>,
    /// Any of these categories.
    categories: Option<Vec<String>>,
}

/// Organization queries.
#[derive(Debug, Default)]
pub(crate) struct OrganizationQuery;

#[Object]
impl OrganizationQuery {
    /// A page of organizations. Sort fields: id, name, createdAt, updatedAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrganizationFilterInput>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<OrganizationConnection> {
        let (caller, state) = caller(ctx)?;
        let filter = filter.unwrap_or_default();
        let filter = OrganizationFilter {
            statuses: filter
                .statuses
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect(),
            categories: filter.categories.unwrap_or_default(),
            search,
            include_deleted: false,
        };
        let sort = sort_spec::<OrganizationSort>(sort).gql()?;
        listed!(
            state.repos.organizations,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            OrganizationConnection,
            OrganizationObject
        )
    }

    /// One organization by global id; null if unknown in the caller's tenant.
    async fn organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<OrganizationObject>> {
        let (caller, state) = caller(ctx)?;
        let id = org_id("id", &id)?;
        Ok(state
            .repos
            .organizations
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(OrganizationObject))
    }
}

fn org_id(field: &'static str, id: &ID) -> async_graphql::Result<OrganizationId> {
    decode_as(field, NodeType::Organization, id, OrganizationId::parse).gql()
}

/// A new organization.
#[derive(Debug, InputObject)]
pub(crate) struct CreateOrganizationInput {
    /// Name, unique in the tenant.
    name: String,
    /// Category.
    category: Option<String>,
    /// Website.
    website_url: Option<String>,
    /// Head count.
    number_of_employees: Option<u32>,
}

/// Changes to an organization; absent fields stay, `null` clears.
#[derive(Debug, InputObject)]
pub(crate) struct UpdateOrganizationInput {
    /// The organization (global id).
    id: ID,
    /// New name.
    name: Option<String>,
    /// New category.
    category: MaybeUndefined<String>,
    /// New website.
    website_url: MaybeUndefined<String>,
    /// New head count.
    number_of_employees: MaybeUndefined<u32>,
    /// New status (ACTIVE or ARCHIVED; the default organization stays ACTIVE).
    status: Option<OrganizationStatus>,
}

/// Organization mutations.
#[derive(Debug, Default)]
pub(crate) struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Creates an organization.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> async_graphql::Result<OrganizationObject> {
        let (caller, state) = caller(ctx)?;
        let mut org = Organization::new(input.name.trim(), state.clock.now());
        org.category = input.category;
        org.website_url = input.website_url;
        org.number_of_employees = input.number_of_employees;
        state
            .repos
            .organizations
            .insert(caller.tenant(), org)
            .await
            .map(OrganizationObject)
            .gql()
    }

    /// Updates an organization.
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> async_graphql::Result<OrganizationObject> {
        let (caller, state) = caller(ctx)?;
        let id = org_id("id", &input.id)?;
        if input.status == Some(OrganizationStatus::Deleted) {
            return Err(to_gql(Error::invalid(
                "status",
                "use deleteOrganization to delete",
            )));
        }
        let (repo, tenant) = (&state.repos.organizations, caller.tenant());
        let id = &id;
        modify(
            "organization",
            || async move {
                let org = repo.get(tenant, id).await?;
                Ok(org.filter(|o| o.status != openframe_core::OrganizationStatus::Deleted))
            },
            |org| {
                if let Some(name) = &input.name {
                    org.name = name.trim().to_owned();
                }
                apply(&mut org.category, &input.category);
                apply(&mut org.website_url, &input.website_url);
                apply(&mut org.number_of_employees, &input.number_of_employees);
                if let Some(status) = input.status {
                    org.status = status.into();
                }
            },
            |org| repo.update(tenant, org),
        )
        .await
        .map(OrganizationObject)
    }

    /// Soft-deletes an organization. `CONFLICT` while devices (other than deleted or
    /// archived ones) still belong to it, or for the default organization.
    async fn delete_organization(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (caller, state) = caller(ctx)?;
        let raw = org_id("id", &id)?;
        let tenant = caller.tenant();
        if state
            .repos
            .organizations
            .get(tenant, &raw)
            .await
            .gql()?
            .is_none_or(|o| o.status == openframe_core::OrganizationStatus::Deleted)
        {
            return Err(to_gql(Error::not_found("organization")));
        }
        let in_use = MachineFilter {
            organization_ids: vec![raw.clone()],
            statuses: vec![
                MachineStatus::Pending,
                MachineStatus::Online,
                MachineStatus::Offline,
            ],
            ..MachineFilter::default()
        };
        if state.repos.machines.count(tenant, &in_use).await.gql()? > 0 {
            return Err(to_gql(Error::conflict(
                "the organization still has devices",
            )));
        }
        state.repos.organizations.delete(tenant, &raw).await.gql()?;
        Ok(id)
    }
}
