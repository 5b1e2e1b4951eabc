//! Stored scripts: CRUD (deleting is soft) and running one on one machine, a list or a
//! filtered batch.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use openframe_agent::executions::RunSpec;
use openframe_core::{
    Error, Script, ScriptId, ScriptStatus as CoreStatus, TagId, Timestamp, UserId,
};
use openframe_data::{ScriptFacet, ScriptFilter, ScriptSort};

use super::connection::{
    FilterOption, SortInput, connection, id_options, list_complexity, listed, page_request,
    selected_facets, sort_spec,
};
use super::context::caller;
use super::device::OsTypeEnum;
use super::error::{GqlResultExt as _, to_gql};
use super::execution::{
    DispatchResult, PrivilegeLevel, Shell, TargetInput, dispatch, resolve_target,
};
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;
use super::tag::TagObject;
use super::update::{apply, modify};
use super::user::UserObject;

/// Script lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::ScriptStatus")]
pub(crate) enum ScriptStatus {
    /// Runnable.
    Active,
    /// Kept, not runnable.
    Archived,
    /// Soft-deleted.
    Deleted,
}

/// A stored script.
#[derive(Debug, Clone)]
pub(crate) struct ScriptObject(pub(crate) Script);

#[Object(name = "Script")]
impl ScriptObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Script, self.0.id.as_str())
    }
    /// Name, unique in the tenant.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Shell.
    async fn shell(&self) -> Shell {
        self.0.shell.into()
    }
    /// Privilege.
    async fn privilege_level(&self) -> PrivilegeLevel {
        self.0.privilege_level.into()
    }
    /// The script body.
    async fn script_body(&self) -> &str {
        &self.0.code
    }
    /// Default arguments.
    async fn default_args(&self) -> &[String] {
        &self.0.default_args
    }
    /// Default timeout, seconds.
    async fn default_timeout_seconds(&self) -> u32 {
        self.0.default_timeout_secs
    }
    /// Platforms it supports (empty: any).
    async fn supported_platforms(&self) -> Vec<OsTypeEnum> {
        self.0
            .supported_platforms
            .iter()
            .map(|o| (*o).into())
            .collect()
    }
    /// Category.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Status.
    async fn status(&self) -> ScriptStatus {
        self.0.status.into()
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> Timestamp {
        self.0.updated_at
    }
    /// Tags (batched).
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
            .filter_map(|t| found.remove(t))
            .map(TagObject)
            .collect())
    }
    /// Who wrote it (batched).
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UserObject>> {
        let Some(author) = &self.0.author else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .users
            .load_one(author.clone())
            .await?
            .map(UserObject))
    }
}

connection!(ScriptConnection, ScriptEdge, ScriptObject);

/// Script list filter (DELETED scripts are hidden unless `statuses` asks for them).
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct ScriptFilterInput {
    /// Any of these statuses.
    statuses: Option<Vec<ScriptStatus>>,
    /// Any of these shells.
    shells: Option<Vec<Shell>>,
    /// Supporting any of these platforms.
    platforms: Option<Vec<OsTypeEnum>>,
    /// Having any of these tags (global ids).
    tag_ids: Option<Vec<ID>>,
}

impl ScriptFilterInput {
    fn into_filter(self, search: Option<String>) -> openframe_core::Result<ScriptFilter> {
        Ok(ScriptFilter {
            statuses: self
                .statuses
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect(),
            shells: self.shells.into_iter().flatten().map(Into::into).collect(),
            platforms: self
                .platforms
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect(),
            tag_ids: tag_ids(&self.tag_ids.unwrap_or_default())?,
            search,
            ..ScriptFilter::default()
        })
    }
}

/// Script "filter options": each facet counted under every filter except its own. Only the
/// selected facets are computed.
#[derive(Debug, Clone, Default, SimpleObject)]
pub(crate) struct ScriptFilters {
    /// Counts per status.
    statuses: Vec<FilterOption>,
    /// Counts per shell.
    shells: Vec<FilterOption>,
    /// Counts per supported platform.
    platforms: Vec<FilterOption>,
    /// Counts per tag (value: global id, label: name).
    tags: Vec<FilterOption>,
    /// Counts per author (value: global id, label: email).
    authors: Vec<FilterOption>,
    /// Scripts matching every filter (only when selected).
    filtered_count: Option<u64>,
}

fn script_id(field: &'static str, id: &ID) -> async_graphql::Result<ScriptId> {
    decode_as(field, NodeType::Script, id, ScriptId::parse).gql()
}

fn tag_ids(ids: &[ID]) -> openframe_core::Result<Vec<TagId>> {
    ids.iter()
        .map(|t| decode_as("tagIds", NodeType::Tag, t, TagId::parse))
        .collect()
}

/// Script queries.
#[derive(Debug, Default)]
pub(crate) struct ScriptQuery;

