//! Relay `node(id)` and `nodes(ids)` over every type with a global id.

use async_graphql::{Context, ID, Interface, Object};
use openframe_core::{
    ApiKeyId, MachineId, OrganizationId, ScriptId, TagId, ToolConnectionId, ToolId, UserId,
};
use openframe_security::accounts::InvitationId;

use super::api_key::ApiKeyObject;
use super::context::{Caller, caller};
use super::device::Device;
use super::error::GqlResultExt as _;
use super::event::{EventObject, get_event};
use super::execution::{ExecutionObject, get_execution};
use super::ids::{NodeType, decode_any};
use super::organization::OrganizationObject;
use super::script::ScriptObject;
use super::state::GraphqlState;
use super::tag::TagObject;
use super::tool::{IntegratedToolObject, ToolConnectionObject};
use super::user::{InvitationObject, UserObject};

/// Most ids one `nodes` call takes.
const MAX_NODES: usize = 100;

/// Anything with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id."))]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Node {
    /// A machine.
    Machine(Device),
    /// An organization.
    Organization(OrganizationObject),
    /// A tag.
    Tag(TagObject),
    /// An integrated tool.
    IntegratedTool(IntegratedToolObject),
    /// A tool connection.
    ToolConnection(ToolConnectionObject),
    /// A user.
    User(UserObject),
    /// An invitation.
    Invitation(InvitationObject),
    /// An API key.
    ApiKey(ApiKeyObject),
    /// An execution.
    Execution(ExecutionObject),
    /// A unified event.
    Event(EventObject),
    /// A stored script.
    Script(ScriptObject),
}

fn parse<T>(raw: String, f: impl FnOnce(String) -> openframe_core::Result<T>) -> Option<T> {
    f(raw).ok()
}

/// Resolves one decoded id in the caller's tenant; `None` when it does not exist there.
async fn resolve(
    caller: &Caller,
    state: &GraphqlState,
    ty: NodeType,
    raw: String,
) -> async_graphql::Result<Option<Node>> {
    let t = caller.tenant();
    let r = &state.repos;
    Ok(match ty {
        NodeType::Machine => match parse(raw, MachineId::parse) {
            Some(id) => r
                .machines
                .get(t, &id)
                .await
                .gql()?
                .map(|m| Node::Machine(Device(m))),
            None => None,
        },
        NodeType::Organization => match parse(raw, OrganizationId::parse) {
            Some(id) => r
                .organizations
                .get(t, &id)
                .await
                .gql()?
                .map(|o| Node::Organization(OrganizationObject(o))),
            None => None,
        },
        NodeType::Tag => match parse(raw, TagId::parse) {
            Some(id) => r
                .tags
                .get(t, &id)
                .await
                .gql()?
                .map(|x| Node::Tag(TagObject(x))),
            None => None,
        },
        NodeType::IntegratedTool => match parse(raw, ToolId::parse) {
            Some(id) => r
                .tools
                .get(t, &id)
                .await
                .gql()?
                .map(|x| Node::IntegratedTool(IntegratedToolObject(x))),
            None => None,
        },
        NodeType::ToolConnection => match parse(raw, ToolConnectionId::parse) {
            Some(id) => r
                .tool_connections
                .get(t, &id)
                .await
                .gql()?
                .map(|x| Node::ToolConnection(ToolConnectionObject(x))),
            None => None,
        },
        NodeType::User => match parse(raw, UserId::parse) {
            Some(id) => r
                .users
                .get(t, &id)
                .await
                .gql()?
                .map(|u| Node::User(UserObject(u))),
            None => None,
        },
        NodeType::Invitation => match parse(raw, InvitationId::parse) {
            Some(id) => match state.accounts.get_invitation(t, &id).await {
                Ok(i) => Some(Node::Invitation(InvitationObject(i))),
                Err(openframe_core::Error::NotFound { .. }) => None,
                Err(e) => return Err(super::error::to_gql(e)),
            },
            None => None,
        },
        NodeType::ApiKey => match parse(raw, ApiKeyId::parse) {
            Some(id) => r
                .api_keys
                .get(t, &id)
                .await
                .gql()?
                .filter(|k| caller.is_owner() || Some(&k.user_id) == caller.user_id())
                .map(|k| Node::ApiKey(ApiKeyObject(k))),
            None => None,
        },
        NodeType::Execution => get_execution(state, t, &raw).await?.map(Node::Execution),
        NodeType::Script => match parse(raw, ScriptId::parse) {
            Some(id) => r
                .scripts
                .get(t, &id)
                .await
                .gql()?
                .map(|x| Node::Script(ScriptObject(x))),
            None => None,
        },
        NodeType::Event => match uuid::Uuid::parse_str(&raw) {
            Ok(id) => get_event(state, t, id).await?.map(Node::Event),
            Err(_) => None,
        },
    })
}

/// Relay node queries.
#[derive(Debug, Default)]
pub(crate) struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by global id; null if it does not exist in the caller's tenant. A
    /// malformed id is a `VALIDATION_ERROR`.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let (caller, state) = caller(ctx)?;
        let (ty, raw) = decode_any("id", &id).gql()?;
        resolve(caller, state, ty, raw).await
    }

    /// Several objects by global id (at most 100), in order; null where absent.
    #[graphql(complexity = "ids.len().max(1) * child_complexity")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        let (caller, state) = caller(ctx)?;
        if ids.len() > MAX_NODES {
            return Err(super::error::to_gql(openframe_core::Error::invalid(
                "ids",
                "at most 100 ids",
            )));
        }
        let decoded = ids
            .iter()
            .map(|id| decode_any("ids", id))
            .collect::<openframe_core::Result<Vec<_>>>()
            .gql()?;
        let mut out = Vec::with_capacity(decoded.len());
        for (ty, raw) in decoded {
            out.push(resolve(caller, state, ty, raw).await?);
        }
        Ok(out)
    }
}
