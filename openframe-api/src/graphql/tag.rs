//! Tags: labels attached to devices.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use openframe_core::{Tag, TagId, Timestamp};
use openframe_data::{TagFilter, TagSort};

use super::connection::{SortInput, connection, list_complexity, listed, page_request, sort_spec};
use super::context::caller;
use super::error::GqlResultExt as _;
use super::ids::{NodeType, decode_as, encode};
use super::update::{apply, modify};

/// A device label, unique by name (case-insensitive) in a tenant.
#[derive(Debug, Clone)]
pub(crate) struct TagObject(pub(crate) Tag);

#[Object(name = "Tag")]
impl TagObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Tag, self.0.id.as_str())
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Colour, `#rrggbb`.
    async fn color(&self) -> Option<&str> {
        self.0.color.as_deref()
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
}

connection!(TagConnection, TagEdge, TagObject);

/// Tag queries.
#[derive(Debug, Default)]
pub(crate) struct TagQuery;

#[Object]
impl TagQuery {
    /// A page of tags. Sort fields: id, name, createdAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn tags(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TagConnection> {
        let (caller, state) = caller(ctx)?;
        let filter = TagFilter { search };
        let sort = sort_spec::<TagSort>(sort).gql()?;
        listed!(
            state.repos.tags,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            TagConnection,
            TagObject
        )
    }

    /// One tag by global id; null if unknown in the caller's tenant.
    async fn tag(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<TagObject>> {
        let (caller, state) = caller(ctx)?;
        let id = tag_id(&id)?;
        Ok(state
            .repos
            .tags
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(TagObject))
    }
}

fn tag_id(id: &ID) -> async_graphql::Result<TagId> {
    decode_as("id", NodeType::Tag, id, TagId::parse).gql()
}

/// A new tag.
#[derive(Debug, InputObject)]
pub(crate) struct CreateTagInput {
    /// Name, unique in the tenant (case-insensitive).
    name: String,
    /// Description.
    description: Option<String>,
    /// Colour, `#rrggbb`.
    color: Option<String>,
}

/// Changes to a tag; absent fields stay, `null` clears.
#[derive(Debug, InputObject)]
pub(crate) struct UpdateTagInput {
    /// The tag (global id).
    id: ID,
    /// New name.
    name: Option<String>,
    /// New description.
    description: MaybeUndefined<String>,
    /// New colour.
    color: MaybeUndefined<String>,
}

/// Tag mutations.
#[derive(Debug, Default)]
pub(crate) struct TagMutation;

#[Object]
impl TagMutation {
    /// Creates a tag; `ALREADY_EXISTS` if the name is taken.
    async fn create_tag(
        &self,
        ctx: &Context<'_>,
        input: CreateTagInput,
    ) -> async_graphql::Result<TagObject> {
        let (caller, state) = caller(ctx)?;
        let mut tag = Tag::new(input.name, state.clock.now());
        tag.description = input.description;
        tag.color = input.color;
        state
            .repos
            .tags
            .insert(caller.tenant(), tag)
            .await
            .map(TagObject)
            .gql()
    }

    /// Updates a tag.
    async fn update_tag(
        &self,
        ctx: &Context<'_>,
        input: UpdateTagInput,
    ) -> async_graphql::Result<TagObject> {
        let (caller, state) = caller(ctx)?;
        let id = tag_id(&input.id)?;
        let (repo, tenant) = (&state.repos.tags, caller.tenant());
        modify(
            "tag",
            || repo.get(tenant, &id),
            |tag| {
                if let Some(name) = &input.name {
                    tag.name = name.trim().to_owned();
                }
                apply(&mut tag.description, &input.description);
                apply(&mut tag.color, &input.color);
            },
            |tag| repo.update(tenant, tag),
        )
        .await
        .map(TagObject)
    }

    /// Deletes a tag (devices keep no reference to it in lists: missing tags are skipped).
    async fn delete_tag(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (caller, state) = caller(ctx)?;
        let raw = tag_id(&id)?;
        state.repos.tags.delete(caller.tenant(), &raw).await.gql()?;
        Ok(id)
    }
}