#[Object]
impl ScriptQuery {
    /// A page of scripts. Sort fields: id, name, createdAt, updatedAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn scripts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ScriptFilterInput>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ScriptConnection> {
        let (caller, state) = caller(ctx)?;
        let filter = filter.unwrap_or_default().into_filter(search).gql()?;
        let sort = sort_spec::<ScriptSort>(sort).gql()?;
        listed!(
            state.repos.scripts,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            ScriptConnection,
            ScriptObject
        )
    }

    /// Filter options for the script list.
    async fn script_filters(
        &self,
        ctx: &Context<'_>,
        filter: Option<ScriptFilterInput>,
        search: Option<String>,
    ) -> async_graphql::Result<ScriptFilters> {
        let (caller, state) = caller(ctx)?;
        let tenant = caller.tenant();
        let filter = filter.unwrap_or_default().into_filter(search).gql()?;
        let (wanted, count) = selected_facets(
            ctx,
            &[
                ("statuses", ScriptFacet::Status),
                ("shells", ScriptFacet::Shell),
                ("platforms", ScriptFacet::Platform),
                ("tags", ScriptFacet::Tag),
                ("authors", ScriptFacet::Author),
            ],
        );
        let mut out = ScriptFilters::default();
        if count {
            out.filtered_count = Some(state.repos.scripts.count(tenant, &filter).await.gql()?);
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let facets = state
            .repos
            .scripts
            .facets(tenant, &filter, &wanted)
            .await
            .gql()?;
        let loaders = loaders(ctx)?;
        for (facet, counts) in facets {
            let plain = || counts.iter().cloned().map(FilterOption::plain).collect();
            match facet {
                ScriptFacet::Status => out.statuses = plain(),
                ScriptFacet::Shell => out.shells = plain(),
                ScriptFacet::Platform => out.platforms = plain(),
                ScriptFacet::Category => {}
                ScriptFacet::Tag => {
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
                ScriptFacet::Author => {
                    out.authors = id_options(
                        counts,
                        NodeType::User,
                        UserId::parse,
                        &loaders.users,
                        |u| u.email.clone(),
                        false,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    /// One script by global id; null if unknown in the caller's tenant.
    async fn script(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ScriptObject>> {
        let (caller, state) = caller(ctx)?;
        let id = script_id("id", &id)?;
        Ok(state
            .repos
            .scripts
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(ScriptObject))
    }
}

/// A new script.
#[derive(Debug, InputObject)]
pub(crate) struct CreateScriptInput {
    /// Name, unique in the tenant.
    name: String,
    /// Description.
    description: Option<String>,
    /// Shell.
    shell: Shell,
    /// Privilege (default ADMIN).
    privilege_level: Option<PrivilegeLevel>,
    /// The script body.
    script_body: String,
    /// Default arguments.
    default_args: Option<Vec<String>>,
    /// Default timeout, seconds (1 to 3600; default 900).
    default_timeout_seconds: Option<u32>,
    /// Supported platforms.
    supported_platforms: Option<Vec<OsTypeEnum>>,
    /// Category.
    category: Option<String>,
    /// Tags (global ids).
    tag_ids: Option<Vec<ID>>,
}

/// Changes to a script; absent fields stay, `null` clears.
#[derive(Debug, InputObject)]
pub(crate) struct UpdateScriptInput {
    /// The script (global id).
    id: ID,
    /// New name.
    name: Option<String>,
    /// New description.
    description: MaybeUndefined<String>,
    /// New shell.
    shell: Option<Shell>,
    /// New privilege.
    privilege_level: Option<PrivilegeLevel>,
    /// New body.
    script_body: Option<String>,
    /// New default arguments.
    default_args: Option<Vec<String>>,
    /// New default timeout.
    default_timeout_seconds: Option<u32>,
    /// New platforms.
    supported_platforms: Option<Vec<OsTypeEnum>>,
    /// New category.
    category: MaybeUndefined<String>,
    /// New tags (global ids).
    tag_ids: Option<Vec<ID>>,
    /// New status (ACTIVE or ARCHIVED).
    status: Option<ScriptStatus>,
}

/// Running a stored script.
#[derive(Debug, InputObject)]
pub(crate) struct RunScriptInput {
    /// Where.
    target: TargetInput,
    /// The script (global id).
    script_id: ID,
    /// Arguments (default: the script's).
    args: Option<Vec<String>>,
    /// Timeout, seconds (default: the script's).
    timeout_seconds: Option<u32>,
    /// Privilege (default: the script's).
    privilege_level: Option<PrivilegeLevel>,
}

/// Checks that every tag exists in the caller's tenant.
async fn check_tags(
    state: &super::state::GraphqlState,
    tenant: &openframe_core::TenantId,
    tags: &[TagId],
) -> async_graphql::Result<()> {
    openframe_core::validate::list("tagIds", tags).gql()?;
    let found = state.repos.tags.get_many(tenant, tags).await.gql()?;
    if found.len() != tags.len() {
        return Err(to_gql(Error::not_found("tag")));
    }
    Ok(())
}

/// Script mutations.
#[derive(Debug, Default)]
pub(crate) struct ScriptMutation;

#[Object]
impl ScriptMutation {
    /// Creates a script authored by the caller; `ALREADY_EXISTS` if the name is taken.
    async fn create_script(
        &self,
        ctx: &Context<'_>,
        input: CreateScriptInput,
    ) -> async_graphql::Result<ScriptObject> {
        let (caller, state) = caller(ctx)?;
        let mut s = Script::new(
            input.name,
            input.shell.into(),
            input.script_body,
            state.clock.now(),
        );
        s.description = input.description;
        if let Some(p) = input.privilege_level {
            s.privilege_level = p.into();
        }
        s.default_args = input.default_args.unwrap_or_default();
        if let Some(t) = input.default_timeout_seconds {
            s.default_timeout_secs = t;
        }
        s.supported_platforms = input
            .supported_platforms
            .into_iter()
            .flatten()
            .map(Into::into)
            .collect();
        s.category = input.category;
        s.tags = tag_ids(&input.tag_ids.unwrap_or_default()).gql()?;
        check_tags(state, caller.tenant(), &s.tags).await?;
        s.author = caller.user_id().cloned();
        state
            .repos
            .scripts
            .insert(caller.tenant(), s)
            .await
            .map(ScriptObject)
            .gql()
    }

    /// Updates a script (not a deleted one).
    async fn update_script(
        &self,
        ctx: &Context<'_>,
        input: UpdateScriptInput,
    ) -> async_graphql::Result<ScriptObject> {
        let (caller, state) = caller(ctx)?;
        let id = script_id("id", &input.id)?;
        if input.status == Some(ScriptStatus::Deleted) {
            return Err(to_gql(Error::invalid(
                "status",
                "use deleteScript to delete",
            )));
        }
        let tags = match &input.tag_ids {
            Some(ids) => {
                let tags = tag_ids(ids).gql()?;
                check_tags(state, caller.tenant(), &tags).await?;
                Some(tags)
            }
            None => None,
        };
        let (repo, tenant) = (&state.repos.scripts, caller.tenant());
        let id = &id;
        modify(
            "script",
            || async move {
                let script = repo.get(tenant, id).await?;
                Ok(script.filter(|s| s.status != CoreStatus::Deleted))
            },
            |s| {
                if let Some(n) = &input.name {
                    s.name = n.trim().to_owned();
                }
                apply(&mut s.description, &input.description);
                apply(&mut s.category, &input.category);
                if let Some(v) = input.shell {
                    s.shell = v.into();
                }
                if let Some(v) = input.privilege_level {
                    s.privilege_level = v.into();
                }
                if let Some(v) = &input.script_body {
                    s.code = v.clone();
                }
                if let Some(v) = &input.default_args {
                    s.default_args = v.clone();
                }
                if let Some(v) = input.default_timeout_seconds {
                    s.default_timeout_secs = v;
                }
                if let Some(v) = &input.supported_platforms {
                    s.supported_platforms = v.iter().map(|o| (*o).into()).collect();
                }
                if let Some(t) = &tags {
                    s.tags = t.clone();
                }
                if let Some(v) = input.status {
                    s.status = v.into();
                }
            },
            |s| repo.update(tenant, s),
        )
        .await
        .map(ScriptObject)
    }

    /// Soft-deletes a script.
    async fn delete_script(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (caller, state) = caller(ctx)?;
        let raw = script_id("id", &id)?;
        state
            .repos
            .scripts
            .delete(caller.tenant(), &raw)
            .await
            .gql()?;
        Ok(id)
    }

    /// Runs an ACTIVE script (`CONFLICT` otherwise) on one machine, a list, or every device
    /// of a filter (1 to 100), all of the caller's tenant.
    async fn run_script(
        &self,
        ctx: &Context<'_>,
        input: RunScriptInput,
    ) -> async_graphql::Result<DispatchResult> {
        let (caller, state) = caller(ctx)?;
        let id = script_id("scriptId", &input.script_id)?;
        let script = state
            .repos
            .scripts
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .filter(|s| s.status != CoreStatus::Deleted)
            .ok_or_else(|| to_gql(Error::not_found("script")))?;
        if !script.is_runnable() {
            return Err(to_gql(Error::conflict("the script is archived")));
        }
        let machines = resolve_target(state, caller.tenant(), &input.target)
            .await
            .gql()?;
        let privilege: PrivilegeLevel = input
            .privilege_level
            .unwrap_or_else(|| script.privilege_level.into());
        let spec = RunSpec {
            script_id: Some(script.id.to_string()),
            code: script.code,
            shell: script.shell,
            privilege_level: privilege.into(),
            args: input.args.unwrap_or(script.default_args),
            timeout_secs: input.timeout_seconds.unwrap_or(script.default_timeout_secs),
        };
        dispatch(
            state,
            caller.tenant(),
            &machines,
            spec,
            caller.user_id().cloned(),
        )
        .await
    }
}
