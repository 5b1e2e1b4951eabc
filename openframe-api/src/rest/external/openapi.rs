//! The OpenAPI 3 document of the external API, generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::dto;
use super::{devices, events, executions, organizations, tools};

/// The external API's OpenAPI document (`ExternalApiDoc::openapi()`).
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "OpenFrame External API",
        version = "1.0.0",
        description = "The external REST API of OpenFrame-rs.\n\n\
            Authenticate with the header `X-API-Key: ak_<16 hex>.sk_<32 hex>`. Each route needs a \
            scope of the key (`devices:read`, `organizations:read`, `tools:read`, \
            `executions:read`, `executions:write`, `events:read`); a missing one is 403 \
            `INSUFFICIENT_SCOPE`.\n\n\
            Every authenticated answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and \
            `X-RateLimit-Reset` (seconds); over the limit the answer is 429 `RATE_LIMITED` with \
            `Retry-After` (seconds).\n\n\
            Lists are paged with `limit` (1 to 100, default 20; other values are a 400) and \
            `cursor` (the previous page's `pageInfo.endCursor`). Errors are \
            `{code, message, timestamp, fieldErrors?}`."
    ),
    paths(
        devices::list,
        devices::filters,
        devices::get_one,
        organizations::list,
        organizations::get_one,
        tools::list,
        tools::get_one,
        executions::list,
        executions::get_one,
        executions::run,
        events::list,
        events::get_one,
    ),
    components(schemas(
        dto::PageInfoDto,
        dto::ErrorBody,
        dto::FieldErrorDto,
        dto::DeviceDto,
        dto::DevicesResponse,
        dto::FilterOption,
        dto::DeviceFiltersResponse,
        dto::OrganizationDto,
        dto::OrganizationsResponse,
        dto::ToolUrlDto,
        dto::ToolDto,
        dto::ToolsResponse,
        dto::ExecutionDto,
        dto::ExecutionsResponse,
        dto::ExecutionBatchResponse,
        dto::RunCommandRequest,
        events::EventDto,
        events::EventsResponse,
    )),
    modifiers(&ApiKeyAuth),
    tags(
        (name = "devices", description = "Managed machines"),
        (name = "organizations", description = "The MSP's customers"),
        (name = "tools", description = "Integrated tools (credentials are never returned)"),
        (name = "executions", description = "Commands run on machines"),
        (name = "events", description = "Unified events from every tool"),
    )
)]
pub struct ExternalApiDoc;

/// Adds the `ApiKeyAuth` scheme (`X-API-Key` header).
#[derive(Debug)]
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ApiKeyAuth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document as JSON.
pub fn openapi_document() -> serde_json::Value {
    serde_json::to_value(ExternalApiDoc::openapi()).unwrap_or_default()
}
