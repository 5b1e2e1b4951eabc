//! The error responses every external route documents, written once.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn errors(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error(description)))
        .collect()
}

const COMMON: [(&str, &str); 4] = [
    ("400", "Invalid parameter or body"),
    ("401", "Missing or invalid API key"),
    (
        "403",
        "The key lacks the route's scope (INSUFFICIENT_SCOPE)",
    ),
    (
        "429",
        "Rate limit exceeded (RATE_LIMITED, with Retry-After)",
    ),
];

/// 400, 401, 403 and 429.
#[derive(Debug)]
pub(super) struct ListErrors;

impl IntoResponses for ListErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&COMMON)
    }
}

/// 400, 401, 403, 404 and 429.
#[derive(Debug)]
pub(super) struct ItemErrors;

impl IntoResponses for ItemErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = errors(&COMMON);
        all.extend(errors(&[("404", "Not found in the key's tenant")]));
        all
    }
}
