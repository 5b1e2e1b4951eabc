//! [`EventFilter`]: which events a query, count, facet or histogram covers.

use openframe_core::{Error, MachineId, OrganizationId, Result, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::{EventCategory, Severity, ToolSource, UnifiedEvent};

/// Most values in one list of an [`EventFilter`].
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest [`EventFilter::text`], in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Longest event type accepted in a filter, in characters.
const MAX_EVENT_TYPE_CHARS: usize = 128;

/// A conjunction of conditions on events; an empty list or `None` means "any".
///
/// ```
/// use openframe_core::MachineId;
/// use openframe_stream::model::Severity;
/// use openframe_stream::store::EventFilter;
/// let filter = EventFilter {
///     machine_ids: vec![MachineId::parse("m-1").unwrap()],
///     severities: vec![Severity::Error, Severity::Critical],
///     text: Some("100%".into()),
///     ..EventFilter::default()
/// };
/// assert!(filter.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventFilter {
    /// Events that occurred at or after this instant.
    pub from: Option<Timestamp>,
    /// Events that occurred strictly before this instant.
    pub to: Option<Timestamp>,
    /// Events of any of these machines.
    pub machine_ids: Vec<MachineId>,
    /// Events of any of these organizations.
    pub organization_ids: Vec<OrganizationId>,
    /// Events of any of these unified types (exact match).
    pub event_types: Vec<String>,
    /// Events of any of these severities.
    pub severities: Vec<Severity>,
    /// Events of any of these tools.
    pub tools: Vec<ToolSource>,
    /// Events of any of these categories.
    pub categories: Vec<EventCategory>,
    /// Events whose summary, source type or user contains this text: literal (no wildcards,
    /// `%`, `_`, `*` and `.` are plain characters), case-insensitive. Blank means "any".
    pub text: Option<String>,
}

impl EventFilter {
    /// Checks list lengths, text length and the time range.
    pub fn validate(&self) -> Result<()> {
        let lists = [
            ("machineIds", self.machine_ids.len()),
            ("organizationIds", self.organization_ids.len()),
            ("eventTypes", self.event_types.len()),
            ("severities", self.severities.len()),
            ("tools", self.tools.len()),
            ("categories", self.categories.len()),
        ];
        for (field, len) in lists {
            if len > MAX_FILTER_VALUES {
                return Err(Error::invalid(field, "must list at most 100 values"));
            }
        }
        for t in &self.event_types {
            if t.is_empty() || t.chars().count() > MAX_EVENT_TYPE_CHARS {
                return Err(Error::invalid(
                    "eventTypes",
                    "each value must have 1 to 128 characters",
                ));
            }
        }
        if let Some(text) = &self.text {
            if text.chars().count() > MAX_SEARCH_CHARS {
                return Err(Error::invalid("text", "must be at most 200 characters"));
            }
            if text.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "text",
                    "must not contain control characters",
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from.timestamp_micros() >= to.timestamp_micros() {
                return Err(Error::invalid("to", "must be after from"));
            }
        }
        Ok(())
    }

    /// The search needle: the trimmed, lower-cased text, or `None` when blank.
    pub(crate) fn needle(&self) -> Option<String> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
    }

    /// `from` in microseconds since the epoch.
    pub(crate) fn start_micros(&self) -> Option<i64> {
        self.from.map(|t| t.timestamp_micros())
    }

    /// `to` in microseconds since the epoch.
    pub(crate) fn end_micros(&self) -> Option<i64> {
        self.to.map(|t| t.timestamp_micros())
    }

    /// Whether `event` matches: the reference semantics every backend reproduces.
    /// (The tenant is not part of the filter; callers scope by tenant first.)
    pub fn matches(&self, event: &UnifiedEvent) -> bool {
        self.matches_fields(event)
            && self
                .needle()
                .is_none_or(|n| super::search_text(event).contains(&n))
    }

    /// [`EventFilter::matches`] without the text condition.
    pub(crate) fn matches_fields(&self, event: &UnifiedEvent) -> bool {
        let t = event.occurred_at.timestamp_micros();
        if self.start_micros().is_some_and(|from| t < from)
            || self.end_micros().is_some_and(|to| t >= to)
        {
            return false;
        }
        fn any_of<T: PartialEq>(list: &[T], value: Option<&T>) -> bool {
            list.is_empty() || value.is_some_and(|v| list.contains(v))
        }
        any_of(&self.machine_ids, event.machine_id.as_ref())
            && any_of(&self.organization_ids, event.organization_id.as_ref())
            && any_of(&self.event_types, Some(&event.event_type))
            && any_of(&self.severities, Some(&event.severity))
            && any_of(&self.tools, Some(&event.tool))
            && any_of(&self.categories, Some(&event.category))
    }
}
