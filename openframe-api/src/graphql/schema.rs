//! The schema: merged query and mutation roots, limits, and the shared state as data.

use async_graphql::{MergedObject, Schema};

use super::api_key::{ApiKeyMutation, ApiKeyQuery};
use super::device::{DeviceMutation, DeviceQuery};
use super::event::EventQuery;
use super::execution::{ExecutionMutation, ExecutionQuery};
use super::node::NodeQuery;
use super::organization::{OrganizationMutation, OrganizationQuery};
use super::registration::{RegistrationMutation, RegistrationQuery};
use super::script::{ScriptMutation, ScriptQuery};
use super::state::GraphqlState;
use super::subscription::SubscriptionRoot;
use super::tag::{TagMutation, TagQuery};
use super::tool::ToolQuery;
use super::user::{UserMutation, UserQuery};

/// Every query field.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub(crate) struct QueryRoot(
    NodeQuery,
    DeviceQuery,
    OrganizationQuery,
    TagQuery,
    ToolQuery,
    UserQuery,
    ApiKeyQuery,
    ExecutionQuery,
    EventQuery,
    ScriptQuery,
    RegistrationQuery,
);

/// Every mutation field.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub(crate) struct MutationRoot(
    DeviceMutation,
    OrganizationMutation,
    TagMutation,
    UserMutation,
    ApiKeyMutation,
    ExecutionMutation,
    ScriptMutation,
    RegistrationMutation,
);

/// The executable schema.
pub(crate) type GraphqlSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema over `state` with its limits.
pub(crate) fn build(state: &GraphqlState) -> GraphqlSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .limit_depth(state.limits.max_depth)
    .limit_complexity(state.limits.max_complexity)
    .limit_recursive_depth(64)
    .limit_directives(16)
    .data(state.clone())
    .finish()
}

/// The schema in SDL, e.g. for documentation or client code generation.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .finish()
    .sdl()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_publishes_the_documented_fields() {
        let sdl = super::sdl();
        for field in [
            "node(id: ID!): Node",
            "nodes(ids: [ID!]!): [Node]!",
            "devices(",
            "deviceFilters(",
            "device(id: ID!): Machine",
            "organizations(",
            "tags(",
            "integratedTools(",
            "toolConnections(",
            "users(",
            "invitations(",
            "apiKeys(",
            "scripts(",
            "executions(",
            "events(",
            "eventFilters(",
            "registrationSecret: String!",
            "createOrganization(",
            "updateDevice(",
            "createApiKey(",
            "rotateRegistrationSecret: String!",
            "createInvitation(",
            "runCommand(",
            "runScript(",
            "cancelExecution(",
            "machineStatusChanged: MachineStatusChange!",
            "eventAdded: Event!",
            "filteredCount: Int",
        ] {
            assert!(sdl.contains(field), "missing {field}");
        }
        assert!(
            !sdl.lines()
                .any(|l| l.trim_start().starts_with("credentials")),
            "tool credentials are never exposed"
        );
    }
}
