//! Checks every backend runs on an append batch before writing anything.

use openframe_core::{Error, Result, TenantId};

use crate::model::{MAX_DETAILS_BYTES, MAX_SUMMARY_CHARS, UnifiedEvent};

/// Most events in one [`EventStore::append`](super::EventStore::append) call.
pub const MAX_APPEND_BATCH: usize = 10_000;

/// Longest short text field (source type, event type), in characters.
const MAX_NAME_CHARS: usize = 128;
/// Longest user, tool agent id or source position, in characters.
const MAX_LABEL_CHARS: usize = 256;

/// Validates a whole batch; returns each event's tenant, in order.
pub(crate) fn batch(events: &[UnifiedEvent]) -> Result<Vec<&TenantId>> {
    if events.len() > MAX_APPEND_BATCH {
        return Err(Error::invalid("events", "at most 10000 events per append"));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| event(i, e))
        .collect()
}

fn event(i: usize, e: &UnifiedEvent) -> Result<&TenantId> {
    let field = |name: &str| format!("events[{i}].{name}");
    let tenant = e
        .tenant
        .as_ref()
        .ok_or_else(|| Error::invalid(field("tenant"), "every stored event needs a tenant"))?;
    let too_long = |s: &str, max: usize| s.chars().count() > max;
    if e.event_type.is_empty() || too_long(&e.event_type, MAX_NAME_CHARS) {
        return Err(Error::invalid(
            field("eventType"),
            "must have 1 to 128 characters",
        ));
    }
    if too_long(&e.source_type, MAX_NAME_CHARS) {
        return Err(Error::invalid(
            field("sourceType"),
            "must be at most 128 characters",
        ));
    }
    if too_long(&e.summary, MAX_SUMMARY_CHARS) {
        return Err(Error::invalid(
            field("summary"),
            "must be at most 1024 characters",
        ));
    }
    for (name, value) in [
        ("user", &e.user),
        ("toolAgentId", &e.tool_agent_id),
        ("sourcePosition", &e.source_position),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| too_long(v, MAX_LABEL_CHARS))
        {
            return Err(Error::invalid(
                field(name),
                "must be at most 256 characters",
            ));
        }
    }
    let details = serde_json::to_vec(&e.details).map_or(usize::MAX, |v| v.len());
    if details > MAX_DETAILS_BYTES {
        return Err(Error::invalid(
            field("details"),
            "must serialize to at most 16 KiB",
        ));
    }
    Ok(tenant)
}
