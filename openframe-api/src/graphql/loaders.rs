//! Per-request batch loaders: every relation a list resolves goes through one of these, so
//! a page of N rows costs one store call per relation, not N.

use std::collections::HashMap;
use std::hash::Hash;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};
use openframe_core::{
    Machine, MachineId, Organization, OrganizationId, Tag, TagId, TenantId, ToolConnection, User,
    UserId,
};
use openframe_data::store::{Filter, Partition, Value};
use openframe_data::{DocumentRepository, Repositories};

use super::error::{GqlResultExt as _, to_gql};
use super::state::GraphqlState;

/// Largest batch one loader call sends to the store (`get_many` accepts 1000).
const MAX_BATCH: usize = 500;
/// Most tool connections loaded for one batch of machines.
const MAX_CONNECTIONS: usize = 5000;

/// Loads organizations by id.
#[derive(Debug)]
pub(crate) struct OrganizationLoader {
    tenant: TenantId,
    repos: Repositories,
}

/// Loads tags by id.
#[derive(Debug)]
pub(crate) struct TagLoader {
    tenant: TenantId,
    repos: Repositories,
}

/// Loads machines by id.
#[derive(Debug)]
pub(crate) struct MachineLoader {
    tenant: TenantId,
    repos: Repositories,
}

/// Loads users by id.
#[derive(Debug)]
pub(crate) struct UserLoader {
    tenant: TenantId,
    repos: Repositories,
}

/// Loads each machine's tool connections.
#[derive(Debug)]
pub(crate) struct ConnectionsLoader {
    tenant: TenantId,
    repo: DocumentRepository<ToolConnection>,
}

fn by_id<K: Hash + Eq, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, V> {
    rows.into_iter().map(|v| (key(&v), v)).collect()
}

impl Loader<OrganizationId> for OrganizationLoader {
    type Value = Organization;
    type Error = async_graphql::Error;
    async fn load(
        &self,
        keys: &[OrganizationId],
    ) -> Result<HashMap<OrganizationId, Organization>, Self::Error> {
        let rows = self
            .repos
            .organizations
            .get_many(&self.tenant, keys)
            .await
            .gql()?;
        Ok(by_id(rows, |o| o.id.clone()))
    }
}

impl Loader<TagId> for TagLoader {
    type Value = Tag;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[TagId]) -> Result<HashMap<TagId, Tag>, Self::Error> {
        let rows = self.repos.tags.get_many(&self.tenant, keys).await.gql()?;
        Ok(by_id(rows, |t| t.id.clone()))
    }
}

impl Loader<MachineId> for MachineLoader {
    type Value = Machine;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[MachineId]) -> Result<HashMap<MachineId, Machine>, Self::Error> {
        let rows = self
            .repos
            .machines
            .get_many(&self.tenant, keys)
            .await
            .gql()?;
        Ok(by_id(rows, |m| m.id.clone()))
    }
}

impl Loader<UserId> for UserLoader {
    type Value = User;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, Self::Error> {
        let rows = self.repos.users.get_many(&self.tenant, keys).await.gql()?;
        Ok(by_id(rows, |u| u.id.clone()))
    }
}

impl Loader<MachineId> for ConnectionsLoader {
    type Value = Vec<ToolConnection>;
    type Error = async_graphql::Error;
    async fn load(
        &self,
        keys: &[MachineId],
    ) -> Result<HashMap<MachineId, Vec<ToolConnection>>, Self::Error> {
        let machines = keys.iter().map(|m| Value::str(m.as_str())).collect();
        let rows = self
            .repo
            .find_all(
                &Partition::tenant(&self.tenant),
                Filter::In("machine_id", machines),
                MAX_CONNECTIONS,
            )
            .await
            .gql()?;
        let mut out: HashMap<MachineId, Vec<ToolConnection>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        for c in rows {
            out.entry(c.machine_id.clone()).or_default().push(c);
        }
        Ok(out)
    }
}

/// The loaders of one request, confined to its tenant.
pub(crate) struct Loaders {
    pub(crate) organizations: DataLoader<OrganizationLoader>,
    pub(crate) tags: DataLoader<TagLoader>,
    pub(crate) machines: DataLoader<MachineLoader>,
    pub(crate) users: DataLoader<UserLoader>,
    pub(crate) connections: DataLoader<ConnectionsLoader>,
}

impl std::fmt::Debug for Loaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaders").finish_non_exhaustive()
    }
}

fn loader<T: Send + Sync + 'static>(inner: T) -> DataLoader<T> {
    DataLoader::new(inner, tokio::spawn).max_batch_size(MAX_BATCH)
}

impl Loaders {
    /// Fresh loaders (no cache shared between requests) for `tenant`.
    pub(crate) fn new(tenant: &TenantId, state: &GraphqlState) -> Self {
        let repos = &state.repos;
        Self {
            organizations: loader(OrganizationLoader {
                tenant: tenant.clone(),
                repos: repos.clone(),
            }),
            tags: loader(TagLoader {
                tenant: tenant.clone(),
                repos: repos.clone(),
            }),
            machines: loader(MachineLoader {
                tenant: tenant.clone(),
                repos: repos.clone(),
            }),
            users: loader(UserLoader {
                tenant: tenant.clone(),
                repos: repos.clone(),
            }),
            connections: loader(ConnectionsLoader {
                tenant: tenant.clone(),
                repo: DocumentRepository::new(state.store.clone(), state.clock.clone()),
            }),
        }
    }
}

/// The request's loaders.
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>()
        .map_err(|_| to_gql(openframe_core::Error::Internal("loaders missing".into())))
}
